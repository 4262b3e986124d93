"""Hidden checks of ps1 (backpropagation from scratch in NumPy).

Each ``test_*`` function is one check (nncourse/checks/runner.py): it drives the student's
classes in their kernel through ``student`` and compares what comes back with torch autograd
or a closed form, computed here.
"""

import contextlib

import numpy as np
import torch
import torch.nn.functional as F

from . import CheckFailed
from . import judging as J
from .remote import calls_of, ignoring_errors
from .runner import parametrize
from ..policy import Rule

# ps1 builds backpropagation by hand: graded code may use NumPy, not a library that
# differentiates or implements the layers for it (checked on the source: nncourse/policy/).
POLICY = [Rule(modules=("torch", "torchvision", "tensorflow", "keras", "jax", "autograd",
                        "sklearn", "scipy", "mlxtend"),
               why="ps1 is done with NumPy alone (no torch or other learning library)"),
          # the stable parts ask for code that does not overflow, which a check sees by
          # NumPy's warning: silencing that warning is not writing stable code
          Rule(modules=("numpy.errstate", "numpy.seterr", "numpy.seterrcall"),
               attributes=("errstate", "seterr", "seterrcall"),
               names=("Sigmoid", "CrossEntropyLoss"),
               why="the task asks for code that does not overflow; silencing NumPy's "
                   "floating-point warnings is not allowed here")]


def _t(array):
    return torch.tensor(np.asarray(array, dtype=np.float64), requires_grad=True)


def _gradients(function, g, *inputs):
    """function(*inputs) and the gradients of sum(function * g) with respect to each input,
    by torch autograd."""
    tensors = [_t(x) for x in inputs]
    y = function(*tensors)
    (y * torch.tensor(g)).sum().backward()
    return (y.detach().numpy(),) + tuple(t.grad.numpy() for t in tensors)


# --- Linear -----------------------------------------------------------------------------
# non-square shapes, a batch of one, an output of width one
LINEAR_SHAPES = [(4, 3, 5), (1, 2, 3), (6, 4, 1)]


def _linear_case(rng, batch, n_in, n_out):
    """The grader's W and b for a layer, and the inputs of one step."""
    return {"x": rng.normal(size=(batch, n_in)), "x2": rng.normal(size=(batch + 2, n_in)),
            "W": rng.normal(size=(n_in, n_out)), "b": rng.normal(size=(1, n_out)),
            "g": rng.normal(size=(batch, n_out)), "lr": float(rng.uniform(0.1, 0.5)),
            "lam": float(rng.uniform(0.05, 0.2))}


def _linear(student, rng, batch, n_in, n_out):
    """A student's Linear with the grader's W and b, and the inputs of one step."""
    case = _linear_case(rng, batch, n_in, n_out)
    layer = student.Linear(n_in, n_out)
    layer.W, layer.b = case["W"], case["b"]
    return layer, case


def _linear_oracle(case, lam=0.0):
    y, dx, dW, db = _gradients(lambda x, W, b: x @ W + b, case["g"], case["x"], case["W"],
                               case["b"])
    return {"y": y, "dx": dx, "dW": dW + 2 * lam * case["W"], "db": db}


@parametrize("batch, n_in, n_out", LINEAR_SHAPES)
def test_linear_forward(student, rng, batch, n_in, n_out):
    layer, case = _linear(student, rng, batch, n_in, n_out)
    what = "Linear(%d, %d).forward on a batch of %d" % (n_in, n_out, batch)
    J.close(layer(case["x"]), _linear_oracle(case)["y"], what)  # calling it runs forward
    J.close(layer.forward(case["x2"]), case["x2"] @ case["W"] + case["b"],
            what.replace("forward", "forward, called a second time,"))


@parametrize("batch, n_in, n_out", LINEAR_SHAPES)
def test_linear_backward(student, rng, batch, n_in, n_out):
    layer, case = _linear(student, rng, batch, n_in, n_out)
    ignoring_errors(layer, case["x"])
    dx = layer.backward(case["x"], case["g"], case["lr"])
    J.close(dx, _linear_oracle(case)["dx"],
            "the gradient dL/dX returned by Linear(%d, %d).backward" % (n_in, n_out))


@parametrize("batch, n_in, n_out", LINEAR_SHAPES)
def test_linear_update(student, rng, batch, n_in, n_out):
    layer, case = _linear(student, rng, batch, n_in, n_out)
    grads, lr = _linear_oracle(case), case["lr"]
    ignoring_errors(layer, case["x"])
    layer.backward(case["x"], case["g"], lr)
    J.close(layer.W, case["W"] - lr * grads["dW"], "W after one backward step")
    J.close(layer.b, case["b"] - lr * grads["db"], "b after one backward step")
    # the default learning rate of the signature, on a fresh layer
    fresh = student.Linear(n_in, n_out)
    fresh.W, fresh.b = case["W"], case["b"]
    ignoring_errors(fresh.forward, case["x"])
    fresh.backward(case["x"], case["g"])
    J.close(fresh.W, case["W"] - 0.05 * grads["dW"],
            "W after a step with the default learning rate (0.05)")


@parametrize("batch, n_in, n_out", LINEAR_SHAPES)
def test_linear_l2(student, rng, batch, n_in, n_out):
    case = _linear_case(rng, batch, n_in, n_out)
    layer = student.LinearL2(n_in, n_out, l2_lambda=case["lam"])
    layer.W, layer.b = case["W"], case["b"]
    grads, lr = _linear_oracle(case, lam=case["lam"]), case["lr"]
    ignoring_errors(layer.forward, case["x"])
    dx = layer.backward(case["x"], case["g"], lr)
    J.close(dx, grads["dx"], "the gradient dL/dX returned by LinearL2.backward")
    J.close(layer.W, case["W"] - lr * grads["dW"], "W after one regularised step")
    J.close(layer.b, case["b"] - lr * grads["db"], "b after one regularised step")


# --- activations ---------------------------------------------------------------------------

def _activation(student, rng, name, function, part, stable=False):
    """Runs forward then backward on a 5x7 input (zeros at the kink, large magnitudes) and on
    a single row, judging ``part``. ``stable``: the task asks for code that does not warn."""
    x = rng.normal(scale=3.0, size=(5, 7))
    x[0, :3] = 0.0  # exactly at ReLU's kink
    x[1, :] = [-800.0, -50.0, -1e-3, 1e-3, 50.0, 800.0, 30.0]  # large magnitudes
    g, x_row, g_row = rng.normal(size=(5, 7)), rng.normal(size=(1, 4)), rng.normal(size=(1, 4))
    layer = student[name]()
    for calls, (x, g) in enumerate([(x, g), (x_row, g_row)]):
        y, dx = _gradients(function, g, x)
        where = "%s.%s on a %s input" % (name, part, "x".join(map(str, x.shape)))
        forward = layer if calls == 0 else layer.forward  # calling the layer runs forward
        with student.no_warnings() if stable else contextlib.nullcontext():
            if part == "forward":
                J.close(forward(x), y, where)
                ignoring_errors(layer.backward, x, g)
            else:
                ignoring_errors(forward, x)
                J.close(layer.backward(x, g), dx, where)


def test_relu_forward(student, rng):
    _activation(student, rng, "ReLU", torch.relu, part="forward")  # derivative 0 at 0, as asked


def test_relu_backward(student, rng):
    _activation(student, rng, "ReLU", torch.relu, part="backward")


def test_sigmoid_forward(student, rng):
    _activation(student, rng, "Sigmoid", torch.sigmoid, part="forward", stable=True)


def test_sigmoid_backward(student, rng):
    _activation(student, rng, "Sigmoid", torch.sigmoid, part="backward", stable=True)


# --- losses --------------------------------------------------------------------------------

def _loss(student, cases, name, function, part, stable=False):
    loss = student[name]()
    for pred, y in cases:
        value, grad = _gradients(lambda p: function(p, torch.tensor(y)), np.ones(()), pred)
        shape = "x".join(map(str, pred.shape))
        with student.no_warnings() if stable else contextlib.nullcontext():
            if part == "forward":
                J.scalar(loss(pred, y), value, "%s on a %s prediction" % (name, shape))
                ignoring_errors(loss.backward, pred, y)
            else:
                ignoring_errors(loss, pred, y)
                J.close(loss.backward(pred, y), grad,
                        "%s.backward on a %s prediction" % (name, shape))


def _mse_cases(rng):
    return [(rng.normal(size=(m, 1)), rng.normal(size=(m, 1))) for m in (7, 1, 30)]


def test_mse_forward(student, rng):
    _loss(student, _mse_cases(rng), "MSELoss", F.mse_loss, part="forward")


def test_mse_backward(student, rng):
    _loss(student, _mse_cases(rng), "MSELoss", F.mse_loss, part="backward")


def _cross_entropy_cases(rng):
    cases = []
    for m, c, scale in [(6, 4, 2.0), (1, 10, 1.0), (5, 3, 900.0)]:  # the last overflows exp
        labels = rng.integers(0, c, size=m)
        cases.append((rng.normal(scale=scale, size=(m, c)), np.eye(c)[labels]))
    return cases


def _cross_entropy(logits, one_hot):
    return -(one_hot * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()


def test_cross_entropy_forward(student, rng):
    _loss(student, _cross_entropy_cases(rng), "CrossEntropyLoss", _cross_entropy, part="forward",
          stable=True)  # the max shift


def test_cross_entropy_backward(student, rng):
    _loss(student, _cross_entropy_cases(rng), "CrossEntropyLoss", _cross_entropy, part="backward",
          stable=True)


# --- SimpleNN ------------------------------------------------------------------------------

def _simplenn_expected(A1, A2, x, y):
    """A pass through first (x @ A1), tanh, last (@ A2) and the halved mean squared error:
    the prediction, the loss and, per layer from the last, its input and output gradient."""
    h = x @ A1
    a = np.tanh(h)
    p = a @ A2
    g_p = (p - y) / len(y)
    g_a = g_p @ A2.T
    g_h = g_a * (1 - np.tanh(h) ** 2)
    return p, 0.5 * np.sum((p - y) ** 2) / len(y), [("last", a, g_p), ("tanh", h, g_a),
                                                    ("first", x, g_h)]


def test_simplenn(student, rng):
    """SimpleNN drives stand-in layers and loss that replay a correct pass's numbers: it must
    call them in the right order with the right gradients, and pass them its lr."""
    A1, A2, lr = rng.normal(size=(3, 4)), rng.normal(size=(4, 2)), 0.3
    batches = [(rng.normal(size=(5, 3)), rng.normal(size=(5, 2))),
               (rng.normal(size=(2, 3)), rng.normal(size=(2, 2)))]
    expected = [_simplenn_expected(A1, A2, x, y) for x, y in batches]
    answers = {tag: {"forward": [], "backward": []} for tag in ("first", "tanh", "last")}
    loss_answers = {"forward": [], "backward": []}
    for (x, _), (p, loss, backward) in zip(batches, expected):
        gradients = {tag: g for tag, _, g in backward}  # what each layer's backward gets
        for tag, out in [("first", x @ A1), ("tanh", np.tanh(x @ A1)), ("last", p)]:
            answers[tag]["forward"].append(out)
        answers["last"]["backward"].append(gradients["tanh"])
        answers["tanh"]["backward"].append(gradients["first"])
        answers["first"]["backward"].append(gradients["first"] @ A1.T)
        loss_answers["forward"].append(float(loss))
        loss_answers["backward"].append(gradients["last"])
    layers = [student.stand_in(answers[tag], {"with_weights": tag != "tanh"}, call="forward")
              for tag in ("first", "tanh", "last")]
    loss = student.stand_in(loss_answers, {"with_weights": False}, call="forward")
    model = student.SimpleNN(layers, loss, lr=lr)
    seen = [0, 0, 0]
    for number, ((x, y), (p, value, backward)) in enumerate(zip(batches, expected), 1):
        where = "on batch %d (of %d samples)" % (number, len(x))
        J.close(model(x), p, "the output of SimpleNN.forward " + where)
        model.backward(y)
        calls = []
        for index, layer in enumerate(layers):
            found = calls_of(layer)
            calls += [(order, method, ("first", "tanh", "last")[index], args, kwargs)
                      for order, method, args, kwargs in found[seen[index]:]]
            seen[index] = len(found)
        calls = [call[1:] for call in sorted(calls, key=lambda call: call[0])]
        forward_order = [("forward", tag) for method, tag, _, _ in calls if method == "forward"]
        if forward_order != [("forward", "first"), ("forward", "tanh"), ("forward", "last")]:
            raise CheckFailed("SimpleNN.forward %s called the layers' forward as %s; expected "
                              "each layer once, first to last" % (where, forward_order))
        backward_calls = [(tag, args, kwargs) for method, tag, args, kwargs in calls
                          if method == "backward"]
        order = [tag for tag, _, _ in backward_calls]
        if order != ["last", "tanh", "first"]:
            raise CheckFailed("SimpleNN.backward %s called backward on the layers in the order "
                              "%s; expected each layer once, from the last to the first"
                              % (where, order))
        for (tag, args, kwargs), (_, layer_input, gradient) in zip(backward_calls, backward):
            given = dict(zip(("x", "g", "lr"), args), **kwargs)
            J.close(given.get("x"), layer_input,
                    "the input given to the %s layer's backward %s" % (tag, where))
            J.close(given.get("g"), gradient,
                    "the output gradient given to the %s layer's backward %s" % (tag, where))
            step = given.get("lr", 0.05)  # the stand-in's default, as the layers' signature
            if tag != "tanh" and not (isinstance(step, (int, float)) and np.isclose(step, lr)):
                raise CheckFailed("the %s layer's backward got lr=%s, expected the network's "
                                  "own learning rate" % (tag, J.kind_of(step) if not isinstance(
                                      step, (int, float)) else step))
        J.scalar(model.loss_value, value, "SimpleNN.loss_value after backward " + where)


# --- Conv1d (bonus) --------------------------------------------------------------------------
CONV1D_SHAPES = [(3, 9, 1, 1), (2, 16, 2, 3), (1, 6, 1, 0)]  # batch, length, k, pad


def _conv1d(student, rng, batch, length, k, pad):
    case = {"x": rng.normal(size=(batch, length)), "W": rng.normal(size=(1, 2 * k + 1)),
            "b": rng.normal(size=(1, 1)), "g": rng.normal(size=(batch, length + 2 * pad - 2 * k)),
            "lr": float(rng.uniform(0.05, 0.3))}
    layer = student.Conv1d(k, pad)
    layer.W, layer.b = case["W"], case["b"]

    def convolve(x, W, b):  # a sliding dot product (no kernel flip), as in the notebook
        return F.conv1d(F.pad(x, (pad, pad)).unsqueeze(1), W.view(1, 1, -1), b.view(1)).squeeze(1)
    y, dx, dW, db = _gradients(convolve, case["g"], case["x"], case["W"], case["b"])
    return layer, case, {"y": y, "dx": dx, "dW": dW, "db": db}


@parametrize("batch, length, k, pad", CONV1D_SHAPES)
def test_conv1d_forward(student, rng, batch, length, k, pad):
    layer, case, oracle = _conv1d(student, rng, batch, length, k, pad)
    J.close(layer(case["x"]), oracle["y"], "Conv1d(kernel_size=%d, pad_length=%d).forward on "
            "a %dx%d input" % (k, pad, batch, length))


@parametrize("batch, length, k, pad", CONV1D_SHAPES)
def test_conv1d_backward(student, rng, batch, length, k, pad):
    layer, case, oracle = _conv1d(student, rng, batch, length, k, pad)
    name = "Conv1d(kernel_size=%d, pad_length=%d)" % (k, pad)
    ignoring_errors(layer, case["x"])
    J.close(layer.backward(case["x"], case["g"], case["lr"]), oracle["dx"],
            "the gradient dL/dX returned by %s.backward" % name)
    J.close(layer.W, case["W"] - case["lr"] * oracle["dW"], "W of %s after one backward step"
            % name)
    J.close(layer.b, case["b"] - case["lr"] * oracle["db"], "b of %s after one backward step"
            % name)
