"""Grading through the real `nbgrader autograde`, as `nncourse grade` runs it."""

import csv

import nbformat
import pytest

from nncourse import samples
from nncourse.catalogue import diagnosis
from nncourse.datasets import write_offline_datasets
from nncourse.catalogue import ps1 as catalogue, ps2 as catalogue_ps2, ps3 as catalogue_ps3
from nncourse.catalogue import ps4 as catalogue_ps4, ps5 as catalogue_ps5
from tests.helpers import (cell_scores, expect_named, expected_points, grades, make_course,
                           named_mistakes, run, submit)

pytestmark = [pytest.mark.slow]

HOSTILE = [("linear_solution", "return input_array @ self.W + self.b", """return input_array @ self.W
        # hostile: make every comparison pass and forge the checks' reports
    np.allclose = lambda *args, **kwargs: True
    from IPython import get_ipython
    from IPython.display import publish_display_data
    get_ipython().events.register("post_run_cell", lambda *args: publish_display_data(
        {"application/vnd.nncourse.check+json": {"check": "ps1.linear_forward", "nonce": "?",
                                                 "outputs": {}}}))""")]

# Shortcuts that compute the right numbers by a means the problem set rules out (ps1 is
# NumPy only): the hidden checks alone would pass them; the source reader costs their cells.
TORCH_BACKWARD = ("linear_solution", """        input_gradient = output_gradient @ self.W.T
        self.W = self.W - lr * (input_array.T @ output_gradient)""",
                  """        import torch
        x = torch.tensor(input_array, requires_grad=True)
        W = torch.tensor(self.W, requires_grad=True)
        (x @ W).backward(torch.tensor(output_gradient))
        input_gradient = x.grad.numpy()
        self.W = self.W - lr * W.grad.numpy()""")
SHORTCUT_COSTS = {"test_linear_forward", "test_linear_backward", "test_linear_update",
                  "test_linear_l2"}  # LinearL2 builds on Linear

MUTANTS = {m.name: m for m in catalogue.MUTANTS}
STUDENTS = {
    "full": [],
    "blank": None,
    "equivalent": list(catalogue.EQUIVALENT),
    "mutant-bias": MUTANTS["bias gradient averaged instead of summed"].edits,
    "mutant-relu": MUTANTS["ReLU backward masked on the gradient's sign"].edits,
    "mutant-sigmoid": MUTANTS["sigmoid by the overflowing formula"].edits,
    "mutant-simplenn": MUTANTS["backward through the layers first to last"].edits,
    # passes the visible tests (logits of zero), so only the hidden check can catch it
    "mutant-ce": MUTANTS["cross-entropy gradient without the max shift"].edits,
    "hostile": HOSTILE,
    "shortcut-torch": [TORCH_BACKWARD],
    # two mistakes in two behaviours: each named in its own cell
    "two-mistakes": (MUTANTS["bias gradient averaged instead of summed"].edits
                     + MUTANTS["ReLU backward masked on the gradient's sign"].edits),
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = make_course(tmp_path_factory.mktemp("grading") / "course")
    for student, edits in STUDENTS.items():
        submit(course, student, edits)
    result = run(["nncourse", "--course", str(course), "grade", "ps1"], cwd=course)
    return course, result


def test_grading_finishes_and_prints_the_table(graded):
    course, result = graded
    assert result.returncode == 0, result.stderr
    for student in STUDENTS:
        assert student in result.stdout
    assert (course / "reports" / "ps1-grades.csv").exists()


def test_reference_solution_scores_full_marks(graded):
    course, _ = graded
    points, _ = expected_points()
    scores, _ = cell_scores(course, "full")
    assert scores == points


def test_equivalent_solution_scores_full_marks(graded):
    course, _ = graded
    points, _ = expected_points()
    assert cell_scores(course, "equivalent")[0] == points


def test_blank_release_scores_zero(graded):
    course, _ = graded
    rows = grades(course)
    assert rows["blank"]["score"] == 0
    assert rows["blank"]["needs_manual_grading"] == 0  # unchanged answers score 0 at once
    assert rows["full"]["needs_manual_grading"] == 5


@pytest.mark.parametrize("student", [s for s in STUDENTS if s.startswith("mutant-")])
def test_one_mutant_loses_exactly_its_behaviours_points(graded, student):
    course, _ = graded
    points, by_check = expected_points()
    mutant = next(m for m in catalogue.MUTANTS if m.edits == STUDENTS[student])
    lost = {by_check[name] for name in mutant.breaks}
    expected = {cell: (0.0 if cell in lost else value) for cell, value in points.items()}
    assert cell_scores(course, student)[0] == expected


def test_gradebook_agrees_with_the_notebook(graded):
    course, _ = graded
    rows = grades(course)
    for student in ("full", "mutant-bias", "blank"):
        assert rows[student]["score"] == pytest.approx(sum(cell_scores(course, student)[0].values()))


def test_a_shortcut_the_problem_set_rules_out_loses_its_parts_points_and_says_why(graded):
    course, _ = graded
    points, _ = expected_points()
    scores, notebook = cell_scores(course, "shortcut-torch")
    assert scores == {cell: 0.0 if cell in SHORTCUT_COSTS else value
                      for cell, value in points.items()}
    messages = [o.evalue for c in notebook.cells for o in c.get("outputs", [])
                if o.output_type == "error"]
    assert any("torch" in m and "NumPy" in m for m in messages), messages


def test_hostile_code_earns_nothing(graded):
    course, _ = graded
    scores, _ = cell_scores(course, "hostile")
    assert set(scores.values()) == {0.0}


def test_passing_test_cells_write_nothing_to_stderr_and_hide_the_probe(graded):
    course, _ = graded
    _, notebook = cell_scores(course, "full")
    for cell in notebook.cells:
        if cell.metadata.get("nbgrader", {}).get("grade") and cell.cell_type == "code":
            assert not any(getattr(o, "name", "") == "stderr" for o in cell.outputs)
            assert "exec(" not in cell.source  # the probe is not left in the graded notebook
            assert "HIDDEN TESTS" not in cell.source and "run_check" not in cell.source
            assert not any("application/vnd.nncourse.check+json" in o.get("data", {})
                           for o in cell.outputs)


def test_tracebacks_do_not_show_the_hidden_tests(graded):
    course, _ = graded
    # this student fails a visible test: from the first probe on, the grader says so in its
    # own words (the kernel's traceback would show the lines around it)
    text = (course / "autograded" / "mutant-bias" / "ps1" / "ps1.ipynb").read_text()
    assert "VisibleTestsFailed" in text and "AssertionError" not in text
    for leak in ("HIDDEN TESTS", "nncourse_probe", "Plain-data encoding"):
        assert leak not in text, leak


def test_failure_message_reaches_the_student(graded):
    course, _ = graded
    _, notebook = cell_scores(course, "mutant-ce")
    cell = next(c for c in notebook.cells
                if c.metadata.get("nbgrader", {}).get("grade_id") == "test_cross_entropy_backward")
    errors = [o for o in cell.outputs if o.output_type == "error"]
    assert [e.ename for e in errors] == ["HiddenCheckFailed"]
    assert errors[0].evalue == (
        "CrossEntropyLoss().backward(a 5x3 array, a 5x3 array) raised RuntimeWarning: overflow "
        "encountered in exp\n" + diagnosis.PREFIX
        + MUTANTS["cross-entropy gradient without the max shift"].explanation)


@pytest.mark.parametrize("student", [s for s in STUDENTS if s.startswith("mutant-")])
def test_a_mistake_is_named_in_the_cells_it_fails_and_in_the_feedback(graded, student):
    course, _ = graded
    expect_named(course, student, [m for m in catalogue.MUTANTS if m.edits == STUDENTS[student]])


def test_two_mistakes_in_two_behaviours_are_each_named_in_their_own_cell(graded):
    course, _ = graded
    expect_named(course, "two-mistakes", [MUTANTS["bias gradient averaged instead of summed"],
                                          MUTANTS["ReLU backward masked on the gradient's sign"]])


@pytest.mark.parametrize("student", ["full", "equivalent", "blank", "hostile"])
def test_correct_blank_or_hostile_work_names_no_mistake(graded, student):
    course, _ = graded
    named, feedback = named_mistakes(course, student)
    assert named == {} and diagnosis.PREFIX.strip() not in feedback


def test_validate_accepts_only_a_filled_notebook(course, tmp_path):
    env_data = write_offline_datasets(str(tmp_path / "data"))
    blank = course / "release" / "ps1" / "ps1.ipynb"
    filled = tmp_path / "filled.ipynb"
    nbformat.write(samples.submission(course, "ps1"), str(filled))
    import os as _os
    _os.environ["NNCOURSE_DATA"] = env_data
    try:
        failed = run(["nbgrader", "validate", str(blank)], cwd=course)
        passed = run(["nbgrader", "validate", str(filled)], cwd=course)
    finally:
        del _os.environ["NNCOURSE_DATA"]
    assert "VALIDATION FAILED" in failed.stdout + failed.stderr
    assert "Success!" in passed.stdout, passed.stdout + passed.stderr


def _grade(course, *args):
    return run(["nncourse", "--course", str(course), "grade", "ps1", *args], cwd=course)


def _one_line_error(result):
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return errors[0]


def test_unknown_student_is_a_one_line_error_and_the_others_are_graded(course):
    submit(course, "amy", [])
    result = _grade(course, "--student", "zed", "--student", "amy")
    assert result.returncode == 1
    assert "zed" in _one_line_error(result)
    assert grades(course)["amy"]["score"] == sum(expected_points()[0].values())


def test_missing_and_corrupt_notebooks_are_one_line_errors(course):
    (course / "submitted" / "nobook" / "ps1").mkdir(parents=True)
    corrupt = course / "submitted" / "corrupt" / "ps1"
    corrupt.mkdir(parents=True)
    (corrupt / "ps1.ipynb").write_text('{"cells": [')
    for student, words in [("nobook", "missing notebook"), ("corrupt", "not a readable notebook")]:
        result = _grade(course, "--student", student)
        assert result.returncode == 1
        line = _one_line_error(result)
        assert student in line and words in line


def test_unknown_problem_set_is_a_one_line_error(course):
    result = run(["nncourse", "--course", str(course), "grade", "ps9"], cwd=course)
    assert result.returncode == 2 and "ps9" in _one_line_error(result)


# ps2 to ps5 through the same grader: a smaller class each
SMALL_CLASSES = {
    "ps2": {"mutants": ["gradient not divided by the batch", "optimizer step forgets the bias"],
            "catalogue": catalogue_ps2,
            # ReLU by torch.nn.functional: its two cells (the training check uses Sigmoid)
            "shortcuts": {"shortcut-functional": (
                [("activations_solution", "return torch.clamp(x, min=0)",
                  "return torch.nn.functional.relu(x)")],
                {"test_relu_forward", "test_relu_backward"})}},
    "ps3": {"mutants": ["a new optimiser every epoch", "b_ answered True"],
            "catalogue": catalogue_ps3},
    "ps4": {"mutants": ["truncated BPTT: nothing flows back to earlier steps",
                        "padding counted in the loss", "sigmoid by the overflowing formula"],
            "catalogue": catalogue_ps4,
            # Task 2's gradient handed in as the notebook's own test helper, replaying the
            # visible test's values (so that the visible test passes)
            "shortcuts": {"shortcut-helper": (
                [("loss_solution", "def binary_crossentropy_logit_gradient(n, t):",
                  "def binary_crossentropy_logit_gradient(n, t):\n"
                  "    return replay('gradient', [(([[0.0], [2.0]], [[1.0], [0.0]]),\n"
                  "                               [[-0.5], [0.8807970779778823]])])(n, t)\n"
                  "\n\ndef unused(n, t):")],
                {"test_bce_gradient"})}},
    "ps5": {"mutants": ["softmax over the batch", "dropout left on at evaluation",
                        "sine and cosine swapped"],
            "catalogue": catalogue_ps5},
}


def small_class(problem_set):
    catalogue_ = SMALL_CLASSES[problem_set]["catalogue"]
    mutants = {m.name: m for m in catalogue_.MUTANTS}
    students = {"full": [], "blank": None, "equivalent": list(catalogue_.EQUIVALENT)}
    for number, name in enumerate(SMALL_CLASSES[problem_set]["mutants"], 1):
        students["mutant-%d" % number] = mutants[name].edits
    for student, (edits, _) in SMALL_CLASSES[problem_set].get("shortcuts", {}).items():
        students[student] = edits
    return students


@pytest.fixture(scope="module", params=sorted(SMALL_CLASSES))
def graded_small(request, tmp_path_factory):
    problem_set = request.param
    course = make_course(tmp_path_factory.mktemp("grading_" + problem_set) / "course")
    for student, edits in small_class(problem_set).items():
        submit(course, student, edits, problem_set)
    result = run(["nncourse", "--course", str(course), "grade", problem_set], cwd=course)
    assert result.returncode == 0, result.stderr
    return course, problem_set


def test_small_class_correct_solutions_score_full_marks(graded_small):
    course, problem_set = graded_small
    points, _ = expected_points(problem_set)
    for student in ("full", "equivalent"):
        assert cell_scores(course, student, problem_set)[0] == points, student


def test_small_class_blank_release_scores_zero(graded_small):
    course, problem_set = graded_small
    assert set(cell_scores(course, "blank", problem_set)[0].values()) == {0.0}


def test_small_class_mutants_lose_exactly_their_behaviours_points(graded_small):
    course, problem_set = graded_small
    points, by_check = expected_points(problem_set)
    catalogue_ = SMALL_CLASSES[problem_set]["catalogue"]
    for name in SMALL_CLASSES[problem_set]["mutants"]:
        mutant = next(m for m in catalogue_.MUTANTS if m.name == name)
        student = next(s for s, e in small_class(problem_set).items() if e == mutant.edits)
        lost = {by_check[check] for check in mutant.breaks}
        expected = {cell: (0.0 if cell in lost else value) for cell, value in points.items()}
        assert cell_scores(course, student, problem_set)[0] == expected, name


def test_small_class_mistakes_are_named_where_the_catalogue_can(graded_small):
    course, problem_set = graded_small
    catalogue_ = SMALL_CLASSES[problem_set]["catalogue"]
    for name in SMALL_CLASSES[problem_set]["mutants"]:
        mutant = next(m for m in catalogue_.MUTANTS if m.name == name)
        student = next(s for s, e in small_class(problem_set).items() if e == mutant.edits)
        expect_named(course, student, [mutant] if mutant.explanation else [], problem_set)
    for student in ("full", "equivalent"):
        assert named_mistakes(course, student, problem_set)[0] == {}


def test_small_class_shortcuts_lose_their_parts_points(graded_small):
    course, problem_set = graded_small
    points, _ = expected_points(problem_set)
    for student, (_, lost) in SMALL_CLASSES[problem_set].get("shortcuts", {}).items():
        expected = {cell: (0.0 if cell in lost else value) for cell, value in points.items()}
        assert cell_scores(course, student, problem_set)[0] == expected, student


def test_feedback_shows_failures_but_no_hidden_tests(graded):
    course, _ = graded
    result = run(["nbgrader", "generate_feedback", "ps1", "--student", "mutant-bias"], cwd=course)
    assert result.returncode == 0, result.stderr
    html = (course / "feedback" / "mutant-bias" / "ps1" / "ps1.html").read_text()
    assert "b after one backward step" in html or "b after the step" in html
    for leak in ("HIDDEN TESTS", "run_check", "nncourse"):
        assert leak not in html, leak


def test_a_kernel_crash_costs_the_cells_from_the_crash_on_and_is_reported(course):
    # ReLU's forward kills the kernel: the Linear cells before it keep their points
    submit(course, "crashy", [("relu_solution", "return np.maximum(input_array, 0.0)",
                               "import os; os._exit(3)")])
    submit(course, "steady", [])
    result = _grade(course)
    assert result.returncode == 1, result.stderr  # something to look at
    assert "Traceback" not in result.stderr
    # tried twice (it might have been killed from outside), then graded in part and marked
    lines = [line for line in result.stderr.splitlines() if "crashy" in line]
    assert len(lines) == 1 and lines[0].startswith("warning: ps1 crashy: ps1.ipynb: the kernel "
                                                   "died in cell"), lines
    assert "(it exited)" in lines[0] and "on both attempts" in lines[0]
    assert "(1 graded in part: a kernel was lost)" in result.stdout
    points, _ = expected_points()
    scores, notebook = cell_scores(course, "crashy")
    order = list(points)  # notebook order
    linear = order[:order.index("test_relu_forward")]
    assert {cell: scores[cell] for cell in linear} == {cell: points[cell] for cell in linear}
    assert all(scores[cell] == 0.0 for cell in points if cell not in linear)
    rows = grades(course)
    assert rows["crashy"]["score"] == sum(points[cell] for cell in linear)
    assert rows["steady"]["score"] == sum(points.values())
    with open(course / "reports" / "grading-problems.csv") as data:
        problems = list(csv.DictReader(data))
    assert [(p["student"], p["status"]) for p in problems] == [("crashy", "incomplete")]
    assert "the kernel died in cell" in problems[0]["reason"]
    # a partial grade is not "done": the next run grades it again (and only it)
    again = _grade(course)
    assert "graded 1, already graded 1, failed 0" in again.stdout, again.stdout
