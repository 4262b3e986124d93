"""What the probes lend the student's code (stand-ins for the other parts) is of no use as an
answer: taken at run time and handed in, it fails the checks of the part it stands in for."""

import numpy as np

from nncourse import checks
from tests.helpers import reference_namespace


def captured_by(name, namespace, student_name, grab):
    """Runs check ``name`` with ``student_name`` replaced by code that keeps what ``grab``
    takes from the arguments (or the namespace) the probe gives it; returns what it kept."""
    kept = []
    original = namespace[student_name]

    def spy(*args, **kwargs):
        kept.append(grab(namespace, *args))
        return original(*args, **kwargs)

    namespace = dict(namespace)
    if isinstance(original, type):
        spy_class = type(original.__name__, (original,), {})
        spy_class.__init__ = lambda self, *a, **k: (kept.append(grab(namespace, *a)),
                                                   original.__init__(self, *a, **k))[1]
        namespace[student_name] = spy_class
    else:
        namespace[student_name] = spy
    checks.evaluate(name, namespace)
    assert kept, "the probe of %s never called %s" % (name, student_name)
    return kept[0]


def test_ps4_stand_ins_know_only_the_checks_own_values():
    namespace = reference_namespace("ps4")
    stolen = captured_by("ps4.rnn_backward", namespace, "SimpleRNN",
                         lambda ns, *args: {k: ns[k] for k in (
                             "sigmoid", "binary_crossentropy_loss",
                             "binary_crossentropy_logit_gradient")})
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


def test_ps2_stand_in_layers_replay_numbers_and_fail_as_layers():
    namespace = reference_namespace("ps2")
    layer_class = captured_by("ps2.net_backward", namespace, "Net",
                              lambda ns, layers: type(layers[0]))
    handed_in = dict(reference_namespace("ps2"),
                     Linear=lambda n_in, n_out: layer_class("first", np.zeros((n_in, n_out),
                                                                              np.float32)))
    for name in ("ps2.linear_forward", "ps2.linear_backward"):
        assert checks.evaluate(name, handed_in) is not None, name


def test_ps1_stand_in_layers_and_loss_replay_numbers_and_fail_as_layers():
    namespace = reference_namespace("ps1")
    layers, loss = captured_by("ps1.simplenn", namespace, "SimpleNN",
                               lambda ns, layers, loss, **kw: (layers, loss))
    handed_in = dict(reference_namespace("ps1"), ReLU=lambda: type(layers[1])("tanh", False),
                     MSELoss=lambda: type(loss)())
    for name in ("ps1.relu_forward", "ps1.relu_backward", "ps1.mse_forward", "ps1.mse_backward"):
        assert checks.evaluate(name, handed_in) is not None, name


def test_ps5_stand_in_digitnet_fits_only_the_loop_checks_shapes():
    namespace = reference_namespace("ps5")
    stand_in = captured_by("ps5.train_model", namespace, "train_model",
                           lambda ns, *args: ns["DigitNet"])
    handed_in = dict(reference_namespace("ps5"), DigitNet=stand_in)
    assert checks.evaluate("ps5.digitnet", handed_in) is not None


def test_only_the_probe_and_the_helpers_it_calls_reach_the_kernel():
    sources = checks._probe_sources(checks.get("ps4.sigmoid").probe)
    assert [s.split("(")[0] for s in sources] == ["def probe_sigmoid"]
    program = checks.render_probe(checks.get("ps4.bce_loss"), "nonce")
    assert "probe_stand_ins" not in program and "probe_rnn" not in program
