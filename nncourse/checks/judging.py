"""Grader-side helpers that turn a wrong output into a message a student can act on.

They say what was wrong (an exception, a type, a shape, how far off the numbers are) and
never print the expected values themselves.
"""

import builtins
import re

import numpy as np

from . import CheckFailed

# Text the kernel reports (what student code raised or warned, the class of what it returned)
# reaches the student's feedback only as one of these names: any other text could carry what
# the kernel saw of the hidden tests (docs/checks.md, "What feedback shows").
BUILTIN_NAMES = frozenset(name for name, value in vars(builtins).items()
                          if isinstance(value, type))
LIBRARY_TYPES = frozenset({"ndarray", "Tensor", "Parameter", "function", "method", "module",
                           "generator", "NoneType", "builtin_function_or_method"})
# NumPy's own floating-point warnings, which the stability tasks are about
_FLOATING = re.compile(r"(overflow|underflow|invalid value|divide by zero) encountered in "
                       r"(exp|log|log1p|expm1|divide|true_divide|multiply|power|square|"
                       r"sqrt|tanh|add|subtract|matmul|reduce|scalar \w+|cast)")
# where describe_exception says an error was raised: " (in forward, line 3)"
LOCATION = re.compile(r" \(in [^()]*, line \d+\)$")


def error_shown(message):
    """What the feedback says of an error student code raised (``"ValueError: ..."`` as
    :func:`nncourse.checks.wire.describe_exception` wrote it): its class when it is one of
    Python's, and NumPy's floating-point warnings word for word; not where it was raised (a
    line number the student's code can choose, or write into its own message)."""
    name, _, text = LOCATION.sub("", message).partition(": ")
    shown = name if name in BUILTIN_NAMES else "an exception of its own class"
    if name == "RuntimeWarning" and _FLOATING.fullmatch(text):
        shown += ": " + text
    return shown


def kind_of(value):
    """The class of what the student's code returned, in words the feedback may show: a
    Python or library class by its name, any other as "an object of its own class"."""
    from .remote import Remote, type_name
    if value is None:
        return "None"
    if isinstance(value, Remote):
        name = type_name(value)
        return name if name in BUILTIN_NAMES | LIBRARY_TYPES else "an object of its own class"
    return type(value).__name__


def as_array(value, what):
    from .remote import value_of
    value = value_of(value)
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a tensor the student returned
        value = value.detach().numpy()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return np.asarray(value, dtype=float)
    if not isinstance(value, np.ndarray):
        raise CheckFailed("%s returned %s, expected a NumPy array" % (what, kind_of(value)))
    return value


def shape_shown(shape, expected):
    """A wrong shape as the feedback may show it: as it is when it is near the expected one
    (as many dimensions, or one more or fewer, none over 10,000), else in words only, since
    any other numbers there are the kernel's to choose."""
    if abs(len(shape) - len(expected)) <= 1 and all(0 < n <= 10_000 for n in shape):
        return str(tuple(shape))
    return "another shape (%d dimensions)" % len(shape) if len(shape) <= 8 else "another shape"


def close(value, expected, what, *, rtol=1e-5, atol=1e-7):
    """Fails unless ``value`` is an array of the expected shape with matching numbers."""
    actual = as_array(value, what)
    expected = np.asarray(expected, dtype=float)
    if actual.shape != expected.shape:
        raise CheckFailed("%s has shape %s, expected %s" % (
            what, shape_shown(actual.shape, expected.shape), expected.shape))
    if actual.dtype.kind == "c":
        raise CheckFailed("%s is complex, expected real numbers" % what)
    actual = actual.astype(float)
    if not np.all(np.isfinite(actual)):
        raise CheckFailed("%s contains nan or inf" % what)
    if not np.allclose(actual, expected, rtol=rtol, atol=atol):
        worst = float(np.max(np.abs(actual - expected)))
        raise CheckFailed("%s differs from the expected values by up to %.3g" % (what, worst))


def scalar(value, expected, what, *, rtol=1e-5, atol=1e-7):
    """Like :func:`close` for a single number (a float, a 0-d or one-element array)."""
    actual = as_array(value, what)
    if actual.size != 1:
        raise CheckFailed("%s has shape %s, expected a single number" % (
            what, shape_shown(actual.shape, ())))
    close(actual.reshape(()), np.asarray(expected, dtype=float).reshape(()), what,
          rtol=rtol, atol=atol)


def shape(value, expected_shape, what):
    actual = as_array(value, what)
    if actual.shape != tuple(expected_shape):
        raise CheckFailed("%s has shape %s, expected %s" % (
            what, shape_shown(actual.shape, tuple(expected_shape)), tuple(expected_shape)))
