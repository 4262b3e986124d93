"""Runs hidden checks written as pytest-style test functions.

A check is a function ``test_<behaviour>`` of ``nncourse/checks/psN.py`` that the hidden
region of a test cell names (``run_check("psN.<behaviour>")``). Its arguments are fixtures,
by name:

- ``student``: the student's namespace (:class:`nncourse.checks.remote.Student`), bound to
  the sandboxed kernel under ``nncourse grade``, to the notebook's own namespace when a master
  notebook runs, to a catalogued mistake's namespace in diagnosis and the tests;
- ``rng``: a NumPy ``Generator`` seeded from the check's name and case, so that every run of
  a check sends the same inputs (the kernel's own generators are seeded with the same number
  before each case, so that the student's code draws the same numbers too);

and the parameters of :func:`parametrize`. A check fails by raising ``CheckFailed`` (the
helpers of :mod:`nncourse.checks.judging`) or ``AssertionError`` with a message for the
student; a call into the student's code that raises fails it too, saying which call.
"""

import ast
import importlib
import inspect
import logging
import textwrap
import zlib
from dataclasses import dataclass, field

import numpy as np

from . import CheckFailed
from .remote import Interrupted, LocalChannel, Student, StudentRaised

log = logging.getLogger(__name__)
INTERNAL_ERROR = "internal error of the grader while judging; tell your instructor"


def parametrize(names, values):
    """Runs the check once per item of ``values`` (a tuple per item when ``names`` lists
    several, as in ``pytest.mark.parametrize("batch, n_in", [(4, 3), (1, 2)])``)."""
    names = [name.strip() for name in names.split(",")]

    def mark(function):
        cases = []
        for value in values:
            value = value if len(names) > 1 else (value,)
            if len(value) != len(names):
                raise ValueError("%s: %r does not give %s" % (function.__name__, value, names))
            cases.append(dict(zip(names, value)))
        function.cases = cases + getattr(function, "cases", [])
        return function
    return mark


def function_of(check_name):
    """The test function of ``psN.behaviour`` (``test_behaviour`` in nncourse/checks/psN.py),
    or None when there is none."""
    problem_set, _, behaviour = check_name.partition(".")
    module = importlib.import_module("nncourse.checks." + problem_set)
    function = getattr(module, "test_" + behaviour, None)
    return function if inspect.isfunction(function) else None


def cases(function):
    """``[(case id, parameters)]`` of a test function."""
    found = getattr(function, "cases", None) or [{}]
    return [("-".join(map(str, case.values())), case) for case in found]


def seed(check_name, case_id):
    return zlib.crc32(("%s[%s]" % (check_name, case_id)).encode())


@dataclass
class Outcome:
    """What running one check found: its failure message (None: it passed), every reply
    of the student's kernel in order, and what the student's code warned."""
    check: str
    message: str | None
    transcript: list = field(default_factory=list)
    warned: list = field(default_factory=list)


def run(check_name, channel):
    """Runs every case of a check against the namespace ``channel`` reaches; stops at the
    first failing case. Raises :class:`Interrupted` when the kernel stopped answering."""
    function = function_of(check_name)
    student = Student(channel)
    message = None
    for case_id, parameters in cases(function):
        number = seed(check_name, case_id)
        fixtures = {"student": student, "rng": np.random.default_rng(number)}
        arguments = {name: fixtures[name] if name in fixtures else parameters[name]
                     for name in inspect.signature(function).parameters}
        try:
            # the student's code draws the same numbers on every run (a layer's first
            # weights, a dropout mask): what it returns depends on the grader's inputs only
            student.seed(number)
            function(**arguments)
        except StudentRaised as raised:
            message = raised.shown()
        except CheckFailed as failure:
            message = str(failure)
        except AssertionError as failure:
            message = str(failure) or "a hidden test of this cell failed"
        except Interrupted:
            raise
        except Exception as exc:  # a bug in the check itself: the cell fails, loudly
            log.error("check %s[%s] crashed: %r", check_name, case_id, exc)
            message = INTERNAL_ERROR
        finally:
            try:
                student.forget()
            except StudentRaised:
                pass
        if message is not None:
            break
    return Outcome(check_name, message, student.transcript, student.warned)


def evaluate(check_name, namespace):
    """Runs a check on the code in ``namespace``, in this process; its failure or None."""
    return run(check_name, LocalChannel(namespace)).message


# What a Student offers besides the student's names
_STUDENT_API = frozenset(name for name in dir(Student) if not name.startswith("_")) | {
    "transcript", "warned"}


def names_used(check_name):
    """The names a check takes from the student's namespace, read from its source and that
    of the module's functions it calls: ``student.Linear``, ``student["Linear"]``, and the
    names given as strings to a helper called with ``student`` (``_activation(student, rng,
    "ReLU", ...)``). The source policy (nncourse/policy/) judges the code behind them."""
    function = function_of(check_name)
    module = inspect.getmodule(function)
    helpers = {name: f for name, f in vars(module).items()
               if inspect.isfunction(f) and f.__module__ == module.__name__}
    found, seen, frontier = set(), set(), [function.__name__]
    while frontier:
        name = frontier.pop()
        if name in seen:
            continue
        seen.add(name)
        tree = ast.parse(textwrap.dedent(inspect.getsource(helpers[name])))
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id in helpers:
                frontier.append(node.id)
            if isinstance(node, ast.Attribute) and _is_student(node.value) \
                    and node.attr not in _STUDENT_API:
                found.add(node.attr)
            if isinstance(node, ast.Subscript) and _is_student(node.value) \
                    and isinstance(node.slice, ast.Constant):
                found.add(node.slice.value)
            if isinstance(node, ast.Call) and any(_is_student(a) for a in node.args):
                found |= {a.value for a in node.args
                          if isinstance(a, ast.Constant) and isinstance(a.value, str)}
    return frozenset(n for n in found if isinstance(n, str) and n.isidentifier())


def _is_student(node):
    return isinstance(node, ast.Name) and node.id == "student"
