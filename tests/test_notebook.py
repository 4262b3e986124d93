"""The master notebook itself: it runs clean in fast mode (its hidden checks pass in the
kernel), and full mode reaches what the text promises, on the offline MNIST sample."""

import os
import re

import numpy as np
import pytest
from nbclient import NotebookClient

from nncourse.checks import PROBLEM_SETS
from nncourse.datasets import write_offline_datasets
from nncourse.course import ROOT
from tests.helpers import reference_namespace, source_notebook

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def mnist_root(tmp_path_factory):
    return write_offline_datasets(str(tmp_path_factory.mktemp("data")))


def execute(problem_set, mnist_root, monkeypatch, fast):
    """Runs the master notebook in a kernel (its hidden checks run there too)."""
    if fast:
        monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    else:
        monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.setenv("NNCOURSE_DATA", mnist_root)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = source_notebook(problem_set)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": os.path.join(ROOT, "source", problem_set)}},
                   allow_errors=True).execute()
    return notebook


@pytest.mark.parametrize("problem_set", PROBLEM_SETS)
def test_master_notebook_runs_top_to_bottom_in_fast_mode(problem_set, mnist_root, monkeypatch):
    notebook = execute(problem_set, mnist_root, monkeypatch, fast=True)
    problems = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "error" or output.get("name") == "stderr":
                problems.append((cell.source.splitlines()[0], output.get("evalue") or output.get("text")))
    assert problems == []


def _full_mode_namespace(mnist_root):
    """The notebook's definitions with the reference solution, as in full mode."""
    namespace = reference_namespace("ps1")
    namespace.update(FAST=False, DATA_ROOT=mnist_root)
    import torchvision
    namespace["torchvision"] = torchvision
    import time
    namespace["time"] = time
    return namespace


def test_full_mode_fits_the_sine_as_promised(mnist_root):
    namespace = _full_mode_namespace(mnist_root)
    _, losses, _ = namespace["fit_sine"]()
    assert losses[-1] < 1e-4 and len(losses) < 20000  # "reaches the target (10⁻⁴)"


def test_full_mode_classifies_the_mnist_sample_as_promised(mnist_root):
    namespace = _full_mode_namespace(mnist_root)
    load = namespace["load_mnist_subset"]
    namespace["X_train"], namespace["y_train"] = load(train=True, per_digit=300)
    namespace["X_val"], namespace["y_val"] = load(train=False, per_digit=100)
    _, history = namespace["train_mnist"](lr=0.05, epochs=40)
    # the notebook promises about 92 % on the validation images
    assert history["accuracy"][-1] >= 0.90, history["accuracy"]


def test_ps2_full_mode_reaches_the_promised_accuracy(mnist_root, monkeypatch):
    # the notebook promises more than 90 % after 10 epochs; here on the offline sample
    notebook = execute("ps2", mnist_root, monkeypatch, fast=False)
    printed = "".join(output.get("text", "") for cell in notebook.cells
                      for output in cell.get("outputs", []))
    accuracies = [float(value) for value in re.findall(r"epoch 10: test accuracy ([\d.]+)%", printed)]
    assert accuracies and accuracies[-1] > 90, printed[-500:]


def test_ps4_full_mode_learns_window_3_as_promised():
    # the notebook promises about 99 % on new sequences, for the NumPy and the PyTorch RNN
    namespace = reference_namespace("ps4")
    namespace["FAST"] = False
    notebook = source_notebook("ps4")
    helpers = next(cell.source for cell in notebook.cells if "def varied_lengths" in cell.source)
    exec(compile(helpers.split("torch.manual_seed(0)")[0], "<ps4>", "exec"), namespace)
    np.random.seed(0)
    X, y = namespace["generate_counting_ones_data"](1000, 10, 3)
    rnn = namespace["SimpleRNN"](R=1, S1=20, S2=1, learning_rate=0.1)
    namespace["train_rnn"](rnn, X[..., None], y[..., None], epochs=10)
    X_test, y_test = namespace["generate_counting_ones_data"](500, 10, 3)
    hits = sum(int(round(a.item()) == t)
               for inputs, targets in zip(X_test[..., None], y_test)
               for a, t in zip(rnn.forward(inputs)[0], targets))
    assert hits / y_test.size >= 0.99

    import torch
    torch.manual_seed(0)
    sequences, targets = namespace["varied_lengths"](1000, 3)
    model = namespace["SimplePyTorchRNN"](R=1, S1=20, S2=1, learning_rate=0.1)
    namespace["train_pytorch_rnn"](model, sequences, targets, epochs=40, batch_size=16)
    accuracy = namespace["pytorch_rnn_accuracy"](model, *namespace["varied_lengths"](500, 3))
    assert accuracy >= 0.99, accuracy


def _ps5_cell(namespace, marker, stop=None):
    """Runs the part of the ps5 master's code cell that contains ``marker`` (up to ``stop``)."""
    source = next(cell.source for cell in source_notebook("ps5").cells if marker in cell.source)
    exec(compile(source.split(stop)[0] if stop else source, "<ps5>", "exec"), namespace)


def test_ps5_full_mode_reaches_the_promised_results(mnist_root):
    # promised: about 97 % for the CNNs on the offline MNIST sample after 10 epochs, and a
    # transformer that predicts the noisy sine far better with positional encoding
    import torch
    from torch.utils.data import DataLoader
    from torchvision import datasets
    namespace = reference_namespace("ps5")
    namespace.update(FAST=False, DATA_ROOT=mnist_root)
    torch.manual_seed(0)
    normalise = namespace["transforms"].Compose([namespace["transforms"].ToTensor(),
                                                 namespace["transforms"].Normalize([0.5], [0.5])])
    train = DataLoader(datasets.MNIST(mnist_root, train=True, transform=normalise),
                       batch_size=128, shuffle=True)
    test = DataLoader(datasets.MNIST(mnist_root, train=False, transform=normalise), batch_size=1000)
    model, _ = namespace["train_cnn"](train, namespace["DropoutCNN"](10), epochs=10)
    _ps5_cell(namespace, "def test_accuracy", stop="cnn_epochs =")
    assert namespace["test_accuracy"](model, test) >= 0.95

    _ps5_cell(namespace, "def generate_sine_wave")
    _ps5_cell(namespace, "def train_sequence_model", stop="sequence_epochs =")
    namespace["sequence_epochs"] = 200
    _ps5_cell(namespace, "def create_sequences_with_noise")
    _ps5_cell(namespace, "class TransformerNN", stop="torch.manual_seed(0)")
    losses = {}
    for positional in (True, False):
        torch.manual_seed(0)
        transformer = namespace["train_sequence_model"](
            namespace["TransformerNN"](1, 50, 1, positional=positional), namespace["noisy_train"],
            namespace["noisy_train_labels"], 200, lr=0.001)
        losses[positional] = namespace["test_loss"](transformer, namespace["noisy_test"],
                                                    namespace["noisy_test_labels"])
    assert losses[True] < 0.01 and losses[False] > 10 * losses[True], losses
