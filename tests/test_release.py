"""release/ and solutions/ are what nbgrader makes of source/, and give nothing away."""

import ast
import contextlib
import copy
import importlib.util
import io
import os
import re
import subprocess
import sys

import nbformat
import pytest

from nncourse import checks, self_check
from nncourse.checks import PROBLEM_SETS, runner
from nncourse.course import ROOT
from tests.helpers import CLASS, expected_points, reference_namespace, run, source_notebook


def cells(path):
    notebook = nbformat.read(path, 4)
    return [(c.cell_type, c.source, c.metadata.get("nbgrader"), c.get("attachments"))
            for c in notebook.cells]


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
    if os.path.isdir(images):  # the release carries them in its cells (EmbedImages)
        assert sorted(os.listdir(course / "solutions" / problem_set / "images")) == sorted(
            os.listdir(images))
    assert not os.path.exists(course / "release" / problem_set / "images")


@pytest.mark.parametrize("problem_set", PROBLEM_SETS)
def test_release_holds_no_solution_hidden_test_or_model_answer(problem_set):
    text = "\n".join(source for _, source, _, _ in
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
    text = "\n".join(source for _, source, _, _ in
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


def _release(problem_set):
    return nbformat.read(os.path.join(ROOT, "release", problem_set, problem_set + ".ipynb"), 4)


def _graded_names(problem_set):
    """What the student writes: the functions and classes defined in solution cells."""
    names = set()
    for cell in source_notebook(problem_set).cells:
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution"):
            names |= {node.name for node in ast.parse(cell.source).body
                      if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    return names


def _lent_code(problem_set, namespace):
    """Everything the release defines outside the cells a student fills: the functions and
    classes of its given and test cells, and the stand-ins its tests lend (``stand_ins(x=...)``),
    defined in ``namespace``. Returns {label: object}."""
    lent = {}
    for cell in _release(problem_set).cells:
        if cell.cell_type != "code" or cell.metadata.get("nbgrader", {}).get("solution"):
            continue
        tree = ast.parse(cell.source)
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                exec(compile(ast.Module([node], []), "<release>", "exec"), namespace)
                lent[node.name] = namespace[node.name]
            elif isinstance(node, ast.Assign):
                try:  # the tables a stand-in replays
                    value = ast.literal_eval(node.value)
                except ValueError:
                    continue
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        namespace[target.id] = value
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "stand_ins"):
                for keyword in node.keywords:
                    label = "stand-in for %s (%s)" % (keyword.arg, ast.unparse(keyword.value)[:40])
                    lent[label] = eval(compile(ast.Expression(keyword.value), "<release>", "eval"),
                                       namespace)
    return lent


def _checks_of(problem_set, name):
    """The hidden checks that take the student's ``name``."""
    return [check_name for check_name in checks.names(problem_set)
            if name in runner.names_used(check_name)]


@pytest.mark.parametrize("problem_set", PROBLEM_SETS)
def test_nothing_the_release_lends_passes_as_an_answer(problem_set):
    """No working graded behaviour in the release: each helper, stand-in or given class and
    function, handed in as a part the student writes (one of the same kind), fails that
    part's hidden checks."""
    namespace = reference_namespace(problem_set)
    lent = _lent_code(problem_set, dict(namespace))
    passing = []
    for name in sorted(_graded_names(problem_set)):
        graded_checks = _checks_of(problem_set, name)
        assert graded_checks, "no hidden check uses %s" % name
        for label, candidate in lent.items():
            if isinstance(candidate, type) != isinstance(namespace[name], type):
                continue
            handed_in = dict(reference_namespace(problem_set), **{name: candidate})
            with contextlib.redirect_stdout(io.StringIO()):
                if all(checks.evaluate(check, handed_in) is None for check in graded_checks):
                    passing.append("%s as %s" % (label, name))
    assert passing == [], "the release lends working answers: %s" % passing


def _blank_run(problem_set, data_root, monkeypatch):
    """The release executed as it is handed out (stubs blank), in the grader's fast mode."""
    from nbclient import NotebookClient
    notebook = _release(problem_set)
    for name, value in (("NBGRADER_EXECUTION", "autograde"), ("NNCOURSE_DATA", data_root),
                        ("MPLBACKEND", "Agg")):
        monkeypatch.setenv(name, value)  # the kernel inherits them
    NotebookClient(notebook, timeout=300, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": os.path.join(ROOT, "release",
                                                                problem_set)}}).execute()
    return notebook


@pytest.mark.slow
@pytest.mark.parametrize("problem_set", PROBLEM_SETS)
def test_every_blank_visible_test_fails_naming_the_task(problem_set, tmp_path, monkeypatch):
    """Run on the blank release, every visible test fails, and its error names what to
    write: the stub's part and section (nncourse.release.NameStubs), or the missing name."""
    from nncourse.datasets import write_offline_datasets
    notebook = _blank_run(problem_set, write_offline_datasets(str(tmp_path)), monkeypatch)
    to_write = _graded_names(problem_set)
    for cell in source_notebook(problem_set).cells:  # and the variables answers set
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution"):
            to_write |= {name.id for node in ast.parse(cell.source).body
                         if isinstance(node, ast.Assign) for target in node.targets
                         for name in ast.walk(target) if isinstance(name, ast.Name)}
    unhelpful = []
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("grade") or meta.get("solution"):
            continue
        errors = [output for output in cell.outputs if output.output_type == "error"]
        message = "%s: %s" % (errors[0].ename, errors[0].evalue) if errors else "passed"
        named = [name for name in to_write if re.search(r"\b%s\b" % re.escape(name), message)]
        stub = errors and errors[0].ename == "NotImplementedError"
        if not named or (stub and "(see " not in message):
            unhelpful.append("%s: %s" % (meta["grade_id"], message))
    assert unhelpful == []


@pytest.mark.parametrize("problem_set", PROBLEM_SETS)
def test_every_release_ends_with_its_own_check(problem_set):
    last = _release(problem_set).cells[-1]
    assert last.metadata.nbgrader["grade_id"] == self_check.GRADE_ID
    assert last.metadata.nbgrader["locked"] and last.source == self_check.CELL


# the release's last cell, run where neither nbgrader nor nncourse can be imported (as Colab)
_CHECK_ALONE = """
import sys
sys.modules["nbgrader"] = sys.modules["nncourse"] = None
import nbformat
cell = nbformat.read(sys.argv[1], 4).cells[-1].source
exec(cell.replace("check_my_work()", "check_my_work(sys.argv[1])"))
"""


@pytest.mark.slow
def test_a_student_checks_the_work_without_nbgrader(tmp_path):
    from nncourse import samples
    from nncourse.datasets import write_offline_datasets
    environment = dict(os.environ, NNCOURSE_DATA=write_offline_datasets(str(tmp_path / "data")),
                       MPLBACKEND="Agg")
    environment.pop("NBGRADER_EXECUTION", None)
    reports = {}
    for name, edits in [("blank", None), ("mutant", CLASS["mutant-bias"]), ("done", [])]:
        path = tmp_path / (name + ".ipynb")
        nbformat.write(samples.submission(ROOT, "ps1", edits), path)
        result = subprocess.run([sys.executable, "-c", _CHECK_ALONE, str(path)], cwd=tmp_path,
                                env=environment, text=True, capture_output=True, timeout=600)
        assert result.returncode == 0, result.stderr
        reports[name] = result.stdout
    tests = list(expected_points("ps1")[0])
    assert "%d of %d test cells failed" % (len(tests), len(tests)) in reports["blank"]
    assert "FAILED  test_linear_forward: NotImplementedError: Linear.forward is not written " \
           "yet" in reports["blank"]
    assert "every visible test passed" in reports["done"]
    failed = re.findall(r"^FAILED  (\w+)", reports["mutant"], re.M)
    assert failed and set(failed) < set(tests)
    assert "passed  test_linear_forward" in reports["mutant"]


def test_ps5_without_network_trains_on_stand_in_images_and_says_so(capsys):
    """Offline, ps5's CIFAR-10 loader says so and hands out FakeData, not a URLError."""
    import urllib.error

    import torchvision

    class NoNetwork:
        FakeData = torchvision.datasets.FakeData

        @staticmethod
        def CIFAR10(*args, **kwargs):
            raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    cell = next(c for c in _release("ps5").cells if "def cifar10(" in c.source)
    definitions = ast.Module([node for node in ast.parse(cell.source).body
                              if isinstance(node, ast.FunctionDef)], [])
    namespace = {"FAST": False, "DATA_ROOT": "data", "datasets": NoNetwork}
    exec(compile(definitions, "<ps5>", "exec"), namespace)
    images = namespace["cifar10"](True, None)
    assert isinstance(images, torchvision.datasets.FakeData)
    assert "could not be downloaded" in capsys.readouterr().out
