"""The call server: the one piece of code the grader sends into a student's kernel.

A hidden check runs in the grader (:mod:`nncourse.checks.remote`) and drives the student's
code through requests to this server: look up a name, read or write an attribute, call
something. Arguments arrive as plain data (numbers, strings, arrays, tensors) or as handles to
objects the server made earlier; what comes back is plain data, a handle, or what the call
raised, with what it warned. The server has no check logic, no oracle and no stand-in: it
is the same for every check and every problem set, so nothing of a hidden test can be read
back from the kernel but the inputs it was sent.

Its source is sent as it is, after ``wire.py`` (``nncourse.autograde.execute.SERVER_PROGRAM``),
so it must stay
self-contained: the standard library, NumPy and the names of ``wire.py``. Master notebooks
and the tests run the same class in-process (:class:`nncourse.checks.remote.LocalChannel`).
"""

import json
import warnings

import numpy as np

try:  # when sent to a kernel, wire.py's names are already defined above this module
    from .wire import decode, describe_exception, encodable, encode
except ImportError:  # pragma: no cover - the kernel's copy
    pass

HANDLE_KEY = "__handle__"
TENSOR_KEY = "__tensor__"
TUPLE_KEY = "__tuple__"
DICT_KEY = "__dict__"
FLOAT_KEY = "__float__"  # nan and the infinities, which JSON lacks
MAX_WARNINGS = 3
# What one reply may carry as data; anything past it comes back as a handle, so that a value
# the student's code makes big cannot stall or flood the grader.
MAX_REPLY_BYTES = 16_000_000
MAX_STRING = 10_000
MAX_ITEMS = 10_000


class Server:
    """Answers one request at a time about the objects of ``namespace`` (the student's)."""

    def __init__(self, namespace):
        self.namespace = namespace
        self.objects = {}  # handle number -> object the grader holds a handle to
        self._numbers = {}  # id of such an object -> its handle number
        self._records = {}  # id of a stand-in -> (it, its record of calls)
        self._budget = 0  # what the reply being written may still hold, in bytes
        self._ticks = 0

    def _clock(self):
        """The order of calls across every stand-in (which layer the student called first)."""
        self._ticks += 1
        return self._ticks

    def handle(self, request_json):
        """One request (JSON text) in, one reply (a JSON-safe dict) out."""
        request = json.loads(request_json)
        op = request["op"]
        if op == "forget":
            self.objects.clear()
            self._numbers.clear()
            self._records.clear()
            return {"ok": None}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                value = self._run(op, request)
            except KeyboardInterrupt:  # the grader's limit: the whole cell stops
                raise
            except BaseException as exc:  # the student's code raised (SystemExit too)
                return {"raised": describe_exception(exc)}
        warned = ["%s: %s" % (w.category.__name__, w.message) for w in caught][:MAX_WARNINGS]
        if warned and request.get("strict"):
            return {"raised": warned[0]}
        self._budget = MAX_REPLY_BYTES
        reply = {"ok": self._out(value, keep=bool(request.get("keep")))}
        if warned:
            reply["warned"] = warned
        return reply

    def _run(self, op, request):
        if op == "stand_in":
            answers = {str(k): [self._in(v) for v in values]
                       for k, values in request["answers"].items()}
            reply, record = _replier(answers, self._clock)
            stand_in = StandIn(reply, self._in(request.get("attributes", {})),
                               request.get("call"), answers)
            self._records[id(stand_in)] = (stand_in, record)
            return stand_in
        if op == "item_table":
            return ItemTable(self._in(request["keys"]), self._in(request["values"]))
        if op == "loss_replay":  # a loss whose gradients are the grader's numbers
            parameters = [self._in(item) for item in request["parameters"]]
            gradients = [self._in(item) for item in request["gradients"]]
            surrogate = sum((p * g.to(p.dtype)).sum() for p, g in zip(parameters, gradients))
            return surrogate - surrogate.detach() + float(request["value"])
        if op == "table":
            return Table(self._in(request["keys"]), self._in(request["values"]),
                         request.get("mean", False))
        if op == "keep":  # a value of the grader's, held in the kernel (a dataset)
            return self._in(request["value"])
        if op == "seed":  # the student's code draws the same numbers on every run
            import random
            random.seed(request["seed"])
            np.random.seed(request["seed"])
            import sys
            if "torch" in sys.modules:
                sys.modules["torch"].manual_seed(request["seed"])
            return None
        if op == "library":  # a module of the kernel's (torch.nn), imported by its name
            import importlib
            return importlib.import_module(request["name"])
        if op == "assign":  # a global the student's code reads (a data loader), or none
            name = request["name"]
            before = [name in self.namespace, self.namespace.get(name)]
            if request.get("delete"):
                self.namespace.pop(name, None)
            else:
                self.namespace[name] = self._in(request["value"])
            return before
        if op == "lookup":
            name = request["name"]
            if name not in self.namespace:
                raise NameError("%s is not defined: run the cell that defines it" % name)
            return self.namespace[name]
        target = self.objects[request["target"]]
        if op == "calls":  # what the student's code asked of a stand-in
            return self._records.get(id(target), (None, None))[1]
        if op == "get":
            return getattr(target, request["name"])
        if op == "item":
            return target[self._in(request["key"])]
        if op == "fetch":  # the value behind a handle, as data
            return target
        if op == "list":  # what iterating over it gives (model.modules())
            return list(target)
        if op == "set":
            setattr(target, request["name"], self._in(request["value"]))
            return None
        if op == "call":
            args = [self._in(a) for a in request.get("args", [])]
            kwargs = {str(k): self._in(v) for k, v in request.get("kwargs", {}).items()}
            return target(*args, **kwargs)
        raise ValueError("unknown request %r" % op)

    def _in(self, data):
        """A request's argument as the object the student's code is given."""
        if isinstance(data, list):
            return [self._in(item) for item in data]
        if not isinstance(data, dict):
            return data
        if HANDLE_KEY in data:
            return self.objects[data[HANDLE_KEY]]
        if TUPLE_KEY in data:
            return tuple(self._in(item) for item in data[TUPLE_KEY])
        if DICT_KEY in data:
            return {str(k): self._in(v) for k, v in data[DICT_KEY].items()}
        if FLOAT_KEY in data:
            return float(data[FLOAT_KEY])
        if TENSOR_KEY in data:
            import torch
            tensor = torch.from_numpy(decode(data[TENSOR_KEY]))
            return tensor.requires_grad_(True) if data.get("requires_grad") else tensor
        return decode(data)  # an array

    def _out(self, value, depth=0, keep=False):
        """What the grader gets back: plain data, or a handle to anything else (``keep``:
        to arrays and tensors too, which then stay in the kernel)."""
        if depth > 20:
            return self._keep(value)
        if isinstance(value, str) and not isinstance(value, np.generic):
            return value if self._spend(len(value)) and len(value) <= MAX_STRING \
                else self._keep(value)
        if value is None or isinstance(value, (bool, int)) and not isinstance(value, np.generic):
            return value
        if isinstance(value, float):
            return value if np.isfinite(value) else {FLOAT_KEY: str(value)}
        if keep and (isinstance(value, np.ndarray) or type(value).__name__ in ("Tensor",
                                                                                 "Parameter")):
            return self._keep(value)
        if encodable(value):
            return encode(value) if self._spend(np.asarray(value).nbytes) else self._keep(value)
        if type(value).__name__ in ("Tensor", "Parameter") and hasattr(value, "detach"):
            try:
                array = value.detach().cpu().numpy()
            except Exception:
                return self._keep(value)
            if not encodable(array) or not self._spend(array.nbytes):
                return self._keep(value)
            return {TENSOR_KEY: encode(array), "requires_grad": bool(value.requires_grad),
                    HANDLE_KEY: self._number(value)}
        if isinstance(value, (list, tuple, dict)) and len(value) > MAX_ITEMS:
            return self._keep(value)
        if type(value) in (list, tuple):
            items = [self._out(item, depth + 1, keep) for item in value]
            return items if type(value) is list else {TUPLE_KEY: items}
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            return {DICT_KEY: {k: self._out(v, depth + 1, keep) for k, v in value.items()}}
        return self._keep(value)

    def _spend(self, size):
        """Whether the reply being written can still carry ``size`` more bytes."""
        self._budget -= size
        return self._budget >= 0

    def _number(self, value):
        """The handle of ``value``: the same one every time it is sent back, so that the
        grader can tell whether two values are one object (the loader it gave)."""
        number = self._numbers.get(id(value))
        if number is None:
            number = self._numbers[id(value)] = len(self.objects) + 1
            self.objects[number] = value  # which keeps id(value) its own
        return number

    def _keep(self, value):
        kinds = ["%s.%s" % (getattr(c, "__module__", "?"), getattr(c, "__qualname__", "?"))
                 for c in type(value).__mro__]
        return {HANDLE_KEY: self._number(value), "type": type(value).__name__,
                "callable": callable(value), "kinds": kinds[:50]}


class StandIn:
    """A stand-in for a part the check does not grade (a layer, a loss): it computes nothing.
    Its k-th call of a method answers with the grader's k-th value for that method (extra
    calls get the last one). What it answers and its record of the calls, numbered in the
    order of all the stand-ins' calls, live in its ``_reply`` closure (_replier): out of the
    reach of the code that calls it, but by introspection, which the source policy costs."""

    def __init__(self, reply, attributes, call, methods):
        self._reply, self._call, self._methods = reply, call, frozenset(methods)
        for name, value in attributes.items():
            setattr(self, name, value)

    def __call__(self, *args, **kwargs):
        if self._call is None:
            raise TypeError("this stand-in is not callable")
        return self._reply(self._call, args, kwargs)

    def __getattr__(self, name):
        if name.startswith("_") or name not in self.__dict__.get("_methods", ()):
            raise AttributeError(name)
        return lambda *args, **kwargs: self._reply(name, args, kwargs)


def _replier(answers, clock):
    """A stand-in's replying function and the list it records the calls in."""
    counts, record = {}, []

    def reply(method, args, kwargs):
        record.append([clock(), method, list(args), dict(kwargs)])
        values = answers[method]
        number = counts.get(method, 0)
        counts[method] = number + 1
        answer = values[min(number, len(values) - 1)]
        for fresh in ("clone", "copy"):  # a tensor, an array: the student may change it
            if hasattr(answer, fresh):
                return getattr(answer, fresh)()
        return answer
    return reply, record


class Table:
    """A stand-in for a function of numbers, element by element: each element of its first
    argument is looked up among the grader's ``keys`` (sorted; equal within 1e-9 relative)
    and answered with that key's value (nan for a value correct code never passes); a second
    argument, when given, picks the value's column element by element (above 0.5: column 1,
    as a target of 1); ``mean``: the mean of the answers, as a number."""

    def __init__(self, keys, values, mean):
        self.keys = np.asarray(keys, dtype=float)
        self.values = np.asarray(values, dtype=float).reshape(len(self.keys), -1)
        self.mean = mean

    def _column(self, x, column):
        flat = x.ravel()
        keys = self.keys
        if len(keys) > 1:  # the nearer of the two neighbours
            at = np.clip(np.searchsorted(keys, flat), 1, len(keys) - 1)
            at = np.where(np.abs(keys[at - 1] - flat) < np.abs(keys[at] - flat), at - 1, at)
        else:
            at = np.zeros(flat.shape, dtype=int)
        found = np.abs(keys[at] - flat) <= 1e-9 * np.maximum(1.0, np.abs(flat))
        return np.where(found, self.values[at, column], np.nan).reshape(x.shape)

    def __call__(self, x, by=None):
        x = np.asarray(x, dtype=float)
        if by is None:
            answer = self._column(x, 0)
        else:
            by = np.asarray(by, dtype=float).reshape(x.shape)
            answer = np.where(by > 0.5, self._column(x, 1), self._column(x, 0))
        return float(np.mean(answer)) if self.mean else answer


class ItemTable:
    """A stand-in for a function of a list of items (sequences) and more: each item is looked
    up among the grader's ``keys`` (an equal array) and the answer's k-th part is the stack,
    over the items, of the k-th part of their values (tensors, as padded batches are)."""

    def __init__(self, keys, values):
        self.keys = [np.asarray(key, dtype=float) for key in keys]
        self.values = values

    def __call__(self, items, *rest):
        import torch
        rows = []
        for item in items:
            item = np.asarray(item, dtype=float)
            found = [value for key, value in zip(self.keys, self.values)
                     if key.shape == item.shape and np.array_equal(key, item)]
            if not found:
                raise ValueError("a stand-in was given a value correct code never gives it")
            rows.append(found[0])
        return tuple(torch.stack([torch.as_tensor(np.asarray(row[part], dtype=np.float32))
                                  for row in rows]) for part in range(len(rows[0])))


def install(namespace):
    """Binds the kernel's entry point: ``_nncourse_calls(request_json)`` returns the reply
    as an object the kernel's display formatter sends back as JSON (``user_expressions``)."""
    server = Server(namespace)

    class Reply:
        def __init__(self, reply):
            self.reply = reply

        def _repr_json_(self):
            return self.reply

        def __repr__(self):
            return "<call reply>"

    namespace["_nncourse_calls"] = lambda request_json: Reply(server.handle(request_json))

