"""The grader's side of the call server: the student's namespace as Python objects.

A check gets ``student``, a :class:`Student`. ``student.Linear`` is the student's class,
held in their kernel; calling it, ``student.Linear(3, 4)``, makes the object there and gives
back a :class:`Remote` handle to it; ``layer.W = W`` sends ``W``; ``layer.forward(x)`` sends
``x`` and gets the result back. Arguments travel as plain data (numbers, strings, NumPy
arrays, torch tensors, lists, tuples and dicts of them) or as handles; results come back as
the same plain data, or as a handle for anything else. What a call raised comes back as
:class:`StudentRaised`, which a check may catch or let fail the test ("Linear(3, 4).forward
raised ValueError").

Nothing that comes back is more than the student's outputs on the grader's inputs: it is
decoded by :mod:`wire` (numbers and arrays, never code), and every reply is kept in order
(:attr:`Student.transcript`) so that diagnosis can compare a student's run with a catalogued
mistake's run of the same check.
"""

import contextlib
import json

import numpy as np

from . import CheckFailed, server, wire
from .judging import error_shown


class StudentError:
    """In a transcript of the kernel's replies: student code raised ``message``."""

    def __init__(self, message):
        self.message = message

    def __repr__(self):
        return "StudentError(%r)" % self.message


class Opaque:
    """In a transcript of the kernel's replies: an object, by its class name."""

    def __init__(self, description):
        self.description = description

    def __repr__(self):
        return "Opaque(%r)" % self.description


class StudentRaised(Exception):
    """A call into the student's code raised (or, under :meth:`Student.no_warnings`,
    warned); ``shown`` is what the feedback may say of it."""

    def __init__(self, label, message):
        super().__init__("%s raised %s" % (label, message))
        self.label, self.message = label, message

    def shown(self):
        missing = self.message.startswith("NameError: ") and self.message.endswith(
            " is not defined: run the cell that defines it")
        if missing and self.label == _missing_name(self.message):
            return "%s is not defined: run the cell that defines it" % self.label
        return "%s raised %s" % (self.label, error_shown(self.message))


def _missing_name(message):
    return message[len("NameError: "):].split(" ", 1)[0]


class BadReply(CheckFailed):
    """A reply that is not what the call server sends (student code replaced it)."""

    def __init__(self):
        super().__init__("the check got back data it cannot read")


class Interrupted(Exception):
    """The kernel stopped a call (a limit of the grader's interrupted it) or was lost: the
    cell's remaining checks do not run."""


class LocalChannel:
    """The call server on a namespace of this process (a master notebook's, or a catalogued
    mistake's), with the same JSON round trip as a kernel's replies."""

    def __init__(self, namespace):
        self.server = server.Server(namespace)

    def send(self, request):
        return json.loads(json.dumps(self.server.handle(json.dumps(request))))


class Student:
    """The student's namespace: ``student.Name`` (or ``student["Name"]``) is what their
    code defines under that name."""

    def __init__(self, channel):
        object.__setattr__(self, "_channel", channel)
        object.__setattr__(self, "_strict", False)
        object.__setattr__(self, "_keep", False)
        object.__setattr__(self, "transcript", [])  # every reply, decoded (diagnosis)
        object.__setattr__(self, "warned", [])  # what the student's code warned

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, name):
        return self._request({"op": "lookup", "name": name}, name)

    @contextlib.contextmanager
    def no_warnings(self):
        """Calls made inside fail when the student's code warns (a task that asks for code
        that does not overflow)."""
        object.__setattr__(self, "_strict", True)
        try:
            yield
        finally:
            object.__setattr__(self, "_strict", False)

    @contextlib.contextmanager
    def kept(self):
        """Arrays and tensors that calls made inside return stay in the kernel: the check
        gets handles (to pass on, index, or :func:`fetch`), not their numbers. For the
        intermediate values of a training loop the grader drives."""
        object.__setattr__(self, "_keep", True)
        try:
            yield
        finally:
            object.__setattr__(self, "_keep", False)

    def keep(self, value):
        """A handle to ``value`` (the grader's data: a dataset, a batch) sent once and held in
        the kernel."""
        return self._request({"op": "keep", "value": self._encode(value), "keep": True},
                             "the grader's data")

    def seed(self, number):
        """Seeds the kernel's random generators (random, NumPy, torch) before the student's
        code draws from them, so that it draws the same numbers on every run."""
        self._request({"op": "seed", "seed": int(number)}, "seeding")

    def library(self, name):
        """The kernel's module ``name`` (``student.library("torch.nn").Linear(6, 5)``), for
        the grader's own objects there: the model a training function is tried on."""
        return self._request({"op": "library", "name": name}, name)

    @contextlib.contextmanager
    def globals_set(self, **values):
        """Sets globals the student's code reads (a data loader) for the calls made inside,
        and puts back what was there after."""
        before = {}
        try:
            for name, value in values.items():
                before[name] = self._request({"op": "assign", "name": name,
                                              "value": self._encode(value)}, name,
                                             recorded=False)
            yield
        finally:
            for name, (existed, value) in before.items():
                self._request({"op": "assign", "name": name, "value": self._encode(value)}
                              if existed else {"op": "assign", "name": name, "delete": True},
                              name, recorded=False)

    def stand_in(self, answers, attributes=None, call=None):
        """A stand-in object in the student's kernel that computes nothing: its k-th call of
        ``method`` returns ``answers[method][k]`` (the last one after that), calling it runs
        the method named ``call``, and it has ``attributes``. :func:`calls_of` says how the
        student's code called it."""
        return self._request({"op": "stand_in", "answers": {
            method: [self._encode(value) for value in values]
            for method, values in answers.items()},
            "attributes": self._encode(attributes or {}), "call": call}, "a stand-in")

    def table(self, keys, values, mean=False):
        """A stand-in for a function of numbers, element by element, in the student's kernel
        (their sigmoid, their loss): it answers each element with the grader's value for it
        (``values[i]`` for ``keys[i]``; a second argument above 0.5 picks column 1), nan for
        any other; ``mean``: the mean of the answers. It computes nothing."""
        return self._request({"op": "table", "keys": self._encode(np.asarray(keys, float)),
                              "values": self._encode(np.asarray(values, float)),
                              "mean": bool(mean)}, "a stand-in")

    def item_table(self, keys, values):
        """A stand-in for a function of a list of items (collating sequences into a batch):
        each item is answered with the grader's value for it (``values[i]``, a tuple, for
        the array ``keys[i]``), the parts stacked over the items as tensors."""
        return self._request({"op": "item_table", "keys": self._encode(list(keys)),
                              "values": self._encode(list(values))}, "a stand-in")

    def loss_replay(self, parameters, gradients, value):
        """A 0-d tensor in the kernel worth ``value`` whose backward() gives each of the
        model's ``parameters`` (handles) the grader's gradient: a stand-in for a loss that
        computes nothing."""
        return self._request({"op": "loss_replay",
                              "parameters": [self._encode(p) for p in parameters],
                              "gradients": [self._encode(g) for g in gradients],
                              "value": float(value), "keep": True}, "a stand-in")

    def forget(self):
        """Drops the kernel's references to the objects of this test (end of a case)."""
        self._channel.send({"op": "forget"})

    def _request(self, request, label, recorded=True):
        """The decoded reply to ``request``; kept in the transcript unless ``recorded`` is
        false (what the kernel held before, which depends on the notebook, not on the code
        the check judges)."""
        if self._strict:
            request = dict(request, strict=True)
        if self._keep and "keep" not in request:
            request = dict(request, keep=True)
        reply = self._channel.send(request)
        if not isinstance(reply, dict) or not reply.keys() <= {"ok", "raised", "warned"} \
                or len(reply.keys() & {"ok", "raised"}) != 1:
            raise BadReply()
        warned = reply.get("warned", [])
        if not isinstance(warned, list):
            raise BadReply()
        self.warned.extend(str(text)[:300] for text in warned[:3])
        if "raised" in reply:
            message = str(reply["raised"])[:1000]
            if recorded:
                self.transcript.append(StudentError(message))
            raise StudentRaised(label, message)
        value = self._decode(reply["ok"], label, 0)
        if recorded:
            self.transcript.append(_plain(value))
        return value

    def _encode(self, value):
        if isinstance(value, Remote):
            return {server.HANDLE_KEY: value._number}
        if _is_tensor(value):
            return {server.TENSOR_KEY: wire.encode(value.detach().cpu().numpy()),
                    "requires_grad": bool(value.requires_grad)}
        if isinstance(value, (np.ndarray, np.generic)):
            return wire.encode(value)
        if isinstance(value, float) and not np.isfinite(value):
            return {server.FLOAT_KEY: str(value)}
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, tuple):
            return {server.TUPLE_KEY: [self._encode(item) for item in value]}
        if isinstance(value, list):
            return [self._encode(item) for item in value]
        if isinstance(value, dict):
            return {server.DICT_KEY: {str(k): self._encode(v) for k, v in value.items()}}
        raise TypeError("a check cannot send %s to the student's kernel"
                        % type(value).__name__)

    def _decode(self, data, label, depth):
        if depth > 40:
            raise BadReply()
        if data is None or isinstance(data, (bool, int, float, str)):
            return data
        if isinstance(data, list):
            return [self._decode(item, label, depth + 1) for item in data]
        if not isinstance(data, dict):
            raise BadReply()
        try:
            if server.TENSOR_KEY in data:
                import torch
                array = wire.decode(data[server.TENSOR_KEY])
                if not isinstance(array, np.ndarray):
                    raise BadReply()
                tensor = torch.from_numpy(array)
                return Remote(self, int(data[server.HANDLE_KEY]), "Tensor", True, label,
                              value=tensor)
            if server.HANDLE_KEY in data:
                remote_ = Remote(self, int(data[server.HANDLE_KEY]),
                                 str(data.get("type"))[:100], bool(data.get("callable")), label)
                kinds = data.get("kinds", [])
                object.__setattr__(remote_, "_kinds", frozenset(
                    str(kind)[:200] for kind in (kinds if isinstance(kinds, list) else [])[:50]))
                return remote_
            if server.TUPLE_KEY in data:
                return tuple(self._decode(item, label, depth + 1)
                             for item in data[server.TUPLE_KEY])
            if server.DICT_KEY in data:
                return {str(k): self._decode(v, label, depth + 1)
                        for k, v in data[server.DICT_KEY].items()}
            if server.FLOAT_KEY in data:
                return float(str(data[server.FLOAT_KEY]))
            value = wire.decode(data)
        except (wire.DecodeError, ValueError, TypeError, KeyError, AttributeError,
                OverflowError):
            raise BadReply() from None
        if not isinstance(value, np.ndarray):
            raise BadReply()
        return value


class Remote:
    """A handle to an object in the student's kernel (an instance, a class, a method).

    A tensor the student's code returned is a Remote too, whose ``value`` is its numbers as
    a torch tensor in the grader (``.backward()`` and ``.grad`` still reach the kernel's)."""

    def __init__(self, student, number, type_name, is_callable, label, value=None):
        for name, item in [("_student", student), ("_number", number), ("_type", type_name),
                           ("_callable", is_callable), ("_label", label), ("value", value),
                           ("_kinds", frozenset())]:
            object.__setattr__(self, name, item)

    def __getattr__(self, name):
        if name.startswith("__"):  # Python's protocols (numpy asking for __array__...)
            raise AttributeError(name)
        return self._student._request(
            {"op": "get", "target": self._number, "name": name}, "%s.%s" % (self._label, name))

    def __setattr__(self, name, value):
        self._student._request({"op": "set", "target": self._number, "name": name,
                                "value": self._student._encode(value)},
                               "setting %s.%s" % (self._label, name))

    def __getitem__(self, key):
        return self._student._request(
            {"op": "item", "target": self._number, "key": self._student._encode(key)},
            "%s[%s]" % (self._label, _arguments([key], {})))

    def __call__(self, *args, **kwargs):
        label = "%s(%s)" % (self._label, _arguments(args, kwargs))
        return self._student._request(
            {"op": "call", "target": self._number,
             "args": [self._student._encode(a) for a in args],
             "kwargs": {k: self._student._encode(v) for k, v in kwargs.items()}}, label)

    def __repr__(self):
        return "<student's %s>" % self._type


def ignoring_errors(function, *args, **kwargs):
    """Calls student code whose result this check does not judge (the forward pass before
    the backward pass it checks): what it raises is the business of that part's check."""
    try:
        return function(*args, **kwargs)
    except StudentRaised:
        return None


def calls_of(stand_in):
    """``[(order, method, args, kwargs)]``: how the student's code called a stand-in, each
    call numbered in the order of all the stand-ins' calls."""
    found = stand_in._student._request({"op": "calls", "target": stand_in._number},
                                       "the stand-in's record")
    if not isinstance(found, list) or not all(
            isinstance(c, list) and len(c) == 4 and isinstance(c[0], int)
            and isinstance(c[1], str) and isinstance(c[2], list) and isinstance(c[3], dict)
            for c in found):
        raise BadReply()
    return [tuple(call) for call in found]


def listed(value):
    """What iterating over a handle gives, as a list (``listed(model.modules())``)."""
    found = value._student._request({"op": "list", "target": value._number},
                                    "%s, listed" % value._label)
    if not isinstance(found, list):
        raise BadReply()
    return found


def fetch(value):
    """The numbers (or plain data) behind a handle the kernel kept (``Student.kept``), or an
    argument the student's code may have changed in place."""
    return value._student._request({"op": "fetch", "target": value._number, "keep": False},
                                   "%s's value" % value._label)


def is_instance(value, qualified_name):
    """Whether what the student's code returned is an instance of the class
    ``module.QualifiedName`` (as its handle's class and bases say, e.g.
    "torch.nn.modules.module.Module")."""
    return isinstance(value, Remote) and qualified_name in value._kinds


def same_object(a, b):
    """Whether two values the kernel sent are one object there (the server gives an object
    the same handle every time)."""
    return isinstance(a, Remote) and isinstance(b, Remote) and a._number == b._number


def type_name(value):
    """The class name of what the student's code returned (a Remote's, or a plain value's)."""
    return value._type if isinstance(value, Remote) else type(value).__name__


def value_of(value):
    """The numbers of a returned tensor (a Remote with a ``value``), else ``value``."""
    if isinstance(value, Remote) and value.value is not None:
        return value.value
    return value


def _is_tensor(value):
    return type(value).__name__ in ("Tensor", "Parameter") and hasattr(value, "detach")


def _arguments(args, kwargs):
    """Short words for a call's arguments in a message: numbers and strings as they are,
    arrays and tensors by their shape ("a 5x3 array"), anything else as "..."."""
    def word(value):
        if value is None or isinstance(value, (bool, int, float, str)):
            return repr(value)
        if isinstance(value, np.ndarray) or _is_tensor(value):
            shape = "x".join(map(str, value.shape)) or "0-d"
            return "a %s %s" % (shape, "array" if isinstance(value, np.ndarray) else "tensor")
        return "..."
    words = [word(a) for a in args] + ["%s=%s" % (k, word(v)) for k, v in kwargs.items()]
    return ", ".join(words)


def _plain(value):
    """A reply as diagnosis compares it: handles by their class, tensors by their numbers."""
    if isinstance(value, Remote):
        return value.value.numpy() if value.value is not None else Opaque(value._type)
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
