"""Hidden checks of ps2 (layers from tensor operations, compared with torch.nn).

Probes run in the student's kernel (see ps1.py for the rules); they may import torch there,
since ps2 students work with tensors. Judges use torch autograd and torch.nn as oracles.
"""

import numpy as np
import torch
import torch.nn.functional as F

from . import CheckFailed, check
from . import judging as J
from .wire import Raised, attempt, attempt_without_warnings, lookup  # noqa: F401 (probes)
from ..datasets import mnist_held_out, mnist_split
from ..policy import Rule

# The first part builds the layers from tensor operations; TorchNet (later) uses torch.nn.
POLICY = [Rule(modules=("torch.nn", "torch.autograd", "torch.func", "torch.optim", "functorch",
                        "torchvision", "tensorflow", "jax", "sklearn", "scipy"),
               attributes=("requires_grad", "requires_grad_", "retain_grad", "grad_fn",
                           "enable_grad"),
               names=("Linear", "ReLU", "Sigmoid", "Net", "Softmax", "CrossEntropyLoss"),
               why="the layers, the network and the loss are built from tensor operations "
                   "(no torch.nn, torch.nn.functional or autograd)")]



def _leaf(array):
    return torch.tensor(np.asarray(array, dtype=np.float32), requires_grad=True)



# --- Linear ----------------------------------------------------------------------------------

def linear_inputs():
    rng = np.random.default_rng(201)
    return {"cases": [
        {"x": rng.normal(size=(n, i)).astype(np.float32),
         "W": rng.normal(size=(i, o)).astype(np.float32),
         "b": rng.normal(size=o).astype(np.float32),
         "d": rng.normal(size=(n, o)).astype(np.float32)}
        for n, i, o in [(4, 3, 5), (1, 6, 2), (7, 2, 1)]]}


def probe_linear(ns, inputs):
    import torch
    Linear = lookup(ns, "Linear")
    results = []
    for case in inputs["cases"]:
        n_in, n_out = case["W"].shape
        layer = attempt(Linear, n_in, n_out)
        if isinstance(layer, Raised):
            results.append({"init": layer})
            continue
        shapes = {"weight": getattr(layer, "weight", None), "bias": getattr(layer, "bias", None)}
        layer.weight, layer.bias = torch.tensor(case["W"]), torch.tensor(case["b"])
        out = {"init_weight": shapes["weight"], "init_bias": shapes["bias"],
               "y": attempt(layer.forward, torch.tensor(case["x"]))}
        out["dx"] = attempt(layer.backward, torch.tensor(case["d"]))
        out["weight_grad"] = getattr(layer, "weight_grad", None)
        out["bias_grad"] = getattr(layer, "bias_grad", None)
        results.append(out)
    return {"cases": results}


def _linear_oracle(case):
    x, W, b = _leaf(case["x"]), _leaf(case["W"]), _leaf(case["b"])
    # torch.nn.functional.linear takes the weight as torch.nn.Linear stores it: transposed
    y = F.linear(x, W.T, b)
    y.backward(torch.tensor(case["d"]))
    return y.detach().numpy(), x.grad.numpy(), W.grad.numpy(), b.grad.numpy()


@check("ps2.linear_forward", inputs=linear_inputs, probe=probe_linear)
def linear_forward(inputs, outputs):
    for case, out in zip(inputs["cases"], outputs["cases"], strict=True):
        n_in, n_out = case["W"].shape
        name = "Linear(%d, %d)" % (n_in, n_out)
        J.constructed(out, name)
        J.shape(out["init_weight"], (n_in, n_out), name + ".weight")
        J.shape(out["init_bias"], (n_out,), name + ".bias")
        y, _, _, _ = _linear_oracle(case)
        J.close(out["y"], y, "%s.forward on a batch of %d" % (name, len(case["x"])), rtol=1e-4,
                atol=1e-5)


@check("ps2.linear_backward", inputs=linear_inputs, probe=probe_linear)
def linear_backward(inputs, outputs):
    for case, out in zip(inputs["cases"], outputs["cases"], strict=True):
        n_in, n_out = case["W"].shape
        name = "Linear(%d, %d)" % (n_in, n_out)
        J.constructed(out, name)
        J.raised(out["y"], name + ".forward")
        _, dx, dW, db = _linear_oracle(case)
        J.close(out["dx"], dx, "dx returned by %s.backward" % name, rtol=1e-4, atol=1e-5)
        J.close(out["weight_grad"], dW, "%s.weight_grad" % name, rtol=1e-4, atol=1e-5)
        J.close(out["bias_grad"], db, "%s.bias_grad" % name, rtol=1e-4, atol=1e-5)


# --- activations -------------------------------------------------------------------------------

def activation_inputs():
    rng = np.random.default_rng(202)
    x = rng.normal(scale=3.0, size=(4, 6)).astype(np.float32)
    x[0, :2] = 0.0  # ReLU's kink
    x[1, :] = [-100.0, -20.0, -1e-3, 1e-3, 20.0, 100.0]  # exp(100) overflows float32
    return {"x": x, "d": rng.normal(size=(4, 6)).astype(np.float32),
            "x2": rng.normal(size=(3, 2)).astype(np.float32),
            "d2": rng.normal(size=(3, 2)).astype(np.float32)}


def probe_activation(ns, inputs, name):
    import torch
    Layer = lookup(ns, name)
    results = {}
    for suffix in ("", "2"):
        layer = attempt(Layer)
        if isinstance(layer, Raised):
            return {"init": layer}
        d = torch.tensor(inputs["d" + suffix])
        results["y" + suffix] = attempt(layer.forward, torch.tensor(inputs["x" + suffix]))
        results["dx" + suffix] = attempt(layer.backward, d)
        results["d_after" + suffix] = d  # the upstream gradient must be left as it was
    return results


def probe_relu(ns, inputs):
    return probe_activation(ns, inputs, "ReLU")


def probe_sigmoid(ns, inputs):
    return probe_activation(ns, inputs, "Sigmoid")


def _judge_activation(inputs, outputs, name, function, part):
    J.constructed(outputs, name + "()")
    for suffix in ("", "2"):
        x = _leaf(inputs["x" + suffix])
        y = function(x)
        y.backward(torch.tensor(inputs["d" + suffix]))
        shape = "x".join(str(n) for n in inputs["x" + suffix].shape)
        if part == "forward":
            J.close(outputs["y" + suffix], y.detach().numpy(),
                    "%s.forward on a %s input" % (name, shape), rtol=1e-4, atol=1e-6)
        else:
            J.raised(outputs["y" + suffix], name + ".forward")
            J.close(outputs["dx" + suffix], x.grad.numpy(),
                    "%s.backward on a %s input" % (name, shape), rtol=1e-4, atol=1e-6)
            if not np.array_equal(J.as_array(outputs["d_after" + suffix], "dupstream"),
                                  inputs["d" + suffix]):
                raise CheckFailed("%s.backward modified the upstream gradient it was given"
                                  % name)


@check("ps2.relu_forward", inputs=activation_inputs, probe=probe_relu)
def relu_forward(inputs, outputs):
    _judge_activation(inputs, outputs, "ReLU", torch.relu, "forward")


@check("ps2.relu_backward", inputs=activation_inputs, probe=probe_relu)
def relu_backward(inputs, outputs):
    _judge_activation(inputs, outputs, "ReLU", torch.relu, "backward")


@check("ps2.sigmoid_forward", inputs=activation_inputs, probe=probe_sigmoid)
def sigmoid_forward(inputs, outputs):
    _judge_activation(inputs, outputs, "Sigmoid", torch.sigmoid, "forward")


@check("ps2.sigmoid_backward", inputs=activation_inputs, probe=probe_sigmoid)
def sigmoid_backward(inputs, outputs):
    _judge_activation(inputs, outputs, "Sigmoid", torch.sigmoid, "backward")


# --- Net -------------------------------------------------------------------------------------

def net_inputs():
    rng = np.random.default_rng(203)
    data = {"A": rng.normal(size=(3, 4)).astype(np.float32),
            "B": rng.normal(size=(4, 2)).astype(np.float32),
            "x": rng.normal(size=(5, 3)).astype(np.float32),
            "d": rng.normal(size=(5, 2)).astype(np.float32),
            "grads": [rng.normal(size=(3, 4)).astype(np.float32),
                      rng.normal(size=4).astype(np.float32),
                      rng.normal(size=(4, 2)).astype(np.float32),
                      rng.normal(size=2).astype(np.float32)],
            "lr": 0.3}
    data["replay"] = _net_pass(data)
    return data


def _net_pass(inputs):
    """What each stand-in layer of the Net check receives and returns in a correct pass
    (first affine layer, tanh, last affine layer): the stand-ins replay these values, so the
    kernel gets numbers, not working layers."""
    x, A, B = _leaf(inputs["x"]), torch.tensor(inputs["A"]), torch.tensor(inputs["B"])
    h = x @ A
    h.retain_grad()
    a = torch.tanh(h)
    a.retain_grad()
    y = a @ B
    y.backward(torch.tensor(inputs["d"]))
    as_numpy = lambda t: t.detach().numpy().astype(np.float32)  # noqa: E731
    return {"forward": {"first": [as_numpy(x), as_numpy(h)], "tanh": [as_numpy(h), as_numpy(a)],
                        "last": [as_numpy(a), as_numpy(y)]},
            "backward": {"last": [inputs["d"], as_numpy(a.grad)],
                         "tanh": [as_numpy(a.grad), as_numpy(h.grad)],
                         "first": [as_numpy(h.grad), as_numpy(x.grad)]}}


def probe_net(ns, inputs):
    import torch
    Net = lookup(ns, "Net")
    log = []
    replay = inputs["replay"]

    class Replay:
        """A stand-in layer with the layers' interface: records what the network gives it and
        answers with the grader's values for a correct pass (it computes nothing)."""

        def __init__(self, tag, weight=None):
            self.tag, self.cache = tag, None
            if weight is not None:
                self.weight, self.bias = torch.tensor(weight), torch.zeros(weight.shape[1])
                self.weight_grad = self.bias_grad = None

        def init_params(self, std=1.0):
            pass  # keep the grader's weights

        def forward(self, x):
            log.append(["forward", self.tag, x])
            return torch.tensor(replay["forward"][self.tag][1])

        def backward(self, d):
            log.append(["backward", self.tag, d])
            return torch.tensor(replay["backward"][self.tag][1])

    first, last = Replay("first", inputs["A"]), Replay("last", inputs["B"])
    net = attempt(Net, [first, Replay("tanh"), last])
    if isinstance(net, Raised):
        return {"init": net}
    y = attempt(net.forward, torch.tensor(inputs["x"]))
    dx = attempt(net.backward, torch.tensor(inputs["d"]))
    result = {"y": y, "dx": dx, "log": [entry[:2] for entry in log],
              "given": [entry[2] for entry in log]}
    # the step, from gradients the grader sets
    g = [torch.tensor(v) for v in inputs["grads"]]
    first.weight_grad, first.bias_grad, last.weight_grad, last.bias_grad = g
    result["step"] = attempt(net.optimizer_step, inputs["lr"])
    result["after"] = [first.weight, first.bias, last.weight, last.bias]
    return result


@check("ps2.net_backward", inputs=net_inputs, probe=probe_net)
def net_backward(inputs, outputs):
    J.constructed(outputs, "Net(layers)")
    replay = inputs["replay"]
    J.raised(outputs["y"], "Net.forward")
    order = [tuple(entry) for entry in outputs["log"]]
    expected = [("forward", "first"), ("forward", "tanh"), ("forward", "last"),
                ("backward", "last"), ("backward", "tanh"), ("backward", "first")]
    if order[:3] != expected[:3]:
        raise CheckFailed("Net.forward called its layers as %s; expected each layer's forward "
                          "once, from first to last" % (order[:3],))
    given = J.items(outputs["given"], len(order), "Net")
    for (step, tag), value in zip(expected[:3], given[:3]):
        J.close(value, replay[step][tag][0], "the input Net.forward gave to its %s layer"
                % ("activation" if tag == "tanh" else tag + " linear"), rtol=1e-4, atol=1e-5)
    J.close(outputs["y"], replay["forward"]["last"][1], "the output of Net.forward",
            rtol=1e-4, atol=1e-5)
    J.raised(outputs["dx"], "Net.backward")
    if order != expected:
        raise CheckFailed("Net called its layers as %s; expected each layer's forward once "
                          "from first to last, then each backward once from last to first"
                          % order)
    for (step, tag), value in zip(expected[3:], given[3:]):
        J.close(value, replay[step][tag][0], "the gradient Net.backward gave to its %s layer"
                % ("activation" if tag == "tanh" else tag + " linear"), rtol=1e-4, atol=1e-5)
    J.close(outputs["dx"], replay["backward"]["first"][1], "the gradient returned by "
            "Net.backward", rtol=1e-4, atol=1e-5)


@check("ps2.net_step", inputs=net_inputs, probe=probe_net)
def net_step(inputs, outputs):
    J.constructed(outputs, "Net(layers)")
    J.raised(outputs["step"], "Net.optimizer_step")
    before = [inputs["A"], np.zeros(inputs["A"].shape[1]), inputs["B"],
              np.zeros(inputs["B"].shape[1])]
    names = ["the first layer's weight", "the first layer's bias", "the last layer's weight",
             "the last layer's bias"]
    for name, value, start, grad in zip(names, outputs["after"], before, inputs["grads"], strict=True):
        J.close(value, start - inputs["lr"] * grad, name + " after optimizer_step",
                rtol=1e-4, atol=1e-5)


# --- TorchNet ----------------------------------------------------------------------------------

def torchnet_inputs():
    rng = np.random.default_rng(204)
    return {"sizes": [[3, 5, 4], [8, 2, 1]], "x": [rng.normal(size=(6, 3)).astype(np.float32),
                                                   rng.normal(size=(2, 8)).astype(np.float32)]}


def probe_torchnet(ns, inputs):
    import torch
    TorchNet = lookup(ns, "TorchNet")
    results = []
    for (n_in, hidden, n_out), x in zip(inputs["sizes"], inputs["x"]):
        torch.manual_seed(0)
        model = attempt(TorchNet, int(n_in), int(hidden), int(n_out))
        if isinstance(model, Raised):
            results.append({"init": model})
            continue
        parts = {}
        for name in ("layer1", "layer2"):
            layer = getattr(model, name, None)
            parts[name] = None if layer is None else {
                "kind": type(layer).__name__,
                "weight": getattr(layer, "weight", None), "bias": getattr(layer, "bias", None)}
        relu = getattr(model, "relu", None)
        parts["relu"] = None if relu is None else type(relu).__name__
        parts["is_module"] = isinstance(model, torch.nn.Module)
        parts["y"] = attempt(lambda: model(torch.tensor(x)))
        results.append(parts)
    return {"cases": results}


@check("ps2.torchnet", inputs=torchnet_inputs, probe=probe_torchnet)
def torchnet(inputs, outputs):
    for (n_in, hidden, n_out), x, out in zip(inputs["sizes"], inputs["x"], outputs["cases"], strict=True):
        name = "TorchNet(%d, %d, %d)" % (n_in, hidden, n_out)
        J.constructed(out, name)
        if not out["is_module"]:
            raise CheckFailed("%s is not a torch.nn.Module" % name)
        for attribute, shape in [("layer1", (hidden, n_in)), ("layer2", (n_out, hidden))]:
            part = out[attribute]
            if part is None or part["kind"] != "Linear":
                raise CheckFailed("%s.%s should be an nn.Linear" % (name, attribute))
            J.shape(part["weight"], shape, "%s.%s.weight" % (name, attribute))
        if out["relu"] != "ReLU":
            raise CheckFailed("%s.relu should be an nn.ReLU" % name)
        # the output must be layer2(relu(layer1(x))) with the model's own parameters
        l1, l2 = out["layer1"], out["layer2"]
        hidden_values = np.maximum(x @ l1["weight"].T + l1["bias"], 0)
        J.close(out["y"], hidden_values @ l2["weight"].T + l2["bias"],
                "%s's output" % name, rtol=1e-4, atol=1e-5)


# --- Softmax and the loss -------------------------------------------------------------------------

def loss_inputs():
    rng = np.random.default_rng(205)
    cases = []
    for n, k, scale in [(5, 4, 2.0), (1, 10, 1.0), (6, 3, 500.0)]:  # the last overflows exp
        labels = rng.integers(0, k, size=n)
        cases.append({"z": (rng.normal(size=(n, k)) * scale).astype(np.float32),
                      "y": np.eye(k, dtype=np.float32)[labels]})
    return {"cases": cases}


def probe_softmax(ns, inputs):
    import torch
    Softmax = lookup(ns, "Softmax")
    results = []
    for case in inputs["cases"]:
        z = torch.tensor(case["z"])
        results.append({"p": attempt_without_warnings(Softmax, z), "z_after": z})
    return {"cases": results}


def probe_cross_entropy(ns, inputs):
    import torch
    CrossEntropyLoss = lookup(ns, "CrossEntropyLoss")
    results = []
    for case in inputs["cases"]:
        z, y = torch.tensor(case["z"]), torch.tensor(case["y"])
        value = attempt(CrossEntropyLoss, y, z)
        if isinstance(value, Raised):
            results.append({"loss": value, "grad": value, "z_after": z})
        elif not isinstance(value, tuple) or len(value) != 2:
            results.append({"loss": Raised("it returned %s, expected (loss, grad)"
                                           % type(value).__name__), "grad": None, "z_after": z})
        else:
            results.append({"loss": value[0], "grad": value[1], "z_after": z})
    return {"cases": results}


def _unchanged(after, before, what):
    if not np.array_equal(J.as_array(after, what), before):
        raise CheckFailed("%s modified its input logits" % what)


@check("ps2.softmax", inputs=loss_inputs, probe=probe_softmax)
def softmax(inputs, outputs):
    for case, out in zip(inputs["cases"], outputs["cases"], strict=True):
        what = "Softmax of a %dx%d batch%s" % (case["z"].shape + (
            " of large logits" if np.abs(case["z"]).max() > 100 else "",))
        J.close(out["p"], torch.softmax(torch.tensor(case["z"]), dim=1).numpy(), what,
                rtol=1e-4, atol=1e-6)
        _unchanged(out["z_after"], case["z"], "Softmax")


def _ce_oracle(case):
    z = _leaf(case["z"])
    loss = -(torch.tensor(case["y"]) * torch.log_softmax(z, dim=1)).sum(dim=1).mean()
    loss.backward()
    return loss.item(), z.grad.numpy()


@check("ps2.cross_entropy_loss", inputs=loss_inputs, probe=probe_cross_entropy)
def cross_entropy_loss(inputs, outputs):
    for case, out in zip(inputs["cases"], outputs["cases"], strict=True):
        loss, _ = _ce_oracle(case)
        J.scalar(out["loss"], loss, "the loss of CrossEntropyLoss on a %dx%d batch"
                 % case["z"].shape, rtol=1e-4, atol=1e-5)
        _unchanged(out["z_after"], case["z"], "CrossEntropyLoss")


@check("ps2.cross_entropy_grad", inputs=loss_inputs, probe=probe_cross_entropy)
def cross_entropy_grad(inputs, outputs):
    for case, out in zip(inputs["cases"], outputs["cases"], strict=True):
        _, grad = _ce_oracle(case)
        J.raised(out["loss"], "CrossEntropyLoss")
        J.close(out["grad"], grad, "the gradient of CrossEntropyLoss on a %dx%d batch"
                % case["z"].shape, rtol=1e-4, atol=1e-6)
        _unchanged(out["z_after"], case["z"], "CrossEntropyLoss")


# --- training ------------------------------------------------------------------------------------

TRAINING = {"train_size": 2000, "hidden": 30, "lr": 0.5, "batch_size": 64, "epochs": 10,
            "std": 0.1}
# A correct implementation reaches about 0.9 on the 200 held-out digits (tests/test_checks.py
# trains it); a network whose gradients are wrong stays far below.
ACCURACY_THRESHOLD = 0.80


def training_inputs():
    train_images, train_labels, _, _ = mnist_split()
    n = TRAINING["train_size"]
    # evaluated on digits that are nowhere in the sandbox, so their labels cannot be looked up
    return dict(TRAINING, train_images=train_images[:n], train_labels=train_labels[:n],
                test_images=mnist_held_out()[0])


def probe_training(ns, inputs):
    import torch
    Linear, Sigmoid = lookup(ns, "Linear"), lookup(ns, "Sigmoid")
    Net, CrossEntropyLoss = lookup(ns, "Net"), lookup(ns, "CrossEntropyLoss")

    def prepare(images):
        x = torch.tensor(images, dtype=torch.float32).flatten(start_dim=1) / 255.0
        return (x - 0.1307) / 0.3081

    def train():
        torch.manual_seed(0)
        x, labels = prepare(inputs["train_images"]), torch.tensor(inputs["train_labels"]).long()
        targets = torch.eye(10)[labels]
        net = Net([Linear(784, int(inputs["hidden"])), Sigmoid(),
                   Linear(int(inputs["hidden"]), 10)])
        net.reset_params(std=float(inputs["std"]))
        generator = torch.Generator().manual_seed(0)
        size = int(inputs["batch_size"])
        for _ in range(int(inputs["epochs"])):
            order = torch.randperm(len(x), generator=generator)
            for start in range(0, len(x), size):
                batch = order[start:start + size]
                _, grad = CrossEntropyLoss(targets[batch], net.forward(x[batch]))
                net.backward(grad)
                net.optimizer_step(float(inputs["lr"]))
        return net.forward(prepare(inputs["test_images"])).argmax(dim=1)

    return {"predictions": attempt(train)}


@check("ps2.training", inputs=training_inputs, probe=probe_training)
def training(inputs, outputs):
    predictions = J.as_array(outputs["predictions"], "training your network")
    labels = mnist_held_out()[1]
    if predictions.shape != labels.shape:
        raise CheckFailed("the trained network gave predictions of shape %s, expected %s"
                          % (predictions.shape, labels.shape))
    accuracy = float(np.mean(predictions == labels))
    if accuracy < ACCURACY_THRESHOLD:
        raise CheckFailed("a network built from your classes reached %.1f%% on the grader's "
                          "%d test digits; a correct implementation reaches about 89%% (the "
                          "cell passes above %d%%)" % (100 * accuracy, len(labels),
                                                       100 * ACCURACY_THRESHOLD))
