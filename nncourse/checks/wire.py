"""Plain-data encoding shared by the grader and the student's kernel.

This module's source is pasted, as it is, into the student's kernel when a hidden check runs
(see ``nncourse.checks.render_probe``), so it must stay self-contained: standard library and
NumPy only, no imports from ``nncourse``. The kernel encodes what student code returned into
JSON-safe data; the grader decodes it with :func:`decode`, which accepts numbers, strings,
lists, dicts and numeric arrays and nothing else, so whatever the kernel sends back cannot
make the grader run code.
"""

import base64
import json
import traceback

import numpy as np

ARRAY_KEY = "__ndarray__"
OBJECT_KEY = "__object__"
ERROR_KEY = "__error__"
MAX_ELEMENTS = 5_000_000
_NUMERIC_KINDS = "biufc"


def encode(value, _depth=0):
    """Turns a student's return value into JSON-safe data, keeping arrays exact."""
    if _depth > 20:
        return {OBJECT_KEY: "deeply nested value"}
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int) and not isinstance(value, (bool, np.generic)):
        return value
    if isinstance(value, float) and not isinstance(value, np.generic):
        # JSON has no nan or inf: those travel as arrays
        return value if np.isfinite(value) else encode(np.asarray(value), _depth + 1)
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        try:
            value = value.detach().cpu().numpy()
        except Exception:
            return {OBJECT_KEY: type(value).__name__}
    if isinstance(value, np.generic):
        value = np.asarray(value)
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in _NUMERIC_KINDS or value.size > MAX_ELEMENTS:
            return {OBJECT_KEY: "array of dtype %s and shape %s" % (value.dtype, value.shape)}
        contiguous = value.copy(order="C")  # ascontiguousarray would make 0-d arrays 1-d
        return {ARRAY_KEY: {
            "dtype": contiguous.dtype.str,
            "shape": list(contiguous.shape),
            "data": base64.b64encode(contiguous.tobytes()).decode("ascii"),
        }}
    if isinstance(value, (list, tuple)):
        return [encode(item, _depth + 1) for item in value]
    if isinstance(value, dict):
        return {str(key): encode(item, _depth + 1) for key, item in value.items()}
    return {OBJECT_KEY: type(value).__name__}


def describe_exception(exc):
    """One line that says what student code raised and where, for the failure message."""
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


WARNINGS = []  # what student code warned during the probe (attempt adds to it)
WARNINGS_KEY = "__warnings__"


def _call(function, args, kwargs):
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = function(*args, **kwargs)
        except Exception as exc:  # the student's bug becomes data for the judge
            return Raised(describe_exception(exc)), []
    return value, ["%s: %s" % (w.category.__name__, w.message) for w in caught]


def attempt(function, *args, **kwargs):
    """Calls student code; returns its value, or a marker saying what it raised.

    What the call warned is kept aside (``WARNINGS``) and shown to the student as a note: a
    library's harmless warning costs nothing."""
    value, warned = _call(function, args, kwargs)
    WARNINGS.extend(warned)
    return value


def attempt_without_warnings(function, *args, **kwargs):
    """Like :func:`attempt` for tasks that ask for code that does not warn (a numerically
    stable sigmoid or softmax): a warning is a failure, reported as what the call raised."""
    value, warned = _call(function, args, kwargs)
    return Raised(warned[0]) if warned and not isinstance(value, Raised) else value


class Raised:
    """What a call into student code raised, kept as text."""

    def __init__(self, message):
        self.message = message


def encode_outputs(outputs):
    def walk(value):
        if isinstance(value, Raised):
            return {ERROR_KEY: value.message}
        if isinstance(value, dict):
            return {str(k): walk(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [walk(v) for v in value]
        return encode(value)
    return walk(outputs)


class DecodeError(ValueError):
    pass


class StudentError:
    """Decoded form of :class:`Raised`: student code raised ``message``."""

    def __init__(self, message):
        self.message = message

    def __repr__(self):
        return "StudentError(%r)" % self.message


class Opaque:
    """Decoded form of a value that is not plain data (an object, a string array...)."""

    def __init__(self, description):
        self.description = description

    def __repr__(self):
        return "Opaque(%r)" % self.description


def decode(data, _depth=0):
    """Inverse of :func:`encode` on the grader's side; never runs anything it is sent."""
    if _depth > 40:
        raise DecodeError("nested too deeply")
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if isinstance(data, list):
        return [decode(item, _depth + 1) for item in data]
    if not isinstance(data, dict):
        raise DecodeError("unexpected %s" % type(data).__name__)
    if set(data) == {ARRAY_KEY}:
        spec = data[ARRAY_KEY]
        dtype = np.dtype(str(spec["dtype"]))
        if dtype.kind not in _NUMERIC_KINDS:
            raise DecodeError("array of dtype %s" % dtype)
        shape = tuple(int(n) for n in spec["shape"])
        if any(n < 0 for n in shape) or int(np.prod(shape, dtype=np.int64)) > MAX_ELEMENTS:
            raise DecodeError("array of shape %s" % (shape,))
        raw = base64.b64decode(str(spec["data"]), validate=True)
        array = np.frombuffer(raw, dtype=dtype)
        if array.size != int(np.prod(shape, dtype=np.int64)):
            raise DecodeError("array data does not match its shape")
        return array.reshape(shape).copy()
    if set(data) == {ERROR_KEY}:
        return StudentError(str(data[ERROR_KEY]))
    if set(data) == {OBJECT_KEY}:
        return Opaque(str(data[OBJECT_KEY]))
    return {str(key): decode(item, _depth + 1) for key, item in data.items()}


def run_probe(probe, namespace, inputs_json):
    """Kernel side: runs one probe on the grader's inputs and returns its encoded outputs
    (with what the student's code warned, if anything, under WARNINGS_KEY)."""
    del WARNINGS[:]
    try:
        outputs = probe(namespace, decode(json.loads(inputs_json)))
    except Exception as exc:  # a missing class or a value of the wrong type
        return {ERROR_KEY: describe_exception(exc)}
    encoded = encode_outputs(outputs)
    if WARNINGS and isinstance(encoded, dict):
        encoded[WARNINGS_KEY] = [text[:300] for text in dict.fromkeys(WARNINGS)][:3]
    return encoded


def lookup(namespace, name):
    """The student's class or function called ``name``; raises NameError when missing."""
    if name not in namespace:
        raise NameError("%s is not defined: run the cell that defines it" % name)
    return namespace[name]
