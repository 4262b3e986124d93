"""Hidden checks of ps4 (a recurrent network in NumPy, then in PyTorch, on padded batches).

Each ``test_*`` function is one check (nncourse/checks/runner.py). The oracles are closed
forms, torch, and numerical gradients, computed here. Where the graded code calls another
part of the student's (SimpleRNN calls their sigmoid and loss functions, train_pytorch_rnn
their collate_sequences), the check puts stand-ins in its place for the call: tables of the
grader's numbers that compute nothing, so that a bug costs the part it is in. The training
loops are driven through stand-in networks that record the calls they get.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

from . import CheckFailed
from . import judging as J
from .remote import calls_of, fetch, ignoring_errors, listed, value_of
from .runner import parametrize
from ..policy import Rule

PARAMETERS = ("LW_11", "IW_11", "LW_21", "b_1", "b_2")

# The notebook's visible tests lend stand-ins for the other parts that replay a test's values
# (cell "stand_ins"); they are not a student's to hand in (checked on the source:
# nncourse/policy/).
POLICY = [Rule(helpers=("replay", "stand_ins"),
               why="graded code must be your own, not the notebook's test helpers"),
          # the stable parts ask for code that does not overflow, which a check sees by
          # NumPy's warning: silencing that warning is not writing stable code
          Rule(modules=("numpy.errstate", "numpy.seterr", "numpy.seterrcall"),
               attributes=("errstate", "seterr", "seterrcall"), names=("sigmoid",),
               why="the task asks for code that does not overflow; silencing NumPy's "
                   "floating-point warnings is not allowed here")]


def _sigmoid(n):
    return torch.sigmoid(torch.as_tensor(np.asarray(n, dtype=np.float64))).numpy()


def _stand_ins(student, net_inputs, targets=False):
    """Stand-ins for the student's sigmoid (and, with ``targets``, loss and its gradient),
    for the output unit's net inputs ``net_inputs`` that a correct computation passes them:
    {global name: stand-in}, for ``student.globals_set``."""
    n = np.unique(np.concatenate([np.ravel(v) for v in net_inputs]))
    a = _sigmoid(n)
    found = {"sigmoid": student.table(n, a)}
    if targets:
        found["binary_crossentropy_logit_gradient"] = student.table(
            n, np.stack([a, a - 1.0], axis=1))
        order = np.argsort(a)  # the loss is looked up by the probability, not the net input
        found["binary_crossentropy_loss"] = student.table(a[order], np.stack(
            [np.logaddexp(0, n), np.logaddexp(0, -n)], axis=1)[order], mean=True)
    return found


# --- the data -------------------------------------------------------------------------------

def parity_targets(X, window):
    """The targets of the bit sequences X (samples x steps) for the given window."""
    counts = np.cumsum(X, axis=1)
    before = np.zeros_like(counts)
    before[:, window:] = counts[:, :-window] if window < X.shape[1] else 0
    return ((counts - before) % 2 == 0).astype(float)


# a window shorter than, equal to, and longer than the sequence; a window of one
@parametrize("samples, length, window", [(6, 12, 4), (3, 6, 1), (4, 5, 5), (2, 4, 7),
                                         (40, 9, 3)])
def test_counting_ones_data(student, samples, length, window):
    call = "generate_counting_ones_data(%d, %d, %d)" % (samples, length, window)
    value = student.generate_counting_ones_data(samples, length, window)
    if not isinstance(value, (tuple, list)) or len(value) < 2:
        raise CheckFailed("%s should return the inputs and the targets" % call)
    parts = []
    for part, what in zip(value[:2], ("inputs", "targets")):
        try:
            parts.append(np.asarray(value_of(part), dtype=float))
        except (TypeError, ValueError):
            raise CheckFailed("%s's %s are %s, expected an array" % (call, what,
                                                                    J.kind_of(part))) from None
    X, y = parts
    J.shape(X, (samples, length), call + "'s inputs")
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

def test_sigmoid(student):
    # the task asks for a sigmoid that does not overflow: a warning fails it
    for value, what in ((np.array([[-1000.0, -745.0, -40.0, -12.0], [-1e-3, 0.0, 1e-3, 3.0],
                                   [12.0, 40.0, 745.0, 1000.0]]),
                         "sigmoid of a 3 x 4 array with values from -1000 to 1000"),
                        (np.linspace(-6, 6, 5).reshape(5, 1), "sigmoid of a column"),
                        (-3.0, "sigmoid(-3.0)")):
        with student.no_warnings():
            result = student.sigmoid(value)
        if np.ndim(value) == 0:
            J.scalar(result, _sigmoid(value), what, rtol=1e-7, atol=1e-12)
        else:
            J.close(result, _sigmoid(value), what, rtol=1e-7, atol=1e-12)


def test_bce_loss(student, rng):
    cases = [(rng.uniform(0.05, 0.95, size=(6, 1)), rng.integers(0, 2, size=(6, 1)).astype(float)),
             (rng.uniform(0.05, 0.95, size=5), np.array([1.0, 0.0, 0.0, 1.0, 1.0]))]
    for a, t in cases:
        expected = F.binary_cross_entropy(torch.tensor(a), torch.tensor(t)).item()
        J.scalar(student.binary_crossentropy_loss(a, t), expected,
                 "binary_crossentropy_loss on %d probabilities of shape %s" % (a.size, a.shape),
                 rtol=1e-6, atol=1e-9)
    # certain and wrong: finite only if the probabilities are kept off 0 and 1
    what = "binary_crossentropy_loss when a probability is exactly 0 or 1 and wrong"
    value = J.as_array(student.binary_crossentropy_loss(np.array([0.0, 1.0, 0.5]),
                                                        np.array([1.0, 0.0, 1.0])), what)
    if value.size != 1 or not np.isfinite(value).all():
        raise CheckFailed("%s is not a finite number: keep the probabilities away from 0 and 1"
                          % what)
    if float(value.reshape(())) < 5:
        raise CheckFailed("%s is %.3g, too small for two certain mistakes" % (what, float(value)))


def test_bce_gradient(student, rng):
    n, t = np.array([[-50.0], [-2.0], [0.0], [0.7], [50.0]]), np.array([[1.0], [0.0], [1.0],
                                                                     [1.0], [0.0]])
    n_wide, t_wide = rng.normal(scale=3, size=(2, 3)), rng.integers(0, 2, (2, 3)) * 1.0
    with student.globals_set(**_stand_ins(student, [n, n_wide])):
        for n, t in ((n, t), (n_wide, t_wide)):
            n_leaf = torch.tensor(n, requires_grad=True)
            # the gradient of the loss of every element on its own: the sum, not the mean
            F.binary_cross_entropy_with_logits(n_leaf, torch.tensor(t),
                                               reduction="sum").backward()
            J.close(student.binary_crossentropy_logit_gradient(n, t), n_leaf.grad.numpy(),
                    "binary_crossentropy_logit_gradient on net inputs of shape %s" % (n.shape,),
                    rtol=1e-7, atol=1e-12)


# --- SimpleRNN ------------------------------------------------------------------------------

def _rnn_parameters(rng, R, S1, S2, scale=0.5):
    return {"LW_11": rng.normal(scale=scale, size=(S1, S1)),
            "IW_11": rng.normal(scale=scale, size=(S1, R)),
            "LW_21": rng.normal(scale=scale, size=(S2, S1)),
            "b_1": rng.normal(scale=0.2, size=(S1, 1)), "b_2": rng.normal(scale=0.2, size=(S2, 1))}


def _rnn(student, sizes, parameters, *more):
    """A student's SimpleRNN of these sizes holding the grader's parameters."""
    rnn = student.SimpleRNN(*sizes, *more)
    for name, value in parameters.items():
        setattr(rnn, name, value)
    return rnn


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


def _columns(sequence, width, what):
    try:
        return np.array([np.asarray(value_of(item), dtype=float).reshape(width)
                         for item in sequence])
    except (TypeError, ValueError):
        raise CheckFailed("%s should be a sequence of arrays of %d values each"
                          % (what, width)) from None


@parametrize("R, S1, S2, T", [(2, 3, 2, 4), (1, 4, 1, 6)])
def test_rnn_forward(student, rng, R, S1, S2, T):
    parameters, inputs = _rnn_parameters(rng, R, S1, S2), rng.normal(size=(T, R))
    a1_prev = rng.normal(size=(S1, 1))
    net_inputs = [n for start in (None, a1_prev)
                  for n in rnn_oracle(parameters, inputs, start)[3]]
    name = "SimpleRNN(%d, %d, %d)" % (R, S1, S2)
    rnn = _rnn(student, (R, S1, S2), parameters)
    with student.globals_set(**_stand_ins(student, net_inputs)):
        # the inputs as a list of columns, then as one array with time first
        for sequence, start, how in (([p.reshape(R, 1) for p in inputs], None,
                                      "from a zero state"),
                                     (inputs, a1_prev, "from a given state")):
            what = "%s.forward on %d steps %s" % (name, T, how)
            value = rnn.forward(sequence, start)
            if not isinstance(value, (tuple, list)) or len(value) < 2:
                raise CheckFailed("%s should return the outputs, the states and a cache" % what)
            outputs, states = value[0], value[1]
            shapes = [np.shape(value_of(outputs[0])) if len(outputs) else None,
                      np.shape(value_of(states[-1])) if len(states) else None]
            if shapes != [(S2, 1), (S1, 1)]:
                raise CheckFailed("%s: outputs and states should be columns of shape (%d, 1) "
                                  "and (%d, 1), got %s and %s" % (what, S2, S1, *shapes))
            expected_outputs, expected_states, _, _ = rnn_oracle(parameters, inputs, start)
            if len(states) != T + 1:
                raise CheckFailed("%s returned %d hidden states, expected %d (the initial "
                                  "state, then one per step)" % (what, len(states), T + 1))
            J.close(_columns(states, S1, "the states of " + what), expected_states,
                    "the hidden states of " + what, rtol=1e-6, atol=1e-9)
            J.close(_columns(outputs, S2, "the outputs of " + what), expected_outputs,
                    "the outputs of " + what, rtol=1e-6, atol=1e-9)


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


@parametrize("R, S1, T", [(2, 3, 5), (1, 4, 4)])
def test_rnn_backward(student, rng, R, S1, T):
    parameters = _rnn_parameters(rng, R, S1, 1)
    inputs, targets = rng.normal(size=(T, R)), rng.integers(0, 2, size=(T, 1)).astype(float)
    # a first sequence: its gradients must not leak into the second's
    first_inputs = rng.normal(size=(T + 1, R))
    first_targets = rng.integers(0, 2, size=(T + 1, 1)).astype(float)
    net_inputs = [n for x in (inputs, first_inputs) for n in rnn_oracle(parameters, x)[3]]
    name = "SimpleRNN(%d, %d, 1)" % (R, S1)
    what = "%s.backward on %d steps" % (name, T)
    rnn = _rnn(student, (R, S1, 1), parameters)
    with student.globals_set(**_stand_ins(student, net_inputs, targets=True)):
        with student.kept():  # forward's results stay in the kernel, for backward
            first = ignoring_errors(rnn.forward, [x.reshape(-1, 1) for x in first_inputs], None)
            if first is not None:
                ignoring_errors(rnn.backward, first[0], [t.reshape(-1, 1) for t in first_targets],
                                first[2])
            forward = rnn.forward([x.reshape(-1, 1) for x in inputs], None)
        if not isinstance(forward, (tuple, list)) or len(forward) < 3:
            raise CheckFailed("%s.forward should return the outputs, the states and a cache"
                              % name)
        # the targets as one array with time first, as train_rnn gets them
        loss = rnn.backward(forward[0], targets, forward[2])
    _, _, total, _ = rnn_oracle(parameters, inputs, None, targets)
    J.scalar(loss, total / T, "the loss returned by " + what + " (the mean per step)",
             rtol=1e-6, atol=1e-9)
    expected = numerical_gradients(parameters, inputs, targets)
    for parameter in PARAMETERS:
        J.close(getattr(rnn, "d" + parameter), expected[parameter],
                "d%s after %s (compared with numerical gradients; after another sequence "
                "went through backward first)" % (parameter, what), rtol=1e-4, atol=1e-6)


def test_clip_gradients(student, rng):
    def scaled(shape, norm):
        values = rng.normal(size=shape)
        return values * norm / np.linalg.norm(values)

    gradients = {"LW_11": scaled((3, 3), 8.0), "IW_11": scaled((3, 2), 2.0),
                 "LW_21": scaled((1, 3), 5.5), "b_1": scaled((3, 1), 0.3),
                 "b_2": np.array([[-7.0]])}
    for arguments, max_norm, call in (({"max_norm": 3.0}, 3.0, "clip_gradients(max_norm=3.0)"),
                                      ({}, 5.0, "clip_gradients()")):
        rnn = student.SimpleRNN(2, 3, 1)
        for name, value in gradients.items():
            setattr(rnn, "d" + name, value)
        rnn.clip_gradients(**arguments)
        for name, gradient in gradients.items():
            norm = np.linalg.norm(gradient)
            expected = gradient * (max_norm / norm if norm > max_norm else 1.0)
            J.close(getattr(rnn, "d" + name), expected, "d%s (norm %.1f) after %s"
                    % (name, norm, call), rtol=1e-7, atol=1e-10)


def test_update_parameters(student, rng):
    parameters = _rnn_parameters(rng, 2, 3, 1)
    gradients = {k: rng.normal(size=v.shape) for k, v in parameters.items()}
    rate = 0.3
    rnn = _rnn(student, (2, 3, 1), parameters, rate)
    for name, value in gradients.items():
        setattr(rnn, "d" + name, value)
    rnn.update_parameters()
    for name, value in parameters.items():
        J.close(getattr(rnn, name), value - rate * gradients[name],
                "%s after update_parameters() with learning rate %g" % (name, rate),
                rtol=1e-7, atol=1e-10)


# --- train_rnn ------------------------------------------------------------------------------

def test_train_rnn(student):
    """train_rnn drives a stand-in network that records its calls: forward k answers a cache
    of its own, backward k a loss of its own."""
    count, steps, epochs = 3, 4, 3
    calls_per_run = count * epochs
    recorder = student.stand_in({
        "forward": [([np.zeros((1, 1))], [np.zeros((1, 1))], {"forward": k})
                    for k in range(calls_per_run)],
        "backward": [0.1 * (k + 1) for k in range(calls_per_run)],
        "clip_gradients": [None], "update_parameters": [None]})
    sequences = np.arange(1, count + 1, dtype=float)[:, None, None] * np.ones((count, steps, 1))
    losses = student.train_rnn(recorder, sequences, -sequences, epochs)
    call = "train_rnn with %d sequences and %d epochs" % (count, epochs)
    got, forwards = [], 0
    for _, method, args, kwargs in sorted(calls_of(recorder), key=lambda c: c[0]):
        given = list(args) + list(kwargs.values())
        if method == "forward":
            got.append(["forward", _first(given[0] if given else None)])
            forwards += 1
        elif method == "backward":
            cache = given[2] if len(given) > 2 else None
            got.append(["backward", _first(given[1] if len(given) > 1 else None),
                        cache.get("forward") if isinstance(cache, dict) else None])
        elif method == "clip_gradients":
            got.append(["clip", float(dict(zip(["max_norm"], args), **kwargs).get(
                "max_norm", 5.0))])
        else:
            got.append(["update"])
    expected_calls, expected_losses, backward = [], [], 0
    for _ in range(epochs):
        total = 0.0
        for sequence in range(1, count + 1):
            expected_calls += [["forward", sequence], ["backward", -sequence, backward],
                               ["clip", 5.0], ["update"]]
            backward += 1
            total += 0.1 * backward  # the loss the k-th backward returned
        expected_losses.append(total / count)
    for index, (mine, expected) in enumerate(zip(got, expected_calls)):
        if mine[0] != expected[0]:
            raise CheckFailed("%s: call %d to the network was %s(); expected %s() (for each "
                              "sequence in order: forward, backward with its targets and cache, "
                              "clip_gradients(), update_parameters())"
                              % (call, index + 1, mine[0], expected[0]))
        if mine != expected:
            what = "sequence or cache" if mine[0] in ("forward", "backward") else "arguments"
            raise CheckFailed("%s: %s() got the wrong %s" % (call, mine[0], what))
    if len(got) != len(expected_calls):
        raise CheckFailed("%s made %d calls to the network, expected %d (4 per sequence and "
                          "epoch)" % (call, len(got), len(expected_calls)))
    J.close(_numbers(losses, "the losses returned by " + call), expected_losses,
            "the losses returned by %s (one per epoch, the mean of the losses backward "
            "returned)" % call, rtol=1e-9, atol=1e-12)


def _first(value):
    """The first number of an array the student's code passed on (which sequence it is)."""
    try:
        return float(np.asarray(value_of(value), dtype=float).ravel()[0])
    except (TypeError, ValueError, IndexError):
        return None


def _numbers(value, what):
    try:
        return np.asarray([value_of(v) for v in value] if isinstance(value, (list, tuple))
                          else value_of(value), dtype=float)
    except (TypeError, ValueError):
        raise CheckFailed("%s should be numbers, not %s" % (what, J.kind_of(value))) from None


# --- SimplePyTorchRNN -----------------------------------------------------------------------

def _torch_weights(parameters):
    """The NumPy network's parameters under SimplePyTorchRNN's names (b_1 lives in IW_11)."""
    return {"IW_11.weight": parameters["IW_11"].astype(np.float32),
            "IW_11.bias": parameters["b_1"].ravel().astype(np.float32),
            "LW_11.weight": parameters["LW_11"].astype(np.float32),
            "LW_21.weight": parameters["LW_21"].astype(np.float32),
            "LW_21.bias": parameters["b_2"].ravel().astype(np.float32)}


def _torch_rnn(student, sizes, weights, learning_rate=0.01):
    """A student's SimplePyTorchRNN of these sizes with the grader's weights loaded."""
    model = student.SimplePyTorchRNN(*sizes, learning_rate)
    if weights:
        model.load_state_dict({k: torch.tensor(v) for k, v in weights.items()}, strict=False)
    return model


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


@parametrize("R, S1, S2, B, T", [(2, 3, 2, 4, 5), (1, 5, 1, 1, 7)])
def test_pytorch_forward(student, rng, R, S1, S2, B, T):
    weights = _torch_weights(_rnn_parameters(rng, R, S1, S2))
    x = rng.normal(size=(B, T, R)).astype(np.float32)
    a1_prev = rng.normal(size=(B, S1)).astype(np.float32)
    name = "SimplePyTorchRNN(%d, %d, %d)" % (R, S1, S2)
    model = _torch_rnn(student, (R, S1, S2), weights)
    for start, how in ((None, "from a zero state"), (a1_prev, "from a given state")):
        what = "%s on a batch of %d sequences of %d steps %s" % (name, B, T, how)
        value = model(torch.tensor(x), None if start is None else torch.tensor(start))
        if not isinstance(value, (tuple, list)) or len(value) < 2:
            raise CheckFailed("%s should return the outputs and the states" % what)
        expected_outputs, expected_states = torch_rnn_oracle(weights, x, start)
        J.close(value[1], expected_states.numpy(), "the hidden states a1_tot of " + what,
                rtol=1e-4, atol=1e-5)
        J.close(value[0], expected_outputs.numpy(), "the outputs of " + what,
                rtol=1e-4, atol=1e-5)


def _lengths_mask(lengths, steps):
    return (np.arange(steps)[None, :] < np.asarray(lengths)[:, None]).astype(np.float32)


def test_pytorch_loss(student, rng):
    B, T = 4, 6
    lengths = [6, 2, 4, 1]
    mask = _lengths_mask(lengths, T)
    outputs = rng.uniform(0.05, 0.95, size=(B, T, 1)).astype(np.float32)
    # what the padding holds must not matter: confident and wrong
    noisy = np.where(mask[..., None] > 0, outputs, 0.999).astype(np.float32)
    targets = (rng.uniform(size=(B, T, 1)) < 0.5).astype(np.float32) * mask[..., None]
    model = _torch_rnn(student, (1, 2, 1), {})
    losses = F.binary_cross_entropy(torch.tensor(outputs), torch.tensor(targets),
                                    reduction="none")[..., 0]
    J.scalar(model.compute_loss(torch.tensor(outputs), torch.tensor(targets)),
             losses.mean().item(),
             "compute_loss on a batch of %d x %d steps without a mask" % (B, T),
             rtol=1e-5, atol=1e-6)
    masked = ((losses * torch.tensor(mask)).sum() / mask.sum()).item()
    what = ("compute_loss with a mask (sequences of %s steps padded to %d; the mean over the "
            "real steps)" % (", ".join(map(str, lengths)), T))
    J.scalar(model.compute_loss(torch.tensor(outputs), torch.tensor(targets),
                                torch.tensor(mask)), masked, what, rtol=1e-5, atol=1e-6)
    J.scalar(model.compute_loss(torch.tensor(noisy), torch.tensor(targets), torch.tensor(mask)),
             masked, what + ", with other outputs at the padding", rtol=1e-5, atol=1e-6)


def test_pytorch_train_step(student, rng):
    """train_step on a model whose forward and compute_loss are stand-ins that compute
    nothing: forward replays the grader's outputs, and the loss is a tensor whose backward()
    gives each parameter the grader's gradient for the batch. What train_step must do with
    them: the step, with clipping, and the loss as a number."""
    R, S1, S2, B, T = 1, 3, 1, 3, 5
    rate = 0.4
    weights = _torch_weights(_rnn_parameters(rng, R, S1, S2))
    batches = [((rng.uniform(size=(B, T, R)) < 0.5).astype(np.float32),
                (rng.uniform(size=(B, T, S2)) < 0.5).astype(np.float32),
                _lengths_mask(lengths, T)) for lengths in ([5, 3, 2], [4, 5, 1])]
    oracle = {k: torch.tensor(v, requires_grad=True) for k, v in weights.items()}
    steps = []  # per batch: the outputs, the loss and each parameter's gradient
    for x, y, mask in batches:
        predictions, states = torch_rnn_oracle(oracle, x)
        losses = F.binary_cross_entropy(predictions, torch.tensor(y), reduction="none")[..., 0]
        loss = (losses * torch.tensor(mask)).sum() / mask.sum()
        loss.backward()
        steps.append((predictions.detach(), states.detach(), loss.item(),
                      {k: p.grad.clone() for k, p in oracle.items()}))
        with torch.no_grad():
            for parameter in oracle.values():
                norm = parameter.grad.norm()
                if norm > 5.0:
                    parameter.grad *= 5.0 / norm
                parameter -= rate * parameter.grad
                parameter.grad = None
    model = _torch_rnn(student, (R, S1, S2), weights, rate)
    named = dict(listed(model.named_parameters()))
    if set(named) != set(weights):
        raise CheckFailed("SimplePyTorchRNN(1, 3, 1) has the parameters %s; expected %s"
                          % (sorted(named), sorted(weights)))
    losses = [student.loss_replay([named[k] for k in weights], [step[3][k] for k in weights],
                                  step[2]) for step in steps]
    model.forward = student.stand_in({"forward": [(outputs, states)
                                                  for outputs, states, _, _ in steps]},
                                     call="forward")
    loss_stand_in = student.stand_in({"compute_loss": losses}, call="compute_loss")
    model.compute_loss = loss_stand_in
    for number, ((x, y, mask), (_, _, loss, _)) in enumerate(zip(batches, steps), 1):
        what = "train_step on batch %d (learning rate %g)" % (number, rate)
        value = model.train_step(torch.tensor(x), torch.tensor(y), torch.tensor(mask))
        J.scalar(value, loss, "the loss returned by " + what, rtol=1e-5, atol=1e-6)
    masks = [dict(zip(["outputs", "targets", "mask"], args), **kwargs).get("mask")
             for _, _, args, kwargs in calls_of(loss_stand_in)]
    if len(masks) != len(batches) or any(mask is None for mask in masks):
        raise CheckFailed("train_step should compute the loss once per call, with the mask it "
                          "was given")
    for name, parameter in oracle.items():
        J.close(fetch(named[name]), parameter.detach().numpy(),
                "%s after two calls of train_step" % name, rtol=1e-4, atol=1e-6)


# --- batches --------------------------------------------------------------------------------

def test_collate_sequences(student, rng):
    lengths = [3, 6, 1, 4]
    bits = [[float(b) for b in rng.integers(0, 2, n)] for n in lengths]
    bit_targets = [[float(b) for b in rng.integers(0, 2, n)] for n in lengths]
    wide = [rng.normal(size=(n, 2)).astype(np.float32) for n in (2, 5, 3)]
    wide_targets = [rng.integers(0, 2, size=(n, 1)).astype(np.float32) for n in (2, 5, 3)]
    for sequences, targets, width in ((bits, bit_targets, 1), (wide, wide_targets, 2)):
        sequences_ = [np.asarray(s, dtype=float).reshape(len(s), width) for s in sequences]
        lengths = [len(s) for s in sequences_]
        call = "collate_sequences on %d sequences of %s steps with %d value%s each" % (
            len(sequences_), ", ".join(map(str, lengths)), width, "s" if width > 1 else "")
        value = student.collate_sequences(sequences, targets)
        if not isinstance(value, (tuple, list)) or len(value) != 3:
            raise CheckFailed("%s should return three tensors: inputs, targets, mask" % call)
        longest = max(lengths)
        expected_inputs = np.zeros((len(sequences_), longest, width))
        expected_targets = np.zeros((len(sequences_), longest, 1))
        for row, (sequence, target) in enumerate(zip(sequences_, targets)):
            expected_inputs[row, :len(sequence)] = sequence
            expected_targets[row, :len(sequence), 0] = np.asarray(target, float).reshape(-1)
        got_inputs, got_targets, got_mask = value
        J.close(got_mask, _lengths_mask(lengths, longest), "the mask from " + call)
        J.close(got_inputs, expected_inputs, "the padded inputs from " + call, rtol=1e-6)
        J.close(got_targets, expected_targets, "the padded targets from " + call)
        dtypes = [str(getattr(value_of(part), "dtype", J.kind_of(part)))
                  for part in (got_inputs, got_targets)]
        if any(d != "torch.float32" for d in dtypes):
            raise CheckFailed("%s returned inputs and targets of types %s, expected "
                              "torch.float32" % (call, " and ".join(dtypes)))


def test_train_pytorch_rnn(student):
    """train_pytorch_rnn drives a stand-in network that records the batches train_step gets,
    with a stand-in collate_sequences: sequence k is k+1 at every step, and collating it
    gives its number and, as its mask, its number of steps, so each batch says which
    sequences it holds."""
    lengths, epochs, size = [3, 5, 2, 5, 4, 1, 3], 3, 3
    count = len(lengths)
    per_epoch = math.ceil(count / size)
    sequences = [np.full((n, 1), number + 1, dtype=np.float32) for number, n in enumerate(lengths)]
    targets = [np.zeros((n, 1), dtype=np.float32) for n in lengths]
    collate = student.item_table(sequences, [([[number + 1.0]], [[0.0]], [float(n)])
                                             for number, n in enumerate(lengths)])
    recorder = student.stand_in({"train_step": [0.5 * k for k in range(1, epochs * per_epoch
                                                                        + 1)]})
    call = ("train_pytorch_rnn with %d sequences, %d epochs and batch_size=%d"
            % (count, epochs, size))
    student.seed(0)
    with student.globals_set(collate_sequences=collate):
        losses = student.train_pytorch_rnn(recorder, sequences, targets, epochs, size)
    batches = []
    for _, _, args, kwargs in sorted(calls_of(recorder), key=lambda c: c[0]):
        given = dict(zip(["inputs", "targets", "mask"], args), **kwargs)
        numbers = np.asarray(value_of(given.get("inputs")), dtype=float)
        mask = given.get("mask")
        batches.append({"numbers": [int(round(v)) for v in numbers.reshape(len(numbers), -1)
                                    .max(axis=1)],
                        "steps": None if mask is None else [
                            float(v) for v in np.asarray(value_of(mask), dtype=float)
                            .reshape(len(numbers), -1).sum(axis=1)]})
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
    J.close(_numbers(losses, "the losses returned by " + call), expected,
            "the losses returned by %s (one per epoch, the mean of the losses train_step "
            "returned)" % call, rtol=1e-9, atol=1e-12)
