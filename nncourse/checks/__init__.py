"""Hidden checks: test functions that run in the grader and drive the student's code.

A check is a pytest-style function ``test_<behaviour>`` of ``nncourse/checks/psN.py``
(docs/checks.md): its ``student`` fixture is the student's namespace, reached through the one
fixed call server the grader sends the kernel (:mod:`.server`, :mod:`.remote`); it chooses
the inputs, gets the student's outputs back as plain data, and compares them with an oracle
computed here (torch autograd, numerical gradients, closed forms), raising
:class:`CheckFailed` with a message the student can act on. :mod:`.runner` runs it.

A hidden test region in a source notebook names its check with one line,
``run_check("ps1.linear_forward")``. Run in a master notebook, that line runs the check on
the notebook's own namespace. Under ``nncourse grade``, the grader takes the line out and runs
the check itself once the cell has run (:mod:`nncourse.autograde`), so student code can
neither see the check nor alter the verdict.
"""

import importlib
import inspect
import os
import sys


def _problem_sets():
    """The course's problem sets: each ``source/psN/`` with its notebook, in order (every
    list of problem sets is derived from this one; one without ``nncourse/checks/psN.py``
    cannot be released, checked or graded)."""
    here = os.path.dirname(os.path.abspath(__file__))
    source = os.path.join(os.path.dirname(os.path.dirname(here)), "source")
    found = [name for name in (os.listdir(source) if os.path.isdir(source) else [])
             if os.path.isfile(os.path.join(source, name, name + ".ipynb"))
             and os.path.isfile(os.path.join(here, name + ".py"))]
    return tuple(sorted(found, key=lambda name: (len(name), name)))


PROBLEM_SETS = _problem_sets()


class CheckFailed(AssertionError):
    """A student's code does not behave as asked; the message says how."""


def test_functions(problem_set):
    """{name: function} of a problem set's checks: ``test_linear_forward`` of
    nncourse/checks/psN.py is the check ``psN.linear_forward``."""
    module = importlib.import_module("nncourse.checks." + problem_set)
    return {"%s.%s" % (problem_set, name[len("test_"):]): function
            for name, function in vars(module).items()
            if name.startswith("test_") and inspect.isfunction(function)
            and function.__module__ == module.__name__}


def names(problem_set):
    """Every check of a problem set, sorted."""
    return sorted(test_functions(problem_set))


def rules(problem_set):
    """The problem set's :class:`nncourse.policy.Rule` list: ``POLICY`` of its checks module,
    which every problem set states (``POLICY = []``: graded code may use any library)."""
    module = importlib.import_module("nncourse.checks." + problem_set)
    if not hasattr(module, "POLICY"):
        raise AttributeError("nncourse/checks/%s.py states no POLICY (write POLICY = [] if "
                             "graded code may use any library)" % problem_set)
    return list(module.POLICY)


def evaluate(name, namespace):
    """Runs a check on the code in ``namespace``, in this process; its failure or None."""
    from . import runner
    if runner.function_of(name) is None:
        raise KeyError("no hidden check called %r" % name)
    return runner.evaluate(name, namespace)


def run_check(name):
    """Runs a check on the calling notebook's namespace (master notebooks); raises on
    failure."""
    message = evaluate(name, sys._getframe(1).f_globals)
    if message is not None:
        raise CheckFailed(message)
