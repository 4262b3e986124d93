"""Hidden checks of ps1 (backpropagation from scratch in NumPy).

Probes (``probe_*``) run in the student's kernel: they may use only NumPy and the helpers of
``wire.py`` (``attempt``, ``lookup``, ``Raised``), and define anything else they need inside
their own body. Judges run in the grader and use torch autograd or closed forms as oracles.
"""

import numpy as np
import torch
import torch.nn.functional as F

from . import CheckFailed, check
from . import judging as J
from .wire import Raised, attempt, attempt_without_warnings, lookup  # noqa: F401 (probes)
from ..policy import Rule

# ps1 builds backpropagation by hand: graded code may use NumPy, not a library that
# differentiates or implements the layers for it (checked on the source: nncourse/policy/).
POLICY = [Rule(modules=("torch", "torchvision", "tensorflow", "keras", "jax", "autograd",
                        "sklearn", "scipy", "mlxtend"),
               why="ps1 is done with NumPy alone (no torch or other learning library)")]


def _t(array):
    return torch.tensor(np.asarray(array, dtype=np.float64), requires_grad=True)


# --- Linear -----------------------------------------------------------------------------

def linear_inputs():
    rng = np.random.default_rng(101)
    cases = []
    # non-square shapes, a batch of one, an output of width one
    for batch, n_in, n_out in [(4, 3, 5), (1, 2, 3), (6, 4, 1)]:
        cases.append({
            "x": rng.normal(size=(batch, n_in)),
            "x2": rng.normal(size=(batch + 2, n_in)),
            "W": rng.normal(size=(n_in, n_out)),
            "b": rng.normal(size=(1, n_out)),
            "g": rng.normal(size=(batch, n_out)),
            "lr": float(rng.uniform(0.1, 0.5)),
        })
    return {"cases": cases}


def probe_linear(ns, inputs):
    Linear = lookup(ns, "Linear")
    results = []
    for case in inputs["cases"]:
        n_in, n_out = case["W"].shape
        layer = attempt(Linear, n_in, n_out)
        if isinstance(layer, Raised):
            results.append({"init": layer})
            continue
        layer.W, layer.b = case["W"].copy(), case["b"].copy()
        out = {
            "forward": attempt(layer, case["x"].copy()),
            "forward_again": attempt(layer.forward, case["x2"].copy()),
        }
        out["dx"] = attempt(layer.backward, case["x"].copy(), case["g"].copy(), case["lr"])
        out["W"], out["b"] = getattr(layer, "W", None), getattr(layer, "b", None)
        # the default learning rate of the signature, on a fresh layer
        fresh = attempt(Linear, n_in, n_out)
        if not isinstance(fresh, Raised):
            fresh.W, fresh.b = case["W"].copy(), case["b"].copy()
            attempt(fresh.forward, case["x"].copy())
            out["default_lr"] = attempt(fresh.backward, case["x"].copy(), case["g"].copy())
            out["W_default_lr"] = getattr(fresh, "W", None)
        results.append(out)
    return {"cases": results}


def _linear_oracle(case, lam=0.0):
    x, W, b = _t(case["x"]), _t(case["W"]), _t(case["b"])
    y = x @ W + b
    (y * torch.tensor(case["g"])).sum().backward()
    dW = W.grad.numpy() + 2 * lam * case["W"]
    return {"y": y.detach().numpy(), "dx": x.grad.numpy(), "dW": dW, "db": b.grad.numpy()}


@check("ps1.linear_forward", inputs=linear_inputs, probe=probe_linear)
def linear_forward(inputs, outputs):
    for case, out in zip(inputs["cases"], outputs["cases"], strict=True):
        n_in, n_out = case["W"].shape
        J.constructed(out, "Linear(%d, %d)" % (n_in, n_out))
        what = "Linear(%d, %d).forward on a batch of %d" % (n_in, n_out, len(case["x"]))
        J.close(out["forward"], _linear_oracle(case)["y"], what)
        J.close(out["forward_again"], case["x2"] @ case["W"] + case["b"],
                what.replace("forward", "forward, called a second time,"))


@check("ps1.linear_backward", inputs=linear_inputs, probe=probe_linear)
def linear_backward(inputs, outputs):
    for case, out in zip(inputs["cases"], outputs["cases"], strict=True):
        n_in, n_out = case["W"].shape
        J.constructed(out, "Linear(%d, %d)" % (n_in, n_out))
        what = "the gradient dL/dX returned by Linear(%d, %d).backward" % (n_in, n_out)
        J.close(out["dx"], _linear_oracle(case)["dx"], what)


@check("ps1.linear_update", inputs=linear_inputs, probe=probe_linear)
def linear_update(inputs, outputs):
    for case, out in zip(inputs["cases"], outputs["cases"], strict=True):
        n_in, n_out = case["W"].shape
        J.constructed(out, "Linear(%d, %d)" % (n_in, n_out))
        J.raised(out["dx"], "Linear(%d, %d).backward" % (n_in, n_out))
        grads = _linear_oracle(case)
        lr = case["lr"]
        J.close(out["W"], case["W"] - lr * grads["dW"], "W after one backward step")
        J.close(out["b"], case["b"] - lr * grads["db"], "b after one backward step")
        J.raised(out.get("default_lr"), "backward called without lr")
        J.close(out["W_default_lr"], case["W"] - 0.05 * grads["dW"],
                "W after a step with the default learning rate (0.05)")


# --- L2-regularised Linear -----------------------------------------------------------------

def linear_l2_inputs():
    data = linear_inputs()
    rng = np.random.default_rng(102)
    for case in data["cases"]:
        case["lam"] = float(rng.uniform(0.05, 0.2))
    return data


def probe_linear_l2(ns, inputs):
    LinearL2 = lookup(ns, "LinearL2")
    results = []
    for case in inputs["cases"]:
        n_in, n_out = case["W"].shape
        layer = attempt(LinearL2, n_in, n_out, l2_lambda=case["lam"])
        if isinstance(layer, Raised):
            results.append({"init": layer})
            continue
        layer.W, layer.b = case["W"].copy(), case["b"].copy()
        attempt(layer.forward, case["x"].copy())
        dx = attempt(layer.backward, case["x"].copy(), case["g"].copy(), case["lr"])
        results.append({"dx": dx, "W": getattr(layer, "W", None), "b": getattr(layer, "b", None)})
    return {"cases": results}


@check("ps1.linear_l2", inputs=linear_l2_inputs, probe=probe_linear_l2)
def linear_l2(inputs, outputs):
    for case, out in zip(inputs["cases"], outputs["cases"], strict=True):
        n_in, n_out = case["W"].shape
        J.constructed(out, "LinearL2(%d, %d, l2_lambda=%.3g)" % (n_in, n_out, case["lam"]))
        grads = _linear_oracle(case, lam=case["lam"])
        lr = case["lr"]
        J.close(out["dx"], grads["dx"], "the gradient dL/dX returned by LinearL2.backward")
        J.close(out["W"], case["W"] - lr * grads["dW"], "W after one regularised step")
        J.close(out["b"], case["b"] - lr * grads["db"], "b after one regularised step")


# --- activations ---------------------------------------------------------------------------

def activation_inputs():
    rng = np.random.default_rng(103)
    x = rng.normal(scale=3.0, size=(5, 7))
    x[0, :3] = 0.0  # exactly at ReLU's kink
    x[1, :] = [-800.0, -50.0, -1e-3, 1e-3, 50.0, 800.0, 30.0]  # large magnitudes
    return {"x": x, "g": rng.normal(size=(5, 7)), "x_row": rng.normal(size=(1, 4)),
            "g_row": rng.normal(size=(1, 4))}


def probe_activation(ns, inputs, name, stable=False):
    """``stable``: the task asks for code that does not warn (no overflow in exp)."""
    Layer = lookup(ns, name)
    layer = attempt(Layer)
    if isinstance(layer, Raised):
        return {"init": layer}
    call = attempt_without_warnings if stable else attempt
    return {
        "forward": call(layer, inputs["x"].copy()),
        "backward": call(layer.backward, inputs["x"].copy(), inputs["g"].copy()),
        "forward_row": call(layer.forward, inputs["x_row"].copy()),
        "backward_row": call(layer.backward, inputs["x_row"].copy(), inputs["g_row"].copy()),
    }


def probe_relu(ns, inputs):
    return probe_activation(ns, inputs, "ReLU")


def probe_sigmoid(ns, inputs):
    return probe_activation(ns, inputs, "Sigmoid", stable=True)


def _activation_oracle(function, x, g):
    xt = _t(x)
    y = function(xt)
    (y * torch.tensor(g)).sum().backward()
    return y.detach().numpy(), xt.grad.numpy()


def _judge_activation(inputs, outputs, name, function, part):
    J.constructed(outputs, name + "()")
    for x_key, g_key, suffix in [("x", "g", ""), ("x_row", "g_row", "_row")]:
        y, dx = _activation_oracle(function, inputs[x_key], inputs[g_key])
        shape = "x".join(str(n) for n in inputs[x_key].shape)
        if part == "forward":
            J.close(outputs["forward" + suffix], y,
                    "%s.forward on a %s input" % (name, shape))
        else:
            J.close(outputs["backward" + suffix], dx,
                    "%s.backward on a %s input" % (name, shape))


def _relu(x):
    # torch's relu has derivative 0 at 0, as the notebook defines it
    return torch.relu(x)


@check("ps1.relu_forward", inputs=activation_inputs, probe=probe_relu)
def relu_forward(inputs, outputs):
    _judge_activation(inputs, outputs, "ReLU", _relu, "forward")


@check("ps1.relu_backward", inputs=activation_inputs, probe=probe_relu)
def relu_backward(inputs, outputs):
    _judge_activation(inputs, outputs, "ReLU", _relu, "backward")


@check("ps1.sigmoid_forward", inputs=activation_inputs, probe=probe_sigmoid)
def sigmoid_forward(inputs, outputs):
    _judge_activation(inputs, outputs, "Sigmoid", torch.sigmoid, "forward")


@check("ps1.sigmoid_backward", inputs=activation_inputs, probe=probe_sigmoid)
def sigmoid_backward(inputs, outputs):
    _judge_activation(inputs, outputs, "Sigmoid", torch.sigmoid, "backward")


# --- losses --------------------------------------------------------------------------------

def mse_inputs():
    rng = np.random.default_rng(104)
    return {"cases": [
        {"pred": rng.normal(size=(m, 1)), "y": rng.normal(size=(m, 1))} for m in (7, 1, 30)
    ]}


def probe_loss(ns, inputs, name, stable=False):
    Loss = lookup(ns, name)
    loss = attempt(Loss)
    if isinstance(loss, Raised):
        return {"init": loss}
    call = attempt_without_warnings if stable else attempt
    results = []
    for case in inputs["cases"]:
        results.append({
            "forward": call(loss, case["pred"].copy(), case["y"].copy()),
            "backward": call(loss.backward, case["pred"].copy(), case["y"].copy()),
        })
    return {"cases": results}


def probe_mse(ns, inputs):
    return probe_loss(ns, inputs, "MSELoss")


def _loss_oracle(function, case):
    pred = _t(case["pred"])
    value = function(pred, torch.tensor(case["y"]))
    value.backward()
    return value.item(), pred.grad.numpy()


def _judge_loss(inputs, outputs, name, function, part):
    J.constructed(outputs, name + "()")
    for case, out in zip(inputs["cases"], outputs["cases"], strict=True):
        value, grad = _loss_oracle(function, case)
        shape = "x".join(str(n) for n in case["pred"].shape)
        if part == "forward":
            J.scalar(out["forward"], value, "%s on a %s prediction" % (name, shape))
        else:
            J.close(out["backward"], grad, "%s.backward on a %s prediction" % (name, shape))


def _mse(pred, y):
    return F.mse_loss(pred, y)


@check("ps1.mse_forward", inputs=mse_inputs, probe=probe_mse)
def mse_forward(inputs, outputs):
    _judge_loss(inputs, outputs, "MSELoss", _mse, "forward")


@check("ps1.mse_backward", inputs=mse_inputs, probe=probe_mse)
def mse_backward(inputs, outputs):
    _judge_loss(inputs, outputs, "MSELoss", _mse, "backward")


def cross_entropy_inputs():
    rng = np.random.default_rng(105)
    cases = []
    for m, c, scale in [(6, 4, 2.0), (1, 10, 1.0), (5, 3, 900.0)]:  # the last one overflows exp
        labels = rng.integers(0, c, size=m)
        cases.append({"pred": rng.normal(scale=scale, size=(m, c)), "y": np.eye(c)[labels]})
    return {"cases": cases}


def probe_cross_entropy(ns, inputs):
    return probe_loss(ns, inputs, "CrossEntropyLoss", stable=True)  # the max shift


def _cross_entropy(logits, one_hot):
    return -(one_hot * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()


@check("ps1.cross_entropy_forward", inputs=cross_entropy_inputs, probe=probe_cross_entropy)
def cross_entropy_forward(inputs, outputs):
    _judge_loss(inputs, outputs, "CrossEntropyLoss", _cross_entropy, "forward")


@check("ps1.cross_entropy_backward", inputs=cross_entropy_inputs, probe=probe_cross_entropy)
def cross_entropy_backward(inputs, outputs):
    _judge_loss(inputs, outputs, "CrossEntropyLoss", _cross_entropy, "backward")


# --- SimpleNN ------------------------------------------------------------------------------

def simplenn_inputs():
    rng = np.random.default_rng(106)
    data = {"A1": rng.normal(size=(3, 4)), "A2": rng.normal(size=(4, 2)), "lr": 0.3,
            "batches": [{"x": rng.normal(size=(5, 3)), "y": rng.normal(size=(5, 2))},
                        {"x": rng.normal(size=(2, 3)), "y": rng.normal(size=(2, 2))}]}
    data["replay"] = []
    for batch in data["batches"]:
        h = batch["x"] @ data["A1"]
        a = np.tanh(h)
        p, loss, backward = _simplenn_expected(data, batch)
        gradients = {tag: g for tag, _, g in backward}  # what each layer's backward gets
        data["replay"].append({
            "forward first": h, "forward tanh": a, "forward last": p,
            "loss": loss, "loss gradient": gradients["last"],
            "backward last": gradients["tanh"], "backward tanh": gradients["first"],
            "backward first": gradients["first"] @ data["A1"].T})
    return data


def probe_simplenn(ns, inputs):
    SimpleNN = lookup(ns, "SimpleNN")
    log = []
    replay = inputs["replay"]  # per batch: what each stand-in returns in a correct pass
    calls = {}

    def answer(key):
        """The grader's value for this stand-in's next call of this kind (its k-th call
        answers for batch k; extra calls get the last batch's, and the judge sees them)."""
        number = calls.get(key, 0)
        calls[key] = number + 1
        return np.array(replay[min(number, len(replay) - 1)][key])

    # Stand-ins with the interface of the layers (with_weights, forward, backward, calling
    # the object runs forward) and of the loss: they record how the network drives them and
    # answer with the grader's numbers; they compute nothing.
    class Layer:
        def __init__(self, tag, with_weights):
            self.tag, self.with_weights = tag, with_weights

        def __call__(self, x):
            return self.forward(x)

        def forward(self, x):
            log.append({"event": "forward", "layer": self.tag})
            return answer("forward " + self.tag)

        def backward(self, x, g, lr=0.05):
            log.append({"event": "backward", "layer": self.tag, "x": np.array(x),
                        "g": np.array(g), "lr": lr})
            return answer("backward " + self.tag)

    class Loss:
        with_weights = False

        def __call__(self, p, y):
            return self.forward(p, y)

        def forward(self, p, y):
            return float(answer("loss"))

        def backward(self, p, y):
            return answer("loss gradient")

    layers = [Layer("first", True), Layer("tanh", False), Layer("last", True)]
    model = attempt(SimpleNN, layers, Loss(), lr=inputs["lr"])
    if isinstance(model, Raised):
        return {"init": model}
    batches = []
    for batch in inputs["batches"]:
        start = len(log)
        prediction = attempt(model, batch["x"].copy())
        failure = attempt(model.backward, batch["y"].copy())
        batches.append({"prediction": prediction,
                        "backward": failure if isinstance(failure, Raised) else None,
                        "loss_value": getattr(model, "loss_value", None),
                        "log": log[start:]})
    return {"batches": batches}


def _simplenn_expected(inputs, batch):
    x, y, A1, A2 = batch["x"], batch["y"], inputs["A1"], inputs["A2"]
    h = x @ A1
    a = np.tanh(h)
    p = a @ A2
    loss = 0.5 * np.sum((p - y) ** 2) / len(y)
    g_p = (p - y) / len(y)
    g_a = g_p @ A2.T
    g_h = g_a * (1 - np.tanh(h) ** 2)
    backward = [("last", a, g_p), ("tanh", h, g_a), ("first", x, g_h)]
    return p, loss, backward


@check("ps1.simplenn", inputs=simplenn_inputs, probe=probe_simplenn)
def simplenn(inputs, outputs):
    J.constructed(outputs, "SimpleNN(layers, loss, lr)")
    for number, (batch, out) in enumerate(zip(inputs["batches"], outputs["batches"], strict=True), 1):
        where = "on batch %d (of %d samples)" % (number, len(batch["x"]))
        p, loss, backward = _simplenn_expected(inputs, batch)
        J.close(out["prediction"], p, "the output of SimpleNN.forward " + where)
        J.raised(out["backward"], "SimpleNN.backward " + where)
        events = [(e["event"], e["layer"]) for e in out["log"]]
        forward_order = [e for e in events if e[0] == "forward"]
        if forward_order != [("forward", "first"), ("forward", "tanh"), ("forward", "last")]:
            raise CheckFailed("SimpleNN.forward %s called the layers' forward as %s; expected "
                              "each layer once, first to last" % (where, forward_order))
        calls = [e for e in out["log"] if e["event"] == "backward"]
        order = [e["layer"] for e in calls]
        if order != ["last", "tanh", "first"]:
            raise CheckFailed("SimpleNN.backward %s called backward on the layers in the order "
                              "%s; expected each layer once, from the last to the first"
                              % (where, order))
        for call, (tag, layer_input, gradient) in zip(calls, backward):
            J.close(call["x"], layer_input,
                    "the input given to the %s layer's backward %s" % (tag, where))
            J.close(call["g"], gradient,
                    "the output gradient given to the %s layer's backward %s" % (tag, where))
            if tag != "tanh" and not np.isclose(np.asarray(call["lr"], dtype=float),
                                                inputs["lr"]):
                raise CheckFailed("the %s layer's backward got lr=%s, expected the network's "
                                  "own learning rate" % (tag, call["lr"]))
        J.scalar(out["loss_value"], loss, "SimpleNN.loss_value after backward " + where)


# --- Conv1d (bonus) --------------------------------------------------------------------------

def conv1d_inputs():
    rng = np.random.default_rng(107)
    cases = []
    for batch, length, k, pad in [(3, 9, 1, 1), (2, 16, 2, 3), (1, 6, 1, 0)]:
        cases.append({"x": rng.normal(size=(batch, length)), "k": k, "pad": pad,
                      "W": rng.normal(size=(1, 2 * k + 1)), "b": rng.normal(size=(1, 1)),
                      "g": rng.normal(size=(batch, length + 2 * pad - 2 * k)),
                      "lr": float(rng.uniform(0.05, 0.3))})
    return {"cases": cases}


def probe_conv1d(ns, inputs):
    Conv1d = lookup(ns, "Conv1d")
    results = []
    for case in inputs["cases"]:
        layer = attempt(Conv1d, int(case["k"]), int(case["pad"]))
        if isinstance(layer, Raised):
            results.append({"init": layer})
            continue
        layer.W, layer.b = case["W"].copy(), case["b"].copy()
        out = {"forward": attempt(layer, case["x"].copy())}
        out["dx"] = attempt(layer.backward, case["x"].copy(), case["g"].copy(), case["lr"])
        out["W"], out["b"] = getattr(layer, "W", None), getattr(layer, "b", None)
        results.append(out)
    return {"cases": results}


def _conv1d_oracle(case):
    x, W, b = _t(case["x"]), _t(case["W"]), _t(case["b"])
    pad = int(case["pad"])
    # conv1d in torch is a sliding dot product (no kernel flip), as in the notebook
    y = F.conv1d(F.pad(x, (pad, pad)).unsqueeze(1), W.view(1, 1, -1), b.view(1)).squeeze(1)
    (y * torch.tensor(case["g"])).sum().backward()
    return {"y": y.detach().numpy(), "dx": x.grad.numpy(), "dW": W.grad.numpy(),
            "db": b.grad.numpy()}


def _conv1d_name(case):
    return "Conv1d(kernel_size=%d, pad_length=%d)" % (case["k"], case["pad"])


@check("ps1.conv1d_forward", inputs=conv1d_inputs, probe=probe_conv1d)
def conv1d_forward(inputs, outputs):
    for case, out in zip(inputs["cases"], outputs["cases"], strict=True):
        J.constructed(out, _conv1d_name(case))
        J.close(out["forward"], _conv1d_oracle(case)["y"],
                "%s.forward on a %dx%d input" % ((_conv1d_name(case),) + case["x"].shape))


@check("ps1.conv1d_backward", inputs=conv1d_inputs, probe=probe_conv1d)
def conv1d_backward(inputs, outputs):
    for case, out in zip(inputs["cases"], outputs["cases"], strict=True):
        name = _conv1d_name(case)
        J.constructed(out, name)
        grads = _conv1d_oracle(case)
        J.close(out["dx"], grads["dx"], "the gradient dL/dX returned by %s.backward" % name)
        J.close(out["W"], case["W"] - case["lr"] * grads["dW"],
                "W of %s after one backward step" % name)
        J.close(out["b"], case["b"] - case["lr"] * grads["db"],
                "b of %s after one backward step" % name)
