"""Hidden checks of ps4 (a recurrent network in NumPy, then in PyTorch, on padded batches).

Probes run in the student's kernel (the rules are in ps1.py; ps4 probes may import torch).
Judges use closed forms, torch, and numerical gradients as oracles. The training loops are
probed with stand-in networks that record the calls they get, so a bug in the network costs
the network's points, not the loop's.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

from . import CheckFailed, check
from . import judging as J
from .wire import Raised, attempt, attempt_without_warnings, lookup  # noqa: F401 (probes)
from ..policy import Rule

PARAMETERS = ("LW_11", "IW_11", "LW_21", "b_1", "b_2")

# The notebook's visible tests lend stand-ins for the other parts that replay a test's values
# (cell "stand_ins"); they are not a student's to hand in (checked on the source:
# nncourse/policy/).
POLICY = [Rule(helpers=("replay", "stand_ins"),
               why="graded code must be your own, not the notebook's test helpers")]


def _sigmoid(n):
    return torch.sigmoid(torch.as_tensor(np.asarray(n, dtype=np.float64))).numpy()


def probe_stand_ins(ns, tables, function, *args):
    """Runs ``function`` with the student's sigmoid, loss functions or collation replaced by
    stand-ins, so that a check of one behaviour does not also fail for a bug in another one it
    calls. The stand-ins compute nothing: they look up, value by value, what the grader put in
    ``tables`` for the values a correct computation passes them (``nan`` for any other), so
    they are of no use beyond the check's own inputs."""
    import numpy as np

    def look_up(name, x, column=0):
        keys, values = np.asarray(tables[name]["keys"]), np.asarray(tables[name]["values"])
        x = np.asarray(x, dtype=float)
        flat = x.ravel()
        at = np.clip(np.searchsorted(keys, flat), 1, len(keys) - 1) if len(keys) > 1 \
            else np.zeros(flat.shape, dtype=int)
        if len(keys) > 1:  # the nearer of the two neighbours
            at = np.where(np.abs(keys[at - 1] - flat) < np.abs(keys[at] - flat), at - 1, at)
        found = np.abs(keys[at] - flat) <= 1e-9 * np.maximum(1.0, np.abs(flat))
        return np.where(found, values[at, column], np.nan).reshape(x.shape)

    def by_target(name, x, t):
        t = np.asarray(t, dtype=float).reshape(np.shape(x))
        return np.where(t > 0.5, look_up(name, x, 1), look_up(name, x, 0))

    def sigmoid(n):
        return look_up("sigmoid", n)

    def binary_crossentropy_loss(a, t):
        return float(np.mean(by_target("loss", a, t)))

    def binary_crossentropy_logit_gradient(n, t):
        return by_target("gradient", n, t)

    def collate_sequences(sequences, targets):
        # only what the recording network of the check reads: each sequence's number (its
        # values) and its number of steps, as (batch, 1, 1) inputs and a (batch, 1) "mask"
        import torch
        numbers = [[[float(np.max(s))]] for s in sequences]
        steps = [[float(len(s))] for s in sequences]
        return torch.tensor(numbers), torch.zeros(len(numbers), 1, 1), torch.tensor(steps)

    # each table stands in for one function of the student's
    stand_ins = {"sigmoid": ("sigmoid", sigmoid),
                 "loss": ("binary_crossentropy_loss", binary_crossentropy_loss),
                 "gradient": ("binary_crossentropy_logit_gradient",
                              binary_crossentropy_logit_gradient),
                 "collate": ("collate_sequences", collate_sequences)}
    names = [stand_ins[key][0] for key in tables]
    saved = {name: ns[name] for name in names if name in ns}
    ns.update(dict(stand_ins[key] for key in tables))
    try:
        return function(*args)
    finally:
        for name in names:
            ns.pop(name, None)
        ns.update(saved)


def _tables(preactivations=(), targets=False, collate=False):
    """The stand-ins' tables for these net inputs of the output unit (see probe_stand_ins):
    sigmoid; with ``targets``, the loss of each output for a target of 0 and of 1 and the
    gradient for each."""
    n = np.unique(np.concatenate([np.ravel(v) for v in preactivations] or [np.zeros(0)]))
    tables = {}
    if len(n):
        a = _sigmoid(n)
        tables["sigmoid"] = {"keys": n, "values": a.reshape(-1, 1)}
        if targets:
            tables["gradient"] = {"keys": n, "values": np.stack([a, a - 1.0], axis=1)}
            order = np.argsort(a)  # the loss is looked up by the probability, not the net input
            tables["loss"] = {"keys": a[order], "values": np.stack(
                [np.logaddexp(0, n), np.logaddexp(0, -n)], axis=1)[order]}
    if collate:
        tables["collate"] = {}
    return tables


# --- the data -------------------------------------------------------------------------------

def data_inputs():
    # a window shorter than, equal to, and longer than the sequence; a window of one
    return {"cases": [[6, 12, 4], [3, 6, 1], [4, 5, 5], [2, 4, 7], [40, 9, 3]], "seed": 4}


def probe_data(ns, inputs):
    import numpy as np
    generate = lookup(ns, "generate_counting_ones_data")
    np.random.seed(int(inputs["seed"]))
    results = []
    for samples, length, window in inputs["cases"]:
        value = attempt(generate, int(samples), int(length), int(window))
        if not isinstance(value, Raised):
            value = attempt(lambda: [np.asarray(part) for part in value][:2])
        results.append(value)
    return {"cases": results}


def parity_targets(X, window):
    """The targets of the bit sequences X (samples x steps) for the given window."""
    counts = np.cumsum(X, axis=1)
    before = np.zeros_like(counts)
    before[:, window:] = counts[:, :-window] if window < X.shape[1] else 0
    return ((counts - before) % 2 == 0).astype(float)


@check("ps4.counting_ones_data", inputs=data_inputs, probe=probe_data)
def counting_ones_data(inputs, outputs):
    for (samples, length, window), value in zip(inputs["cases"], outputs["cases"], strict=True):
        call = "generate_counting_ones_data(%d, %d, %d)" % (samples, length, window)
        J.raised(value, call)
        if len(value) != 2:
            raise CheckFailed("%s should return the inputs and the targets" % call)
        X = J.as_array(value[0], call + "'s inputs")
        J.shape(X, (samples, length), call + "'s inputs")
        y = J.as_array(value[1], call + "'s targets")
        J.shape(y, (samples, length), call + "'s targets")
        if not np.all((X == 0) | (X == 1)):
            raise CheckFailed("%s's inputs are not all 0 or 1" % call)
        if X.size >= 100 and (X.mean() < 0.3 or X.mean() > 0.7):
            raise CheckFailed("%s's inputs are %.0f%% ones; random bits should be about half"
                              % (call, 100 * X.mean()))
        wrong = np.argwhere(y != parity_targets(X, window))
        if len(wrong):
            row, step = wrong[0]
            raise CheckFailed("%s: the target at step %d of sequence %d does not match the "
                              "parity of its window" % (call, step, row))


# --- sigmoid and the loss -------------------------------------------------------------------

def sigmoid_inputs():
    return {"matrix": np.array([[-1000.0, -745.0, -40.0, -12.0], [-1e-3, 0.0, 1e-3, 3.0],
                                [12.0, 40.0, 745.0, 1000.0]]),
            "column": np.linspace(-6, 6, 5).reshape(5, 1), "number": -3.0}


def probe_sigmoid(ns, inputs):
    import numpy as np
    sigmoid = lookup(ns, "sigmoid")
    # the task asks for a sigmoid that does not overflow: a warning fails it
    return {key: attempt_without_warnings(lambda v=value: np.asarray(sigmoid(v)))
            for key, value in inputs.items()}


@check("ps4.sigmoid", inputs=sigmoid_inputs, probe=probe_sigmoid)
def sigmoid(inputs, outputs):
    for key, what in (("matrix", "sigmoid of a 3 x 4 array with values from -1000 to 1000"),
                      ("column", "sigmoid of a column"), ("number", "sigmoid(-3.0)")):
        expected = _sigmoid(inputs[key])
        if key == "number":
            J.scalar(outputs[key], expected, what, rtol=1e-7, atol=1e-12)
        else:
            J.close(outputs[key], expected, what, rtol=1e-7, atol=1e-12)


def bce_loss_inputs():
    rng = np.random.default_rng(402)
    return {"cases": [{"a": rng.uniform(0.05, 0.95, size=(6, 1)),
                       "t": rng.integers(0, 2, size=(6, 1)).astype(float)},
                      {"a": rng.uniform(0.05, 0.95, size=5),
                       "t": np.array([1.0, 0.0, 0.0, 1.0, 1.0])}],
            # certain and wrong: finite only if the probabilities are kept off 0 and 1
            "extreme": {"a": np.array([0.0, 1.0, 0.5]), "t": np.array([1.0, 0.0, 1.0])}}


def probe_bce_loss(ns, inputs):
    loss = lookup(ns, "binary_crossentropy_loss")
    return {"cases": [attempt(loss, case["a"].copy(), case["t"].copy()) for case in inputs["cases"]],
            "extreme": attempt(loss, inputs["extreme"]["a"].copy(), inputs["extreme"]["t"].copy())}


@check("ps4.bce_loss", inputs=bce_loss_inputs, probe=probe_bce_loss)
def bce_loss(inputs, outputs):
    for case, value in zip(inputs["cases"], outputs["cases"], strict=True):
        a, t = torch.tensor(case["a"]), torch.tensor(case["t"])
        expected = F.binary_cross_entropy(a, t).item()
        J.scalar(value, expected, "binary_crossentropy_loss on %d probabilities of shape %s"
                 % (a.numel(), tuple(a.shape)), rtol=1e-6, atol=1e-9)
    what = "binary_crossentropy_loss when a probability is exactly 0 or 1 and wrong"
    value = J.as_array(outputs["extreme"], what)
    if value.size != 1 or not np.isfinite(value).all():
        raise CheckFailed("%s is not a finite number: keep the probabilities away from 0 and 1"
                          % what)
    if float(value.reshape(())) < 5:
        raise CheckFailed("%s is %.3g, too small for two certain mistakes" % (what, float(value)))


def bce_gradient_inputs():
    rng = np.random.default_rng(403)
    data = {"n": np.array([[-50.0], [-2.0], [0.0], [0.7], [50.0]]),
            "t": np.array([[1.0], [0.0], [1.0], [1.0], [0.0]]),
            "n_wide": rng.normal(scale=3, size=(2, 3)), "t_wide": rng.integers(0, 2, (2, 3)) * 1.0}
    data["tables"] = _tables([data["n"], data["n_wide"]])
    return data


def probe_bce_gradient(ns, inputs):
    return probe_stand_ins(ns, inputs["tables"], probe_bce_gradient_alone, ns, inputs)


def probe_bce_gradient_alone(ns, inputs):
    import numpy as np
    gradient = lookup(ns, "binary_crossentropy_logit_gradient")
    return {"column": attempt(lambda: np.asarray(gradient(inputs["n"].copy(), inputs["t"].copy()))),
            "wide": attempt(lambda: np.asarray(gradient(inputs["n_wide"].copy(),
                                                        inputs["t_wide"].copy())))}


@check("ps4.bce_gradient", inputs=bce_gradient_inputs, probe=probe_bce_gradient)
def bce_gradient(inputs, outputs):
    for key, n, t in (("column", "n", "t"), ("wide", "n_wide", "t_wide")):
        n_leaf = torch.tensor(inputs[n], requires_grad=True)
        # the gradient of the loss of every element on its own: the sum, not the mean
        F.binary_cross_entropy_with_logits(n_leaf, torch.tensor(inputs[t]),
                                           reduction="sum").backward()
        J.close(outputs[key], n_leaf.grad.numpy(), "binary_crossentropy_logit_gradient on "
                "net inputs of shape %s" % (inputs[n].shape,), rtol=1e-7, atol=1e-12)


# --- SimpleRNN ------------------------------------------------------------------------------

def _rnn_parameters(rng, R, S1, S2, scale=0.5):
    return {"LW_11": rng.normal(scale=scale, size=(S1, S1)),
            "IW_11": rng.normal(scale=scale, size=(S1, R)),
            "LW_21": rng.normal(scale=scale, size=(S2, S1)),
            "b_1": rng.normal(scale=0.2, size=(S1, 1)), "b_2": rng.normal(scale=0.2, size=(S2, 1))}


def rnn_forward_inputs():
    rng = np.random.default_rng(404)
    cases = []
    for R, S1, S2, T in [(2, 3, 2, 4), (1, 4, 1, 6)]:
        cases.append({"sizes": [R, S1, S2], "parameters": _rnn_parameters(rng, R, S1, S2),
                      "inputs": rng.normal(size=(T, R)), "a1_prev": rng.normal(size=(S1, 1))})
    net_inputs = [rnn_oracle(c["parameters"], c["inputs"], start)[3]
                  for c in cases for start in (None, c["a1_prev"])]
    return {"cases": cases, "tables": _tables(net_inputs)}


def probe_rnn(ns, case):
    """A SimpleRNN of the case's sizes holding the case's parameters (copies)."""
    SimpleRNN = lookup(ns, "SimpleRNN")
    R, S1, S2 = (int(v) for v in case["sizes"])
    rnn = attempt(SimpleRNN, R, S1, S2)
    if not isinstance(rnn, Raised):
        for name, value in case["parameters"].items():
            setattr(rnn, name, value.copy())
    return rnn


def probe_rnn_forward(ns, inputs):
    return probe_stand_ins(ns, inputs["tables"], probe_rnn_forward_alone, ns, inputs)


def probe_rnn_forward_alone(ns, inputs):
    import numpy as np

    def columns(sequence, width):
        return np.array([np.asarray(item, dtype=float).reshape(width) for item in sequence])

    results = []
    for case in inputs["cases"]:
        rnn = probe_rnn(ns, case)
        if isinstance(rnn, Raised):
            results.append({"init": rnn})
            continue
        R, S1, S2 = (int(v) for v in case["sizes"])
        out = {}
        # the inputs as a list of columns, then as one array with time first
        for key, sequence, a1_prev in (
                ("zero_start", [p.reshape(R, 1) for p in case["inputs"]], None),
                ("given_start", case["inputs"].copy(), case["a1_prev"].copy())):
            value = attempt(rnn.forward, sequence, a1_prev)
            if not isinstance(value, Raised):
                value = attempt(lambda: {"outputs": columns(value[0], S2),
                                         "states": columns(value[1], S1),
                                         "output_shape": np.shape(value[0][0]),
                                         "state_shape": np.shape(value[1][-1])})
            out[key] = value
        results.append(out)
    return {"cases": results}


def rnn_oracle(parameters, inputs, a1_prev=None, targets=None):
    """Outputs and states (float64) of the network; with targets, also the total loss; and
    the output unit's net inputs."""
    p = {k: np.asarray(v, dtype=float) for k, v in parameters.items()}
    a1 = np.zeros((p["LW_11"].shape[0], 1)) if a1_prev is None else np.asarray(a1_prev, float)
    outputs, states, total, net_inputs = [], [a1.ravel()], 0.0, []
    for t, x in enumerate(inputs):
        a1 = np.tanh(p["LW_11"] @ a1 + p["IW_11"] @ np.reshape(x, (-1, 1)) + p["b_1"])
        n2 = p["LW_21"] @ a1 + p["b_2"]
        net_inputs.append(n2.ravel())
        outputs.append(_sigmoid(n2).ravel())
        states.append(a1.ravel())
        if targets is not None:
            target = np.reshape(targets[t], (-1, 1))
            # log(sigmoid(n)) computed without cancellation
            total += float(np.sum(np.logaddexp(0, -n2) * target + np.logaddexp(0, n2) * (1 - target)))
    return np.array(outputs), np.array(states), total, net_inputs


@check("ps4.rnn_forward", inputs=rnn_forward_inputs, probe=probe_rnn_forward)
def rnn_forward(inputs, outputs):
    for case, out in zip(inputs["cases"], outputs["cases"], strict=True):
        R, S1, S2 = case["sizes"]
        T = len(case["inputs"])
        name = "SimpleRNN(%d, %d, %d)" % (R, S1, S2)
        J.constructed(out, name)
        for key, a1_prev, how in (("zero_start", None, "from a zero state"),
                                  ("given_start", case["a1_prev"], "from a given state")):
            what = "%s.forward on %d steps %s" % (name, T, how)
            J.raised(out[key], what)
            result = out[key]
            if tuple(result["output_shape"]) != (S2, 1) or tuple(result["state_shape"]) != (S1, 1):
                raise CheckFailed("%s: outputs and states should be columns of shape (%d, 1) "
                                  "and (%d, 1), got %s and %s" % (
                                      what, S2, S1, tuple(result["output_shape"]),
                                      tuple(result["state_shape"])))
            expected_outputs, expected_states, _, _ = rnn_oracle(case["parameters"],
                                                              case["inputs"], a1_prev)
            if len(result["states"]) != T + 1:
                raise CheckFailed("%s returned %d hidden states, expected %d (the initial "
                                  "state, then one per step)" % (what, len(result["states"]), T + 1))
            J.close(result["states"], expected_states, "the hidden states of " + what,
                    rtol=1e-6, atol=1e-9)
            J.close(result["outputs"], expected_outputs, "the outputs of " + what,
                    rtol=1e-6, atol=1e-9)


def rnn_backward_inputs():
    rng = np.random.default_rng(405)
    cases = []
    for R, S1, T in [(2, 3, 5), (1, 4, 4)]:
        cases.append({"sizes": [R, S1, 1], "parameters": _rnn_parameters(rng, R, S1, 1),
                      "inputs": rng.normal(size=(T, R)),
                      "targets": rng.integers(0, 2, size=(T, 1)).astype(float),
                      # a first sequence: its gradients must not leak into the second's
                      "first_inputs": rng.normal(size=(T + 1, R)),
                      "first_targets": rng.integers(0, 2, size=(T + 1, 1)).astype(float)})
    net_inputs = [rnn_oracle(c["parameters"], c[key])[3]
                  for c in cases for key in ("inputs", "first_inputs")]
    return {"cases": cases, "tables": _tables(net_inputs, targets=True)}


def probe_rnn_backward(ns, inputs):
    return probe_stand_ins(ns, inputs["tables"], probe_rnn_backward_alone, ns, inputs)


def probe_rnn_backward_alone(ns, inputs):
    results = []
    for case in inputs["cases"]:
        rnn = probe_rnn(ns, case)
        if isinstance(rnn, Raised):
            results.append({"init": rnn})
            continue

        def run(sequence, targets):
            forward = attempt(rnn.forward, sequence, None)
            if isinstance(forward, Raised):
                return {"forward": forward}
            loss = attempt(rnn.backward, forward[0], targets, forward[2])
            return {"loss": loss, "gradients": {
                name: getattr(rnn, "d" + name, Raised("SimpleRNN has no d%s" % name))
                for name in ("LW_11", "IW_11", "LW_21", "b_1", "b_2")}}

        run([x.reshape(-1, 1) for x in case["first_inputs"]],
            [t.reshape(-1, 1) for t in case["first_targets"]])
        # the targets as one array with time first, as train_rnn gets them
        results.append(run([x.reshape(-1, 1) for x in case["inputs"]], case["targets"].copy()))
    return {"cases": results}


def numerical_gradients(parameters, inputs, targets, h=1e-6):
    gradients = {}
    for name in PARAMETERS:
        values = np.array(parameters[name], dtype=float)
        gradient = np.zeros_like(values)
        for index in np.ndindex(values.shape):
            changed = dict(parameters)
            for sign in (1, -1):
                nudged = values.copy()
                nudged[index] += sign * h
                changed[name] = nudged
                gradient[index] += sign * rnn_oracle(changed, inputs, None, targets)[2] / (2 * h)
        gradients[name] = gradient
    return gradients


@check("ps4.rnn_backward", inputs=rnn_backward_inputs, probe=probe_rnn_backward)
def rnn_backward(inputs, outputs):
    for case, out in zip(inputs["cases"], outputs["cases"], strict=True):
        R, S1, _ = case["sizes"]
        T = len(case["inputs"])
        name = "SimpleRNN(%d, %d, 1)" % (R, S1)
        J.constructed(out, name)
        if "forward" in out:
            J.raised(out["forward"], name + ".forward")
        what = "%s.backward on %d steps" % (name, T)
        _, _, total, _ = rnn_oracle(case["parameters"], case["inputs"], None, case["targets"])
        J.scalar(out["loss"], total / T, "the loss returned by " + what + " (the mean per step)",
                 rtol=1e-6, atol=1e-9)
        expected = numerical_gradients(case["parameters"], case["inputs"], case["targets"])
        for parameter in PARAMETERS:
            J.close(out["gradients"][parameter], expected[parameter],
                    "d%s after %s (compared with numerical gradients; after another sequence "
                    "went through backward first)" % (parameter, what), rtol=1e-4, atol=1e-6)


def clip_inputs():
    rng = np.random.default_rng(406)

    def scaled(shape, norm):
        values = rng.normal(size=shape)
        return values * norm / np.linalg.norm(values)

    return {"gradients": {"LW_11": scaled((3, 3), 8.0), "IW_11": scaled((3, 2), 2.0),
                          "LW_21": scaled((1, 3), 5.5), "b_1": scaled((3, 1), 0.3),
                          "b_2": np.array([[-7.0]])},
            "max_norm": 3.0}


def probe_clip(ns, inputs):
    SimpleRNN = lookup(ns, "SimpleRNN")
    results = {}
    for key, arguments in (("given", {"max_norm": float(inputs["max_norm"])}), ("default", {})):
        rnn = attempt(SimpleRNN, 2, 3, 1)
        if isinstance(rnn, Raised):
            return {"init": rnn}
        for name, value in inputs["gradients"].items():
            setattr(rnn, "d" + name, value.copy())
        done = attempt(rnn.clip_gradients, **arguments)
        results[key] = done if isinstance(done, Raised) else {
            name: getattr(rnn, "d" + name) for name in inputs["gradients"]}
    return results


@check("ps4.clip_gradients", inputs=clip_inputs, probe=probe_clip)
def clip_gradients(inputs, outputs):
    J.constructed(outputs, "SimpleRNN(2, 3, 1)")
    for key, max_norm, call in (("given", inputs["max_norm"], "clip_gradients(max_norm=3.0)"),
                                ("default", 5.0, "clip_gradients()")):
        J.raised(outputs[key], call)
        for name, gradient in inputs["gradients"].items():
            norm = np.linalg.norm(gradient)
            expected = gradient * (max_norm / norm if norm > max_norm else 1.0)
            J.close(outputs[key][name], expected, "d%s (norm %.1f) after %s" % (name, norm, call),
                    rtol=1e-7, atol=1e-10)


def update_inputs():
    rng = np.random.default_rng(407)
    parameters = _rnn_parameters(rng, 2, 3, 1)
    return {"parameters": parameters, "learning_rate": 0.3,
            "gradients": {k: rng.normal(size=v.shape) for k, v in parameters.items()}}


def probe_update(ns, inputs):
    SimpleRNN = lookup(ns, "SimpleRNN")
    rnn = attempt(SimpleRNN, 2, 3, 1, float(inputs["learning_rate"]))
    if isinstance(rnn, Raised):
        return {"init": rnn}
    for name, value in inputs["parameters"].items():
        setattr(rnn, name, value.copy())
        setattr(rnn, "d" + name, inputs["gradients"][name].copy())
    done = attempt(rnn.update_parameters)
    return {"done": done, "parameters": {name: getattr(rnn, name) for name in inputs["parameters"]}}


@check("ps4.update_parameters", inputs=update_inputs, probe=probe_update)
def update_parameters(inputs, outputs):
    J.constructed(outputs, "SimpleRNN(2, 3, 1, learning_rate=0.3)")
    J.raised(outputs["done"], "update_parameters()")
    rate = inputs["learning_rate"]
    for name, value in inputs["parameters"].items():
        J.close(outputs["parameters"][name], value - rate * inputs["gradients"][name],
                "%s after update_parameters() with learning rate %g" % (name, rate),
                rtol=1e-7, atol=1e-10)


# --- train_rnn ------------------------------------------------------------------------------

def train_rnn_inputs():
    return {"sequences": 3, "steps": 4, "epochs": 3}


def probe_train_rnn(ns, inputs):
    import numpy as np
    train_rnn = lookup(ns, "train_rnn")

    class Recorder:
        """A stand-in network: records every call; backward returns a distinct loss."""

        def __init__(self):
            self.calls = []

        def forward(self, inputs_, a1_prev=None):
            self.calls.append(["forward", float(np.asarray(inputs_).ravel()[0])])
            return [np.zeros((1, 1))], [np.zeros((1, 1))], {"sequence": self.calls[-1][1]}

        def backward(self, outputs, targets, cache):
            self.calls.append(["backward", float(np.asarray(targets).ravel()[0]),
                               float(cache["sequence"])])
            return 0.1 * len(self.calls)

        def clip_gradients(self, max_norm=5.0):
            self.calls.append(["clip", float(max_norm)])

        def update_parameters(self):
            self.calls.append(["update"])

    count, steps = int(inputs["sequences"]), int(inputs["steps"])
    sequences = np.arange(1, count + 1, dtype=float)[:, None, None] * np.ones((count, steps, 1))
    targets = -sequences
    recorder = Recorder()
    losses = attempt(train_rnn, recorder, sequences, targets, int(inputs["epochs"]))
    if not isinstance(losses, Raised):
        losses = attempt(lambda: np.asarray(losses, dtype=float))
    return {"losses": losses, "calls": recorder.calls}


@check("ps4.train_rnn", inputs=train_rnn_inputs, probe=probe_train_rnn)
def train_rnn(inputs, outputs):
    count, epochs = inputs["sequences"], inputs["epochs"]
    call = "train_rnn with %d sequences and %d epochs" % (count, epochs)
    expected_calls, expected_losses, number = [], [], 0
    for _ in range(epochs):
        total = 0.0
        for sequence in range(1, count + 1):
            expected_calls += [["forward", sequence], ["backward", -sequence, sequence],
                               ["clip", 5.0], ["update"]]
            number += 4
            total += 0.1 * (number - 2)  # the loss backward returned
        expected_losses.append(total / count)
    J.raised(outputs["losses"], call)
    calls = [[c[0]] + [float(v) for v in c[1:]] for c in outputs["calls"]]
    for index, (got, expected) in enumerate(zip(calls, expected_calls)):
        if got[0] != expected[0]:
            raise CheckFailed("%s: call %d to the network was %s(); expected %s() (for each "
                              "sequence in order: forward, backward with its targets and cache, "
                              "clip_gradients(), update_parameters())"
                              % (call, index + 1, got[0], expected[0]))
        if got != expected:
            what = "sequence or cache" if got[0] in ("forward", "backward") else "arguments"
            raise CheckFailed("%s: %s() got the wrong %s" % (call, got[0], what))
    if len(calls) != len(expected_calls):
        raise CheckFailed("%s made %d calls to the network, expected %d (4 per sequence and "
                          "epoch)" % (call, len(calls), len(expected_calls)))
    J.close(outputs["losses"], expected_losses, "the losses returned by %s (one per epoch, the "
            "mean of the losses backward returned)" % call, rtol=1e-9, atol=1e-12)


# --- SimplePyTorchRNN -----------------------------------------------------------------------

def _torch_weights(parameters):
    """The NumPy network's parameters under SimplePyTorchRNN's names (b_1 lives in IW_11)."""
    return {"IW_11.weight": parameters["IW_11"].astype(np.float32),
            "IW_11.bias": parameters["b_1"].ravel().astype(np.float32),
            "LW_11.weight": parameters["LW_11"].astype(np.float32),
            "LW_21.weight": parameters["LW_21"].astype(np.float32),
            "LW_21.bias": parameters["b_2"].ravel().astype(np.float32)}


def pytorch_forward_inputs():
    rng = np.random.default_rng(408)
    cases = []
    for R, S1, S2, B, T in [(2, 3, 2, 4, 5), (1, 5, 1, 1, 7)]:
        cases.append({"sizes": [R, S1, S2],
                      "weights": _torch_weights(_rnn_parameters(rng, R, S1, S2)),
                      "x": rng.normal(size=(B, T, R)).astype(np.float32),
                      "a1_prev": rng.normal(size=(B, S1)).astype(np.float32)})
    return {"cases": cases}


def probe_torch_rnn(ns, case, learning_rate=0.01):
    """A SimplePyTorchRNN of the case's sizes with the case's weights."""
    import torch
    Model = lookup(ns, "SimplePyTorchRNN")
    R, S1, S2 = (int(v) for v in case["sizes"])
    model = attempt(Model, R, S1, S2, learning_rate)
    if isinstance(model, Raised):
        return model
    parameters = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in case["weights"].items():
            parameters[name].copy_(torch.tensor(value))
    return model


def probe_pytorch_forward(ns, inputs):
    import torch
    results = []
    for case in inputs["cases"]:
        model = probe_torch_rnn(ns, case)
        if isinstance(model, Raised):
            results.append({"init": model})
            continue
        out = {}
        for key, a1_prev in (("zero_start", None), ("given_start", case["a1_prev"])):
            with torch.no_grad():
                value = attempt(model, torch.tensor(case["x"]),
                                None if a1_prev is None else torch.tensor(a1_prev))
            out[key] = value if isinstance(value, Raised) else attempt(lambda: list(value[:2]))
        results.append(out)
    return {"cases": results}


def torch_rnn_oracle(weights, x, a1_prev=None):
    w = {k: torch.as_tensor(v) for k, v in weights.items()}
    x = torch.as_tensor(x)
    a1 = torch.zeros(x.shape[0], w["LW_11.weight"].shape[0]) if a1_prev is None \
        else torch.as_tensor(a1_prev)
    states, outputs = [a1], []
    for t in range(x.shape[1]):
        a1 = torch.tanh(F.linear(x[:, t], w["IW_11.weight"], w["IW_11.bias"])
                        + F.linear(a1, w["LW_11.weight"]))
        states.append(a1)
        outputs.append(torch.sigmoid(F.linear(a1, w["LW_21.weight"], w["LW_21.bias"])))
    return torch.stack(outputs, 1), torch.stack(states, 1)


@check("ps4.pytorch_forward", inputs=pytorch_forward_inputs, probe=probe_pytorch_forward)
def pytorch_forward(inputs, outputs):
    for case, out in zip(inputs["cases"], outputs["cases"], strict=True):
        R, S1, S2 = case["sizes"]
        B, T, _ = case["x"].shape
        name = "SimplePyTorchRNN(%d, %d, %d)" % (R, S1, S2)
        J.constructed(out, name)
        for key, a1_prev, how in (("zero_start", None, "from a zero state"),
                                  ("given_start", case["a1_prev"], "from a given state")):
            what = "%s on a batch of %d sequences of %d steps %s" % (name, B, T, how)
            J.raised(out[key], what)
            expected_outputs, expected_states = torch_rnn_oracle(case["weights"], case["x"], a1_prev)
            J.close(out[key][1], expected_states.numpy(), "the hidden states a1_tot of " + what,
                    rtol=1e-4, atol=1e-5)
            J.close(out[key][0], expected_outputs.numpy(), "the outputs of " + what,
                    rtol=1e-4, atol=1e-5)


def _lengths_mask(lengths, steps):
    return (np.arange(steps)[None, :] < np.asarray(lengths)[:, None]).astype(np.float32)


def pytorch_loss_inputs():
    rng = np.random.default_rng(409)
    B, T = 4, 6
    lengths = [6, 2, 4, 1]
    mask = _lengths_mask(lengths, T)
    outputs = rng.uniform(0.05, 0.95, size=(B, T, 1)).astype(np.float32)
    # what the padding holds must not matter: confident and wrong
    noisy = np.where(mask[..., None] > 0, outputs, 0.999).astype(np.float32)
    targets = (rng.uniform(size=(B, T, 1)) < 0.5).astype(np.float32) * mask[..., None]
    return {"outputs": outputs, "noisy": noisy, "targets": targets, "mask": mask,
            "lengths": lengths}


def probe_pytorch_loss(ns, inputs):
    import torch
    model = probe_torch_rnn(ns, {"sizes": [1, 2, 1], "weights": {}})
    if isinstance(model, Raised):
        return {"init": model}
    outputs, noisy = torch.tensor(inputs["outputs"]), torch.tensor(inputs["noisy"])
    targets, mask = torch.tensor(inputs["targets"]), torch.tensor(inputs["mask"])

    def value(*arguments):
        loss = attempt(model.compute_loss, *arguments)
        return loss if isinstance(loss, Raised) else attempt(lambda: float(loss))

    return {"unmasked": value(outputs, targets), "masked": value(outputs, targets, mask),
            "noisy": value(noisy, targets, mask)}


@check("ps4.pytorch_loss", inputs=pytorch_loss_inputs, probe=probe_pytorch_loss)
def pytorch_loss(inputs, outputs):
    J.constructed(outputs, "SimplePyTorchRNN(1, 2, 1)")
    losses = F.binary_cross_entropy(torch.tensor(inputs["outputs"]),
                                    torch.tensor(inputs["targets"]), reduction="none")[..., 0]
    mask = torch.tensor(inputs["mask"])
    B, T = mask.shape
    J.scalar(outputs["unmasked"], losses.mean().item(),
             "compute_loss on a batch of %d x %d steps without a mask" % (B, T),
             rtol=1e-5, atol=1e-6)
    masked = ((losses * mask).sum() / mask.sum()).item()
    what = ("compute_loss with a mask (sequences of %s steps padded to %d; the mean over the "
            "real steps)" % (", ".join(map(str, inputs["lengths"])), T))
    J.scalar(outputs["masked"], masked, what, rtol=1e-5, atol=1e-6)
    J.scalar(outputs["noisy"], masked, what + ", with other outputs at the padding",
             rtol=1e-5, atol=1e-6)


def train_step_inputs():
    rng = np.random.default_rng(410)
    R, S1, S2, B, T = 1, 3, 1, 3, 5
    return {"sizes": [R, S1, S2], "learning_rate": 0.4,
            "weights": _torch_weights(_rnn_parameters(rng, R, S1, S2)),
            "batches": [{"x": (rng.uniform(size=(B, T, R)) < 0.5).astype(np.float32),
                         "y": (rng.uniform(size=(B, T, S2)) < 0.5).astype(np.float32),
                         "mask": _lengths_mask(lengths, T)}
                        for lengths in ([5, 3, 2], [4, 5, 1])]}


def probe_pytorch_train_step(ns, inputs):
    import torch
    model = probe_torch_rnn(ns, inputs, float(inputs["learning_rate"]))
    if isinstance(model, Raised):
        return {"init": model}
    named = dict(model.named_parameters())
    seen_masks = []

    # Stand-ins for forward and compute_loss, so that this check needs only train_step.
    def forward(x, a1_prev=None):
        a1 = x.new_zeros(x.shape[0], named["LW_11.weight"].shape[0])
        states, outs = [a1], []
        for t in range(x.shape[1]):
            a1 = torch.tanh(x[:, t] @ named["IW_11.weight"].T + named["IW_11.bias"]
                            + a1 @ named["LW_11.weight"].T)
            states.append(a1)
            outs.append(torch.sigmoid(a1 @ named["LW_21.weight"].T + named["LW_21.bias"]))
        return torch.stack(outs, 1), torch.stack(states, 1)

    def compute_loss(outs, targets, mask=None):
        seen_masks.append(mask is not None)
        losses = torch.nn.functional.binary_cross_entropy(
            outs, targets.reshape(outs.shape), reduction="none").mean(2)
        if mask is None:
            return losses.mean()
        return (losses * mask).sum() / mask.sum()

    object.__setattr__(model, "forward", forward)
    object.__setattr__(model, "compute_loss", compute_loss)
    returned = []
    for batch in inputs["batches"]:
        value = attempt(model.train_step, torch.tensor(batch["x"]), torch.tensor(batch["y"]),
                        torch.tensor(batch["mask"]))
        returned.append(value if isinstance(value, Raised) else attempt(lambda: float(value)))
    return {"returned": returned, "masks": seen_masks,
            "parameters": {name: p.detach().clone() for name, p in named.items()}}


@check("ps4.pytorch_train_step", inputs=train_step_inputs, probe=probe_pytorch_train_step)
def pytorch_train_step(inputs, outputs):
    J.constructed(outputs, "SimplePyTorchRNN(1, 3, 1, learning_rate=0.4)")
    weights = {k: torch.tensor(v, requires_grad=True) for k, v in inputs["weights"].items()}
    rate = inputs["learning_rate"]
    for number, (batch, value) in enumerate(zip(inputs["batches"], outputs["returned"], strict=True), 1):
        what = "train_step on batch %d (learning rate %g)" % (number, rate)
        J.raised(value, what)
        predictions, _ = torch_rnn_oracle(weights, batch["x"])
        losses = F.binary_cross_entropy(predictions, torch.tensor(batch["y"]),
                                        reduction="none")[..., 0]
        mask = torch.tensor(batch["mask"])
        loss = (losses * mask).sum() / mask.sum()
        loss.backward()
        with torch.no_grad():
            for parameter in weights.values():
                norm = parameter.grad.norm()
                if norm > 5.0:
                    parameter.grad *= 5.0 / norm
                parameter -= rate * parameter.grad
                parameter.grad = None
        J.scalar(value, loss.item(), "the loss returned by " + what, rtol=1e-5, atol=1e-6)
    if len(outputs["masks"]) != len(inputs["batches"]) or not all(outputs["masks"]):
        raise CheckFailed("train_step should compute the loss once per call, with the mask it "
                          "was given")
    for name, parameter in weights.items():
        J.close(outputs["parameters"][name], parameter.detach().numpy(),
                "%s after two calls of train_step" % name, rtol=1e-4, atol=1e-6)


# --- batches --------------------------------------------------------------------------------

def collate_inputs():
    rng = np.random.default_rng(411)
    lengths = [3, 6, 1, 4]
    return {"bits": [[float(b) for b in rng.integers(0, 2, n)] for n in lengths],
            "bit_targets": [[float(b) for b in rng.integers(0, 2, n)] for n in lengths],
            "wide": [rng.normal(size=(n, 2)).astype(np.float32) for n in (2, 5, 3)],
            "wide_targets": [rng.integers(0, 2, size=(n, 1)).astype(np.float32) for n in (2, 5, 3)]}


def probe_collate(ns, inputs):
    collate = lookup(ns, "collate_sequences")
    results = {}
    for key, sequences, targets in (
            ("bits", inputs["bits"], inputs["bit_targets"]),
            ("wide", [s.copy() for s in inputs["wide"]], [t.copy() for t in inputs["wide_targets"]])):
        value = attempt(collate, sequences, targets)
        if not isinstance(value, Raised):
            value = attempt(lambda: {"tensors": [part.detach() for part in value],
                                     "dtypes": [str(part.dtype) for part in value]})
        results[key] = value
    return results


@check("ps4.collate_sequences", inputs=collate_inputs, probe=probe_collate)
def collate_sequences(inputs, outputs):
    for key, targets_key, width in (("bits", "bit_targets", 1), ("wide", "wide_targets", 2)):
        sequences = [np.asarray(s, dtype=float).reshape(len(s), width) for s in inputs[key]]
        targets = [np.asarray(t, dtype=float).reshape(-1) for t in inputs[targets_key]]
        lengths = [len(s) for s in sequences]
        call = "collate_sequences on %d sequences of %s steps with %d value%s each" % (
            len(sequences), ", ".join(map(str, lengths)), width, "s" if width > 1 else "")
        J.raised(outputs[key], call)
        if len(outputs[key]["tensors"]) != 3:
            raise CheckFailed("%s should return three tensors: inputs, targets, mask" % call)
        longest = max(lengths)
        expected_inputs = np.zeros((len(sequences), longest, width))
        expected_targets = np.zeros((len(sequences), longest, 1))
        for row, (sequence, target) in enumerate(zip(sequences, targets)):
            expected_inputs[row, :len(sequence)] = sequence
            expected_targets[row, :len(target), 0] = target
        expected_mask = _lengths_mask(lengths, longest)
        got_inputs, got_targets, got_mask = outputs[key]["tensors"]
        J.close(got_mask, expected_mask, "the mask from " + call)
        J.close(got_inputs, expected_inputs, "the padded inputs from " + call, rtol=1e-6)
        J.close(got_targets, expected_targets, "the padded targets from " + call)
        dtypes = J.items(outputs[key]["dtypes"], 3, call)[:2]
        if any(d != "torch.float32" for d in dtypes):
            raise CheckFailed("%s returned inputs and targets of types %s, expected "
                              "torch.float32" % (call, " and ".join(dtypes)))


def train_pytorch_rnn_inputs():
    return {"lengths": [3, 5, 2, 5, 4, 1, 3], "epochs": 3, "batch_size": 3,
            "tables": _tables(collate=True)}


def probe_train_pytorch_rnn(ns, inputs):
    return probe_stand_ins(ns, inputs["tables"], probe_train_pytorch_rnn_alone, ns, inputs)


def probe_train_pytorch_rnn_alone(ns, inputs):
    import numpy as np
    import torch
    train = lookup(ns, "train_pytorch_rnn")

    class BatchRecorder:
        """A stand-in network: records the batches it gets; returns distinct losses."""

        def __init__(self):
            self.batches = []

        def train_step(self, x, targets, mask=None):
            # each sequence's values are its number: which sequences came, with what mask
            numbers = [int(round(float(row.max()))) for row in x.reshape(x.shape[0], -1)]
            steps = None if mask is None else [float(v) for v in mask.reshape(x.shape[0], -1).sum(1)]
            self.batches.append({"numbers": numbers, "steps": steps})
            return 0.5 * len(self.batches)

    lengths = [int(n) for n in inputs["lengths"]]
    sequences = [np.full((n, 1), number + 1, dtype=np.float32) for number, n in enumerate(lengths)]
    targets = [np.zeros((n, 1), dtype=np.float32) for n in lengths]
    recorder = BatchRecorder()
    torch.manual_seed(0)
    np.random.seed(0)
    losses = attempt(train, recorder, sequences, targets, int(inputs["epochs"]),
                     int(inputs["batch_size"]))
    if not isinstance(losses, Raised):
        losses = attempt(lambda: np.asarray(losses, dtype=float))
    return {"losses": losses, "batches": recorder.batches}


@check("ps4.train_pytorch_rnn", inputs=train_pytorch_rnn_inputs, probe=probe_train_pytorch_rnn)
def train_pytorch_rnn(inputs, outputs):
    lengths, epochs, size = inputs["lengths"], inputs["epochs"], inputs["batch_size"]
    count = len(lengths)
    per_epoch = math.ceil(count / size)
    call = ("train_pytorch_rnn with %d sequences, %d epochs and batch_size=%d"
            % (count, epochs, size))
    J.raised(outputs["losses"], call)
    batches = outputs["batches"]
    if len(batches) != epochs * per_epoch:
        raise CheckFailed("%s called train_step %d times, expected %d (%d batches per epoch)"
                          % (call, len(batches), epochs * per_epoch, per_epoch))
    orders = []
    for epoch in range(epochs):
        chunk = batches[epoch * per_epoch:(epoch + 1) * per_epoch]
        if any(len(b["numbers"]) > size for b in chunk):
            raise CheckFailed("%s gave train_step a batch of more than %d sequences" % (call, size))
        seen = [n for b in chunk for n in b["numbers"]]
        if sorted(seen) != list(range(1, count + 1)):
            raise CheckFailed("%s: epoch %d did not go through every sequence exactly once"
                              % (call, epoch + 1))
        for b in chunk:
            if b["steps"] is None:
                raise CheckFailed("%s called train_step without the mask" % call)
            if b["steps"] != [float(lengths[n - 1]) for n in b["numbers"]]:
                raise CheckFailed("%s gave train_step a mask that does not mark each "
                                  "sequence's real steps" % call)
        orders.append(seen)
    if all(order == orders[0] for order in orders):
        raise CheckFailed("%s went through the sequences in the same order in every epoch; "
                          "shuffle them" % call)
    expected = [np.mean([0.5 * (epoch * per_epoch + k) for k in range(1, per_epoch + 1)])
                for epoch in range(epochs)]
    J.close(outputs["losses"], expected, "the losses returned by %s (one per epoch, the mean "
            "of the losses train_step returned)" % call, rtol=1e-9, atol=1e-12)
