"""`nncourse check psN` (nncourse/authoring.py) and how problem sets are found: a problem
set is source/psN/ with its checks in nncourse/checks/psN.py."""

import shutil

import pytest

from nncourse import authoring, checks
from nncourse.catalogue import Mutant, diagnosis, load
from tests.helpers import make_course, run


def test_a_problem_set_ready_to_release_passes_every_item():
    result = run(["nncourse", "check", "ps1"], cwd=".")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len([line for line in lines if line.startswith("ok   ")]) == 8
    assert lines[-1].startswith("ps1: ready to release in ")


def test_a_catalogue_entry_that_does_not_hold_fails_its_item(monkeypatch):
    catalogue = load("ps1")
    wrong = Mutant("a mistake declared in the wrong place",
                   [("relu_solution", "return np.maximum(input_array, 0.0)",
                     "return np.maximum(input_array, 0.0) + 1e-3")],
                   frozenset({"ps1.sigmoid_forward"}), "")
    broken_rewrite = ("relu_solution", "return np.maximum(input_array, 0.0)",
                      "return np.abs(input_array)")
    monkeypatch.setattr(catalogue, "MUTANTS", [wrong])
    monkeypatch.setattr(catalogue, "EQUIVALENT", [broken_rewrite])
    try:
        findings = {f.what.split(" (")[0]: f.problems
                    for f in authoring.check_problem_set("ps1")}
    finally:  # what diagnosis kept of this made-up catalogue
        diagnosis.mistake_outputs.cache_clear()
    mistakes = findings["every catalogued mistake"]
    assert mistakes == ["a mistake declared in the wrong place breaks ['ps1.relu_forward'], "
                        "declares ['ps1.sigmoid_forward']"]
    rewrites = next(problems for what, problems in findings.items() if "rewrite" in what)
    assert len(rewrites) == 1 and "ps1.relu_forward" in rewrites[0]
    assert findings["the reference passes every check"] == []


def test_a_problem_set_without_checks_fails_release_check_and_grade_with_one_line(tmp_path):
    course = make_course(tmp_path / "course")
    shutil.copytree(course / "source" / "ps1", course / "source" / "ps9")
    (course / "source" / "ps9" / "ps1.ipynb").rename(course / "source" / "ps9" / "ps9.ipynb")
    shutil.copytree(course / "release" / "ps1", course / "release" / "ps9")
    for command in (["release", "ps9"], ["check", "ps9"], ["grade", "ps9"]):
        result = run(["nncourse", "--course", str(course)] + command, cwd=course)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 2 and lines == [
            "error: ps9 has no hidden checks: write nncourse/checks/ps9.py (docs/authoring.md)"
        ], (command, result.stderr)


def test_every_problem_set_states_its_policy(monkeypatch):
    assert checks.PROBLEM_SETS[:5] == ("ps1", "ps2", "ps3", "ps4", "ps5")
    for problem_set in checks.PROBLEM_SETS:
        assert isinstance(checks.rules(problem_set), list)
    module = __import__("nncourse.checks.ps3", fromlist=["POLICY"])
    monkeypatch.delattr(module, "POLICY")
    with pytest.raises(AttributeError, match="states no POLICY"):
        checks.rules("ps3")
