"""LimitedExecute's limits on a notebook built in code, in kernels forked from a zygote
outside the sandbox (nncourse/autograde/execute.py): CPU time per cell and per notebook,
wall-clock time per notebook, output per cell, and a kernel that dies."""

import threading
import time

import pytest
from nbformat.v4 import new_code_cell, new_notebook
from traitlets.config import Config

from nncourse.autograde.execute import GRADER_ERRORS, LOST, LimitedExecute, _CPUWatch
from nncourse.sandbox import Zygote
from nncourse.sandbox.manager import ForkedKernelManager

pytestmark = [pytest.mark.sandbox]

BURN = "import time\nstart = time.process_time()\nwhile time.process_time() - start < %s:\n    pass"


@pytest.fixture(scope="module")
def zygote():
    zygote = Zygote()
    yield zygote
    zygote.close()


def execute(zygote, tmp_path, cells, **limits):
    """The notebook of ``cells`` run by LimitedExecute with ``limits``; (cells, resources)."""
    config = Config()
    config.ForkedKernelManager.zygote_socket = zygote.socket_path
    for name, value in limits.items():
        section = "Execute" if name == "timeout" else "LimitedExecute"
        config[section][name] = value
    notebook = new_notebook(cells=[new_code_cell(source) for source in cells])
    preprocessor = LimitedExecute(config=config, kernel_manager_class=ForkedKernelManager)
    notebook, resources = preprocessor(notebook, {"metadata": {"path": str(tmp_path)}})
    return notebook.cells, resources


def errors(cell):
    return [output.ename for output in cell.outputs if output.output_type == "error"]


def test_a_cell_past_its_cpu_time_is_interrupted_and_the_next_cell_runs(zygote, tmp_path):
    cells, resources = execute(zygote, tmp_path, ["while True:\n    pass", "'next'"],
                               cell_cpu_limit=1, notebook_cpu_limit=0)
    assert "KeyboardInterrupt" in errors(cells[0]) and "CPUTimeLimit" in errors(cells[0])
    assert "used more than its CPU time (1 s)" in cells[0].outputs[-1].traceback[0]
    assert cells[1].outputs[0].data["text/plain"] == "'next'"
    assert LOST not in resources


def test_a_cell_that_sleeps_is_not_charged_cpu_time(zygote, tmp_path):
    cells, _ = execute(zygote, tmp_path, ["import time\ntime.sleep(2)\n'slept'"],
                       cell_cpu_limit=1)
    assert errors(cells[0]) == []


def test_a_cell_that_waits_past_its_time_is_interrupted_in_the_graders_words(zygote, tmp_path):
    cells, resources = execute(zygote, tmp_path, ["import time\ntime.sleep(600)", "'next'"],
                               timeout=3)
    assert "TimeLimit" in errors(cells[0])
    mine = [o for o in cells[0].outputs if o.get("ename") == "TimeLimit"]
    assert any(o is mine[0] for o in resources[GRADER_ERRORS])  # kept where kernel text is not
    assert cells[1].outputs[0].data["text/plain"] == "'next'"


def test_past_the_notebooks_cpu_time_the_cells_after_are_not_run(zygote, tmp_path):
    cells, resources = execute(zygote, tmp_path, [BURN % 1.5, BURN % 1.5, "'never'"],
                               cell_cpu_limit=0, notebook_cpu_limit=2)
    assert errors(cells[0]) == []
    assert "CPUTimeLimit" in errors(cells[1])
    assert errors(cells[2]) == ["NotRun"]
    assert "the notebook used more than its CPU time (2 s)" in cells[2].outputs[0].traceback[0]
    assert LOST not in resources  # its own doing: not worth a second attempt


def test_past_the_notebooks_wall_clock_time_the_cells_after_are_not_run(zygote, tmp_path):
    cells, resources = execute(zygote, tmp_path, ["import time\ntime.sleep(3)", "'never'"],
                               notebook_timeout=2)
    assert "KeyboardInterrupt" in errors(cells[0])  # interrupted when the time ran out
    assert errors(cells[1]) == ["NotRun"]
    assert "ran past its time limit (2 s)" in cells[1].outputs[0].traceback[0]
    assert LOST not in resources
    assert resources["nncourse_notes"] == ["the notebook ran past its time limit (2 s)"]


def test_a_flood_of_output_is_cut_and_said_so_once_but_an_error_is_kept(zygote, tmp_path):
    cells, _ = execute(zygote, tmp_path, [
        "for i in range(20000):\n    print('line', i)\nraise ValueError('kept')"],
        cell_output_bytes=10_000)
    text = "".join(o.get("text", "") for o in cells[0].outputs if o.output_type == "stream")
    assert len(text) < 20_000 and text.count("[output cut: more than 10000 bytes]") == 1
    assert errors(cells[0]) == ["ValueError"]


def test_the_notebook_has_an_output_budget_across_its_cells_errors_included(zygote, tmp_path):
    flood = "print('x' * 4000)"
    failure = "raise ValueError('long ' * 2000)"
    cells, _ = execute(zygote, tmp_path, [flood] * 5 + [failure] * 3 + [flood],
                       cell_output_bytes=10_000, notebook_output_bytes=12_000)
    kept = sum(len(o.get("text", "")) for cell in cells for o in cell.outputs
               if o.output_type == "stream")
    assert kept < 14_000
    assert "the notebook's outputs passed 12000 bytes" in cells[3].outputs[-1].text
    # every failure is kept (it is what fails a test cell), past the budget as one short line
    assert [errors(cell) for cell in cells[5:8]] == [["ValueError"]] * 3
    assert cells[5].outputs[0].traceback
    assert all(len(o.evalue) <= 200 and not o.traceback
               for cell in cells[6:8] for o in cell.outputs)


def test_a_later_cell_cannot_rewrite_an_earlier_cells_outputs(zygote, tmp_path):
    cells, _ = execute(zygote, tmp_path, [
        "box = display({'text/plain': 'first'}, raw=True, display_id='box')",
        "box.update({'text/plain': 'rewritten by update'}, raw=True)",
        "_ = display({'text/plain': 'rewritten by display'}, raw=True, display_id='box')",
    ])
    assert [o.data["text/plain"] for o in cells[0].outputs] == ["first"]
    assert cells[1].outputs == []
    assert [o.data["text/plain"] for o in cells[2].outputs] == ["rewritten by display"]


def test_a_kernel_that_dies_is_lost_with_how_and_the_rest_is_not_run(zygote, tmp_path):
    cells, resources = execute(zygote, tmp_path, ["x = 1", "import os\nos._exit(3)", "x"])
    assert errors(cells[0]) == []
    assert errors(cells[1]) == ["KernelLost"] and errors(cells[2]) == ["NotRun"]
    assert resources[LOST] == "the kernel died in cell 1 (it exited)"  # not with what status


class FakeClock:
    """CPU seconds that grow by ``rate`` per call to read()."""

    def __init__(self, rate):
        self.now, self.rate, self.lock = 0.0, rate, threading.Lock()

    def read(self):
        with self.lock:
            self.now += self.rate
            return self.now


def test_the_cpu_watch_interrupts_past_its_limit_then_kills_after_the_grace():
    calls = []
    watch = _CPUWatch(FakeClock(1.0).read, limit=2, interrupt=lambda: calls.append("int"),
                      kill=lambda: calls.append("kill"), grace=0.5)
    watch.start()
    watch.join(10)
    assert calls == ["int", "kill"] and watch.tripped and watch.killed


def test_the_cpu_watch_does_nothing_below_its_limit_or_when_cpu_time_is_unknown():
    for read in (FakeClock(0.01).read, lambda: None):
        calls = []
        watch = _CPUWatch(read, limit=5, interrupt=lambda: calls.append("int"),
                          kill=lambda: calls.append("kill"))
        watch.start()
        time.sleep(1)
        watch.stop()
        assert calls == [] and not watch.tripped
