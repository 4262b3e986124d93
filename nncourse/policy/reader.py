"""Reading one cell's code for :mod:`nncourse.policy`: what it defines, what it reads, which
library names it reaches (through import aliases and simple assignments), and what it does
that can only serve to rewrite the kernel or escape it."""

import ast
import re
from dataclasses import dataclass, field

# Modules whose use in a graded notebook can only serve to rewrite the kernel or escape it.
TAMPERING_MODULES = (
    "sys", "builtins", "importlib", "inspect", "gc", "ctypes", "cffi", "IPython", "ipykernel",
    "traitlets", "zmq", "jupyter_client", "types", "ast", "dis", "marshal", "pickle", "dill",
    "code", "codeop", "threading", "_thread", "multiprocessing", "concurrent", "signal",
    "atexit", "subprocess", "pty", "socket", "asyncio", "tracemalloc", "faulthandler",
    "runpy", "pdb", "bdb", "trace", "weakref", "nncourse", "nbgrader", "mmap", "resource",
    "base64", "codecs", "binascii", "zlib", "operator",
)
TAMPERING_NAMES = (
    "exec", "eval", "compile", "__import__", "globals", "locals", "vars", "breakpoint",
    "get_ipython", "In", "Out", "_ih", "_oh", "_dh", "_i", "_ii", "_iii",
    "__builtins__", "__builtin__", "exit", "quit", "memoryview",
)
TAMPERING_OS = ("system", "popen", "fork", "forkpty", "kill", "killpg", "execv", "execve",
                "execl", "execle", "execlp", "execvp", "execvpe", "spawnv", "spawnve", "spawnl",
                "spawnle", "spawnlp", "spawnlpe", "spawnvp", "spawnvpe", "posix_spawn",
                "posix_spawnp", "environ", "putenv", "setsid", "setpgid", "ptrace", "_exit",
                "abort", "dup2")
# dunder attributes ordinary classes use; any other one is introspection
SAFE_DUNDERS = ("__init__", "__call__", "__name__", "__len__", "__getitem__", "__repr__",
                "__str__", "__iter__", "__next__", "__doc__")
SAFE_MAGICS = ("matplotlib", "time", "timeit")
DISPLAY = ("IPython.display",)  # showing things is fine (what it shows is sanitised)
# a library's settings that a notebook may set (``torch.backends.cudnn.benchmark = True``)
LIBRARY_SETTINGS = ("torch.backends", "matplotlib.rcParams", "matplotlib.pyplot.rcParams")
_DYNAMIC_ATTRIBUTE = ("getattr", "setattr", "delattr", "hasattr")
_INPUT_HISTORY = re.compile(r"^_i\d+$")  # IPython's inputs by number: they hold the test cells


@dataclass
class _Cell:
    index: int
    student: bool
    defines: set = field(default_factory=set)
    functions: set = field(default_factory=set)  # functions and classes it defines at top level
    bound: set = field(default_factory=set)  # every name it binds at top level (def, class, =)
    bases: set = field(default_factory=set)  # the names its top-level classes inherit from
    uses: set = field(default_factory=set)   # plain names read
    chains: list = field(default_factory=list)  # (dotted name, line) of attribute chains
    tampering: list = field(default_factory=list)
    attributes: list = field(default_factory=list)  # (attribute, line)


def python_source(source):
    """The cell's code as Python (IPython magics and shell lines turned into calls)."""
    from IPython.core.inputtransformer2 import TransformerManager
    return TransformerManager().transform_cell(source)


def _dotted(node):
    """``a.b.c`` for a chain of attributes on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id] + parts[::-1])
    return None


def module_of(alias, aliases):
    """The dotted module path a name or chain refers to (through the aliases), or None."""
    head, _, rest = alias.partition(".")
    if head not in aliases:
        return None
    return aliases[head] + ("." + rest if rest else "")


def starts(dotted, prefixes):
    return next((p for p in prefixes if dotted == p or dotted.startswith(p + ".")), None)


def _tampering_module(dotted):
    return starts(dotted, TAMPERING_MODULES) is not None


def _magic_call(node):
    """('line'|'cell'|'system', name) for get_ipython().run_line_magic('name', ...) calls."""
    func = node.func
    if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Call)
            and isinstance(func.value.func, ast.Name) and func.value.func.id == "get_ipython"):
        return None
    if func.attr in ("run_line_magic", "run_cell_magic") and node.args \
            and isinstance(node.args[0], ast.Constant):
        return func.attr, str(node.args[0].value)
    return func.attr, ""


class _Reader(ast.NodeVisitor):
    """Collects what one cell defines, reads, and does that breaks the rules."""

    def __init__(self, cell, aliases):
        self.cell, self.aliases = cell, aliases
        self.depth = 0  # inside how many functions and classes
        self.computed = []  # (node, function): getattr-like calls whose attribute name is
        # computed, or getattr itself handed to other code (functools.reduce(getattr, ...))
        self.name_building = []  # ...the cell also builds names that could be dunders

    def finish(self):
        if self.computed and self.name_building:
            node, function = self.computed[0]
            self.flag(node, "calls %s with an attribute name built from %s"
                      % (function, self.name_building[0]))

    def visit_Constant(self, node):
        text = node.value.decode("latin-1") if isinstance(node.value, bytes) else node.value
        if isinstance(text, str) and (text.startswith("_") or text.endswith("_")
                                      or "%c" in text or ":c}" in text):
            self.name_building.append(repr(text)[:20])

    def flag(self, node, what):
        self.cell.tampering.append("%s (line %d)" % (what, getattr(node, "lineno", 0)))

    def visit_Import(self, node):
        for alias in node.names:
            name = alias.asname or alias.name.split(".")[0]
            self.aliases[name] = alias.name if alias.asname else alias.name.split(".")[0]
            shown_only = alias.asname and starts(alias.name, DISPLAY)  # not all of IPython
            if _tampering_module(alias.name) and not shown_only:
                self.flag(node, "imports %s" % alias.name)
            self._binds(node, name)
            self.cell.chains.append((alias.name, node.lineno))
            self.cell.defines.add(name)

    def visit_ImportFrom(self, node):
        module = ("." * node.level) + (node.module or "")
        if node.level or _tampering_module(module) and not starts(module, DISPLAY):
            self.flag(node, "imports from %s" % module)
        for alias in node.names:
            name = alias.asname or alias.name
            self.aliases[name] = module + "." + alias.name
            self.cell.chains.append((module + "." + alias.name, node.lineno))
            self.cell.defines.add(name)
            if alias.name in TAMPERING_NAMES or alias.name in TAMPERING_OS and module == "os":
                self.flag(node, "imports %s from %s" % (alias.name, module))
            elif alias.asname:
                self._binds(node, alias.asname)

    def _binds(self, node, name):
        """A name bound by an import, an argument, a pattern or an ``except ... as``: one of
        the builtins the grader's own code runs with would be replaced by it."""
        if name in TAMPERING_NAMES:
            self.flag(node, "binds the name %s" % name)

    def visit_arg(self, node):
        self._binds(node, node.arg)
        self.generic_visit(node)

    def visit_MatchAs(self, node):  # ``case name``; the same for ``case [*name]`` and
        if node.name:                 # ``except E as name``
            self._binds(node, node.name)
            self.cell.defines.add(node.name)
        self.generic_visit(node)

    visit_MatchStar = visit_ExceptHandler = visit_MatchAs

    def visit_MatchMapping(self, node):
        if node.rest:
            self._binds(node, node.rest)
            self.cell.defines.add(node.rest)
        self.generic_visit(node)

    def visit_MatchClass(self, node):
        for attribute in node.kwd_attrs:  # ``case object(__globals__=g)`` reads that attribute
            self._reads_attribute(node, attribute)
        self.generic_visit(node)

    def _reads_attribute(self, node, attribute):
        if attribute.startswith("__") and attribute not in SAFE_DUNDERS:
            self.flag(node, "uses the attribute %s" % attribute)
        self.cell.attributes.append((attribute, node.lineno))

    def _define(self, target):
        for node in ast.walk(target):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                self.cell.defines.add(node.id)

    def visit_ClassDef(self, node):
        if self.depth == 0:
            self.cell.bases |= {b.id for b in node.bases if isinstance(b, ast.Name)}
        self.visit_FunctionDef(node)

    def visit_FunctionDef(self, node):
        if self.depth == 0:  # methods and inner functions are not the cell's own names
            self.cell.defines.add(node.name)
            self.cell.functions.add(node.name)
            self.cell.bound.add(node.name)
        if node.name in TAMPERING_NAMES:
            self.flag(node, "defines %s" % node.name)
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Assign(self, node):
        for target in node.targets:
            self._define(target)
            if self.depth == 0:  # ``x = ...`` binds x; ``ReLU.forward = ...`` changes ReLU
                root = target
                while isinstance(root, (ast.Attribute, ast.Subscript)):
                    root = root.value
                if isinstance(root, ast.Name):
                    self.cell.bound.add(root.id)
            self._assigned_attribute(target)
        # a simple alias of a module (``T = torch``, ``F = torch.nn.functional``) is followed
        dotted = _dotted(node.value) if isinstance(node.value, (ast.Name, ast.Attribute)) else None
        module = module_of(dotted, self.aliases) if dotted else None
        if module:
            for target in node.targets:
                if isinstance(target, ast.Name):
                    self.aliases[target.id] = module
        self.generic_visit(node)

    def visit_AugAssign(self, node):
        self._assigned_attribute(node.target)
        self.generic_visit(node)

    def visit_AnnAssign(self, node):
        self._define(node.target)
        self.generic_visit(node)

    def _assigned_attribute(self, target):
        """Assigning to an attribute of a module (``np.allclose = ...``) rewrites the library
        for every test that follows."""
        for node in ast.walk(target):
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                dotted = _dotted(node)
                module = module_of(dotted, self.aliases) if dotted else None
                if module and not starts(module, LIBRARY_SETTINGS):
                    self.flag(node, "assigns to %s" % dotted)

    def visit_Name(self, node):
        if isinstance(node.ctx, ast.Load):
            if node.id in TAMPERING_NAMES or _INPUT_HISTORY.match(node.id):
                self.flag(node, "uses %s" % node.id)
            self.cell.uses.add(node.id)
            self.cell.chains.append((node.id, node.lineno))
        else:  # a global called exec or globals would take the place of the builtin
            if node.id in TAMPERING_NAMES:
                self.flag(node, "assigns to %s" % node.id)
            self.cell.defines.add(node.id)

    def visit_Attribute(self, node):
        self._reads_attribute(node, node.attr)
        dotted = _dotted(node)
        if dotted:
            self.cell.chains.append((dotted, node.lineno))
            module = module_of(dotted, self.aliases)
            if module and module.split(".")[0] == "os" and module.split(".")[-1] in TAMPERING_OS:
                self.flag(node, "uses %s" % module)
            if module and _tampering_module(module) and not starts(module, DISPLAY):
                self.flag(node, "uses %s" % module)
        self.generic_visit(node)

    def visit_Call(self, node):
        magic = _magic_call(node)
        if magic is not None:
            kind, name = magic
            if kind == "run_line_magic" and name in SAFE_MAGICS or \
                    kind == "run_cell_magic" and name in SAFE_MAGICS:
                for argument in node.args[1:]:
                    self.visit(argument)
                return
            self.flag(node, "runs the IPython command %s%s" % (
                {"system": "!", "getoutput": "!", "run_cell_magic": "%%"}.get(kind, "%"), name))
            return
        func = node.func
        if isinstance(func, ast.Name) and func.id in ("chr", "bytes", "bytearray", "format"):
            self.name_building.append(func.id)
        if isinstance(func, ast.Attribute) and func.attr in ("decode", "replace", "translate",
                                                            "join", "format", "swapcase"):
            self.name_building.append(func.attr)
        if isinstance(func, ast.Name) and func.id in _DYNAMIC_ATTRIBUTE:
            name = node.args[1] if len(node.args) > 1 else None
            target = _dotted(node.args[0]) if node.args else None
            literal = isinstance(name, ast.Constant) and isinstance(name.value, str)
            if literal and name.value.startswith("__"):
                self.flag(node, "calls %s with the special attribute %s" % (func.id, name.value))
            elif not literal and target and module_of(target, self.aliases):
                self.flag(node, "calls %s on %s with a computed name" % (func.id, target))
            elif not literal:
                self.computed.append((node, func.id))  # fine (getattr(self, "d" + name))...
            elif func.id in ("setattr", "delattr") and target and module_of(target, self.aliases):
                self.flag(node, "calls %s on %s" % (func.id, target))
        if isinstance(func, ast.Name) and func.id == "open" and node.args \
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str) \
                and node.args[0].value.startswith(("/proc", "/dev", "/sys")):
            self.flag(node, "opens %s" % node.args[0].value)
        for keyword in node.keywords:
            if keyword.arg:
                self.cell.attributes.append((keyword.arg, node.lineno))
        for argument in node.args + [keyword.value for keyword in node.keywords]:
            if isinstance(argument, ast.Name) and argument.id in _DYNAMIC_ATTRIBUTE:
                self.computed.append((node, argument.id))  # who calls it, with what name?
        self.generic_visit(node)


def parse(source):
    try:
        return ast.parse(python_source(source))
    except (SyntaxError, ValueError):
        return None  # it cannot run either: the test cells after it fail on their own


def read_cell(source, index, student, aliases):
    """What a cell defines and uses, read as a whole (a test cell, a course's cell)."""
    cell = _Cell(index, student)
    tree = parse(source)
    if tree is not None:
        reader = _Reader(cell, aliases)
        reader.visit(tree)
        reader.finish()
    return cell


def read_statements(source, index, aliases, trusted):
    """A student's cell: (one :class:`_Cell` per top-level statement, so that a breach costs
    the names that statement binds and not its neighbours'; what the cell as a whole does
    that tampers). ``trusted``: statements (``ast.dump``) of the source's own cells, which
    count as the course's even inside an edited cell."""
    try:
        return _read_units(source, index, aliases, trusted)
    except (RecursionError, MemoryError):  # code too deep to read is not given the benefit
        return [], ["is nested too deeply for the grader to read"]


def _read_units(source, index, aliases, trusted):
    tree = parse(source)
    if tree is None:
        return [], []
    whole = _Cell(index, True)
    whole_reader = _Reader(whole, aliases)
    units = []
    for statement in tree.body:
        if ast.dump(statement) in trusted:
            _Reader(_Cell(index, False), aliases).visit(statement)  # only its aliases count
            continue
        whole_reader.visit(statement)
        unit = _Cell(index, True)
        _Reader(unit, dict(aliases)).visit(statement)
        units.append(unit)
    whole_reader.finish()
    return units, whole.tampering
