"""release/ and solutions/ are what nbgrader makes of source/, and give nothing away."""

import os
import re

import nbformat

from nncourse.course import ROOT
from tests.conftest import run, source_notebook


def cells(path):
    notebook = nbformat.read(path, 4)
    return [(c.cell_type, c.source, c.metadata.get("nbgrader")) for c in notebook.cells]


def test_release_and_solutions_are_in_sync_with_source(course):
    result = run(["nncourse", "--course", str(course), "release", "ps1"], cwd=course)
    assert result.returncode == 0, result.stderr
    for folder in ("release", "solutions"):
        fresh = course / folder / "ps1" / "ps1.ipynb"
        committed = os.path.join(ROOT, folder, "ps1", "ps1.ipynb")
        assert cells(fresh) == cells(committed), (
            "%s/ps1 is out of date: run `make release` and commit it" % folder)
        assert sorted(os.listdir(course / folder / "ps1" / "images")) == sorted(
            os.listdir(os.path.join(ROOT, "source", "ps1", "images")))


def test_release_holds_no_solution_hidden_test_or_model_answer():
    text = "\n".join(source for _, source, _ in
                     cells(os.path.join(ROOT, "release", "ps1", "ps1.ipynb")))
    for leak in ("BEGIN SOLUTION", "HIDDEN TESTS", "run_check", "nncourse", "Model answer",
                 "Rubric"):
        assert leak not in text, leak
    # no line of any solution region survives in the release
    source = "\n".join(c.source for c in source_notebook("ps1").cells)
    solution = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", re.S)
    given = solution.sub("", source)  # lines the students are given anyway
    for region in solution.findall(source):
        for line in region.splitlines():
            if len(line.strip()) > 25 and line.strip() not in given:
                assert line.strip() not in text, line


def test_solutions_carry_model_answers_and_no_hidden_tests():
    text = "\n".join(source for _, source, _ in
                     cells(os.path.join(ROOT, "solutions", "ps1", "ps1.ipynb")))
    assert text.count("**Model answer.**") == 5 and text.count("**Rubric") == 5
    assert "run_check" not in text and "HIDDEN TESTS" not in text


def test_every_test_cell_has_points_and_a_hidden_check():
    for cell in source_notebook("ps1").cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and cell.cell_type == "code":
            assert meta["points"] > 0
            assert re.search(r'run_check\("ps1\.\w+"\)', cell.source), meta["grade_id"]
        if meta.get("grade") and cell.cell_type == "markdown":
            assert "**Model answer.**" in cell.source and "**Rubric" in cell.source
