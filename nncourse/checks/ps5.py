"""Hidden checks of ps5 (PyTorch: an MLP, CNNs with dropout, augmentation, RNNs, positional
encoding).

Probes run in the student's kernel (the rules are in ps1.py; ps5 probes import torch there).
Networks are checked by what they compute: the probe gives each layer parameters drawn from a
seeded generator, chosen by the layer's shape (so the order and the names of the student's
attributes do not matter), and the judge recomputes the output with torch.nn.functional.
Training functions get trusted stand-in models, so they are judged on their own.
"""

import numpy as np
import torch
import torch.nn.functional as F

from . import CheckFailed, check
from . import judging as J
from .wire import Raised, attempt, lookup  # noqa: F401 (names the probes use in the kernel)

# ps5 is written with PyTorch: graded code may use any library
POLICY = []


def parameter_for(shape):
    """The values a parameter of this shape gets in the checks (the probe and the oracle)."""
    seed = int(np.prod(shape)) * 7919 + len(shape) * 104729 + int(shape[0])
    rng = np.random.default_rng(seed)
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else int(shape[0])
    return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)


def probe_set_parameters(model):
    """Gives every parameter of the student's model the check's values for its shape."""
    import numpy as np
    import torch
    with torch.no_grad():
        for parameter in model.parameters():
            shape = tuple(parameter.shape)
            seed = int(np.prod(shape)) * 7919 + len(shape) * 104729 + int(shape[0])
            rng = np.random.default_rng(seed)
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else int(shape[0])
            values = (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)
            parameter.copy_(torch.tensor(values))
    return [list(p.shape) for p in model.parameters()]


def _p(shape):
    return torch.tensor(parameter_for(tuple(shape)))


def _shapes_match(got, expected, what):
    got = sorted(tuple(int(n) for n in s) for s in got)
    if got != sorted(tuple(s) for s in expected):
        raise CheckFailed("%s has parameters of shapes %s; expected %s" % (
            what, ", ".join(map(str, got)) or "none", ", ".join(map(str, expected))))


# --- MyFirstNeuralNet -----------------------------------------------------------------------

def first_net_inputs():
    return {"x": np.linspace(-3, 3, 13, dtype=np.float32).reshape(-1, 1),
            "state": {"l1.weight": np.array([[1.5], [-0.5]], np.float32),
                      "l1.bias": np.array([-1.0, 0.5], np.float32),
                      "l2.weight": np.array([[1.0, -2.0]], np.float32),
                      "l2.bias": np.array([0.25], np.float32)}}


def probe_first_net(ns, inputs):
    import torch
    model = attempt(lookup(ns, "MyFirstNeuralNet"))
    if isinstance(model, Raised):
        return {"init": model}
    attempt(model.load_state_dict, {k: torch.tensor(v) for k, v in inputs["state"].items()})
    with torch.no_grad():
        return {"output": attempt(model, torch.tensor(inputs["x"]))}


@check("ps5.first_net_forward", inputs=first_net_inputs, probe=probe_first_net)
def first_net_forward(inputs, outputs):
    J.constructed(outputs, "MyFirstNeuralNet()")
    s = {k: torch.tensor(v) for k, v in inputs["state"].items()}
    x = torch.tensor(inputs["x"])
    expected = F.linear(torch.relu(F.linear(x, s["l1.weight"], s["l1.bias"])),
                        s["l2.weight"], s["l2.bias"])
    J.close(outputs["output"], expected.numpy(), "MyFirstNeuralNet's forward on 13 inputs "
            "from -3 to 3 (with other weights)", rtol=1e-5, atol=1e-6)


# --- DigitNet, train_model, get_accuracy ----------------------------------------------------

def digitnet_inputs():
    rng = np.random.default_rng(501)
    return {"cases": [{"sizes": [784, 10], "x": rng.uniform(size=(5, 784)).astype(np.float32)},
                      {"sizes": [20, 4], "x": rng.normal(size=(3, 20)).astype(np.float32)},
                      {"sizes": [20, 4], "x": rng.normal(size=(1, 20)).astype(np.float32)}]}


def probe_digitnet(ns, inputs):
    import torch
    DigitNet = lookup(ns, "DigitNet")
    results = []
    for case in inputs["cases"]:
        model = attempt(DigitNet, *[int(n) for n in case["sizes"]])
        if isinstance(model, Raised):
            results.append({"init": model})
            continue
        shapes = probe_set_parameters(model)
        with torch.no_grad():
            results.append({"shapes": shapes, "output": attempt(model, torch.tensor(case["x"]))})
    return {"cases": results}


@check("ps5.digitnet", inputs=digitnet_inputs, probe=probe_digitnet)
def digitnet(inputs, outputs):
    for case, out in zip(inputs["cases"], outputs["cases"], strict=True):
        d_in, classes = case["sizes"]
        name = "DigitNet(%d, %d)" % (d_in, classes)
        J.constructed(out, name)
        layers = [(512, d_in), (128, 512), (classes, 128)]
        _shapes_match(out["shapes"], [s for o, i in layers for s in ((o, i), (o,))], name)
        x = torch.tensor(case["x"])
        for number, (o, i) in enumerate(layers):
            x = F.linear(x, _p((o, i)), _p((o,)))
            if number < 2:
                x = torch.relu(x)
        J.close(out["output"], torch.softmax(x, dim=1).numpy(),
                "the probabilities %s gives for a batch of %d" % (name, len(case["x"])),
                rtol=1e-4, atol=1e-6)


def train_model_inputs():
    rng = np.random.default_rng(502)
    return {"x": rng.uniform(size=(12, 9)).astype(np.float32),
            "y": rng.integers(0, 10, size=12), "epochs": 4,
            # the stand-in DigitNet's weights: for this check's 9 inputs and 10 classes only
            "weight": np.random.default_rng(5020).normal(scale=0.3, size=(10, 9)).astype(np.float32)}


def probe_train_model(ns, inputs):
    import torch
    built = []

    class StandIn(torch.nn.Module):
        """A one-layer stand-in for DigitNet with the grader's weights (of this check's shape
        only), so that only the loop is judged."""

        def __init__(self, input_dimensions, num_classes):
            super().__init__()
            self.linear = torch.nn.Linear(input_dimensions, num_classes)
            with torch.no_grad():
                self.linear.weight.copy_(torch.tensor(inputs["weight"]))
                self.linear.bias.zero_()
            built.append([input_dimensions, num_classes])

        def forward(self, x):
            return torch.softmax(self.linear(x), dim=1)

    train_model = lookup(ns, "train_model")
    saved = ns.get("DigitNet")
    ns["DigitNet"] = StandIn
    try:
        model = attempt(train_model, torch.tensor(inputs["x"]), torch.tensor(inputs["y"]).long(),
                        int(inputs["epochs"]))
    finally:
        if saved is None:
            ns.pop("DigitNet", None)
        else:
            ns["DigitNet"] = saved
    if isinstance(model, Raised):
        return {"model": model}
    if not isinstance(model, StandIn):
        return {"model": Raised("train_model returned %s, not the DigitNet it trained"
                                % type(model).__name__)}
    return {"model": "ok", "built": built, "weight": model.linear.weight.detach(),
            "bias": model.linear.bias.detach()}


@check("ps5.train_model", inputs=train_model_inputs, probe=probe_train_model)
def train_model(inputs, outputs):
    call = "train_model with %d epochs" % inputs["epochs"]
    J.raised(outputs["model"], call)
    x, y = torch.tensor(inputs["x"]), torch.tensor(inputs["y"]).long()
    layer = torch.nn.Linear(x.shape[1], 10)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(inputs["weight"]))
        layer.bias.zero_()
    optimiser = torch.optim.Adam(layer.parameters())
    for _ in range(inputs["epochs"]):
        optimiser.zero_grad()
        F.nll_loss(torch.log(torch.softmax(layer(x), dim=1)), y).backward()
        optimiser.step()
    what = ("the weights after %s (Adam with its default settings, one full-batch step per "
            "epoch, the cross-entropy of the model's probabilities)" % call)
    J.close(outputs["weight"], layer.weight.detach().numpy(), what, rtol=1e-4, atol=1e-6)
    J.close(outputs["bias"], layer.bias.detach().numpy(), what.replace("weights", "biases"),
            rtol=1e-4, atol=1e-6)


def accuracy_inputs():
    rng = np.random.default_rng(503)
    probabilities = torch.softmax(torch.tensor(rng.normal(size=(7, 4))), dim=1).numpy()
    return {"cases": [
        {"scores": probabilities, "labels": np.array([0, 1, 2, 3, 0, 1, 2])},
        {"scores": rng.normal(size=(6, 3)) - 5.0, "labels": np.array([2, 2, 0, 1, 1, 0])},
        {"scores": rng.normal(size=(3, 10)), "labels": np.array([9, 0, 4])}]}


def probe_accuracy(ns, inputs):
    import torch
    get_accuracy = lookup(ns, "get_accuracy")
    results = []
    for case in inputs["cases"]:
        value = attempt(get_accuracy, torch.tensor(case["scores"]), torch.tensor(case["labels"]))
        results.append(value if isinstance(value, Raised) else attempt(lambda: float(value)))
    return {"cases": results}


@check("ps5.get_accuracy", inputs=accuracy_inputs, probe=probe_accuracy)
def get_accuracy(inputs, outputs):
    for case, value in zip(inputs["cases"], outputs["cases"], strict=True):
        rows, classes = case["scores"].shape
        expected = float(np.mean(case["scores"].argmax(axis=1) == case["labels"]))
        J.scalar(value, expected, "get_accuracy on %d rows of %d class scores" % (rows, classes),
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


def dropout_cnn_inputs():
    rng = np.random.default_rng(504)
    return {"x": rng.normal(size=(3, 1, 28, 28)).astype(np.float32), "classes": 7}


def probe_dropout_cnn(ns, inputs):
    import torch
    DropoutCNN = lookup(ns, "DropoutCNN")
    x, classes = torch.tensor(inputs["x"]), int(inputs["classes"])
    out = {}
    for key, probability in (("half", 0.5), ("none", 0.0)):
        model = attempt(DropoutCNN, classes, probability)
        if isinstance(model, Raised):
            return {"init": model}
        out["shapes"] = probe_set_parameters(model)
        torch.manual_seed(0)
        with torch.no_grad():
            model.eval()
            out[key + "_eval"] = attempt(model, x)
            model.train()
            out[key + "_train"] = [attempt(model, x), attempt(model, x)]
    return out


@check("ps5.dropout_cnn", inputs=dropout_cnn_inputs, probe=probe_dropout_cnn)
def dropout_cnn(inputs, outputs):
    classes = inputs["classes"]
    J.constructed(outputs, "DropoutCNN(%d, 0.5)" % classes)
    _shapes_match(outputs["shapes"], CNN_SHAPES + [(classes, 128), (classes,)],
                  "DropoutCNN(%d)" % classes)
    expected = cnn_oracle(inputs["x"], classes).numpy()
    J.close(outputs["half_eval"], expected, "DropoutCNN(%d, 0.5) in evaluation mode (nothing "
            "dropped)" % classes, rtol=1e-4, atol=1e-5)
    for value in J.items(outputs["none_train"], 2, "DropoutCNN(%d, drop_prob=0.0)" % classes):
        J.close(value, expected, "DropoutCNN(%d, drop_prob=0.0) in training mode" % classes,
                rtol=1e-4, atol=1e-5)
    first, second = outputs["half_train"]
    J.raised(first, "DropoutCNN(%d, 0.5) in training mode" % classes)
    J.raised(second, "DropoutCNN(%d, 0.5) in training mode" % classes)
    if np.allclose(first, second) or np.allclose(first, expected):
        raise CheckFailed("DropoutCNN(%d, 0.5) in training mode gives the same output every time: "
                          "nothing is dropped" % classes)


def train_cnn_inputs():
    rng = np.random.default_rng(505)
    return {"x": rng.normal(size=(10, 1, 2, 2)).astype(np.float32),
            "y": rng.integers(0, 3, size=10), "weight": rng.normal(size=(3, 4)).astype(np.float32),
            "bias": np.zeros(3, np.float32), "batch_size": 4, "epochs": 2}


def probe_train_cnn(ns, inputs):
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    train_cnn = lookup(ns, "train_cnn")
    modes = []

    class Mode(torch.nn.Module):
        """Records whether the model was in training mode at each forward pass."""

        def forward(self, x):
            modes.append(bool(self.training))
            return x

    linear = torch.nn.Linear(4, 3)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor(inputs["weight"]))
        linear.bias.copy_(torch.tensor(inputs["bias"]))
    model = torch.nn.Sequential(Mode(), torch.nn.Flatten(), linear)
    model.eval()  # as it would be after an evaluation: train_cnn must switch it back
    loader = DataLoader(TensorDataset(torch.tensor(inputs["x"]), torch.tensor(inputs["y"]).long()),
                        batch_size=int(inputs["batch_size"]))
    result = attempt(train_cnn, loader, model, int(inputs["epochs"]))
    if isinstance(result, Raised):
        return {"result": result}
    returned = attempt(lambda: (result[0] is model, [float(v) for v in result[1]]))
    return {"result": returned, "modes": modes, "weight": linear.weight.detach(),
            "bias": linear.bias.detach()}


@check("ps5.train_cnn", inputs=train_cnn_inputs, probe=probe_train_cnn)
def train_cnn(inputs, outputs):
    call = "train_cnn with %d epochs on 3 batches" % inputs["epochs"]
    J.raised(outputs["result"], call)
    same, losses = outputs["result"]
    if not same:
        raise CheckFailed("%s should return the model it was given, trained" % call)
    if not outputs["modes"] or not all(outputs["modes"]):
        raise CheckFailed("%s ran the model in evaluation mode: call model.train() before "
                          "training" % call)
    linear = torch.nn.Linear(4, 3)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor(inputs["weight"]))
        linear.bias.copy_(torch.tensor(inputs["bias"]))
    optimiser = torch.optim.Adam(linear.parameters())
    x, y = torch.tensor(inputs["x"]).flatten(1), torch.tensor(inputs["y"]).long()
    size, expected = inputs["batch_size"], []
    for _ in range(inputs["epochs"]):
        batch_losses = []
        for start in range(0, len(x), size):
            optimiser.zero_grad()
            loss = F.cross_entropy(linear(x[start:start + size]), y[start:start + size])
            loss.backward()
            optimiser.step()
            batch_losses.append(loss.item())
        expected.append(np.mean(batch_losses))
    J.close(np.asarray(losses, dtype=float), expected, "the epoch losses returned by %s (the "
            "mean of each epoch's batch losses)" % call, rtol=1e-5, atol=1e-7)
    what = "the weights after %s (Adam with default settings, cross-entropy)" % call
    J.close(outputs["weight"], linear.weight.detach().numpy(), what, rtol=1e-4, atol=1e-6)
    J.close(outputs["bias"], linear.bias.detach().numpy(), what.replace("weights", "biases"),
            rtol=1e-4, atol=1e-6)


def augmentations_inputs():
    rng = np.random.default_rng(506)
    return {"images": rng.integers(0, 256, size=(3, 32, 32, 3)).astype(np.uint8)}


def probe_augmentations(ns, inputs):
    import torch
    from PIL import Image
    from torchvision import transforms
    pipeline = attempt(lookup(ns, "get_augmentations"))
    if isinstance(pipeline, Raised):
        return {"pipeline": pipeline}
    if not isinstance(pipeline, transforms.Compose):
        return {"pipeline": Raised("get_augmentations returned %s, not a transforms.Compose"
                                   % type(pipeline).__name__)}
    names = [type(t).__name__ for t in pipeline.transforms]
    results = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        outs = []
        for array in inputs["images"]:
            value = attempt(pipeline, Image.fromarray(array))
            if not isinstance(value, Raised) and not isinstance(value, torch.Tensor):
                value = Raised("the transforms turned the image into %s, not a tensor"
                               % type(value).__name__)
            outs.append(value)
        results.append(outs)
    return {"pipeline": "ok", "names": names, "results": results}


@check("ps5.augmentations", inputs=augmentations_inputs, probe=probe_augmentations)
def augmentations(inputs, outputs):
    J.raised(outputs["pipeline"], "get_augmentations()")
    names = outputs["names"]
    if "ToTensor" not in names:
        raise CheckFailed("get_augmentations() should include transforms.ToTensor()")
    others = [n for n in names if n != "ToTensor"]
    if len(others) < 2:
        raise CheckFailed("get_augmentations() has %d transform%s besides ToTensor (%s); choose "
                          "at least two" % (len(others), "" if len(others) == 1 else "s",
                                            ", ".join(others) or "none"))
    for run in J.items(outputs["results"], 2, "get_augmentations()"):
        for value in J.items(run, len(inputs["images"]), "get_augmentations()"):
            J.shape(value, (3, 32, 32), "a CIFAR-10 image after get_augmentations()")
    first, second = outputs["results"]
    if all(np.array_equal(a, b) for a, b in zip(first, second)):
        raise CheckFailed("get_augmentations() transforms an image the same way every time: "
                          "augmentations should be random (RandomHorizontalFlip, RandomCrop, ...)")


CIFAR_SHAPES = [(32, 3, 3, 3), (32,), (64, 32, 3, 3), (64,), (256, 64), (256,), (128, 256),
                (128,)]


def cifar_cnn_inputs():
    rng = np.random.default_rng(507)
    return {"x": rng.normal(size=(2, 3, 32, 32)).astype(np.float32), "classes": 5}


def probe_cifar_cnn(ns, inputs):
    import torch
    model = attempt(lookup(ns, "CIFARCNN"), int(inputs["classes"]))
    if isinstance(model, Raised):
        return {"init": model}
    kinds = [type(getattr(model, name, None)).__name__ for name in ("conv", "fc")]
    shapes = probe_set_parameters(model)
    model.eval()
    with torch.no_grad():
        return {"kinds": kinds, "shapes": shapes, "output": attempt(model, torch.tensor(inputs["x"])),
                "conv": attempt(lambda: model.conv(torch.tensor(inputs["x"])))}


@check("ps5.cifar_cnn", inputs=cifar_cnn_inputs, probe=probe_cifar_cnn)
def cifar_cnn(inputs, outputs):
    classes = inputs["classes"]
    name = "CIFARCNN(%d)" % classes
    J.constructed(outputs, name)
    if outputs["kinds"] != ["Sequential", "Sequential"]:
        raise CheckFailed("%s: self.conv and self.fc should be nn.Sequential, found %s"
                          % (name, " and ".join(outputs["kinds"])))
    _shapes_match(outputs["shapes"], CIFAR_SHAPES + [(classes, 128), (classes,)], name)
    x = torch.tensor(inputs["x"])
    x = F.leaky_relu(F.max_pool2d(F.conv2d(x, _p((32, 3, 3, 3)), _p((32,))), 2), 0.1)
    x = F.leaky_relu(F.max_pool2d(F.conv2d(x, _p((64, 32, 3, 3)), _p((64,))), 2), 0.1)
    J.close(outputs["conv"], x.numpy(), name + ".conv on two images", rtol=1e-4, atol=1e-5)
    x = x.mean(dim=(2, 3))
    x = F.leaky_relu(F.linear(x, _p((256, 64)), _p((256,))), 0.1)
    x = F.leaky_relu(F.linear(x, _p((128, 256)), _p((128,))), 0.1)
    x = F.linear(x, _p((classes, 128)), _p((classes,)))
    J.close(outputs["output"], x.numpy(), "the scores of %s for two images" % name,
            rtol=1e-4, atol=1e-5)


# --- RNNs -----------------------------------------------------------------------------------

def rnn_cell_inputs():
    rng = np.random.default_rng(508)
    cases = []
    for nx, nh, ny, m in [(3, 4, 2, 5), (2, 3, 4, 1)]:
        cases.append({name: rng.normal(size=shape).astype(np.float32) for name, shape in (
            ("xt", (nx, m)), ("h_prev", (nh, m)), ("Wxh", (nx, nh)), ("Whh", (nh, nh)),
            ("Why", (nh, ny)), ("bh", (nh, 1)), ("by", (ny, 1)))})
    return {"cases": cases}


def probe_rnn_cell(ns, inputs):
    import torch
    cell = lookup(ns, "rnn_cell_forward")
    results = []
    for case in inputs["cases"]:
        arguments = [torch.tensor(case[k]) for k in ("xt", "h_prev", "Wxh", "Whh", "Why", "bh", "by")]
        value = attempt(cell, *arguments)
        results.append(value if isinstance(value, Raised) else attempt(lambda: list(value[:2])))
    return {"cases": results}


@check("ps5.rnn_cell", inputs=rnn_cell_inputs, probe=probe_rnn_cell)
def rnn_cell(inputs, outputs):
    for case, value in zip(inputs["cases"], outputs["cases"], strict=True):
        c = {k: torch.tensor(v) for k, v in case.items()}
        (nx, m), nh, ny = case["xt"].shape, case["Whh"].shape[0], case["Why"].shape[1]
        what = "rnn_cell_forward with %d inputs, %d hidden units, %d outputs and a batch of %d" % (
            nx, nh, ny, m)
        J.raised(value, what)
        h_next = torch.tanh(c["Whh"].T @ c["h_prev"] + c["Wxh"].T @ c["xt"] + c["bh"])
        y = torch.softmax(c["Why"].T @ h_next + c["by"], dim=0)
        J.close(value[1], h_next.numpy(), "h_next from " + what, rtol=1e-5, atol=1e-6)
        J.close(value[0], y.numpy(), "yt_pred from " + what, rtol=1e-5, atol=1e-6)


def sine_rnn_inputs():
    rng = np.random.default_rng(509)
    return {"sizes": [2, 6, 3], "x": rng.normal(size=(4, 7, 2)).astype(np.float32)}


def probe_sine_rnn(ns, inputs):
    import torch
    model = attempt(lookup(ns, "SineRNN"), *[int(n) for n in inputs["sizes"]])
    if isinstance(model, Raised):
        return {"init": model}
    shapes = probe_set_parameters(model)
    model.eval()
    with torch.no_grad():
        return {"shapes": shapes, "output": attempt(model, torch.tensor(inputs["x"]))}


@check("ps5.sine_rnn", inputs=sine_rnn_inputs, probe=probe_sine_rnn)
def sine_rnn(inputs, outputs):
    R, H, O = inputs["sizes"]
    name = "SineRNN(%d, %d, %d)" % (R, H, O)
    J.constructed(outputs, name)
    _shapes_match(outputs["shapes"], [(H, R), (H, H), (H,), (H,), (O, H), (O,)], name)
    x = torch.tensor(inputs["x"])
    h = torch.zeros(x.shape[0], H)
    # both biases of the RNN layer have the same shape, so they got the same values
    for t in range(x.shape[1]):
        h = torch.tanh(F.linear(x[:, t], _p((H, R)), _p((H,))) + F.linear(h, _p((H, H)), _p((H,))))
    J.close(outputs["output"], F.linear(h, _p((O, H)), _p((O,))).numpy(),
            "the predictions of %s for a batch of 4 sequences of 7 steps (from the hidden state "
            "after the last step)" % name, rtol=1e-4, atol=1e-5)


# --- positional encoding --------------------------------------------------------------------

def positional_inputs():
    rng = np.random.default_rng(510)
    return {"cases": [np.zeros((1, 5, 6), np.float32), rng.normal(size=(3, 7, 10)).astype(np.float32),
                      rng.normal(size=(2, 30, 16))]}  # the last one in float64


def probe_positional(ns, inputs):
    import torch
    encoder = attempt(lookup(ns, "PositionalEncoding"))
    if isinstance(encoder, Raised):
        return {"init": encoder}
    results = []
    for x in inputs["cases"]:
        value = attempt(encoder, torch.tensor(x))
        results.append(value if isinstance(value, Raised) else
                       attempt(lambda: {"value": value, "dtype": str(value.dtype)}))
    return {"cases": results}


def positional_oracle(x):
    x = torch.as_tensor(x)
    _, length, d = x.shape
    position = torch.arange(length, dtype=torch.float64)[:, None]
    k = torch.arange(0, d, 2, dtype=torch.float64)
    angle = position / torch.pow(10000.0, k / d)
    encoding = torch.stack([torch.sin(angle), torch.cos(angle)], dim=2).reshape(length, d)
    return (x.double() + encoding).numpy()


@check("ps5.positional_encoding", inputs=positional_inputs, probe=probe_positional)
def positional_encoding(inputs, outputs):
    J.constructed(outputs, "PositionalEncoding()")
    for x, value in zip(inputs["cases"], outputs["cases"], strict=True):
        what = "PositionalEncoding on x of shape %s (%s)" % (x.shape, x.dtype)
        J.raised(value, what)
        expected_dtype = "torch.float64" if x.dtype == np.float64 else "torch.float32"
        if value["dtype"] != expected_dtype:
            raise CheckFailed("%s returned %s; keep the dtype of x" % (what, value["dtype"]))
        J.close(value["value"], positional_oracle(x), what,
                rtol=1e-5 if x.dtype == np.float64 else 1e-4, atol=1e-5)
