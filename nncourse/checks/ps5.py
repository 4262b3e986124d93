"""Hidden checks of ps5 (PyTorch: an MLP, CNNs with dropout, augmentation, RNNs, positional
encoding).

Each ``test_*`` function is one check (nncourse/checks/runner.py). Networks are checked by
what they compute: the check gives each parameter of the student's model values drawn from a
seeded generator, chosen by the parameter's shape (so the order and the names of the
student's attributes do not matter), and recomputes the output with torch.nn.functional.
Training functions are tried on models the check builds in the kernel from torch.nn, so they
are judged on their own.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

from . import CheckFailed
from . import judging as J
from .remote import is_instance, listed, same_object, type_name, value_of
from .runner import parametrize

# ps5 is written with PyTorch: graded code may use any library
POLICY = []


def parameter_for(shape):
    """The values a parameter of this shape gets in the checks (the model and the oracle)."""
    seed = int(np.prod(shape)) * 7919 + len(shape) * 104729 + int(shape[0])
    rng = np.random.default_rng(seed)
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else int(shape[0])
    return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)


def set_parameters(model):
    """Gives every parameter of the student's model the check's values for its shape; the
    shapes."""
    shapes = []
    for parameter in listed(model.parameters()):
        shape = tuple(J.as_array(parameter, "a parameter of the model").shape)
        parameter.data = torch.tensor(parameter_for(shape))
        shapes.append(shape)
    return shapes


def _p(shape):
    return torch.tensor(parameter_for(tuple(shape)))


def _shapes_match(got, expected, what):
    got = sorted(tuple(int(n) for n in s) for s in got)
    if got != sorted(tuple(s) for s in expected):
        raise CheckFailed("%s has parameters of shapes %s; expected %s" % (
            what, ", ".join(map(str, got)) or "none", ", ".join(map(str, expected))))


# --- MyFirstNeuralNet -----------------------------------------------------------------------

def test_first_net_forward(student):
    x = np.linspace(-3, 3, 13, dtype=np.float32).reshape(-1, 1)
    state = {"l1.weight": np.array([[1.5], [-0.5]], np.float32),
             "l1.bias": np.array([-1.0, 0.5], np.float32),
             "l2.weight": np.array([[1.0, -2.0]], np.float32),
             "l2.bias": np.array([0.25], np.float32)}
    model = student.MyFirstNeuralNet()
    model.load_state_dict({k: torch.tensor(v) for k, v in state.items()})
    s = {k: torch.tensor(v) for k, v in state.items()}
    expected = F.linear(torch.relu(F.linear(torch.tensor(x), s["l1.weight"], s["l1.bias"])),
                        s["l2.weight"], s["l2.bias"])
    J.close(model(torch.tensor(x)), expected.numpy(), "MyFirstNeuralNet's forward on 13 "
            "inputs from -3 to 3 (with other weights)", rtol=1e-5, atol=1e-6)


# --- DigitNet, train_model, get_accuracy ----------------------------------------------------

@parametrize("d_in, classes, batch", [(784, 10, 5), (20, 4, 3), (20, 4, 1)])
def test_digitnet(student, rng, d_in, classes, batch):
    x = (rng.uniform(size=(batch, d_in)) if d_in == 784 else rng.normal(size=(batch, d_in)))
    x = x.astype(np.float32)
    name = "DigitNet(%d, %d)" % (d_in, classes)
    model = student.DigitNet(d_in, classes)
    layers = [(512, d_in), (128, 512), (classes, 128)]
    _shapes_match(set_parameters(model), [s for o, i in layers for s in ((o, i), (o,))], name)
    expected = torch.tensor(x)
    for number, (o, i) in enumerate(layers):
        expected = F.linear(expected, _p((o, i)), _p((o,)))
        if number < 2:
            expected = torch.relu(expected)
    J.close(model(torch.tensor(x)), torch.softmax(expected, dim=1).numpy(),
            "the probabilities %s gives for a batch of %d" % (name, batch), rtol=1e-4, atol=1e-6)


def test_train_model(student, rng):
    """train_model builds its DigitNet by that name: the check puts in its place a maker of
    one model of its own, a linear layer with the grader's weights and a softmax."""
    x, y = rng.uniform(size=(12, 9)).astype(np.float32), rng.integers(0, 10, size=12)
    weight = np.random.default_rng(5020).normal(scale=0.3, size=(10, 9)).astype(np.float32)
    epochs = 4
    call = "train_model with %d epochs" % epochs
    nn = student.library("torch.nn")
    linear = nn.Linear(9, 10)
    linear.load_state_dict({"weight": torch.tensor(weight), "bias": torch.zeros(10)})
    built = nn.Sequential(linear, nn.Softmax(dim=1))
    maker = student.stand_in({"make": [built]}, call="make")
    with student.globals_set(DigitNet=maker):
        model = student.train_model(torch.tensor(x), torch.tensor(y).long(), epochs)
    if not same_object(model, built):
        raise CheckFailed("train_model returned %s, not the DigitNet it trained"
                          % J.kind_of(model))
    layer = torch.nn.Linear(9, 10)
    layer.load_state_dict({"weight": torch.tensor(weight), "bias": torch.zeros(10)})
    optimiser = torch.optim.Adam(layer.parameters())
    for _ in range(epochs):
        optimiser.zero_grad()
        F.nll_loss(torch.log(torch.softmax(layer(torch.tensor(x)), dim=1)),
                   torch.tensor(y).long()).backward()
        optimiser.step()
    what = ("the weights after %s (Adam with its default settings, one full-batch step per "
            "epoch, the cross-entropy of the model's probabilities)" % call)
    J.close(linear.weight, layer.weight.detach().numpy(), what, rtol=1e-4, atol=1e-6)
    J.close(linear.bias, layer.bias.detach().numpy(), what.replace("weights", "biases"),
            rtol=1e-4, atol=1e-6)


def test_get_accuracy(student, rng):
    probabilities = torch.softmax(torch.tensor(rng.normal(size=(7, 4))), dim=1).numpy()
    cases = [(probabilities, np.array([0, 1, 2, 3, 0, 1, 2])),
             (rng.normal(size=(6, 3)) - 5.0, np.array([2, 2, 0, 1, 1, 0])),
             (rng.normal(size=(3, 10)), np.array([9, 0, 4]))]
    for scores, labels in cases:
        rows, classes = scores.shape
        value = student.get_accuracy(torch.tensor(scores), torch.tensor(labels))
        J.scalar(value, float(np.mean(scores.argmax(axis=1) == labels)),
                 "get_accuracy on %d rows of %d class scores" % (rows, classes),
                 rtol=1e-6, atol=1e-9)


# --- CNNs -----------------------------------------------------------------------------------

CNN_SHAPES = [(32, 1, 3, 3), (32,), (64, 32, 3, 3), (64,), (256, 1600), (256,), (128, 256),
              (128,)]


def cnn_oracle(x, classes, slope=0.1):
    x = torch.as_tensor(x)
    x = F.leaky_relu(F.max_pool2d(F.conv2d(x, _p((32, 1, 3, 3)), _p((32,))), 2), slope)
    x = F.leaky_relu(F.max_pool2d(F.conv2d(x, _p((64, 32, 3, 3)), _p((64,))), 2), slope)
    x = x.flatten(1)
    x = F.leaky_relu(F.linear(x, _p((256, 1600)), _p((256,))), slope)
    x = F.leaky_relu(F.linear(x, _p((128, 256)), _p((128,))), slope)
    return F.linear(x, _p((classes, 128)), _p((classes,)))


def test_dropout_cnn(student, rng):
    x, classes = torch.tensor(rng.normal(size=(3, 1, 28, 28)).astype(np.float32)), 7
    expected = cnn_oracle(x, classes).numpy()
    out = {}
    for key, probability in (("half", 0.5), ("none", 0.0)):
        model = student.DropoutCNN(classes, probability)
        _shapes_match(set_parameters(model), CNN_SHAPES + [(classes, 128), (classes,)],
                      "DropoutCNN(%d)" % classes)
        student.seed(0)
        model.eval()
        out[key + "_eval"] = model(x)
        model.train()
        out[key + "_train"] = [model(x), model(x)]
    J.close(out["half_eval"], expected, "DropoutCNN(%d, 0.5) in evaluation mode (nothing "
            "dropped)" % classes, rtol=1e-4, atol=1e-5)
    for value in out["none_train"]:
        J.close(value, expected, "DropoutCNN(%d, drop_prob=0.0) in training mode" % classes,
                rtol=1e-4, atol=1e-5)
    first, second = (J.as_array(value, "DropoutCNN(%d, 0.5) in training mode" % classes)
                     for value in out["half_train"])
    if first.shape != expected.shape or np.allclose(first, second) \
            or np.allclose(first, expected):
        raise CheckFailed("DropoutCNN(%d, 0.5) in training mode gives the same output every "
                          "time: nothing is dropped" % classes)


def test_train_cnn(student, rng):
    """train_cnn trains a model the check builds in the kernel: a batch norm (which normalises
    by the batch only in training mode, and counts those batches) and a linear layer."""
    x, y = rng.normal(size=(10, 1, 2, 2)).astype(np.float32), rng.integers(0, 3, size=10)
    weight = rng.normal(size=(3, 4)).astype(np.float32)
    size, epochs = 4, 2
    call = "train_cnn with %d epochs on 3 batches" % epochs
    nn, data = student.library("torch.nn"), student.library("torch.utils.data")
    norm, linear = nn.BatchNorm1d(4, affine=False), nn.Linear(4, 3)
    linear.load_state_dict({"weight": torch.tensor(weight), "bias": torch.zeros(3)})
    model = nn.Sequential(nn.Flatten(), norm, linear)
    model.eval()  # as it would be after an evaluation: train_cnn must switch it back
    loader = data.DataLoader(data.TensorDataset(torch.tensor(x), torch.tensor(y).long()),
                             batch_size=size)
    result = student.train_cnn(loader, model, epochs)
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise CheckFailed("%s should return the model and the epoch losses" % call)
    if not same_object(result[0], model):
        raise CheckFailed("%s should return the model it was given, trained" % call)
    batches = math.ceil(len(x) / size) * epochs
    if int(J.as_array(norm.num_batches_tracked, "the model").reshape(-1)[0]) < batches:
        raise CheckFailed("%s ran the model in evaluation mode: call model.train() before "
                          "training" % call)
    oracle_norm, oracle_linear = torch.nn.BatchNorm1d(4, affine=False), torch.nn.Linear(4, 3)
    oracle_linear.load_state_dict({"weight": torch.tensor(weight), "bias": torch.zeros(3)})
    oracle = torch.nn.Sequential(torch.nn.Flatten(), oracle_norm, oracle_linear)
    optimiser = torch.optim.Adam(oracle.parameters())
    inputs, labels, expected = torch.tensor(x), torch.tensor(y).long(), []
    for _ in range(epochs):
        batch_losses = []
        for start in range(0, len(inputs), size):
            optimiser.zero_grad()
            loss = F.cross_entropy(oracle(inputs[start:start + size]), labels[start:start + size])
            loss.backward()
            optimiser.step()
            batch_losses.append(loss.item())
        expected.append(np.mean(batch_losses))
    try:
        losses = np.asarray([value_of(v) for v in result[1]], dtype=float)
    except (TypeError, ValueError):
        raise CheckFailed("%s should return the epoch losses as numbers" % call) from None
    J.close(losses, expected, "the epoch losses returned by %s (the mean of each epoch's "
            "batch losses)" % call, rtol=1e-5, atol=1e-7)
    what = "the weights after %s (Adam with default settings, cross-entropy)" % call
    J.close(linear.weight, oracle_linear.weight.detach().numpy(), what, rtol=1e-4, atol=1e-6)
    J.close(linear.bias, oracle_linear.bias.detach().numpy(), what.replace("weights", "biases"),
            rtol=1e-4, atol=1e-6)


def test_augmentations(student, rng):
    images = rng.integers(0, 256, size=(3, 32, 32, 3)).astype(np.uint8)
    pipeline = student.get_augmentations()
    if not is_instance(pipeline, "torchvision.transforms.transforms.Compose"):
        raise CheckFailed("get_augmentations returned %s, not a transforms.Compose"
                          % J.kind_of(pipeline))
    names = [type_name(t) for t in pipeline.transforms]
    if "ToTensor" not in names:
        raise CheckFailed("get_augmentations() should include transforms.ToTensor()")
    others = [n for n in names if n != "ToTensor"]
    if len(others) < 2:
        raise CheckFailed("get_augmentations() has %d transform%s besides ToTensor (%s); choose "
                          "at least two" % (len(others), "" if len(others) == 1 else "s",
                                            ", ".join(others) or "none"))
    image = student.library("PIL.Image")
    runs = []
    for seed in (1, 2):
        student.seed(seed)
        outs = []
        for array in images:
            value = pipeline(image.fromarray(array))
            if type_name(value) != "Tensor":
                raise CheckFailed("the transforms turned the image into %s, not a tensor"
                                  % J.kind_of(value))
            outs.append(J.as_array(value, "a CIFAR-10 image after get_augmentations()"))
            J.shape(outs[-1], (3, 32, 32), "a CIFAR-10 image after get_augmentations()")
        runs.append(outs)
    if all(np.array_equal(a, b) for a, b in zip(*runs)):
        raise CheckFailed("get_augmentations() transforms an image the same way every time: "
                          "augmentations should be random (RandomHorizontalFlip, RandomCrop, ...)")


CIFAR_SHAPES = [(32, 3, 3, 3), (32,), (64, 32, 3, 3), (64,), (256, 64), (256,), (128, 256),
                (128,)]


def test_cifar_cnn(student, rng):
    x, classes = rng.normal(size=(2, 3, 32, 32)).astype(np.float32), 5
    name = "CIFARCNN(%d)" % classes
    model = student.CIFARCNN(classes)
    kinds = [type_name(getattr(model, part)) if part in _attributes(model) else "nothing"
             for part in ("conv", "fc")]
    if kinds != ["Sequential", "Sequential"]:
        raise CheckFailed("%s: self.conv and self.fc should be nn.Sequential, found %s"
                          % (name, " and ".join(kinds)))
    _shapes_match(set_parameters(model), CIFAR_SHAPES + [(classes, 128), (classes,)], name)
    model.eval()
    expected = torch.tensor(x)
    expected = F.leaky_relu(F.max_pool2d(F.conv2d(expected, _p((32, 3, 3, 3)), _p((32,))), 2), 0.1)
    expected = F.leaky_relu(F.max_pool2d(F.conv2d(expected, _p((64, 32, 3, 3)), _p((64,))), 2), 0.1)
    J.close(model.conv(torch.tensor(x)), expected.numpy(), name + ".conv on two images",
            rtol=1e-4, atol=1e-5)
    expected = expected.mean(dim=(2, 3))
    expected = F.leaky_relu(F.linear(expected, _p((256, 64)), _p((256,))), 0.1)
    expected = F.leaky_relu(F.linear(expected, _p((128, 256)), _p((128,))), 0.1)
    expected = F.linear(expected, _p((classes, 128)), _p((classes,)))
    J.close(model(torch.tensor(x)), expected.numpy(), "the scores of %s for two images" % name,
            rtol=1e-4, atol=1e-5)


def _attributes(model):
    """The names of a module's submodules (its own, not those of its submodules)."""
    return {name for name, _ in listed(model.named_children())}


# --- RNNs -----------------------------------------------------------------------------------

@parametrize("nx, nh, ny, m", [(3, 4, 2, 5), (2, 3, 4, 1)])
def test_rnn_cell(student, rng, nx, nh, ny, m):
    case = {name: rng.normal(size=shape).astype(np.float32) for name, shape in (
        ("xt", (nx, m)), ("h_prev", (nh, m)), ("Wxh", (nx, nh)), ("Whh", (nh, nh)),
        ("Why", (nh, ny)), ("bh", (nh, 1)), ("by", (ny, 1)))}
    what = "rnn_cell_forward with %d inputs, %d hidden units, %d outputs and a batch of %d" % (
        nx, nh, ny, m)
    value = student.rnn_cell_forward(*[torch.tensor(case[k]) for k in (
        "xt", "h_prev", "Wxh", "Whh", "Why", "bh", "by")])
    if not isinstance(value, (tuple, list)) or len(value) < 2:
        raise CheckFailed("%s should return yt_pred and h_next" % what)
    c = {k: torch.tensor(v) for k, v in case.items()}
    h_next = torch.tanh(c["Whh"].T @ c["h_prev"] + c["Wxh"].T @ c["xt"] + c["bh"])
    y = torch.softmax(c["Why"].T @ h_next + c["by"], dim=0)
    J.close(value[1], h_next.numpy(), "h_next from " + what, rtol=1e-5, atol=1e-6)
    J.close(value[0], y.numpy(), "yt_pred from " + what, rtol=1e-5, atol=1e-6)


def test_sine_rnn(student, rng):
    R, H, O = 2, 6, 3
    x = rng.normal(size=(4, 7, 2)).astype(np.float32)
    name = "SineRNN(%d, %d, %d)" % (R, H, O)
    model = student.SineRNN(R, H, O)
    _shapes_match(set_parameters(model), [(H, R), (H, H), (H,), (H,), (O, H), (O,)], name)
    model.eval()
    inputs = torch.tensor(x)
    h = torch.zeros(x.shape[0], H)
    # both biases of the RNN layer have the same shape, so they got the same values
    for t in range(x.shape[1]):
        h = torch.tanh(F.linear(inputs[:, t], _p((H, R)), _p((H,)))
                       + F.linear(h, _p((H, H)), _p((H,))))
    J.close(model(inputs), F.linear(h, _p((O, H)), _p((O,))).numpy(),
            "the predictions of %s for a batch of 4 sequences of 7 steps (from the hidden state "
            "after the last step)" % name, rtol=1e-4, atol=1e-5)


# --- positional encoding --------------------------------------------------------------------

def positional_oracle(x):
    x = torch.as_tensor(x)
    _, length, d = x.shape
    position = torch.arange(length, dtype=torch.float64)[:, None]
    k = torch.arange(0, d, 2, dtype=torch.float64)
    angle = position / torch.pow(10000.0, k / d)
    encoding = torch.stack([torch.sin(angle), torch.cos(angle)], dim=2).reshape(length, d)
    return (x.double() + encoding).numpy()


def test_positional_encoding(student, rng):
    encoder = student.PositionalEncoding()
    cases = [np.zeros((1, 5, 6), np.float32), rng.normal(size=(3, 7, 10)).astype(np.float32),
             rng.normal(size=(2, 30, 16))]  # the last one in float64
    for x in cases:
        what = "PositionalEncoding on x of shape %s (%s)" % (x.shape, x.dtype)
        value = encoder(torch.tensor(x))
        dtype = str(getattr(value_of(value), "dtype", J.kind_of(value)))
        expected_dtype = "torch.float64" if x.dtype == np.float64 else "torch.float32"
        if dtype != expected_dtype:
            raise CheckFailed("%s returned %s; keep the dtype of x" % (what, dtype))
        J.close(value, positional_oracle(x), what,
                rtol=1e-5 if x.dtype == np.float64 else 1e-4, atol=1e-5)
