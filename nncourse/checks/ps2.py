"""Hidden checks of ps2 (layers from tensor operations, compared with torch.nn).

Each ``test_*`` function is one check (nncourse/checks/runner.py): it drives the student's
classes in their kernel through ``student`` and compares what comes back with torch autograd
and torch.nn, computed here.
"""

import numpy as np
import torch
import torch.nn.functional as F

from . import CheckFailed
from . import judging as J
from .remote import calls_of, fetch, ignoring_errors, is_instance, value_of
from .runner import parametrize
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


def _normal(rng, *shape):
    return rng.normal(size=shape).astype(np.float32)


TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}

# --- Linear ----------------------------------------------------------------------------------
LINEAR_SHAPES = [(4, 3, 5), (1, 6, 2), (7, 2, 1)]  # batch, n_in, n_out


def _linear(student, rng, batch, n_in, n_out):
    """A student's Linear, its shapes as made, then the grader's parameters and one pass:
    (layer, name, case, oracle)."""
    case = {"x": _normal(rng, batch, n_in), "W": _normal(rng, n_in, n_out),
            "b": _normal(rng, n_out), "d": _normal(rng, batch, n_out)}
    name = "Linear(%d, %d)" % (n_in, n_out)
    layer = student.Linear(n_in, n_out)
    x, W, b = _leaf(case["x"]), _leaf(case["W"]), _leaf(case["b"])
    # torch.nn.functional.linear takes the weight as torch.nn.Linear stores it: transposed
    y = F.linear(x, W.T, b)
    y.backward(torch.tensor(case["d"]))
    oracle = {"y": y.detach().numpy(), "dx": x.grad.numpy(), "dW": W.grad.numpy(),
              "db": b.grad.numpy()}
    return layer, name, case, oracle


def _with_parameters(layer, case):
    layer.weight, layer.bias = torch.tensor(case["W"]), torch.tensor(case["b"])


@parametrize("batch, n_in, n_out", LINEAR_SHAPES)
def test_linear_forward(student, rng, batch, n_in, n_out):
    layer, name, case, oracle = _linear(student, rng, batch, n_in, n_out)
    J.shape(layer.weight, (n_in, n_out), name + ".weight")
    J.shape(layer.bias, (n_out,), name + ".bias")
    _with_parameters(layer, case)
    J.close(layer.forward(torch.tensor(case["x"])), oracle["y"],
            "%s.forward on a batch of %d" % (name, batch), **TOLERANCE)


@parametrize("batch, n_in, n_out", LINEAR_SHAPES)
def test_linear_backward(student, rng, batch, n_in, n_out):
    layer, name, case, oracle = _linear(student, rng, batch, n_in, n_out)
    _with_parameters(layer, case)
    layer.forward(torch.tensor(case["x"]))
    J.close(layer.backward(torch.tensor(case["d"])), oracle["dx"],
            "dx returned by %s.backward" % name, **TOLERANCE)
    J.close(layer.weight_grad, oracle["dW"], "%s.weight_grad" % name, **TOLERANCE)
    J.close(layer.bias_grad, oracle["db"], "%s.bias_grad" % name, **TOLERANCE)


# --- activations -------------------------------------------------------------------------------

def _activation(student, rng, name, function, part):
    """forward then backward on a fresh layer, on a 4x6 input (the kink, values whose exp
    overflows float32) and on a 3x2 one; the upstream gradient must be left as it was."""
    x = rng.normal(scale=3.0, size=(4, 6)).astype(np.float32)
    x[0, :2] = 0.0  # ReLU's kink
    x[1, :] = [-100.0, -20.0, -1e-3, 1e-3, 20.0, 100.0]  # exp(100) overflows float32
    cases = [(x, _normal(rng, 4, 6))]
    cases.append((_normal(rng, 3, 2), _normal(rng, 3, 2)))
    for x, d in cases:
        leaf = _leaf(x)
        y = function(leaf)
        y.backward(torch.tensor(d))
        shape = "x".join(map(str, x.shape))
        layer = student[name]()
        forward = layer.forward(torch.tensor(x))
        if part == "forward":
            J.close(forward, y.detach().numpy(), "%s.forward on a %s input" % (name, shape),
                    rtol=1e-4, atol=1e-6)
            ignoring_errors(layer.backward, torch.tensor(d))
            continue
        upstream = student.keep(torch.tensor(d))
        J.close(layer.backward(upstream), leaf.grad.numpy(),
                "%s.backward on a %s input" % (name, shape), rtol=1e-4, atol=1e-6)
        if not np.array_equal(J.as_array(fetch(upstream), "dupstream"), d):
            raise CheckFailed("%s.backward modified the upstream gradient it was given" % name)


def test_relu_forward(student, rng):
    _activation(student, rng, "ReLU", torch.relu, part="forward")


def test_relu_backward(student, rng):
    _activation(student, rng, "ReLU", torch.relu, part="backward")


def test_sigmoid_forward(student, rng):
    _activation(student, rng, "Sigmoid", torch.sigmoid, part="forward")


def test_sigmoid_backward(student, rng):
    _activation(student, rng, "Sigmoid", torch.sigmoid, part="backward")


# --- Net -------------------------------------------------------------------------------------
NET_TAGS = ("first", "tanh", "last")


def _net(student, rng):
    """A student's Net over stand-in layers (first affine, tanh, last affine) that replay a
    correct pass's numbers: (net, stand-ins, the grader's data, the pass)."""
    data = {"A": _normal(rng, 3, 4), "B": _normal(rng, 4, 2), "x": _normal(rng, 5, 3),
            "d": _normal(rng, 5, 2),
            "grads": [_normal(rng, 3, 4), _normal(rng, 4), _normal(rng, 4, 2), _normal(rng, 2)],
            "lr": 0.3}
    x, A, B = _leaf(data["x"]), torch.tensor(data["A"]), torch.tensor(data["B"])
    h = x @ A
    h.retain_grad()
    a = torch.tanh(h)
    a.retain_grad()
    y = a @ B
    y.backward(torch.tensor(data["d"]))
    numbers = {"x": x.detach(), "h": h.detach(), "a": a.detach(), "y": y.detach(),
               "d": torch.tensor(data["d"]), "da": a.grad, "dh": h.grad, "dx": x.grad}
    # what each layer gets and gives: forward (input, output), backward (gradient in, out)
    passes = {"first": (("x", "h"), ("dh", "dx")), "tanh": (("h", "a"), ("da", "dh")),
              "last": (("a", "y"), ("d", "da"))}
    layers = []
    for tag, weight in zip(NET_TAGS, (data["A"], None, data["B"])):
        (_, out), (_, back) = passes[tag]
        attributes = {} if weight is None else {
            "weight": torch.tensor(weight), "bias": torch.zeros(weight.shape[1]),
            "weight_grad": None, "bias_grad": None}
        layers.append(student.stand_in({"forward": [numbers[out]], "backward": [numbers[back]],
                                        "init_params": [None]}, attributes))
    return student.Net(layers), layers, data, numbers, passes


def _layer_name(tag):
    return "activation" if tag == "tanh" else tag + " linear"


def test_net_backward(student, rng):
    net, layers, data, numbers, passes = _net(student, rng)
    y = net.forward(torch.tensor(data["x"]))
    dx = ignoring_errors(net.backward, torch.tensor(data["d"]))
    calls = sorted((order, method, tag, args) for layer, tag in zip(layers, NET_TAGS)
                   for order, method, args, _ in calls_of(layer)
                   if method in ("forward", "backward"))
    order = [(method, tag) for _, method, tag, _ in calls]
    expected = [("forward", tag) for tag in NET_TAGS] + [("backward", tag)
                                                         for tag in reversed(NET_TAGS)]
    if order[:3] != expected[:3]:
        raise CheckFailed("Net.forward called its layers as %s; expected each layer's forward "
                          "once, from first to last" % (order[:3],))
    for (_, _, tag, args) in calls[:3]:
        J.close(args[0] if args else None, numbers[passes[tag][0][0]],
                "the input Net.forward gave to its %s layer" % _layer_name(tag), **TOLERANCE)
    J.close(y, numbers["y"], "the output of Net.forward", **TOLERANCE)
    if dx is None:
        net.backward(torch.tensor(data["d"]))  # fails the check with what it raised
    if order != expected:
        raise CheckFailed("Net called its layers as %s; expected each layer's forward once "
                          "from first to last, then each backward once from last to first"
                          % order)
    for (_, _, tag, args) in calls[3:]:
        J.close(args[0] if args else None, numbers[passes[tag][1][0]],
                "the gradient Net.backward gave to its %s layer" % _layer_name(tag), **TOLERANCE)
    J.close(dx, numbers["dx"], "the gradient returned by Net.backward", **TOLERANCE)


def test_net_step(student, rng):
    net, (first, _, last), data, _, _ = _net(student, rng)
    ignoring_errors(net.forward, torch.tensor(data["x"]))
    ignoring_errors(net.backward, torch.tensor(data["d"]))
    gradients = [torch.tensor(g) for g in data["grads"]]
    first.weight_grad, first.bias_grad, last.weight_grad, last.bias_grad = gradients
    net.optimizer_step(data["lr"])
    before = [data["A"], np.zeros(4), data["B"], np.zeros(2)]
    names = ["the first layer's weight", "the first layer's bias", "the last layer's weight",
             "the last layer's bias"]
    after = [first.weight, first.bias, last.weight, last.bias]
    for name, value, start, grad in zip(names, after, before, data["grads"]):
        J.close(value, start - data["lr"] * grad, name + " after optimizer_step", **TOLERANCE)


# --- TorchNet ----------------------------------------------------------------------------------

@parametrize("n_in, hidden, n_out, batch", [(3, 5, 4, 6), (8, 2, 1, 2)])
def test_torchnet(student, rng, n_in, hidden, n_out, batch):
    """The architecture asked for, then its output with the grader's parameters loaded."""
    x = _normal(rng, batch, n_in)
    state = {"layer1.weight": _normal(rng, hidden, n_in), "layer1.bias": _normal(rng, hidden),
             "layer2.weight": _normal(rng, n_out, hidden), "layer2.bias": _normal(rng, n_out)}
    name = "TorchNet(%d, %d, %d)" % (n_in, hidden, n_out)
    model = student.TorchNet(n_in, hidden, n_out)
    if not is_instance(model, "torch.nn.modules.module.Module"):
        raise CheckFailed("%s is not a torch.nn.Module" % name)
    for attribute, shape in [("layer1", (hidden, n_in)), ("layer2", (n_out, hidden))]:
        layer = ignoring_errors(getattr, model, attribute)
        if not is_instance(layer, "torch.nn.modules.linear.Linear"):
            raise CheckFailed("%s.%s should be an nn.Linear" % (name, attribute))
        J.shape(layer.weight, shape, "%s.%s.weight" % (name, attribute))
    if not is_instance(ignoring_errors(getattr, model, "relu"),
                       "torch.nn.modules.activation.ReLU"):
        raise CheckFailed("%s.relu should be an nn.ReLU" % name)
    model.load_state_dict({key: torch.tensor(value) for key, value in state.items()},
                          strict=False)
    hidden_values = np.maximum(x @ state["layer1.weight"].T + state["layer1.bias"], 0)
    J.close(model(torch.tensor(x)), hidden_values @ state["layer2.weight"].T
            + state["layer2.bias"], "%s's output" % name, **TOLERANCE)


# --- Softmax and the loss -------------------------------------------------------------------------

def _loss_cases(rng):
    cases = []
    for n, k, scale in [(5, 4, 2.0), (1, 10, 1.0), (6, 3, 500.0)]:  # the last overflows exp
        labels = rng.integers(0, k, size=n)
        cases.append(((rng.normal(size=(n, k)) * scale).astype(np.float32),
                      np.eye(k, dtype=np.float32)[labels]))
    return cases


def _unchanged(student_z, z, what):
    if not np.array_equal(J.as_array(fetch(student_z), what), z):
        raise CheckFailed("%s modified its input logits" % what)


def test_softmax(student, rng):
    for z, _ in _loss_cases(rng):
        what = "Softmax of a %dx%d batch%s" % (z.shape + (
            " of large logits" if np.abs(z).max() > 100 else "",))
        logits = student.keep(torch.tensor(z))
        with student.no_warnings():
            p = student.Softmax(logits)
        J.close(p, torch.softmax(torch.tensor(z), dim=1).numpy(), what, rtol=1e-4, atol=1e-6)
        _unchanged(logits, z, "Softmax")


def _cross_entropy(student, z, y):
    """The student's (loss, grad) for logits z and one-hot y, and the kernel's z after."""
    logits = student.keep(torch.tensor(z))
    result = student.CrossEntropyLoss(torch.tensor(y), logits)
    if not isinstance(result, tuple) or len(result) != 2:
        raise CheckFailed("CrossEntropyLoss returned %s, expected (loss, grad)"
                          % J.kind_of(result))
    leaf = _leaf(z)
    loss = -(torch.tensor(y) * torch.log_softmax(leaf, dim=1)).sum(dim=1).mean()
    loss.backward()
    return result, logits, (loss.item(), leaf.grad.numpy())


def test_cross_entropy_loss(student, rng):
    for z, y in _loss_cases(rng):
        (loss, _), logits, (expected, _) = _cross_entropy(student, z, y)
        J.scalar(loss, expected, "the loss of CrossEntropyLoss on a %dx%d batch" % z.shape,
                 **TOLERANCE)
        _unchanged(logits, z, "CrossEntropyLoss")


def test_cross_entropy_grad(student, rng):
    for z, y in _loss_cases(rng):
        (_, grad), logits, (_, expected) = _cross_entropy(student, z, y)
        J.close(grad, expected, "the gradient of CrossEntropyLoss on a %dx%d batch" % z.shape,
                rtol=1e-4, atol=1e-6)
        _unchanged(logits, z, "CrossEntropyLoss")


# --- training ------------------------------------------------------------------------------------

TRAINING = {"train_size": 2000, "hidden": 30, "lr": 0.5, "batch_size": 64, "epochs": 10,
            "std": 0.1}
# A correct implementation reaches about 0.9 on the 200 held-out digits (tests/test_checks.py
# trains it); a network whose gradients are wrong stays far below.
ACCURACY_THRESHOLD = 0.80


def _prepared(images):
    x = torch.tensor(images, dtype=torch.float32).flatten(start_dim=1) / 255.0
    return (x - 0.1307) / 0.3081


def test_training(student, rng):
    """The grader trains a network of the student's classes (the loop is the grader's; every
    step is the student's code) and evaluates it on digits that are nowhere in the sandbox."""
    train_images, train_labels, _, _ = mnist_split()
    n, hidden, size = TRAINING["train_size"], TRAINING["hidden"], TRAINING["batch_size"]
    targets = torch.eye(10)[torch.tensor(train_labels[:n]).long()]
    student.seed(0)
    with student.kept():
        x, y = student.keep(_prepared(train_images[:n])), student.keep(targets)
        net = student.Net([student.Linear(784, hidden), student.Sigmoid(),
                           student.Linear(hidden, 10)])
        net.reset_params(std=TRAINING["std"])
        forward, backward, step = net.forward, net.backward, net.optimizer_step
        loss = student.CrossEntropyLoss
        generator = torch.Generator().manual_seed(0)
        for _ in range(TRAINING["epochs"]):
            order = torch.randperm(n, generator=generator)
            for start in range(0, n, size):
                batch = order[start:start + size]
                result = loss(y[batch], forward(x[batch]))
                if not isinstance(result, tuple) or len(result) != 2:
                    raise CheckFailed("CrossEntropyLoss returned %s, expected (loss, grad)"
                                      % J.kind_of(result))
                backward(result[1])
                step(TRAINING["lr"])
    images, labels = mnist_held_out()
    predictions = value_of(forward(_prepared(images)))
    scores = J.as_array(predictions, "your trained network's output")
    if scores.shape != (len(labels), 10):
        raise CheckFailed("the trained network gave outputs of shape %s, expected %s"
                          % (scores.shape, (len(labels), 10)))
    accuracy = float(np.mean(scores.argmax(axis=1) == labels))
    if accuracy < ACCURACY_THRESHOLD:
        raise CheckFailed("a network built from your classes reached %.1f%% on the grader's "
                          "%d test digits; a correct implementation reaches about 89%% (the "
                          "cell passes above %d%%)" % (100 * accuracy, len(labels),
                                                       100 * ACCURACY_THRESHOLD))
