"""Checks written as test functions (nncourse/checks/runner.py): the call server in the
student's kernel, the grader's remote namespace over it, and what reaches the kernel."""

import inspect
import json

import numpy as np
import pytest
import torch
from nbformat.v4 import new_code_cell

from nncourse import checks, policy, samples
from nncourse.catalogue import diagnosis
from nncourse.autograde.execute import SERVER_PROGRAM, LimitedExecute
from nncourse.autograde.preprocessors import WORKER, ExpandChecks
from nncourse.checks import judging, ps1, remote, runner, server, wire
from nncourse.checks.remote import BadReply, LocalChannel, Student, StudentRaised
from nncourse.course import ROOT

STUDENT_CODE = '''
import warnings
import numpy as np

class Layer:
    def __init__(self, n):
        self.W = np.zeros((n, n))
    def forward(self, x):
        return x @ self.W
    def pair(self, x):
        return (x, {"twice": 2 * x, "text": "ok"}, [None, float("nan")])
    def itself(self):
        return self
    def fails(self):
        raise ValueError("the grader's inputs were %s" % self.W)
    def warns(self, x):
        warnings.warn("careful")
        return x

def drive(layers, x):
    """calls the stand-ins second, then first"""
    return layers[0](layers[1].forward(x, lr=0.5))
'''


@pytest.fixture
def student():
    namespace = {}
    exec(STUDENT_CODE, namespace)
    return Student(LocalChannel(namespace))


def test_a_check_drives_the_students_objects_and_gets_plain_data_back(student):
    layer = student.Layer(3)
    assert repr(layer) == "<student's Layer>" and remote.type_name(layer) == "Layer"
    layer.W = np.eye(3) * 2
    x = np.arange(6.0).reshape(2, 3)
    assert np.array_equal(layer.forward(x), 2 * x)
    assert np.array_equal(layer.W, np.eye(3) * 2)
    y, extra, items = layer.pair(x)
    assert np.array_equal(y, x) and extra["text"] == "ok" and np.array_equal(extra["twice"], 2 * x)
    assert items[0] is None and np.isnan(items[1])
    assert remote.type_name(layer.itself()) == "Layer"  # anything else: a handle
    tensor = layer.forward(torch.ones(2, 3, dtype=torch.float64, requires_grad=False))
    assert torch.equal(remote.value_of(tensor), torch.full((2, 3), 2.0, dtype=torch.float64))


def test_what_the_students_code_raised_is_named_by_the_grader_only(student):
    with pytest.raises(StudentRaised) as raised:
        student.Layer(2).fails()
    assert raised.value.shown() == "Layer(2).fails() raised ValueError"  # not its text
    with pytest.raises(StudentRaised) as raised:
        student.Layer(2).fails(np.ones((4, 3)), torch.ones(2), [1], key=None)
    assert raised.value.shown() == \
        "Layer(2).fails(a 4x3 array, a 2 tensor, ..., key=None) raised TypeError"
    with pytest.raises(StudentRaised) as raised:
        student.Missing(1)
    assert raised.value.shown() == "Missing is not defined: run the cell that defines it"
    with pytest.raises(StudentRaised) as raised:
        student.Layer(2).nothing_here
    assert raised.value.shown() == "Layer(2).nothing_here raised AttributeError"


def test_warnings_are_noted_and_fail_only_where_the_task_asks(student):
    layer = student.Layer(2)
    assert layer.warns(1.0) == 1.0 and student.warned == ["UserWarning: careful"]
    with student.no_warnings(), pytest.raises(StudentRaised) as raised:
        layer.warns(1.0)
    assert raised.value.shown() == "Layer(2).warns(1.0) raised UserWarning"


def test_a_stand_in_replays_the_graders_numbers_and_records_every_call_in_order(student):
    first = student.stand_in({"forward": [np.ones(2), np.zeros(2)]}, call="forward")
    second = student.stand_in({"forward": [np.full(2, 3.0)]}, {"with_weights": True})
    assert np.array_equal(student.drive([first, second], np.arange(2.0)), np.ones(2))
    assert second.with_weights is True
    (order_1, method, args, kwargs), = remote.calls_of(second)
    (order_2, _, args_2, _), = remote.calls_of(first)
    assert order_1 < order_2 and method == "forward" and kwargs == {"lr": 0.5}
    assert np.array_equal(args[0], np.arange(2.0)) and np.array_equal(args_2[0], np.full(2, 3.0))
    assert np.array_equal(first(None), np.zeros(2)) and np.array_equal(first(None), np.zeros(2))


class Forger:
    """A kernel whose call server was replaced: every reply is ``reply``."""

    def __init__(self, reply):
        self.reply = reply

    def send(self, request):
        return self.reply


@pytest.mark.parametrize("reply", [None, "text", [], {}, {"ok": 1, "raised": "x"},
                                   {"ok": {"__ndarray__": {"dtype": "|O", "shape": [1],
                                                           "data": "gAN9cQAu"}}},
                                   {"ok": {"__nothing__": 1}}, {"ok": 1, "warned": "x"},
                                   {"ok": 1, "extra": 2}])
def test_a_reply_the_server_would_not_send_fails_the_check(reply):
    with pytest.raises(BadReply):
        Student(Forger(reply)).Linear(3)


def test_a_check_sees_its_failures_as_messages_and_its_own_bugs_as_the_graders():
    namespace = {"Linear": lambda n_in, n_out: 1 / 0}
    message = runner.evaluate("ps1.linear_forward", namespace)
    assert message == "Linear(3, 5) raised ZeroDivisionError"
    assert runner.evaluate("ps1.linear_forward", {}) == \
        "Linear is not defined: run the cell that defines it"


def test_every_run_of_a_check_sends_the_same_inputs():
    seeds = {runner.seed("ps1.linear_forward", case) for case, _ in
             runner.cases(runner.function_of("ps1.linear_forward"))}
    assert len(seeds) == 3
    assert runner.seed("ps1.linear_forward", "4-3-5") == runner.seed("ps1.linear_forward", "4-3-5")


def test_the_names_a_check_takes_from_the_student_are_read_from_its_source():
    assert runner.names_used("ps1.linear_forward") == {"Linear"}
    assert runner.names_used("ps1.linear_l2") == {"LinearL2"}
    assert runner.names_used("ps1.sigmoid_backward") == {"Sigmoid"}
    assert runner.names_used("ps1.simplenn") == {"SimpleNN"}


def test_the_server_is_self_contained():
    namespace = {"__name__": "nncourse_calls"}  # as the kernel runs it
    exec(compile(SERVER_PROGRAM.replace("install(_user_ns)", ""), "<server>", "exec"), namespace)
    assert "Server" in namespace and "nncourse" not in {
        line.split()[1].split(".")[0] for line in SERVER_PROGRAM.splitlines()
        if line.startswith(("import ", "from ")) and not line.startswith("from .")}


def _memory_dump(path):
    """A cell that writes out every string the kernel holds: in containers, in code objects
    (constants, names), in linecache and in the input history."""
    return new_code_cell('''
import gc, json, linecache, types
_seen = set()
def _strings(value, depth=0):
    if isinstance(value, str):
        _seen.add(value) if len(value) > 7 else None
    elif isinstance(value, bytes):
        _seen.add(value.decode("utf-8", "replace"))
    elif isinstance(value, types.CodeType) and depth < 20:
        for item in value.co_consts + value.co_names + (value.co_filename,):
            _strings(item, depth + 1)
    elif isinstance(value, (tuple, list, frozenset, set)) and depth < 3:
        for item in list(value):
            _strings(item, depth + 1)
    elif isinstance(value, dict) and depth < 3:
        for key, item in list(value.items()):
            _strings(key, depth + 1)
            _strings(item, depth + 1)
for _object in gc.get_objects():
    _strings(_object.__code__ if isinstance(_object, types.FunctionType) else _object)
_strings(dict(linecache.cache))
with open(%r, "w") as _file:
    json.dump(sorted(_seen), _file)
''' % str(path))


def _kernel_memory(tmp_path, checked):
    """Every string a kernel holds after running ps1's reference submission (test cells as
    restored from the source), with its checks run by the grader or, for ``checked=False``,
    not run at all."""
    dump = tmp_path / ("checked.json" if checked else "control.json")
    notebook = samples.submission(ROOT, "ps1", [])
    tests = {cell.metadata.nbgrader["grade_id"]: cell.source
             for cell in diagnosis.source_notebook("ps1").cells if policy.is_test_cell(cell)}
    for cell in notebook.cells:  # restored from the source, as nbgrader does
        if policy.is_test_cell(cell):
            cell.source = tests[cell.metadata.nbgrader["grade_id"]] if checked else ""
    notebook.cells.append(_memory_dump(dump))
    resources = {WORKER: True, "metadata": {"path": str(tmp_path)}}
    nb, resources = ExpandChecks()(notebook, resources)
    nb, resources = LimitedExecute(timeout=300)(nb, resources)
    return notebook, resources, "\n".join(json.loads(dump.read_text()))


def test_nothing_of_a_check_reaches_the_kernel_but_the_server_and_its_inputs(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    notebook, resources, memory = _kernel_memory(tmp_path, checked=True)
    outcomes = resources["nncourse_outcomes"]
    assert len(outcomes) == 15 and all(o.message is None for found in outcomes.values()
                                       for o in found)
    assert "class StandIn:" in memory  # the server is there: the search finds what was sent
    _, _, control = _kernel_memory(tmp_path, checked=False)
    assert "class StandIn:" not in control
    sent = inspect.getsource(wire) + inspect.getsource(server) + "".join(
        cell.source for cell in notebook.cells)
    markers = set()
    for module in (checks, runner, remote, judging, ps1):
        # what the grader's modules define (their names), and the check module's code
        markers |= {name for name in vars(module) if len(name) > 7 and name not in sent
                    and getattr(vars(module)[name], "__module__", None) == module.__name__}
    markers |= {line.strip() for line in inspect.getsource(ps1).splitlines()
                if len(line.strip()) > 40 and not line.strip().startswith(("import", "from"))}
    assert len(markers) > 100 and "test_linear_forward" in markers
    # a marker the kernel holds is one the libraries it loaded hold too ("as_array")
    found = [marker for marker in markers if marker in memory and marker not in control]
    assert found == [], found


# A SimpleNN whose backward skips the activation layers, then rewrites the stand-ins' record of
# its calls from what they hold (an attack a review found when the record was an attribute).
FORGING_SIMPLENN = '''
class SimpleNN:
    def __init__(self, layers, loss, lr=0.05):
        self.layers, self.loss, self.lr = layers, loss, lr

    def __call__(self, x):
        return self.forward(x)

    def forward(self, x):
        self.inputs = []
        for layer in self.layers:
            self.inputs.append(x)
            x = layer(x)
        self.prediction = x
        return x

    def backward(self, y):
        self.loss_value = self.loss(self.prediction, y)
        gradient = self.loss.backward(self.prediction, y)
        for layer, layer_input in zip(reversed(self.layers), reversed(self.inputs)):
            if layer.with_weights:  # the activation layers are skipped
                gradient = layer.backward(layer_input, gradient, self.lr)
        for index, layer in enumerate(self.layers):
            for private in ("_calls", "_counts", "_answers", "_clock", "_record"):
                if hasattr(layer, private):
                    raise AssertionError("a stand-in shows its %s" % private)
            layer._reply("backward", [self.inputs[index], gradient, self.lr], {})
'''


def test_a_stand_ins_record_cannot_be_rewritten_by_the_code_it_records():
    namespace = diagnosis.namespace("ps1")
    exec(FORGING_SIMPLENN, namespace)
    message = runner.evaluate("ps1.simplenn", namespace)
    assert message is not None and "order" in message, message


def test_a_big_value_comes_back_as_a_handle_not_as_data():
    namespace = {"np": np}
    exec("def strings():\n    return ['x' * 1_000_000] * 300\n"
         "def arrays():\n    return [np.ones(1_000_000)] * 40\n"
         "def items():\n    return list(range(100_000))\n", namespace)
    server_ = server.Server(namespace)
    for name in ("strings", "arrays", "items"):
        function = server_.handle(json.dumps({"op": "lookup", "name": name}))["ok"]
        reply = server_.handle(json.dumps({"op": "call", "target": function[
            server.HANDLE_KEY]}))
        assert len(json.dumps(reply)) < 24_000_000, name  # not the 300 MB it returned


def test_a_reply_with_an_impossible_number_is_a_bad_reply():
    with pytest.raises(BadReply):
        Student(Forger({"ok": {server.HANDLE_KEY: float("inf"), "type": "Linear"}})).Linear
