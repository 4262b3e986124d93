"""What a check lends the student's code (stand-ins for the other parts) is of no use as an
answer: taken at run time and handed in, it fails the checks of the part it stands in for."""

import numpy as np

from nncourse import checks
from tests.helpers import reference_namespace


def captured_by(name, namespace, student_name, grab, method=None):
    """Runs check ``name`` with the student's ``student_name`` (a function, or a class whose
    ``method`` is watched) replaced by code that keeps what ``grab`` takes from the namespace
    and the arguments (the instance first, for a method) when it is called; returns what it
    kept first."""
    kept = []
    original = namespace[student_name]
    namespace = dict(namespace)
    if method is None:
        def spy(*args, **kwargs):
            kept.append(grab(namespace, *args))
            return original(*args, **kwargs)
        namespace[student_name] = spy
    else:
        def watched(self, *args, **kwargs):
            kept.append(grab(namespace, self, *args))
            return getattr(original, method)(self, *args, **kwargs)
        namespace[student_name] = type(original.__name__, (original,), {method: watched})
    checks.evaluate(name, namespace)
    assert kept, "the check %s never called %s" % (name, student_name)
    return kept[0]


def test_ps4_stand_ins_know_only_the_checks_own_values():
    namespace = reference_namespace("ps4")
    stolen = captured_by("ps4.rnn_backward", namespace, "SimpleRNN",
                         lambda ns, *args: {k: ns[k] for k in (
                             "sigmoid", "binary_crossentropy_loss",
                             "binary_crossentropy_logit_gradient")}, method="forward")
    assert np.isnan(stolen["sigmoid"](np.array([[0.3]]))).all()
    for name in ("sigmoid", "binary_crossentropy_loss", "binary_crossentropy_logit_gradient"):
        handed_in = dict(reference_namespace("ps4"), **{name: stolen[name]})
        check = {"sigmoid": "ps4.sigmoid", "binary_crossentropy_loss": "ps4.bce_loss",
                 "binary_crossentropy_logit_gradient": "ps4.bce_gradient"}[name]
        assert checks.evaluate(check, handed_in) is not None, name
    collate = captured_by("ps4.train_pytorch_rnn", namespace, "train_pytorch_rnn",
                          lambda ns, *args: ns["collate_sequences"])
    handed_in = dict(reference_namespace("ps4"), collate_sequences=collate)
    assert checks.evaluate("ps4.collate_sequences", handed_in) is not None


def test_ps4_train_step_is_lent_no_working_forward_or_loss():
    """The attack of the probe days: a model whose train_step keeps the forward and
    compute_loss the check put on it, and hands them in as its own."""
    namespace = reference_namespace("ps4")
    forward, loss = captured_by("ps4.pytorch_train_step", namespace, "SimplePyTorchRNN",
                                lambda ns, model, *args: (model.forward, model.compute_loss),
                                method="train_step")
    model_class = namespace["SimplePyTorchRNN"]
    borrowed = type("SimplePyTorchRNN", (model_class,), {
        "forward": lambda self, *args: forward(*args),
        "compute_loss": lambda self, *args: loss(*args)})
    handed_in = dict(reference_namespace("ps4"), SimplePyTorchRNN=borrowed)
    for name in ("ps4.pytorch_forward", "ps4.pytorch_loss"):
        assert checks.evaluate(name, handed_in) is not None, name


def test_ps2_stand_in_layers_replay_numbers_and_fail_as_layers():
    namespace = reference_namespace("ps2")
    layers = captured_by("ps2.net_backward", namespace, "Net", lambda ns, net, layers: layers,
                         method="__init__")
    handed_in = dict(reference_namespace("ps2"), Linear=lambda n_in, n_out: layers[0])
    for name in ("ps2.linear_forward", "ps2.linear_backward"):
        assert checks.evaluate(name, handed_in) is not None, name


def test_ps1_stand_in_layers_and_loss_replay_numbers_and_fail_as_layers():
    namespace = reference_namespace("ps1")
    layers, loss = captured_by("ps1.simplenn", namespace, "SimpleNN",
                               lambda ns, model, layers, loss, **kw: (layers, loss),
                               method="__init__")
    handed_in = dict(reference_namespace("ps1"), ReLU=lambda: layers[1], MSELoss=lambda: loss)
    for name in ("ps1.relu_forward", "ps1.relu_backward", "ps1.mse_forward", "ps1.mse_backward"):
        assert checks.evaluate(name, handed_in) is not None, name


def test_ps5_stand_in_digitnet_fits_only_the_loop_checks_shapes():
    namespace = reference_namespace("ps5")
    stand_in = captured_by("ps5.train_model", namespace, "train_model",
                           lambda ns, *args: ns["DigitNet"])
    handed_in = dict(reference_namespace("ps5"), DigitNet=stand_in)
    assert checks.evaluate("ps5.digitnet", handed_in) is not None
