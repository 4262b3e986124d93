"""Naming the mistake (nncourse/catalogue/diagnosis.py, JudgeChecks): every catalogued mistake,
run as a student's kernel would run it, gets its own explanation in the failing cell; correct
work gets none; what a kernel reports cannot choose or hide an explanation."""

import json

import numpy as np
import pytest
import torch
from nbformat.notebooknode import from_dict
from nbformat.v4 import new_code_cell, new_notebook, new_output

from nncourse import checks
from nncourse.autograde.preprocessors import (MISTAKES, REVIEW, WORKER, ExpandChecks,
                                              JudgeChecks)
from nncourse.catalogue import diagnosis, load
from nncourse.autograde.execute import OUTCOMES
from nncourse.checks import PROBLEM_SETS, runner, wire
from nncourse.checks.remote import LocalChannel
from nncourse.policy import Review
from tests.helpers import expect_named, grade, make_course, submit

CATALOGUES = {ps: load(ps) for ps in PROBLEM_SETS}


def judged_cell(check_name, outputs, review=None, **settings):
    """The test cell of ``check_name`` after JudgeChecks, given ``outputs`` (encoded) as the
    kernel's report, or for a check written as a test function the Outcome of its run (and
    ``review``, what reading the submission found); (cell, resources)."""
    cell = new_code_cell("### BEGIN HIDDEN TESTS\nrun_check(%r)\n### END HIDDEN TESTS"
                         % check_name)
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True,
                                 "grade_id": "test_cell", "points": 1}
    nb, resources = ExpandChecks()(new_notebook(cells=[cell]), {WORKER: True, REVIEW: review})
    if isinstance(outputs, runner.Outcome):
        resources[OUTCOMES] = {"test_cell": [outputs]}
    else:
        (_, [(_, nonce, _)]), = resources["nncourse_checks"].values()
        nb.cells[0].outputs = [from_dict(new_output("display_data", data={
            checks.MIME: {"check": check_name, "nonce": nonce, "outputs": outputs}}))]
    from traitlets.config import Config
    config = Config({"JudgeChecks": settings})
    nb, resources = JudgeChecks(config=config)(nb, resources)
    return nb.cells[0], resources


def kernel_outputs(problem_set, check_name, edits=()):
    """What a student's kernel would report for ``check_name`` with the reference solution
    under ``edits``, from a random state of its own (the Outcome of a test function's run)."""
    np.random.seed(np.random.randint(2**31))
    torch.manual_seed(np.random.randint(2**31))
    if runner.function_of(check_name) is not None:
        return runner.run(check_name, LocalChannel(diagnosis.namespace(problem_set, edits)))
    encoded = wire.run_probe(checks.get(check_name).probe,
                             diagnosis.namespace(problem_set, edits),
                             checks.get(check_name).encoded_inputs())
    return json.loads(json.dumps(encoded))


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


BIAS = ("ps4", "sigmoid by the overflowing formula", "ps4.sigmoid")


def test_a_kernel_cannot_plant_a_diagnosis_of_its_own():
    problem_set, name, check_name = BIAS
    outputs = kernel_outputs(problem_set, check_name, _mutant(problem_set, name).edits)
    # an error whose text pretends to be the grader's diagnosis, in place of a result
    forged = {key: {wire.ERROR_KEY: "ValueError: x\n%syou did nothing wrong" % diagnosis.PREFIX}
              for key in outputs}
    cell, resources = judged_cell(check_name, forged)
    errors = [o for o in cell.outputs if o.output_type == "error"]
    assert errors and MISTAKES not in resources
    assert not any(diagnosis.PREFIX.strip() in o.evalue + "".join(o.traceback) for o in errors)


def test_a_correct_behaviour_gets_no_diagnosis_whatever_else_the_report_holds():
    problem_set, _, check_name = BIAS
    outputs = dict(kernel_outputs(problem_set, check_name), **{
        wire.WARNINGS_KEY: ["%s%s" % (diagnosis.PREFIX, _mutant(*BIAS[:2]).explanation)]})
    cell, resources = judged_cell(check_name, outputs)
    assert likely(cell) == [] and MISTAKES not in resources
    assert not [o for o in cell.outputs if o.output_type == "error"]


def test_warnings_do_not_hide_a_diagnosis_and_it_can_be_switched_off():
    problem_set, name, check_name = BIAS
    mutant = _mutant(problem_set, name)
    outputs = dict(kernel_outputs(problem_set, check_name, mutant.edits),
                   **{wire.WARNINGS_KEY: ["UserWarning: something"]})
    cell, resources = judged_cell(check_name, outputs)
    assert likely(cell) == [diagnosis.PREFIX + mutant.explanation]
    assert resources[MISTAKES] == [{"cell": "test_cell", "check": check_name, "mistake": name}]
    cell, resources = judged_cell(check_name, kernel_outputs(problem_set, check_name,
                                                             mutant.edits), diagnose=False)
    assert likely(cell) == [] and MISTAKES not in resources
    assert [o for o in cell.outputs if o.output_type == "error"]  # it still fails


def test_after_code_that_tampers_with_the_kernel_no_mistake_is_named():
    problem_set, name, check_name = BIAS
    outputs = kernel_outputs(problem_set, check_name, _mutant(problem_set, name).edits)
    cell, resources = judged_cell(check_name, outputs, review=Review({}, tampering_cell=0))
    assert likely(cell) == [] and MISTAKES not in resources


def test_outputs_are_compared_as_plain_data_within_tolerance():
    same = diagnosis.same
    assert same({"a": [np.ones(3), 2.0]}, {"a": [np.ones(3) * (1 + 1e-6), 2.0]})
    assert not same({"a": np.ones(3)}, {"a": np.ones(4)})
    assert not same({"a": 1.0}, {"a": 1.0, "b": 2.0})
    assert not same(np.ones(2), "1.0 1.0") and not same(True, 1) and not same(None, 0.0)
    assert same(wire.StudentError("ValueError: shapes (in forward, line 3)"),
                wire.StudentError("ValueError: shapes (in forward, line 9)"))
    assert not same(wire.StudentError("ValueError: shapes"), wire.StudentError("KeyError: 0"))


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
