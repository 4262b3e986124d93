"""Hidden checks of ps3 (deep networks in PyTorch, train_and_test, the quiz).

The networks are checked by what they compute, not by how they are written: the probe gives
every nn.Linear of the student's model parameters drawn from a seeded generator (assigned by
shape, so the order of definition does not matter), and the judge recomputes the expected
output with the same parameters and the activation the network must use.
"""

import numpy as np
import torch
import torch.nn.functional as F

from . import CheckFailed, check
from . import judging as J
from .wire import Raised, StudentError, attempt, lookup  # noqa: F401 (probes use them)

HIDDEN = [512, 1024, 512]



def parameters_for(shape):
    """The weight (out x in) and bias a linear layer of this shape gets in the check."""
    out_features, in_features = shape
    rng = np.random.default_rng(7919 * out_features + in_features)
    weight = (rng.standard_normal((out_features, in_features)) / np.sqrt(in_features))
    return weight.astype(np.float32), rng.standard_normal(out_features).astype(np.float32)


# --- the two networks ----------------------------------------------------------------------------

def ann_inputs():
    rng = np.random.default_rng(301)
    # a full-size image batch, and a smaller input whose 12 values arrive as 3 x 4 images
    return {"cases": [{"d_in": 784, "d_out": 10, "x": rng.normal(size=(5, 1, 28, 28))},
                      {"d_in": 12, "d_out": 3, "x": rng.normal(size=(2, 1, 3, 4))}]}


def probe_ann(ns, inputs, name):
    import numpy as np
    import torch
    Model = lookup(ns, name)
    results = []
    for case in inputs["cases"]:
        model = attempt(Model, int(case["d_in"]), int(case["d_out"]))
        if isinstance(model, Raised):
            results.append({"init": model})
            continue
        if not isinstance(model, torch.nn.Module):
            results.append({"init": Raised("%s is not a torch.nn.Module" % name)})
            continue
        linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
        shapes = [list(m.weight.shape) for m in linear]
        with torch.no_grad():
            for layer in linear:
                out_features, in_features = layer.weight.shape
                rng = np.random.default_rng(7919 * out_features + in_features)
                weight = rng.standard_normal((out_features, in_features)) / np.sqrt(in_features)
                layer.weight.copy_(torch.tensor(weight.astype(np.float32)))
                if layer.bias is not None:
                    layer.bias.copy_(torch.tensor(
                        rng.standard_normal(out_features).astype(np.float32)))
        x = torch.tensor(case["x"], dtype=torch.float32)
        output = attempt(lambda: model(x).detach())
        results.append({"shapes": shapes, "output": output,
                        "biases": [layer.bias is not None for layer in linear]})
    return {"cases": results}


def probe_ann_sigmoid(ns, inputs):
    return probe_ann(ns, inputs, "ANN_sigmoid")


def probe_ann_relu(ns, inputs):
    return probe_ann(ns, inputs, "ANN_relu")


def _judge_ann(inputs, outputs, name, activation):
    for case, out in zip(inputs["cases"], outputs["cases"], strict=True):
        call = "%s(%d, %d)" % (name, case["d_in"], case["d_out"])
        J.constructed(out, call)
        sizes = [case["d_in"]] + HIDDEN + [case["d_out"]]
        expected = [[o, i] for i, o in zip(sizes, sizes[1:])]
        shapes = [list(map(int, s)) for s in out["shapes"]]
        if sorted(shapes) != sorted(expected) or len(shapes) != 4:
            described = ["%d->%d" % (i, o) for o, i in shapes]
            raise CheckFailed("%s has the linear layers %s; expected %s" % (
                call, ", ".join(described) or "none",
                ", ".join("%d->%d" % (i, o) for o, i in expected)))
        if not all(out["biases"]):
            raise CheckFailed("%s has a linear layer without a bias" % call)
        x = torch.tensor(case["x"], dtype=torch.float32).reshape(len(case["x"]), -1)
        for number, shape in enumerate(expected):
            weight, bias = parameters_for(shape)
            x = F.linear(x, torch.tensor(weight), torch.tensor(bias))
            if number < len(expected) - 1:
                x = activation(x)
        J.close(out["output"], x.numpy(), "the output of %s" % call, rtol=1e-4, atol=1e-5)


@check("ps3.ann_sigmoid", inputs=ann_inputs, probe=probe_ann_sigmoid)
def ann_sigmoid(inputs, outputs):
    _judge_ann(inputs, outputs, "ANN_sigmoid", torch.sigmoid)


@check("ps3.ann_relu", inputs=ann_inputs, probe=probe_ann_relu)
def ann_relu(inputs, outputs):
    _judge_ann(inputs, outputs, "ANN_relu", torch.relu)


# --- train_and_test -------------------------------------------------------------------------------

def train_and_test_inputs():
    rng = np.random.default_rng(302)
    sizes = [(6, 5), (5, 5), (5, 3)]
    return {
        "weights": [rng.normal(scale=0.5, size=(o, i)).astype(np.float32) for i, o in sizes],
        "biases": [rng.normal(scale=0.1, size=o).astype(np.float32) for _, o in sizes],
        "train_x": rng.normal(size=(10, 6)).astype(np.float32),
        "train_y": rng.integers(0, 3, size=10),
        "test_x": rng.normal(size=(4, 6)).astype(np.float32),
        "test_y": rng.integers(0, 3, size=4),
        "hyperparameters": {"lr": 0.2, "momentum": 0.9, "epochs": 3, "batch_size": 4,
                            "test_batch_size": 4, "seed": 0},
    }


def probe_small_model(inputs):
    """The three-layer ReLU model train_and_test is tried on, and its linear layers (used by
    the probe in the kernel and by the oracle in the grader)."""
    import torch
    linear = [torch.nn.Linear(w.shape[1], w.shape[0]) for w in inputs["weights"]]
    with torch.no_grad():
        for layer, weight, bias in zip(linear, inputs["weights"], inputs["biases"]):
            layer.weight.copy_(torch.tensor(weight))
            layer.bias.copy_(torch.tensor(bias))
    relu = torch.nn.ReLU
    return torch.nn.Sequential(linear[0], relu(), linear[1], relu(), linear[2]), linear


def probe_train_and_test(ns, inputs):
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    train_and_test = lookup(ns, "train_and_test")
    model, linear = probe_small_model(inputs)

    def loader(x, y):
        data = TensorDataset(torch.tensor(x), torch.tensor(y).long())
        return DataLoader(data, batch_size=int(inputs["hyperparameters"]["batch_size"]))

    saved = {name: ns.get(name) for name in ("train_loader", "test_loader", "test")}
    tested = []
    original_test = saved["test"]

    def counting_test(model_, loader_):
        tested.append(loader_ is ns["test_loader"])
        return original_test(model_, loader_) if original_test else None

    ns["train_loader"] = loader(inputs["train_x"], inputs["train_y"])
    ns["test_loader"] = loader(inputs["test_x"], inputs["test_y"])
    if original_test is not None:
        ns["test"] = counting_test
    try:
        grads = attempt(train_and_test, model, dict(inputs["hyperparameters"]))
    finally:
        ns.update(saved)
    if not isinstance(grads, Raised):
        try:
            grads = [[float(v) for v in values] for values in grads]
        except Exception:
            grads = Raised("train_and_test returned %s, expected three lists of numbers"
                           % type(grads).__name__)
    return {"grads": grads, "tested": tested,
            "parameters": [p.detach() for layer in linear for p in (layer.weight, layer.bias)]}


def _train_and_test_oracle(inputs):
    hp = inputs["hyperparameters"]
    model, linear = probe_small_model(inputs)
    optimizer = torch.optim.SGD(model.parameters(), lr=hp["lr"], momentum=hp["momentum"])
    x, y = torch.tensor(inputs["train_x"]), torch.tensor(inputs["train_y"]).long()
    grads = [[], [], []]
    size = hp["batch_size"]
    for _ in range(hp["epochs"]):
        for start in range(0, len(x), size):
            optimizer.zero_grad()
            F.cross_entropy(model(x[start:start + size]), y[start:start + size]).backward()
            for record, layer in zip(grads, linear):
                record.append(layer.weight.grad.abs().mean().item())
            optimizer.step()
    return grads, [p.detach().numpy() for layer in linear for p in (layer.weight, layer.bias)]


@check("ps3.train_and_test", inputs=train_and_test_inputs, probe=probe_train_and_test)
def train_and_test(inputs, outputs):
    J.raised(outputs["grads"], "train_and_test")
    grads, parameters = _train_and_test_oracle(inputs)
    hp = inputs["hyperparameters"]
    what = ("with lr=%g, momentum=%g and %d epochs on the grader's data"
            % (hp["lr"], hp["momentum"], hp["epochs"]))
    for student, oracle in zip(outputs["parameters"], parameters, strict=True):
        J.close(student, oracle, "the model's parameters after train_and_test " + what,
                rtol=1e-4, atol=1e-5)
    returned = outputs["grads"]
    if not isinstance(returned, list) or len(returned) != 3:
        raise CheckFailed("train_and_test should return three gradient lists")
    for number, (values, record) in enumerate(zip(returned, grads), 1):
        J.close(np.asarray(values, dtype=float), record,
                "the gradient list of linear layer %d returned by train_and_test %s"
                % (number, what), rtol=1e-4, atol=1e-6)
    if len(outputs["tested"]) != hp["epochs"] or not all(outputs["tested"]):
        raise CheckFailed("train_and_test called test on test_loader %d times in %d epochs; "
                          "expected once per epoch" % (sum(outputs["tested"]), hp["epochs"]))


# --- the quiz ----------------------------------------------------------------------------------

# The key is backed by tests/test_quiz_key.py, which trains both networks for one epoch with
# the notebook's hyperparameters and checks each statement against the run.
QUIZ_KEY = {"a_": True, "b_": False, "c_": True, "d_": True, "e_": False}


def quiz_inputs():
    return {"names": sorted(QUIZ_KEY)}


def probe_quiz(ns, inputs):
    return {name: ns.get(name, Raised("%s is not defined" % name)) for name in inputs["names"]}


def _judge_quiz(outputs, name):
    value = outputs[name]
    if isinstance(value, StudentError):
        raise CheckFailed("%s is not defined: run the cell that sets it" % name)
    if not isinstance(value, bool):
        raise CheckFailed("%s should be True or False, not a %s" % (name, J.kind_of(value)))
    if value != QUIZ_KEY[name]:
        raise CheckFailed("%s is not the right answer" % name)


for _name in QUIZ_KEY:
    check("ps3.quiz_" + _name.rstrip("_"), inputs=quiz_inputs, probe=probe_quiz)(
        lambda inputs, outputs, _name=_name: _judge_quiz(outputs, _name))
