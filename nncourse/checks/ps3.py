"""Hidden checks of ps3 (deep networks in PyTorch, train_and_test, the quiz).

The networks are checked by what they compute, not by how they are written: the check gives
every nn.Linear of the student's model parameters drawn from a seeded generator (assigned by
shape, so the order of definition does not matter), and recomputes the expected output with
the same parameters and the activation the network must use.
"""

import numpy as np
import torch
import torch.nn.functional as F

from . import CheckFailed
from . import judging as J
from .remote import calls_of, is_instance, listed, same_object
from .runner import parametrize

# ps3 trains networks with torch.nn and torch.optim: graded code may use any library
POLICY = []

HIDDEN = [512, 1024, 512]
LINEAR = "torch.nn.modules.linear.Linear"


def parameters_for(shape):
    """The weight (out x in) and bias a linear layer of this shape gets in the check."""
    out_features, in_features = shape
    rng = np.random.default_rng(7919 * out_features + in_features)
    weight = (rng.standard_normal((out_features, in_features)) / np.sqrt(in_features))
    return weight.astype(np.float32), rng.standard_normal(out_features).astype(np.float32)


# --- the two networks ----------------------------------------------------------------------------
# a full-size image batch, and a smaller input whose 12 values arrive as 3 x 4 images
ANN_CASES = [(784, 10, (5, 1, 28, 28)), (12, 3, (2, 1, 3, 4))]


def _ann(student, rng, name, activation, d_in, d_out, shape):
    x = rng.normal(size=shape).astype(np.float32)
    call = "%s(%d, %d)" % (name, d_in, d_out)
    model = student[name](d_in, d_out)
    if not is_instance(model, "torch.nn.modules.module.Module"):
        raise CheckFailed("%s is not a torch.nn.Module" % call)
    linear = [module for module in listed(model.modules()) if is_instance(module, LINEAR)]
    weights = [layer.weight for layer in linear]
    shapes = [list(J.as_array(weight, "a linear layer's weight").shape) for weight in weights]
    sizes = [d_in] + HIDDEN + [d_out]
    expected = [[o, i] for i, o in zip(sizes, sizes[1:])]
    if sorted(shapes) != sorted(expected) or len(shapes) != 4:
        raise CheckFailed("%s has the linear layers %s; expected %s" % (
            call, ", ".join("%d->%d" % (i, o) for o, i in shapes) or "none",
            ", ".join("%d->%d" % (i, o) for o, i in expected)))
    for layer, weight, layer_shape in zip(linear, weights, shapes):
        bias = layer.bias
        if bias is None:
            raise CheckFailed("%s has a linear layer without a bias" % call)
        values, bias_values = parameters_for(layer_shape)
        weight.data, bias.data = torch.tensor(values), torch.tensor(bias_values)
    expected_output = torch.tensor(x).reshape(len(x), -1)
    for number, layer_shape in enumerate(expected):
        values, bias_values = parameters_for(layer_shape)
        expected_output = F.linear(expected_output, torch.tensor(values), torch.tensor(bias_values))
        if number < len(expected) - 1:
            expected_output = activation(expected_output)
    J.close(model(torch.tensor(x)), expected_output.numpy(), "the output of %s" % call,
            rtol=1e-4, atol=1e-5)


@parametrize("d_in, d_out, shape", ANN_CASES)
def test_ann_sigmoid(student, rng, d_in, d_out, shape):
    _ann(student, rng, "ANN_sigmoid", torch.sigmoid, d_in, d_out, shape)


@parametrize("d_in, d_out, shape", ANN_CASES)
def test_ann_relu(student, rng, d_in, d_out, shape):
    _ann(student, rng, "ANN_relu", torch.relu, d_in, d_out, shape)


# --- train_and_test -------------------------------------------------------------------------------

HYPERPARAMETERS = {"lr": 0.2, "momentum": 0.9, "epochs": 3, "batch_size": 4,
                   "test_batch_size": 4, "seed": 0}


def _small_model(nn, weights, biases):
    """The three-layer ReLU model train_and_test is tried on, built with ``nn`` (torch.nn
    here for the oracle, the kernel's torch.nn for the student's run), with the grader's
    parameters loaded (none of its own drawn values are read back); its linear layers."""
    linear = [nn.Linear(w.shape[1], w.shape[0]) for w in weights]
    model = nn.Sequential(linear[0], nn.ReLU(), linear[1], nn.ReLU(), linear[2])
    state = {}
    for number, weight, bias in zip((0, 2, 4), weights, biases):
        state["%d.weight" % number], state["%d.bias" % number] = (torch.tensor(weight),
                                                                  torch.tensor(bias))
    model.load_state_dict(state)
    return model, linear


def test_train_and_test(student, rng):
    sizes = [(6, 5), (5, 5), (5, 3)]
    weights = [rng.normal(scale=0.5, size=(o, i)).astype(np.float32) for i, o in sizes]
    biases = [rng.normal(scale=0.1, size=o).astype(np.float32) for _, o in sizes]
    train_x, train_y = rng.normal(size=(10, 6)).astype(np.float32), rng.integers(0, 3, size=10)
    test_x, test_y = rng.normal(size=(4, 6)).astype(np.float32), rng.integers(0, 3, size=4)
    hp = HYPERPARAMETERS
    # the grader's oracle: SGD with momentum on the same model and batches (drawing nothing
    # from the global generators, which a check run in-process shares with the student's code)
    with torch.random.fork_rng():
        model, linear = _small_model(torch.nn, weights, biases)
    optimizer = torch.optim.SGD(model.parameters(), lr=hp["lr"], momentum=hp["momentum"])
    x, y = torch.tensor(train_x), torch.tensor(train_y).long()
    records = [[], [], []]
    for _ in range(hp["epochs"]):
        for start in range(0, len(x), hp["batch_size"]):
            optimizer.zero_grad()
            F.cross_entropy(model(x[start:start + hp["batch_size"]]),
                            y[start:start + hp["batch_size"]]).backward()
            for record, layer in zip(records, linear):
                record.append(layer.weight.grad.abs().mean().item())
            optimizer.step()
    parameters = [p.detach().numpy() for layer in linear for p in (layer.weight, layer.bias)]
    # the student's run, on the same model made in the kernel with the kernel's torch.nn
    data = student.library("torch.utils.data")
    student_model, student_linear = _small_model(student.library("torch.nn"), weights, biases)

    def loader(x, y):
        return data.DataLoader(data.TensorDataset(torch.tensor(x), torch.tensor(y).long()),
                               batch_size=hp["batch_size"])
    test_loader = loader(test_x, test_y)
    # test() is the notebook's: a stand-in records the calls (and answers an accuracy)
    tester = student.stand_in({"test": [0.5]}, call="test")
    what = ("with lr=%g, momentum=%g and %d epochs on the grader's data"
            % (hp["lr"], hp["momentum"], hp["epochs"]))
    with student.globals_set(train_loader=loader(train_x, train_y), test_loader=test_loader,
                             test=tester):
        returned = student.train_and_test(student_model, dict(hp))
        tested = [args for _, _, args, _ in calls_of(tester)]
    after = [p for layer in student_linear for p in (layer.weight, layer.bias)]
    for value, oracle in zip(after, parameters):
        J.close(value, oracle, "the model's parameters after train_and_test " + what,
                rtol=1e-4, atol=1e-5)
    if not isinstance(returned, (list, tuple)) or len(returned) != 3:
        raise CheckFailed("train_and_test should return three gradient lists")
    for number, (values, record) in enumerate(zip(returned, records), 1):
        try:
            values = np.asarray(values, dtype=float)
        except (TypeError, ValueError):
            raise CheckFailed("train_and_test returned %s for linear layer %d, expected a list "
                              "of numbers" % (J.kind_of(values), number)) from None
        J.close(values, record, "the gradient list of linear layer %d returned by "
                "train_and_test %s" % (number, what), rtol=1e-4, atol=1e-6)
    on_test = [len(args) > 1 and same_object(args[1], test_loader) for args in tested]
    if len(on_test) != hp["epochs"] or not all(on_test):
        raise CheckFailed("train_and_test called test on test_loader %d times in %d epochs; "
                          "expected once per epoch" % (sum(on_test), hp["epochs"]))


# --- the quiz ----------------------------------------------------------------------------------

# The key is backed by tests/test_quiz_key.py, which trains both networks for one epoch with
# the notebook's hyperparameters and checks each statement against the run.
QUIZ_KEY = {"a_": True, "b_": False, "c_": True, "d_": True, "e_": False}


def _quiz(student, name):
    value = student[name]
    if not isinstance(value, bool):
        raise CheckFailed("%s should be True or False, not a %s" % (name, J.kind_of(value)))
    if value != QUIZ_KEY[name]:
        raise CheckFailed("%s is not the right answer" % name)


def test_quiz_a(student):
    _quiz(student, "a_")


def test_quiz_b(student):
    _quiz(student, "b_")


def test_quiz_c(student):
    _quiz(student, "c_")


def test_quiz_d(student):
    _quiz(student, "d_")


def test_quiz_e(student):
    _quiz(student, "e_")
