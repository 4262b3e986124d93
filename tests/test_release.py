"""release/ and solutions/ are what nbgrader makes of source/, and give nothing away."""

import ast
import copy
import importlib.util
import os
import re

import nbformat
import pytest

from nncourse.checks import PROBLEM_SETS
from nncourse.course import ROOT
from tests.helpers import run, source_notebook


def cells(path):
    notebook = nbformat.read(path, 4)
    return [(c.cell_type, c.source, c.metadata.get("nbgrader")) for c in notebook.cells]


@pytest.mark.parametrize("problem_set", PROBLEM_SETS)
def test_release_and_solutions_are_in_sync_with_source(course, problem_set):
    result = run(["nncourse", "--course", str(course), "release", problem_set], cwd=course)
    assert result.returncode == 0, result.stderr
    for folder in ("release", "solutions"):
        fresh = course / folder / problem_set / (problem_set + ".ipynb")
        committed = os.path.join(ROOT, folder, problem_set, problem_set + ".ipynb")
        assert cells(fresh) == cells(committed), (
            "%s/%s is out of date: run `make release` and commit it" % (folder, problem_set))
        images = os.path.join(ROOT, "source", problem_set, "images")
        if os.path.isdir(images):
            assert sorted(os.listdir(course / folder / problem_set / "images")) == sorted(
                os.listdir(images))


@pytest.mark.parametrize("problem_set", PROBLEM_SETS)
def test_release_holds_no_solution_hidden_test_or_model_answer(problem_set):
    text = "\n".join(source for _, source, _ in
                     cells(os.path.join(ROOT, "release", problem_set, problem_set + ".ipynb")))
    for leak in ("BEGIN SOLUTION", "HIDDEN TESTS", "run_check", "nncourse", "Model answer",
                 "Rubric"):
        assert leak not in text, leak
    # no line of any solution region survives in the release
    source = "\n".join(c.source for c in source_notebook(problem_set).cells)
    solution = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", re.S)
    given = solution.sub("", source)  # lines the students are given anyway
    for region in solution.findall(source):
        for line in region.splitlines():
            if len(line.strip()) > 25 and line.strip() not in given:
                assert line.strip() not in text, line


@pytest.mark.parametrize("problem_set", PROBLEM_SETS)
def test_solutions_carry_model_answers_and_no_hidden_tests(problem_set):
    text = "\n".join(source for _, source, _ in
                     cells(os.path.join(ROOT, "solutions", problem_set, problem_set + ".ipynb")))
    written = sum(1 for c in source_notebook(problem_set).cells
                  if c.cell_type == "markdown" and c.metadata.get("nbgrader", {}).get("grade"))
    assert text.count("**Model answer.**") == written and text.count("**Rubric") == written
    assert "run_check" not in text and "HIDDEN TESTS" not in text


@pytest.mark.parametrize("problem_set", PROBLEM_SETS)
def test_every_test_cell_has_points_and_a_hidden_check(problem_set):
    for cell in source_notebook(problem_set).cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and cell.cell_type == "code":
            assert meta["points"] > 0
            assert re.search(r'run_check\("%s\.\w+"\)' % problem_set, cell.source), meta["grade_id"]
        if meta.get("grade") and cell.cell_type == "markdown":
            assert "**Model answer.**" in cell.source and "**Rubric" in cell.source


@pytest.mark.parametrize("problem_set", PROBLEM_SETS)
def test_source_notebooks_are_stored_normalized(problem_set):
    spec = importlib.util.spec_from_file_location(
        "normalize_notebook", os.path.join(ROOT, "scripts", "normalize_notebook.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    stored = source_notebook(problem_set)
    assert module.normalize(copy.deepcopy(stored)) == stored, (
        "run scripts/normalize_notebook.py on source/%s" % problem_set)


@pytest.mark.parametrize("problem_set", PROBLEM_SETS)
def test_every_stub_to_fill_says_what_it_takes_and_returns(problem_set):
    release = nbformat.read(os.path.join(ROOT, "release", problem_set, problem_set + ".ipynb"), 4)
    undocumented = []
    for cell in release.cells:
        if cell.cell_type != "code" or not cell.metadata.get("nbgrader", {}).get("solution"):
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if not isinstance(node, ast.FunctionDef) or node.name == "__init__":
                continue
            stub = "raise NotImplementedError" in ast.get_source_segment(cell.source, node)
            if stub and not ast.get_docstring(node):
                undocumented.append(node.name)
    assert undocumented == [], "stubs without a docstring: %s" % undocumented
