"""ExpandChecks, JudgeChecks and KeepFirstCopy on a notebook built in code, without a
kernel: the reports a kernel could send (honest, forged, cut short, missing, duplicated),
what the graded cell keeps, and copied cells (nncourse/autograde/preprocessors.py,
nncourse/sanitize.py)."""

import copy
import json

import pytest
from nbformat.notebooknode import NotebookNode, from_dict
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from nncourse import checks
from nncourse.checks import wire
from nncourse.autograde.execute import GRADER_ERRORS
from nncourse.autograde.preprocessors import (REVIEW, VISIBLE_TESTS_FAILED, WORKER,
                                              ExpandChecks, JudgeChecks, KeepFirstCopy,
                                              RefusedGrading, refuse_stock_autograde)
from nncourse.policy import Review
from tests.helpers import reference_namespace

CHECK = "ps4.sigmoid"  # a check still written as probe and judge
VISIBLE = "assert ReLU().forward(np.zeros((1, 1))).shape == (1, 1)"


def notebook():
    cell = new_code_cell(VISIBLE + "\n### BEGIN HIDDEN TESTS\nrun_check(%r)\n"
                         "### END HIDDEN TESTS" % CHECK)
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True,
                                 "grade_id": "test_relu_forward", "points": 1}
    return new_notebook(cells=[new_code_cell("x = 1"), cell])


def expanded():
    nb, resources = ExpandChecks()(notebook(), {WORKER: True})
    (_, [(check, nonce, inputs)]), = resources["nncourse_checks"].values()
    return nb, resources, check, nonce, inputs


def honest_outputs(inputs, edits=()):
    return json.loads(json.dumps(wire.run_probe(checks.get(CHECK).probe,
                                                reference_namespace("ps4", edits), inputs)))


def report(nonce, outputs, check=CHECK):
    return from_dict(new_output("display_data", data={
        checks.MIME: {"check": check, "nonce": nonce, "outputs": outputs}}))


def judged(nb, resources, outputs):
    nb.cells[1].outputs = [from_dict(o) if isinstance(o, dict) else o for o in outputs]
    nb, _ = JudgeChecks()(nb, resources)
    cell = nb.cells[1]
    return cell, [o.evalue for o in cell.outputs if o.output_type == "error"]


def test_the_probe_replaces_the_check_line_and_the_cell_shows_the_visible_tests_after():
    nb, resources, _, nonce, inputs = expanded()
    assert "run_check" not in nb.cells[1].source and nonce in nb.cells[1].source
    cell, errors = judged(nb, resources, [report(nonce, honest_outputs(inputs))])
    assert errors == [] and cell.source == VISIBLE and cell.outputs == []


def test_expanding_checks_outside_nncourse_grade_is_refused():
    with pytest.raises(RefusedGrading):
        ExpandChecks()(notebook(), {})
    with pytest.raises(SystemExit, match="nncourse grade"):
        refuse_stock_autograde(["/venv/bin/nbgrader", "autograde", "ps1"])
    with pytest.raises(SystemExit):
        refuse_stock_autograde(["/venv/lib/site-packages/nbgrader/__main__.py", "autograde"])
    refuse_stock_autograde(["/venv/bin/nbgrader", "validate", "ps1.ipynb"])  # allowed


def forged(inputs, how):
    outputs = honest_outputs(inputs)
    if how == "no results":
        return {}
    if how == "an error in place of the results":
        return {wire.ERROR_KEY: "nothing to see"}
    if how == "a list in place of the results":
        return []
    if how == "a missing result":
        del outputs["matrix"]
    elif how == "a result of the wrong kind":
        outputs["matrix"] = "fine"
    elif how == "an array of the wrong shape":
        outputs["matrix"] = wire.encode(json.loads("[1.0, 2.0]"))
    elif how == "code in place of an array":
        outputs["matrix"] = {"__ndarray__": {"dtype": "O", "shape": [1], "data": "gAN9cQAu"}}
    return outputs


@pytest.mark.parametrize("how", ["no results", "an error in place of the results",
                                 "a list in place of the results", "a missing result",
                                 "a result of the wrong kind", "an array of the wrong shape",
                                 "code in place of an array"])
def test_a_forged_or_cut_short_report_fails_the_cell(how):
    nb, resources, _, nonce, inputs = expanded()
    _, errors = judged(nb, resources, [report(nonce, forged(inputs, how))])
    assert len(errors) == 1, errors


@pytest.mark.parametrize("check", ["ps4.rnn_backward", "ps5.augmentations"])
def test_empty_lists_in_a_report_check_nothing_and_pass_nothing(check):
    outputs = json.loads(json.dumps(wire.encode_outputs(
        {"cases": [], "batches": [], "log": [], "given": [], "results": [], "names": []})))
    assert checks.verdict(checks.get(check), checks.get(check).encoded_inputs(),
                          outputs) is not None


def test_a_report_per_probe_exactly_once_and_with_its_own_nonce():
    nb, resources, _, nonce, inputs = expanded()
    honest = honest_outputs(inputs)
    for outputs in ([],  # none: the probe did not run
                    [report(nonce, honest), report(nonce, honest)],  # twice
                    [report("0" * 32, honest)],  # another nonce
                    [report(nonce, honest), report("0" * 32, honest)]):  # and one more
        cell, errors = judged(copy.deepcopy(nb), resources, outputs)
        assert errors, outputs


def test_a_failing_visible_test_is_the_cells_only_failure_and_a_number_is_no_credit():
    nb, resources, _, nonce, inputs = expanded()
    failure = new_output("error", ename="AssertionError", evalue="shape",
                         traceback=["AssertionError: shape"])
    cell, errors = judged(nb, resources, [failure])
    assert errors == [VISIBLE_TESTS_FAILED]  # the grader's words, not the kernel's
    nb, resources, _, nonce, inputs = expanded()
    number = new_output("execute_result", data={"text/plain": "1.0"}, execution_count=1)
    cell, errors = judged(nb, resources, [report(nonce, honest_outputs(inputs)), number])
    assert errors == [] and cell.outputs == []  # nbgrader would read the number as points


def test_a_checked_cell_keeps_the_verdict_and_nothing_the_kernel_sent():
    nb, resources, _, nonce, inputs = expanded()
    mutant = [("loss_solution", "return np.where(n >= 0, 1.0 / (1.0 + e), e / (1.0 + e))",
               "return np.where(n >= 0, 1.0 / (1.0 + e), e / (1.0 + e)) + 1e-3")]
    printed = new_output("stream", name="stdout", text="debug " * 5000)
    shown = new_output("display_data", data={"text/html": "<b>plot</b>"})
    warned = new_output("stream", name="stderr", text="UserWarning: harmless\n")
    cell, errors = judged(nb, resources, [printed, shown, warned,
                                          report(nonce, honest_outputs(inputs, mutant))])
    assert len(errors) == 1 and "differs" in errors[0]
    assert [o.output_type for o in cell.outputs] == ["error"]  # stderr is not scored either


def test_from_the_first_probe_on_no_cell_keeps_the_kernels_text_but_the_graders_errors():
    nb, resources, _, nonce, inputs = expanded()
    # a cell after the probe prints what the kernel saw, encoded (reversed: past any filter)
    nb.cells.append(new_code_cell("import linecache; print(str(linecache.cache)[::-1])"))
    nb.cells.append(new_markdown_cell("An answer."))  # a cell with no outputs at all
    nb.cells[2].outputs = [from_dict(new_output("stream", name="stdout",
                                                text=nb.cells[1].source[::-1])),
                           from_dict(new_output("error", ename="E", evalue=nonce[::-1],
                                                traceback=[]))]
    lost = from_dict(new_output("error", ename="KernelLost", evalue="",
                                traceback=["KernelLost: the kernel died"]))
    nb.cells[2].outputs.append(lost)
    resources[GRADER_ERRORS] = [lost]
    nb.cells[0].outputs = [from_dict(new_output("stream", name="stdout", text="before\n"))]
    judged(nb, resources, [report(nonce, honest_outputs(inputs))])
    assert nb.cells[2].outputs == [lost]
    assert nb.cells[0].outputs[0].text == "before\n"  # run before any probe: kept, cleaned
    assert nonce[::-1] not in json.dumps(nb) and "__ndarray__"[::-1] not in json.dumps(nb)


def test_what_the_kernel_prints_of_the_hidden_tests_is_removed_everywhere():
    nb, resources, _, nonce, inputs = expanded()
    leak = new_output("stream", name="stdout", text=nb.cells[1].source)  # as In[-1] shows
    nb.cells[0].outputs = [from_dict(leak)]
    cell, errors = judged(nb, resources, [report(nonce, honest_outputs(inputs))])
    assert nonce not in json.dumps(nb) and "def probe_" not in json.dumps(nb)
    assert "removed" in nb.cells[0].outputs[0].text


def test_after_tampering_student_cells_keep_nothing_and_test_cells_only_the_verdict():
    nb, resources, _, nonce, inputs = expanded()
    resources[REVIEW] = Review({"test_relu_forward": "the code in cell 1 uses exec"}, 0)
    nb.cells[0].outputs = [from_dict(new_output("stream", name="stdout", text="anything"))]
    cell, errors = judged(nb, resources, [report(nonce, honest_outputs(inputs))])
    assert nb.cells[0].outputs == [] and errors == ["the code in cell 1 uses exec"]


def test_html_is_cleaned_and_scripts_are_dropped():
    nb, resources, _, nonce, inputs = expanded()
    nb.cells[0].outputs = [from_dict(new_output("display_data", data={
        "text/html": '<b>ok</b><script>alert(1)</script><img src=x onerror="alert(2)">'
                     '<a href="javascript:alert(3)">link</a>',
        "application/javascript": "alert(4)", "image/svg+xml": "<svg onload='alert(5)'/>",
        "text/plain": "ok"}))]
    judged(nb, resources, [report(nonce, honest_outputs(inputs))])
    data = nb.cells[0].outputs[0].data
    assert set(data) == {"text/html", "text/plain"}
    assert "<b>ok</b>" in data["text/html"]
    for forbidden in ("<script", "onerror", "javascript:", "<img", "alert("):
        assert forbidden not in data["text/html"], data["text/html"]


def test_nothing_but_the_notebooks_outputs_is_touched_by_sanitising():
    nb, resources, _, nonce, inputs = expanded()
    nb.cells[0].outputs = [from_dict(new_output("execute_result", data={"text/plain": "1"},
                                                execution_count=1))]
    judged(nb, resources, [report(nonce, honest_outputs(inputs))])
    assert nb.cells[0].outputs[0].data == {"text/plain": "1"}
    assert isinstance(nb.cells[0].outputs[0], NotebookNode)


def test_a_failure_quoting_the_hidden_tests_is_cleaned_too():
    nb, resources, _, nonce, inputs = expanded()
    quoted = nb.cells[1].source[-300:]  # In[-1]'s end: the probe's encoded inputs
    assert "__ndarray__" in quoted
    cell, errors = judged(nb, resources, [report(nonce, {wire.ERROR_KEY: "ValueError: " + quoted})])
    assert len(errors) == 1 and "__ndarray__" not in errors[0], errors


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
    nb, resources, _, nonce, inputs = expanded()
    outputs = honest_outputs(inputs)
    outputs[wire.WARNINGS_KEY] = ["UserWarning: }'sesac'{ :" + nonce[::-1]]
    cell, errors = judged(nb, resources, [report(nonce, outputs)])
    notes = [o.text for o in cell.outputs if o.output_type == "stream"]
    assert errors == [] and len(notes) == 1 and notes[0].endswith("): UserWarning\n")
