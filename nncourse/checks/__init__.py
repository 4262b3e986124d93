"""Hidden checks: the grader chooses the inputs, the student's kernel computes outputs, the
grader judges them.

A check has three parts (see ``docs/checks.md``):

- ``inputs()``: builds the inputs on the grader's side (deterministic, seeded);
- ``probe(ns, inputs)``: runs in the student's kernel, calls the student's code found in the
  namespace ``ns`` on those inputs and returns what came back as plain data. Its source is
  sent to the kernel together with ``wire.py`` and the other ``probe_*`` functions of its
  module (nothing else of nncourse is there);
- ``judge(inputs, outputs)``: runs in the grader's process, compares the outputs with an
  oracle (torch autograd, numerical gradients, closed forms) and raises :class:`CheckFailed`
  with a message the student can act on.

A hidden test region in a source notebook names its check with one line,
``run_check("ps1.linear_forward")``. Run in a master notebook, that line runs the whole
check in the kernel (the instructor trusts the code there). Under ``nbgrader autograde``,
:mod:`nncourse.autograde.preprocessors` replaces the line with the probe alone and judges the outputs
outside the kernel, so student code can neither see the oracle nor alter the verdict.
"""

import importlib
import inspect
import json
import os
import re
import sys
from dataclasses import dataclass
from typing import Callable

from . import wire

MIME = "application/vnd.nncourse.check+json"


def _problem_sets():
    """The course's problem sets: each ``source/psN/`` with its checks in
    ``nncourse/checks/psN.py`` (every list of problem sets is derived from this one)."""
    here = os.path.dirname(os.path.abspath(__file__))
    source = os.path.join(os.path.dirname(os.path.dirname(here)), "source")
    found = [name for name in (os.listdir(source) if os.path.isdir(source) else [])
             if os.path.isfile(os.path.join(source, name, name + ".ipynb"))
             and os.path.isfile(os.path.join(here, name + ".py"))]
    return tuple(sorted(found, key=lambda name: (len(name), name)))


PROBLEM_SETS = _problem_sets()


class CheckFailed(AssertionError):
    """A student's code does not behave as asked; the message says how."""


@dataclass(frozen=True)
class Check:
    name: str
    inputs: Callable[[], dict]
    probe: Callable[[dict, dict], dict]
    judge: Callable[[dict, dict], None]

    def encoded_inputs(self):
        return json.dumps(wire.encode_outputs(self.inputs()))


_REGISTRY = {}


def check(name, *, inputs, probe):
    """Decorator that registers the decorated judge as the check ``name``."""
    def register(judge):
        if name in _REGISTRY:
            raise ValueError("check %s is defined twice" % name)
        _REGISTRY[name] = Check(name, inputs, probe, judge)
        return judge
    return register


def get(name):
    """The check called ``name`` (``psN.behaviour``), loading its problem set's module."""
    module = name.split(".", 1)[0]
    if module in PROBLEM_SETS:
        importlib.import_module("nncourse.checks." + module)
    if name not in _REGISTRY:
        raise KeyError("no hidden check called %r" % name)
    return _REGISTRY[name]


def all_checks(problem_set):
    """{name: Check} of a problem set's checks still written as probe and judge."""
    importlib.import_module("nncourse.checks." + problem_set)
    return {n: c for n, c in _REGISTRY.items() if n.startswith(problem_set + ".")}


def test_functions(problem_set):
    """{name: function} of a problem set's checks written as test functions
    (nncourse/checks/runner.py): ``test_linear_forward`` is ``psN.linear_forward``."""
    module = importlib.import_module("nncourse.checks." + problem_set)
    return {"%s.%s" % (problem_set, name[len("test_"):]): function
            for name, function in vars(module).items()
            if name.startswith("test_") and inspect.isfunction(function)
            and function.__module__ == module.__name__}


def names(problem_set):
    """Every check of a problem set, in either form."""
    return sorted(set(all_checks(problem_set)) | set(test_functions(problem_set)))


def rules(problem_set):
    """The problem set's :class:`nncourse.policy.Rule` list: ``POLICY`` of its checks module,
    which every problem set states (``POLICY = []``: graded code may use any library)."""
    module = importlib.import_module("nncourse.checks." + problem_set)
    if not hasattr(module, "POLICY"):
        raise AttributeError("nncourse/checks/%s.py states no POLICY (write POLICY = [] if "
                             "graded code may use any library)" % problem_set)
    return list(module.POLICY)


def verdict(check_, encoded_inputs, encoded_outputs):
    """Judges encoded outputs; returns None when they pass, else the failure message."""
    if isinstance(encoded_outputs, dict) and set(encoded_outputs) == {wire.ERROR_KEY}:
        return "the check could not run your code: %s" % _probe_error_shown(
            check_, encoded_inputs, str(encoded_outputs[wire.ERROR_KEY]))
    try:
        outputs = wire.decode(encoded_outputs)
    except (wire.DecodeError, ValueError, TypeError, KeyError) as exc:
        return "the check got back data it cannot read (%s)" % exc
    try:
        check_.judge(wire.decode(json.loads(encoded_inputs)), outputs)
    except CheckFailed as failure:
        return str(failure)
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        # only outputs that did not come from the probe (forged, cut short, or with a list
        # of another length than the inputs': zip(..., strict=True)) get here
        return "the check got back incomplete results (%s: %s)" % (type(exc).__name__, exc)
    return None


_NOT_DEFINED = re.compile(r"NameError: (\w+) is not defined: run the cell that defines it"
                          r"( \(in [^()]*, line \d+\))?")


def _probe_error_shown(check_, encoded_inputs, message):
    """What the feedback says of an error that stopped a probe (``judging.error_shown``), but
    a missing class or function by its name: one the grader itself asked for (a string of the
    probe's code or of the inputs), so that the kernel can echo nothing of its own."""
    missing = _NOT_DEFINED.fullmatch(message)
    if missing and missing.group(1) in _grader_strings(check_, encoded_inputs):
        return "%s is not defined: run the cell that defines it" % missing.group(1)
    from .judging import error_shown
    return error_shown(message)


def _grader_strings(check_, encoded_inputs):
    found = set()

    def walk(value):
        if isinstance(value, str):
            found.add(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(key)
                walk(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)

    def constants(code):
        for constant in code.co_consts:
            if inspect.iscode(constant):
                constants(constant)
            else:
                walk(constant)
    for function in probe_functions(check_.probe):
        constants(function.__code__)
    walk(json.loads(encoded_inputs))
    return found


def _global_names(code):
    """Names a function's code (nested functions and classes included) looks up."""
    names = set(code.co_names)
    for constant in code.co_consts:
        if inspect.iscode(constant):
            names |= _global_names(constant)
    return names


def probe_functions(probe):
    """The probe and the ``probe_*`` functions of its module that it calls, directly or
    through one another, by name: nothing more of the module reaches the kernel."""
    module = sys.modules[probe.__module__]
    helpers = {name: function for name, function in vars(module).items()
               if name.startswith("probe_") and inspect.isfunction(function)
               and function.__module__ == module.__name__}
    needed, frontier = [], [probe.__name__]
    while frontier:
        name = frontier.pop()
        if name in needed:
            continue
        needed.append(name)
        frontier += [called for called in _global_names(helpers[name].__code__)
                     if called in helpers and called not in needed]
    return [helpers[name] for name in sorted(needed)]


def _probe_sources(probe):
    return [inspect.getsource(function) for function in probe_functions(probe)]


def render_probe(check_, nonce, encoded_inputs=None):
    """Source of a self-contained statement that runs the probe and publishes its outputs."""
    if encoded_inputs is None:
        encoded_inputs = check_.encoded_inputs()
    program = "\n".join([
        inspect.getsource(wire),
        *_probe_sources(check_.probe),
        "from IPython.display import publish_display_data as _publish",
        "_publish({%r: {'check': %r, 'nonce': %r, 'outputs': run_probe(%s, _user_ns, _inputs)}})"
        % (MIME, check_.name, nonce, check_.probe.__name__),
    ])
    return "exec(%r, {'__name__': 'nncourse_probe', '_user_ns': globals(), '_inputs': %r})" % (
        program, encoded_inputs)


def evaluate(name, namespace):
    """Runs a check on the code in ``namespace``, in this process; returns the failure or None."""
    from . import runner
    if runner.function_of(name) is not None:
        return runner.evaluate(name, namespace)
    check_ = get(name)
    encoded_inputs = check_.encoded_inputs()
    outputs = wire.run_probe(check_.probe, namespace, encoded_inputs)
    # The same JSON round trip as in grading, so both paths judge the same data.
    return verdict(check_, encoded_inputs, json.loads(json.dumps(outputs)))


def run_check(name):
    """Runs a check inside the current kernel (master notebooks); raises on failure."""
    message = evaluate(name, sys._getframe(1).f_globals)
    if message is not None:
        raise CheckFailed(message)
