"""Naming a student's mistake from the catalogue.

When a hidden check fails, the grader runs the same check, here, in its own process (never in
the student's kernel), against each catalogued mistake that breaks it, and compares the
replies of the mistake's code to the check's calls with the replies of the student's kernel.
A check sends the same inputs on every run and the kernel is seeded before each case, so
the replies depend only on the code; when a mistake's replies match the student's, its explanation
goes into the failure message. The comparison reads only decoded plain data (numbers,
strings, arrays, class names), so the student's code can neither run here nor choose what is
compared with what.

A mistake's replies depend only on the check and the catalogue, so they are computed once
per process and check (:func:`mistake_outputs`).
"""

import ast
import contextlib
import functools
import io
import os

import nbformat
import numpy as np

from .. import samples
from ..checks import judging, runner
from ..checks.remote import LocalChannel, Opaque, StudentError
from ..course import ROOT
from . import load

PREFIX = "Likely mistake: "
RTOL, ATOL = 1e-4, 1e-6  # a float32 student and a float64 mistake still agree


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


def defines_only(code):
    """True for a cell that only imports, defines classes and functions, or sets constants."""
    allowed = (ast.Import, ast.ImportFrom, ast.ClassDef, ast.FunctionDef)
    return all(isinstance(node, allowed) or (isinstance(node, ast.Assign)
                                             and _is_constant(node.value))
               for node in ast.parse(code).body)


@functools.lru_cache(maxsize=None)
def source_notebook(problem_set):
    """The master notebook the catalogue's edits apply to (this checkout's)."""
    return nbformat.read(os.path.join(ROOT, "source", problem_set, problem_set + ".ipynb"), 4)


def namespace(problem_set, edits=()):
    """The classes and functions of the source notebook's solution (with ``edits``
    applied), defined in a fresh namespace, as a student's kernel holds them after running
    the notebook: its setup cell and every cell that only defines things, test cells
    left out."""
    source = source_notebook(problem_set)
    filled = samples.filled_notebook(source, source, edits)
    names = {"__name__": "student"}
    code_cells = [cell for cell in filled.cells if cell.cell_type == "code"]
    for index, cell in enumerate(code_cells):
        if cell.metadata.get("nbgrader", {}).get("grade"):
            continue
        if index == 0 or defines_only(cell.source):  # the first: imports, FAST, DATA_ROOT
            exec(compile(cell.source, "<%s>" % problem_set, "exec"), names)
    return names


def probe_outputs(check_name, names):
    """Every reply of the code in ``names`` to ``check_name``'s calls, in order, as the grader
    compares them (nncourse/checks/runner.py)."""
    return runner.run(check_name, LocalChannel(names)).transcript


@functools.lru_cache(maxsize=None)
def mistake_outputs(check_name):
    """``[(mutant, outputs)]`` for the catalogued mistakes that break ``check_name`` and that
    this check's outputs tell apart, in catalogue order (computed once per process). Two
    mistakes with the same outputs here (a training run that fails the same way for both)
    are left out: the check cannot say which one it saw (another check may)."""
    problem_set = check_name.split(".")[0]
    found = []
    # what the notebook's code prints (a progress line, a plot) is nobody's business here
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        for mutant in load(problem_set).MUTANTS:
            if check_name in mutant.breaks and mutant.explanation:
                names = namespace(problem_set, mutant.edits)
                found.append((mutant, probe_outputs(check_name, names)))
    return [(mutant, outputs) for mutant, outputs in found
            if not any(other is not mutant and other.explanation != mutant.explanation
                       and same(outputs, theirs) for other, theirs in found)]


def same(a, b):
    """Whether two decoded outputs agree: the same structure, equal strings and errors,
    numbers and arrays equal within RTOL and ATOL."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, StudentError) and isinstance(b, StudentError):
        return _error_kind(a.message) == _error_kind(b.message)
    if isinstance(a, Opaque) and isinstance(b, Opaque):
        return a.description == b.description
    if isinstance(a, (bool, str)) or isinstance(b, (bool, str)) or a is None or b is None:
        return type(a) is type(b) and a == b
    numbers = (int, float, np.ndarray)
    if isinstance(a, numbers) and isinstance(b, numbers):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape or a.dtype.kind == "c" or b.dtype.kind == "c":
            return False
        return bool(np.allclose(a.astype(float), b.astype(float), rtol=RTOL, atol=ATOL,
                                equal_nan=True))
    return False


def _error_kind(message):
    """What an error says, without where it was raised (describe_exception's "(in f, line
    n)")."""
    return judging.LOCATION.sub("", message)


def diagnose(check_name, outputs):
    """The catalogued mistake (a Mutant) whose outputs on ``check_name``'s inputs match the
    student's decoded ``outputs``, or None. Only for a check that failed. Of several that
    match (each within the tolerance, not of one another), the most specific: the one that
    breaks the fewest checks, then the first listed."""
    matches = [(len(mutant.breaks), index, mutant)
               for index, (mutant, theirs) in enumerate(mistake_outputs(check_name))
               if same(outputs, theirs)]
    return min(matches, key=lambda match: match[:2])[2] if matches else None
