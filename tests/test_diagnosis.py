"""Naming the mistake (nncourse/catalogue/diagnosis.py, JudgeChecks): every catalogued mistake,
run as a student's kernel would run it, gets its own explanation in the failing cell; correct
work gets none; what a kernel reports cannot choose or hide an explanation."""

import numpy as np
import pytest
import torch
from nbformat.v4 import new_code_cell, new_notebook

from nncourse import checks
from nncourse.autograde.preprocessors import (MISTAKES, REVIEW, WORKER, ExpandChecks,
                                              JudgeChecks)
from nncourse.autograde.execute import OUTCOMES
from nncourse.catalogue import diagnosis, load
from nncourse.checks import PROBLEM_SETS, runner
from nncourse.checks.remote import LocalChannel, StudentError
from nncourse.policy import Review
from tests.helpers import expect_named, grade, make_course, submit

CATALOGUES = {ps: load(ps) for ps in PROBLEM_SETS}


def judged_cell(check_name, outcome, review=None, **settings):
    """The test cell of ``check_name`` after JudgeChecks, given the Outcome of the grader's
    run of its check (and ``review``, what reading the submission found); (cell,
    resources)."""
    cell = new_code_cell("### BEGIN HIDDEN TESTS\nrun_check(%r)\n### END HIDDEN TESTS"
                         % check_name)
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True,
                                 "grade_id": "test_cell", "points": 1}
    nb, resources = ExpandChecks()(new_notebook(cells=[cell]), {WORKER: True, REVIEW: review})
    resources[OUTCOMES] = {"test_cell": [outcome]}
    from traitlets.config import Config
    config = Config({"JudgeChecks": settings})
    nb, resources = JudgeChecks(config=config)(nb, resources)
    return nb.cells[0], resources


def kernel_outputs(problem_set, check_name, edits=()):
    """The Outcome of ``check_name`` run on the reference solution under ``edits``, from a
    random state of the process's own (the kernel is seeded before each case)."""
    np.random.seed(np.random.randint(2**31))
    torch.manual_seed(np.random.randint(2**31))
    return runner.run(check_name, LocalChannel(diagnosis.namespace(problem_set, edits)))


def likely(cell):
    return [line for output in cell.outputs if output.output_type == "error"
            for line in output.evalue.split("\n") if line.startswith(diagnosis.PREFIX)]


@pytest.mark.parametrize("problem_set", PROBLEM_SETS)
def test_every_catalogued_mistake_gets_its_own_explanation(problem_set):
    missed = []
    for mutant in CATALOGUES[problem_set].MUTANTS:
        named = set()
        for check_name in sorted(mutant.breaks):
            cell, resources = judged_cell(check_name,
                                          kernel_outputs(problem_set, check_name, mutant.edits))
            named |= set(likely(cell))
            for found in resources.get(MISTAKES, []):
                assert found["check"] == check_name and found["cell"] == "test_cell"
        if mutant.explanation and named != {diagnosis.PREFIX + mutant.explanation}:
            missed.append((mutant.name, named))
    assert missed == []


def test_nine_in_ten_mistakes_are_diagnosed_and_the_rest_say_why():
    mutants = [m for catalogue in CATALOGUES.values() for m in catalogue.MUTANTS]
    assert all(bool(m.explanation) != bool(m.undiagnosable) for m in mutants)
    assert sum(bool(m.explanation) for m in mutants) >= 0.9 * len(mutants)


@pytest.mark.parametrize("problem_set", PROBLEM_SETS)
def test_the_reference_and_every_rewrite_get_no_diagnosis(problem_set):
    catalogue = CATALOGUES[problem_set]
    for edits in [[]] + [[edit] for edit in catalogue.EQUIVALENT]:
        for check_name in checks.names(problem_set):
            cell, resources = judged_cell(check_name,
                                          kernel_outputs(problem_set, check_name, edits))
            assert likely(cell) == [] and MISTAKES not in resources, (check_name, edits)


def _mutant(problem_set, name):
    return next(m for m in CATALOGUES[problem_set].MUTANTS if m.name == name)


BIAS = ("ps1", "bias gradient averaged instead of summed", "ps1.linear_update")


def test_a_kernel_cannot_plant_a_diagnosis_of_its_own():
    """Code that raises with the text of a diagnosis: the message names the class only, and
    no catalogued mistake matches what it replied."""
    problem_set, _, check_name = BIAS
    planted = [("linear_solution", "self.b = self.b - lr * output_gradient.sum(axis=0, "
                                   "keepdims=True)",
                "raise ValueError(%r)" % (diagnosis.PREFIX + "you did nothing wrong"))]
    cell, resources = judged_cell(check_name, kernel_outputs(problem_set, check_name, planted))
    errors = [o for o in cell.outputs if o.output_type == "error"]
    assert errors and MISTAKES not in resources
    assert not any("did nothing wrong" in o.evalue + "".join(o.traceback) for o in errors)


def test_a_correct_behaviour_gets_no_diagnosis_whatever_it_warned():
    problem_set, name, check_name = BIAS
    outcome = kernel_outputs(problem_set, check_name)
    outcome.warned = ["%s%s" % (diagnosis.PREFIX, _mutant(problem_set, name).explanation)]
    cell, resources = judged_cell(check_name, outcome)
    assert likely(cell) == [] and MISTAKES not in resources
    assert not [o for o in cell.outputs if o.output_type == "error"]


def test_warnings_do_not_hide_a_diagnosis_and_it_can_be_switched_off():
    problem_set, name, check_name = BIAS
    mutant = _mutant(problem_set, name)
    outcome = kernel_outputs(problem_set, check_name, mutant.edits)
    outcome.warned = ["UserWarning: something"]
    cell, resources = judged_cell(check_name, outcome)
    assert likely(cell) == [diagnosis.PREFIX + mutant.explanation]
    assert resources[MISTAKES] == [{"cell": "test_cell", "check": check_name, "mistake": name}]
    cell, resources = judged_cell(check_name, kernel_outputs(problem_set, check_name,
                                                             mutant.edits), diagnose=False)
    assert likely(cell) == [] and MISTAKES not in resources
    assert [o for o in cell.outputs if o.output_type == "error"]  # it still fails


def test_after_code_that_tampers_with_the_kernel_no_mistake_is_named():
    problem_set, name, check_name = BIAS
    outcome = kernel_outputs(problem_set, check_name, _mutant(problem_set, name).edits)
    cell, resources = judged_cell(check_name, outcome, review=Review({}, tampering_cell=0))
    assert likely(cell) == [] and MISTAKES not in resources


def test_outputs_are_compared_as_plain_data_within_tolerance():
    same = diagnosis.same
    assert same({"a": [np.ones(3), 2.0]}, {"a": [np.ones(3) * (1 + 1e-6), 2.0]})
    assert not same({"a": np.ones(3)}, {"a": np.ones(4)})
    assert not same({"a": 1.0}, {"a": 1.0, "b": 2.0})
    assert not same(np.ones(2), "1.0 1.0") and not same(True, 1) and not same(None, 0.0)
    assert same(StudentError("ValueError: shapes (in forward, line 3)"),
                StudentError("ValueError: shapes (in forward, line 9)"))
    assert not same(StudentError("ValueError: shapes"), StudentError("KeyError: 0"))


@pytest.mark.slow
def test_every_ps1_mistake_handed_in_alone_is_named_in_its_feedback(tmp_path_factory):
    course = make_course(tmp_path_factory.mktemp("every_mistake") / "course")
    mutants = {"mistake-%02d" % number: mutant
               for number, mutant in enumerate(CATALOGUES["ps1"].MUTANTS)}
    for student, mutant in mutants.items():
        submit(course, student, mutant.edits)
    result = grade(course, "ps1", "--workers", "2")
    assert result.returncode == 0, result.stderr
    for student, mutant in mutants.items():
        if mutant.explanation:
            expect_named(course, student, [mutant])
    assert sum(bool(m.explanation) for m in mutants.values()) >= 0.9 * len(mutants)
