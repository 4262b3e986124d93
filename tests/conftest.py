import ast
import os
import shutil
import subprocess
import sys

import nbformat
import pytest

from nncourse import samples
from nncourse.course import ROOT


def source_notebook(problem_set):
    return nbformat.read(os.path.join(ROOT, "source", problem_set, problem_set + ".ipynb"), 4)


def _is_constant(expression):
    """A literal, or arrays built by NumPy/torch from literals (np.array, torch.ones...)."""
    for node in ast.walk(expression):
        if isinstance(node, ast.Call) and not (
                isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name)
                and node.func.value.id in ("np", "torch")):
            return False
        if isinstance(node, ast.Name) and node.id not in ("np", "torch"):
            return False
    return True


def _defines_only(code):
    """True for a cell that only imports, defines classes and functions, or sets constants."""
    allowed = (ast.Import, ast.ImportFrom, ast.ClassDef, ast.FunctionDef)
    return all(isinstance(node, allowed) or (isinstance(node, ast.Assign)
                                             and _is_constant(node.value))
               for node in ast.parse(code).body)


def reference_namespace(problem_set, edits=()):
    """The classes of the source notebook's solution (with ``edits`` applied), defined in a
    fresh namespace, as a student's kernel would have them after running the notebook."""
    source = source_notebook(problem_set)
    filled = samples.filled_notebook(source, source, edits)
    namespace = {"__name__": "student"}
    code_cells = [cell for cell in filled.cells if cell.cell_type == "code"]
    # the first code cell is the notebook's setup (imports, FAST, DATA_ROOT)
    for index, cell in enumerate(code_cells):
        if cell.metadata.get("nbgrader", {}).get("grade"):
            continue
        if index == 0 or _defines_only(cell.source):
            exec(compile(cell.source, "<%s>" % problem_set, "exec"), namespace)
    return namespace


@pytest.fixture
def course(tmp_path):
    """A scratch copy of the course folder (source, release, config), for nbgrader runs."""
    root = tmp_path / "course"
    root.mkdir()
    for name in ("source", "release", "solutions"):
        shutil.copytree(os.path.join(ROOT, name), root / name)
    shutil.copy(os.path.join(ROOT, "nbgrader_config.py"), root)
    return root


def run(command, cwd, **kwargs):
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    env.pop("NBGRADER_EXECUTION", None)
    return subprocess.run(command, cwd=cwd, env=env, text=True, capture_output=True, **kwargs)
