"""Draws the figures the notebooks show (``nncourse figures`` rewrites them).

The seeds only reference their figures; these are the project's own, drawn with matplotlib
so that they can be regenerated and changed with the text.
"""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .course import ROOT  # noqa: E402


def _node(ax, xy, text, color="#dbe9f6", radius=0.28):
    ax.add_patch(plt.Circle(xy, radius, facecolor=color, edgecolor="#333333", zorder=3))
    ax.text(*xy, text, ha="center", va="center", fontsize=12, zorder=4)


def _edge(ax, start, end, radius=0.28, **style):
    start, end = np.asarray(start, float), np.asarray(end, float)
    direction = (end - start) / np.linalg.norm(end - start)
    ax.annotate("", xy=end - radius * direction, xytext=start + radius * direction,
                arrowprops=dict(arrowstyle="->", color=style.get("color", "#555555"), lw=1))


def _canvas(width, height):
    fig, ax = plt.subplots(figsize=(width, height))
    ax.set_aspect("equal")
    ax.axis("off")
    return fig, ax


def linear_layer(path):
    """Three inputs, two linear units: each unit computes w^T x + b."""
    fig, ax = _canvas(6, 3.4)
    inputs = [(0, 2.4), (0, 1.2), (0, 0)]
    units = [(3, 1.8), (3, 0.6)]
    for i, xy in enumerate(inputs, 1):
        _node(ax, xy, "$x_%d$" % i)
    for j, xy in enumerate(units, 1):
        _node(ax, xy, "$y_%d$" % j, color="#fde2c8")
        for i, start in enumerate(inputs, 1):
            _edge(ax, start, xy)
        ax.text(xy[0] + 0.45, xy[1], r"$y_%d = \sum_i x_i W_{i%d} + b_%d$" % (j, j, j),
                va="center", fontsize=11)
    ax.text(-0.25, -0.7, "input $x \\in \\mathbb{R}^3$", fontsize=10)
    ax.text(2.4, -0.7, "output $y = xW + b \\in \\mathbb{R}^2$", fontsize=10)
    ax.set_xlim(-0.6, 6.6)
    ax.set_ylim(-0.9, 2.9)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def activations(path):
    """ReLU and the sigmoid with their derivatives."""
    x = np.linspace(-6, 6, 601)
    sigmoid = 1 / (1 + np.exp(-x))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    axes[0].plot(x, np.maximum(x, 0), label="ReLU(x) = max(0, x)")
    axes[0].plot(x, (x > 0).astype(float), "--", label="derivative")
    axes[1].plot(x, sigmoid, label="sigmoid(x)")
    axes[1].plot(x, sigmoid * (1 - sigmoid), "--", label="derivative (at most 1/4)")
    for ax in axes:
        ax.axhline(0, color="#999999", lw=0.6)
        ax.axvline(0, color="#999999", lw=0.6)
        ax.set_xlabel("x")
        ax.legend(loc="upper left", fontsize=9)
    axes[0].set_ylim(-0.5, 3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def network(path):
    """The sine fitter: 1 input, two hidden layers of 80 ReLU units, 1 output."""
    fig, ax = _canvas(8, 3.6)
    columns = [(0, ["x"]), (2.5, ["", "", "...", ""]), (5, ["", "", "...", ""]), (7.5, ["ŷ"])]
    positions = []
    for x, labels in columns:
        ys = np.linspace(2.4, 0, len(labels)) if len(labels) > 1 else [1.2]
        column = []
        for y, label in zip(ys, labels):
            if label == "...":
                ax.text(x, y, "⋮", ha="center", va="center", fontsize=16)
                continue
            _node(ax, (x, y), label, color="#fde2c8" if 0 < x < 7.5 else "#dbe9f6")
            column.append((x, y))
        positions.append(column)
    for left, right in zip(positions, positions[1:]):
        for start in left:
            for end in right:
                _edge(ax, start, end)
    captions = ["input\nm × 1", "Linear(1, 80)\n+ ReLU", "Linear(80, 80)\n+ ReLU",
                "Linear(80, 1)\noutput m × 1"]
    for (x, _), caption in zip(columns, captions):
        ax.text(x, -0.75, caption, ha="center", va="center", fontsize=10)
    ax.set_xlim(-0.6, 8.1)
    ax.set_ylim(-1.2, 2.8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def conv1d(path):
    """A kernel [x y z] sliding along [a b c d e f]: one output per position."""
    fig, ax = _canvas(8, 3.4)
    signal = "abcdef"
    for i, name in enumerate(signal):
        ax.add_patch(plt.Rectangle((i, 2), 1, 0.8, facecolor="#dbe9f6", edgecolor="#333333"))
        ax.text(i + 0.5, 2.4, name, ha="center", va="center", fontsize=13)
    ax.text(-0.3, 2.4, "s", ha="right", va="center", fontsize=13)
    for shift, color in [(0, "#f4a261"), (1, "#2a9d8f")]:
        for k, name in enumerate("xyz"):
            ax.add_patch(plt.Rectangle((shift + k, 1.0 - 0.9 * shift), 1, 0.7,
                                       facecolor=color, alpha=0.35, edgecolor="#333333"))
            ax.text(shift + k + 0.5, 1.35 - 0.9 * shift, name, ha="center", va="center")
        ax.text(3.3 + shift, 1.35 - 0.9 * shift,
                "→  %sx + %sy + %sz" % tuple(signal[shift:shift + 3]), va="center",
                fontsize=11)
    ax.text(0, -0.55, "the kernel moves one step right for each output value; "
                      "4 outputs for 6 inputs", fontsize=10)
    ax.set_xlim(-0.8, 8)
    ax.set_ylim(-0.8, 3)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def xor_input_space(path):
    """The four XOR inputs and their labels: no line separates the classes. (The hidden
    space is for the student to draw: Question 1.2 asks for it.)"""
    points = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], float)
    labels = np.array([0, 1, 1, 0])
    fig, ax = plt.subplots(figsize=(4.6, 3.8))
    for label, marker, color in [(0, "o", "#1f77b4"), (1, "s", "#d62728")]:
        chosen = points[labels == label]
        ax.scatter(chosen[:, 0], chosen[:, 1], s=120, marker=marker, color=color,
                   label="y = %d" % label, zorder=3)
    for point, text in zip(points, ["$x_1$", "$x_2$", "$x_3$", "$x_4$"]):
        ax.annotate(text, point, xytext=(8, 6), textcoords="offset points")
    ax.set_title("input space: no line separates the classes", fontsize=10)
    ax.set_xlabel("$x^{(1)}$")
    ax.set_ylabel("$x^{(2)}$")
    ax.set_xlim(-0.4, 1.6)
    ax.set_ylim(-0.4, 1.4)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


BACKPROP_WEIGHTS = {("1", "3"): 0.5, ("2", "3"): -0.5, ("1", "4"): 1.0, ("2", "4"): 0.5,
                    ("1", "5"): -1.0, ("2", "5"): 1.0, ("3", "6"): 1.0, ("4", "6"): -0.5,
                    ("5", "6"): 2.0}


def backprop_network(path):
    """The network of the backpropagation exercise, with its inputs and weights."""
    fig, ax = _canvas(7.5, 4.2)
    places = {"1": (0, 2.6), "2": (0, 0.6), "3": (3, 3.0), "4": (3, 1.6), "5": (3, 0.2),
              "6": (6, 1.6)}
    labels = {"1": "1", "2": "2", "3": "3", "4": "4", "5": "5", "6": "6"}
    for name, xy in places.items():
        color = "#dbe9f6" if name in "12" else "#fde2c8" if name in "345" else "#d9f0d3"
        _node(ax, xy, labels[name], color=color, radius=0.32)
    for (start, end), weight in BACKPROP_WEIGHTS.items():
        a, b = np.array(places[start]), np.array(places[end])
        _edge(ax, a, b, radius=0.32)
        middle = a + (b - a) * (0.3 if end != "6" else 0.5)
        ax.text(*middle, "$w_{%s%s} = %g$" % (end, start, weight), fontsize=9,
                ha="center", va="bottom", color="#333333",
                bbox=dict(facecolor="white", edgecolor="none", pad=0.5))
    ax.text(-0.55, 2.6, "$x_1 = 2$", ha="right", va="center", fontsize=11)
    ax.text(-0.55, 0.6, "$x_2 = 1$", ha="right", va="center", fontsize=11)
    ax.text(6.45, 1.6, "$\\hat{y}$ (identity)", ha="left", va="center", fontsize=11)
    ax.text(3, -0.55, "hidden units: ReLU", ha="center", fontsize=10)
    ax.set_xlim(-1.6, 7.6)
    ax.set_ylim(-0.8, 3.5)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def _box(ax, xy, size, text, color):
    (x, y), (w, h) = xy, size
    ax.add_patch(plt.Rectangle((x - w / 2, y - h / 2), w, h, facecolor=color,
                               edgecolor="#333333", zorder=3))
    ax.text(x, y, text, ha="center", va="center", fontsize=10, zorder=4)


def rnn_structure(path):
    """The recurrent network of ps4: input, tanh layer fed back through a delay, sigmoid."""
    fig, ax = _canvas(8, 3.6)
    arrow = dict(arrowstyle="->", color="#555555", lw=1.2)
    _box(ax, (0, 1.5), (0.9, 0.6), "$\\mathbf{p}(t)$", "#dbe9f6")
    _box(ax, (2.3, 1.5), (1.7, 0.9), "$\\mathbf{IW}^{1,1}, \\mathbf{b}^1$\n+ $\\tanh$", "#fde2c8")
    _box(ax, (5.0, 1.5), (1.7, 0.9), "$\\mathbf{LW}^{2,1}, \\mathbf{b}^2$\n+ $\\sigma$", "#d9f0d3")
    _box(ax, (7.1, 1.5), (0.9, 0.6), "$\\mathbf{a}^2(t)$", "#d9f0d3")
    _box(ax, (2.3, 0.0), (1.2, 0.6), "delay $D$", "#eeeeee")
    ax.annotate("", xy=(1.45, 1.5), xytext=(0.45, 1.5), arrowprops=arrow)
    ax.annotate("", xy=(4.15, 1.5), xytext=(3.15, 1.5), arrowprops=arrow)
    ax.annotate("", xy=(6.65, 1.5), xytext=(5.85, 1.5), arrowprops=arrow)
    # the hidden state goes round through the delay and comes back through LW^{1,1}
    ax.plot([3.6, 3.6, 2.9], [1.5, 0.0, 0.0], color="#555555", lw=1.2)
    ax.plot([1.7, 1.2, 1.2], [0.0, 0.0, 1.0], color="#555555", lw=1.2)
    ax.annotate("", xy=(1.45, 1.2), xytext=(1.2, 1.0), arrowprops=arrow)
    ax.text(3.7, 0.75, "$\\mathbf{a}^1(t)$", fontsize=10)
    ax.text(0.45, 0.35, "$\\mathbf{a}^1(t-1)$\nvia $\\mathbf{LW}^{1,1}$", fontsize=10,
            ha="center")
    ax.set_xlim(-0.6, 7.7)
    ax.set_ylim(-0.5, 2.2)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


FIGURES = {
    "ps1": {"linear_layer.png": linear_layer, "activations.png": activations,
            "network.png": network, "conv1d.png": conv1d},
    "ps3": {"xor_input_space.png": xor_input_space, "backprop_network.png": backprop_network},
    "ps4": {"rnn_structure.png": rnn_structure},
}


def draw_all(root=ROOT):
    for problem_set, figures in FIGURES.items():
        folder = os.path.join(root, "source", problem_set, "images")
        os.makedirs(folder, exist_ok=True)
        for name, draw in figures.items():
            draw(os.path.join(folder, name))
            print("wrote", os.path.relpath(os.path.join(folder, name), root))
