"""The hidden checks against the reference solution, the mutants and equivalent solutions."""

import contextlib
import functools
import io
import json
import re
import warnings

import numpy as np
import pytest

from nncourse import checks
from nncourse.catalogue import load
from nncourse.checks import PROBLEM_SETS, wire
from tests.helpers import reference_namespace, source_notebook

CATALOGUES = {problem_set: load(problem_set) for problem_set in PROBLEM_SETS}
catalogue = CATALOGUES["ps1"]
PS1 = checks.names("ps1")


def failing(namespace, problem_set="ps1"):
    return {name: message for name in checks.names(problem_set)
            if (message := checks.evaluate(name, namespace)) is not None}


@pytest.mark.parametrize("problem_set", CATALOGUES)
def test_reference_solution_passes_every_check(problem_set):
    assert failing(reference_namespace(problem_set), problem_set) == {}


@pytest.mark.parametrize("problem_set, mutant", [
    (ps, m) for ps, c in CATALOGUES.items() for m in c.MUTANTS], ids=lambda v: getattr(v, "name", v))
def test_mutant_fails_exactly_the_checks_it_breaks(problem_set, mutant):
    failures = failing(reference_namespace(problem_set, mutant.edits), problem_set)
    assert set(failures) == set(mutant.breaks), failures
    for message in failures.values():
        assert message and "\n" not in message.strip()


def _test_cells(problem_set):
    """(visible tests, check name) of each test cell of the source notebook, in order."""
    cells = []
    for cell in source_notebook(problem_set).cells:
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("grade"):
            visible, hidden = cell.source.split("### BEGIN HIDDEN TESTS")
            cells.append((visible, re.search(r'run_check\("([\w.]+)"\)', hidden).group(1)))
    return cells


def _visible_failures(problem_set, edits):
    """Checks whose cell's visible tests fail, run in order as in the notebook (a warning
    fails a cell too, as it would reach stderr). Cells that need the notebook's data or
    training runs cannot run here; they are left out (the grading tests run them)."""
    namespace = reference_namespace(problem_set, edits)
    failed = set()
    for visible, name in _test_cells(problem_set):
        with warnings.catch_warnings(record=True) as caught, \
                contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("always")
            try:
                exec(compile(visible, "<visible tests>", "exec"), namespace)
            except Exception:
                failed.add(name)
        if caught:
            failed.add(name)
    return failed


@functools.lru_cache(maxsize=None)
def _not_runnable(problem_set):
    """Cells whose visible tests fail even for the reference solution here (they need data)."""
    return frozenset(_visible_failures(problem_set, []))


@pytest.mark.parametrize("problem_set, mutant", [
    (ps, m) for ps, c in CATALOGUES.items() for m in c.MUTANTS], ids=lambda v: getattr(v, "name", v))
def test_mutant_fails_no_other_cells_visible_tests(problem_set, mutant):
    failed = _visible_failures(problem_set, mutant.edits) - _not_runnable(problem_set)
    assert failed <= set(mutant.breaks), failed - set(mutant.breaks)


@pytest.mark.parametrize("problem_set, edit", [
    (ps, e) for ps, c in CATALOGUES.items() for e in c.EQUIVALENT],
    ids=lambda v: v if isinstance(v, str) else v[0] + ": " + v[2][:40])
def test_equivalent_solution_passes(problem_set, edit):
    assert failing(reference_namespace(problem_set, [edit]), problem_set) == {}


@pytest.mark.parametrize("problem_set", CATALOGUES)
def test_every_check_has_three_mutants(problem_set):
    counts = {name: 0 for name in checks.names(problem_set)}
    for mutant in CATALOGUES[problem_set].MUTANTS:
        for name in mutant.breaks:
            counts[name] += 1
    assert min(counts.values()) >= 3, counts


def test_blank_stubs_fail_every_check_with_a_message():
    namespace = reference_namespace("ps1")
    for name, value in list(namespace.items()):
        if isinstance(value, type) and name != "Module":
            for method in ("forward", "backward"):
                if method in vars(value):
                    setattr(value, method, lambda self, *a, **k: (_ for _ in ()).throw(
                        NotImplementedError()))
    failures = failing(namespace)
    assert set(failures) == set(PS1)
    assert all("NotImplementedError" in message for message in failures.values()), failures


def test_missing_class_is_named_in_the_message():
    namespace = reference_namespace("ps1")
    del namespace["Conv1d"]
    assert "Conv1d is not defined" in checks.evaluate("ps1.conv1d_forward", namespace)


def test_messages_say_what_is_wrong_without_the_answer():
    edits = [("linear_solution", "return input_array @ self.W + self.b",
              "return (input_array @ self.W + self.b).T")]
    message = checks.evaluate("ps1.linear_forward", reference_namespace("ps1", edits))
    assert message == "Linear(3, 5).forward on a batch of 4 has shape (5, 4), expected (4, 5)"


def test_overflow_warning_is_reported_as_such():
    unstable = [m for m in catalogue.MUTANTS if m.name == "sigmoid by the overflowing formula"][0]
    message = checks.evaluate("ps1.sigmoid_forward", reference_namespace("ps1", unstable.edits))
    assert "RuntimeWarning" in message and "overflow" in message


def test_wire_round_trip_keeps_arrays_exact():
    for value in (np.arange(6.0).reshape(2, 3), np.float32(1.5), np.array(np.nan),
                  np.arange(4, dtype=np.int64)):
        decoded = wire.decode(json.loads(json.dumps(wire.encode(value))))
        assert decoded.dtype == np.asarray(value).dtype
        assert np.array_equal(decoded, value, equal_nan=True)


@pytest.mark.parametrize("data", [
    {wire.ARRAY_KEY: {"dtype": "|O", "shape": [1], "data": ""}},
    {wire.ARRAY_KEY: {"dtype": "<f8", "shape": [10 ** 9], "data": ""}},
    {wire.ARRAY_KEY: {"dtype": "<f8", "shape": [2], "data": "AAAA"}},
    {wire.ARRAY_KEY: {"dtype": "<f8", "shape": [-1], "data": ""}},
    {wire.ARRAY_KEY: []}, {"other": 1}, [1.0],
])
def test_decode_refuses_what_is_not_plain_numbers(data):
    with pytest.raises(wire.DecodeError):
        wire.decode(data)
