"""ExpandChecks, JudgeChecks and KeepFirstCopy on a notebook built in code, without a
kernel: the outcomes the grader's run of a cell's checks can have (passed, failed, cut off),
what the graded cell keeps, and copied cells (nncourse/autograde/preprocessors.py,
nncourse/sanitize.py)."""

import copy
import json

import pytest
from nbformat.notebooknode import NotebookNode, from_dict
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from nncourse.autograde.execute import CALLED, GRADER_ERRORS, OUTCOMES
from nncourse.autograde.preprocessors import (REVIEW, VISIBLE_TESTS_FAILED, WORKER,
                                              ExpandChecks, JudgeChecks, KeepFirstCopy,
                                              RefusedGrading, refuse_stock_autograde)
from nncourse.checks import runner
from nncourse.checks.remote import LocalChannel
from nncourse.policy import Review
from tests.helpers import reference_namespace

CHECK = "ps1.relu_forward"
VISIBLE = "assert ReLU().forward(np.zeros((1, 1))).shape == (1, 1)"
OFF_BY_A_LITTLE = [("relu_solution", "return np.maximum(input_array, 0.0)",
                    "return np.maximum(input_array, 0.0) + 1e-3")]


def notebook():
    cell = new_code_cell(VISIBLE + "\n### BEGIN HIDDEN TESTS\nfrom nncourse.checks import "
                         "run_check\nrun_check(%r)\n### END HIDDEN TESTS" % CHECK)
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True,
                                 "grade_id": "test_relu_forward", "points": 1}
    return new_notebook(cells=[new_code_cell("x = 1"), cell])


def expanded():
    return ExpandChecks()(notebook(), {WORKER: True})


def outcome(edits=()):
    """The check's outcome on the reference solution (with ``edits``), as LimitedExecute
    records it."""
    return runner.run(CHECK, LocalChannel(reference_namespace("ps1", edits)))


def judged(nb, resources, outputs, outcomes):
    """The test cell after JudgeChecks, given the kernel's ``outputs`` for it and the
    ``outcomes`` of its checks (none: they did not run); (cell, its errors' messages)."""
    nb.cells[1].outputs = [from_dict(o) if isinstance(o, dict) else o for o in outputs]
    resources[OUTCOMES] = {"test_relu_forward": outcomes}
    nb, _ = JudgeChecks()(nb, resources)
    cell = nb.cells[1]
    return cell, [o.evalue for o in cell.outputs if o.output_type == "error"]


def test_the_check_lines_leave_the_cell_and_it_shows_the_visible_tests_after():
    nb, resources = expanded()
    assert "run_check" not in nb.cells[1].source and VISIBLE in nb.cells[1].source
    assert resources[CALLED] == {"test_relu_forward": [CHECK]}
    cell, errors = judged(nb, resources, [], [outcome()])
    assert errors == [] and cell.source == VISIBLE and cell.outputs == []


def test_expanding_checks_outside_nncourse_grade_is_refused():
    with pytest.raises(RefusedGrading):
        ExpandChecks()(notebook(), {})
    with pytest.raises(SystemExit, match="nncourse grade"):
        refuse_stock_autograde(["/venv/bin/nbgrader", "autograde", "ps1"])
    with pytest.raises(SystemExit):
        refuse_stock_autograde(["/venv/lib/site-packages/nbgrader/__main__.py", "autograde"])
    refuse_stock_autograde(["/venv/bin/nbgrader", "validate", "ps1.ipynb"])  # allowed


def test_a_check_that_did_not_run_to_completion_fails_the_cell():
    nb, resources = expanded()
    _, errors = judged(nb, resources, [], [])
    assert errors == ["the hidden tests did not run to completion"]


def test_a_failing_visible_test_is_the_cells_only_failure_and_a_number_is_no_credit():
    nb, resources = expanded()
    failure = new_output("error", ename="AssertionError", evalue="shape",
                         traceback=["AssertionError: shape"])
    cell, errors = judged(nb, resources, [failure], [outcome()])
    assert errors == [VISIBLE_TESTS_FAILED]  # the grader's words, not the kernel's
    nb, resources = expanded()
    number = new_output("execute_result", data={"text/plain": "1.0"}, execution_count=1)
    cell, errors = judged(nb, resources, [number], [outcome()])
    assert errors == [] and cell.outputs == []  # nbgrader would read the number as points


def test_a_checked_cell_keeps_the_verdict_and_nothing_the_kernel_sent():
    nb, resources = expanded()
    printed = new_output("stream", name="stdout", text="debug " * 5000)
    shown = new_output("display_data", data={"text/html": "<b>plot</b>"})
    warned = new_output("stream", name="stderr", text="UserWarning: harmless\n")
    cell, errors = judged(nb, resources, [printed, shown, warned], [outcome(OFF_BY_A_LITTLE)])
    assert len(errors) == 1 and "differs" in errors[0]
    assert [o.output_type for o in cell.outputs] == ["error"]  # stderr is not scored either


def test_from_the_first_checked_cell_on_no_cell_keeps_the_kernels_text_but_the_graders():
    nb, resources = expanded()
    # a cell after the checks prints what the kernel saw, encoded (reversed: past any filter)
    nb.cells.append(new_code_cell("import gc; print(str(gc.get_objects())[::-1])"))
    nb.cells.append(new_markdown_cell("An answer."))  # a cell with no outputs at all
    nb.cells[2].outputs = [from_dict(new_output("stream", name="stdout",
                                                text='{"__ndarray__": ...}'[::-1])),
                           from_dict(new_output("error", ename="E", evalue="}'sesac'{",
                                                traceback=[]))]
    lost = from_dict(new_output("error", ename="KernelLost", evalue="",
                                traceback=["KernelLost: the kernel died"]))
    nb.cells[2].outputs.append(lost)
    resources[GRADER_ERRORS] = [lost]
    nb.cells[0].outputs = [from_dict(new_output("stream", name="stdout", text="before\n"))]
    judged(nb, resources, [], [outcome()])
    assert nb.cells[2].outputs == [lost]
    assert nb.cells[0].outputs[0].text == "before\n"  # run before any check: kept, cleaned
    assert "sesac" not in json.dumps(nb) and "__ndarray__"[::-1] not in json.dumps(nb)


def test_after_tampering_student_cells_keep_nothing_and_test_cells_only_the_verdict():
    nb, resources = expanded()
    resources[REVIEW] = Review({"test_relu_forward": "the code in cell 1 uses exec"}, 0)
    nb.cells[0].outputs = [from_dict(new_output("stream", name="stdout", text="anything"))]
    cell, errors = judged(nb, resources, [], [outcome()])
    assert nb.cells[0].outputs == [] and errors == ["the code in cell 1 uses exec"]


def test_html_is_cleaned_and_scripts_are_dropped():
    nb, resources = expanded()
    nb.cells[0].outputs = [from_dict(new_output("display_data", data={
        "text/html": '<b>ok</b><script>alert(1)</script><img src=x onerror="alert(2)">'
                     '<a href="javascript:alert(3)">link</a>',
        "application/javascript": "alert(4)", "image/svg+xml": "<svg onload='alert(5)'/>",
        "text/plain": "ok"}))]
    judged(nb, resources, [], [outcome()])
    data = nb.cells[0].outputs[0].data
    assert set(data) == {"text/html", "text/plain"}
    assert "<b>ok</b>" in data["text/html"]
    for forbidden in ("<script", "onerror", "javascript:", "<img", "alert("):
        assert forbidden not in data["text/html"], data["text/html"]


def test_nothing_but_the_notebooks_outputs_is_touched_by_sanitising():
    nb, resources = expanded()
    nb.cells[0].outputs = [from_dict(new_output("execute_result", data={"text/plain": "1"},
                                                execution_count=1))]
    judged(nb, resources, [], [outcome()])
    assert nb.cells[0].outputs[0].data == {"text/plain": "1"}
    assert isinstance(nb.cells[0].outputs[0], NotebookNode)


def test_a_copied_test_cell_is_graded_from_its_first_copy_and_the_others_are_plain(caplog):
    nb = notebook()
    first = nb.cells[1]
    copy_ = copy.deepcopy(first)
    copy_.source = "pass  # a copy, emptied"
    nb.cells.append(copy_)
    nb, _ = KeepFirstCopy()(nb, {})
    assert nb.cells[1].metadata["nbgrader"]["grade_id"] == "test_relu_forward"
    assert "nbgrader" not in nb.cells[2].metadata
    assert "cell test_relu_forward appears 2 times (a copied or split cell): graded from " \
           "the first" in caplog.text


@pytest.mark.parametrize("shape, shown", [
    ((4, 5), "(4, 5)"), ((20,), "(20,)"), ((2, 3, 4, 5), "another shape (4 dimensions)"),
    ((0, 10226, 1922, 20664, 553), "another shape (5 dimensions)"),
    ((1, 50_000), "another shape (2 dimensions)")])
def test_a_wrong_shape_is_shown_only_when_near_the_one_expected(shape, shown):
    from nncourse.checks.judging import shape_shown
    assert shape_shown(shape, (5, 4)) == shown


@pytest.mark.parametrize("message, shown", [
    ("ValueError: shapes (3,4) and (5,2) not aligned (in forward, line 3)", "ValueError"),
    ("UserWarning: }'sesac'{ (in f, line 12345)", "UserWarning"),  # text and number chosen
    ("LeakError: anything at all", "an exception of its own class"),
    ("RuntimeWarning: overflow encountered in exp", "RuntimeWarning: overflow encountered in exp"),
    ("RuntimeWarning: overflow encountered in exp; }'sesac'{", "RuntimeWarning"),
])
def test_of_what_student_code_raised_or_warned_the_feedback_shows_only_the_class(message, shown):
    from nncourse.checks.judging import error_shown
    assert error_shown(message) == shown


def test_the_warnings_note_names_only_the_classes_of_the_warnings():
    nb, resources = expanded()
    warned = outcome()
    warned.warned = ["UserWarning: }'sesac'{ :" + "secret"[::-1]]
    cell, errors = judged(nb, resources, [], [warned])
    notes = [o.text for o in cell.outputs if o.output_type == "stream"]
    assert errors == [] and len(notes) == 1 and notes[0].endswith("): UserWarning\n")
