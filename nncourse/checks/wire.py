"""Plain-data encoding of arrays, shared by the grader and the call server in the student's
kernel.

This module's source is sent, as it is, into the student's kernel before the call server
(``nncourse.checks.server``), so it must stay self-contained: standard library and NumPy only,
no imports from ``nncourse``. An array travels as its dtype, shape and bytes; :func:`decode`
accepts numeric arrays and nothing else, so whatever the kernel sends back cannot make the
grader run code.
"""

import base64
import traceback

import numpy as np

ARRAY_KEY = "__ndarray__"
MAX_ELEMENTS = 5_000_000
NUMERIC_KINDS = "biufc"


def encodable(value):
    """Whether :func:`encode` takes ``value``: a numeric array (or NumPy number) of at most
    MAX_ELEMENTS elements."""
    return (isinstance(value, (np.ndarray, np.generic)) and np.asarray(value).dtype.kind
            in NUMERIC_KINDS and np.asarray(value).size <= MAX_ELEMENTS)


def encode(value):
    """A numeric array (or NumPy number, as a 0-d array) as JSON-safe data, kept exact."""
    contiguous = np.asarray(value).copy(order="C")  # ascontiguousarray makes 0-d arrays 1-d
    return {ARRAY_KEY: {
        "dtype": contiguous.dtype.str,
        "shape": list(contiguous.shape),
        "data": base64.b64encode(contiguous.tobytes()).decode("ascii"),
    }}


class DecodeError(ValueError):
    pass


def decode(data):
    """Inverse of :func:`encode`; never runs anything it is sent."""
    if not isinstance(data, dict) or set(data) != {ARRAY_KEY} \
            or not isinstance(data[ARRAY_KEY], dict):
        raise DecodeError("not an array")
    spec = data[ARRAY_KEY]
    try:
        dtype = np.dtype(str(spec["dtype"]))
        shape = tuple(int(n) for n in spec["shape"])
        raw = base64.b64decode(str(spec["data"]), validate=True)
    except (KeyError, TypeError, ValueError) as exc:
        raise DecodeError("a malformed array (%s)" % type(exc).__name__) from None
    if dtype.kind not in NUMERIC_KINDS or dtype.hasobject:
        raise DecodeError("array of dtype %s" % dtype)
    if any(n < 0 for n in shape) or int(np.prod(shape, dtype=np.int64)) > MAX_ELEMENTS:
        raise DecodeError("array of shape %s" % (shape,))
    if len(raw) != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
        raise DecodeError("array data does not match its shape")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


def describe_exception(exc):
    """One line that says what student code raised and where (the grader shows only its
    class: nncourse.checks.judging.error_shown)."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    for frame in reversed(frames):
        if frame.filename.startswith("<ipython-input") or "ipykernel" in frame.filename:
            where = " (in %s, line %s)" % (frame.name, frame.lineno)
            break
    text = "%s: %s" % (type(exc).__name__, " ".join(str(exc).split()))  # one line
    if len(text) > 300:
        text = text[:297] + "..."
    return text + where
