"""What a student's code may use, checked on its source in the grader (never in the kernel).

Hidden checks judge outputs, so they cannot see *how* an output was computed: a ps1 backward
pass done by torch autograd returns the right numbers. Nor can they stop code that rewrites
the kernel (an input transformer, an ``exec`` hook, a patched display function) before a test
cell runs. This module reads the code a student wrote, before the notebook runs, and says which
test cells a breach costs:

- *tampering* (``exec``/``eval``, hooks into IPython, introspection through dunder attributes,
  assigning to a library's attributes, ``sys``/``inspect``/``ctypes``... or shell commands):
  every test cell after the cell that does it scores 0, since such code can reach them all;
- *forbidden libraries* (``POLICY`` of each check module: ps1 is NumPy only, ps2's layers are
  built from tensor operations): the test cells whose checks use a name the offending cell
  defines, directly or through helpers it calls, score 0;
- *borrowed helpers*: student code may not use names that the notebook's own test cells define
  (their stand-ins and helpers are there to test one part alone, not to be handed in).

Student code is every code cell that is not a test cell and is not, verbatim, one of the
source notebook's own cells. The analysis is static, so it errs towards the student: it
follows import aliases and simple assignments, not values built at run time (and the rules
forbid the functions that build names at run time).
"""

import ast
from dataclasses import dataclass, field

from nbgrader import utils

from .reader import module_of, parse, read_cell, read_statements, starts

@dataclass(frozen=True)
class Rule:
    """Libraries that graded code may not use: the code of ``names`` (all graded names when
    empty), and the helpers it calls.

    ``modules``: dotted prefixes (``torch`` forbids ``torch.tensor``, ``torch.nn``: only
    ``torch.nn``); ``attributes``: attribute names forbidden on any object
    (``requires_grad``); ``helpers``: functions of the notebook's own cells that are there
    for its tests (trusted stand-ins); ``why``: the reason a student reads.
    """
    modules: tuple = ()
    attributes: tuple = ()
    helpers: tuple = ()
    names: tuple = ()
    why: str = ""


@dataclass
class Review:
    """What reading a submission found: ``costs`` maps the grade_id of each test cell it
    forfeits to the reason; ``tampering_cell`` is the index (in ``notebook.cells``) of the
    first cell that tampers with the kernel, or None."""
    costs: dict = field(default_factory=dict)
    tampering_cell: int = None


def is_test_cell(cell):
    """An nbgrader test cell (graded, not a solution): the course's own, restored from the
    source."""
    return cell.cell_type == "code" and utils.is_grade(cell) and not utils.is_solution(cell)


def _library_breach(cell, rule, aliases):
    """The first use in ``cell`` of something ``rule`` forbids, as text, or None."""
    for dotted, line in cell.chains:
        module = module_of(dotted, aliases) or dotted
        if "." not in dotted and dotted not in aliases:
            continue  # a plain name that is no module
        found = starts(module, rule.modules)
        if found:
            return "%s (line %d)" % (module, line)
    for attribute, line in cell.attributes:
        if attribute in rule.attributes:
            return "%s (line %d)" % (attribute, line)
    borrowed = sorted(cell.uses & set(rule.helpers))
    if borrowed:
        return "%s (a helper of the notebook's tests)" % borrowed[0]
    return None


def review(notebook, source, rules=(), names_of=None):
    """Which test cells a breach of the rules costs (a :class:`Review`).

    ``notebook``: the submission (test cells restored); ``source``: the master notebook (its
    own cells are trusted as they are); ``rules``: the problem set's :class:`Rule` list;
    ``names_of(grade_id)``: the names the checks of that test cell take from the student's
    code (``nncourse.checks.runner.names_used``).
    """
    own = [c for c in source.cells if c.cell_type == "code" and not utils.is_solution(c)]
    trusted = {c.source.strip() for c in own}
    statements = {ast.dump(s) for c in own for s in getattr(parse(c.source), "body", [])}
    aliases, students, tests, tampering = {}, [], [], {}
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        if is_test_cell(cell):
            tests.append((index, cell.metadata.nbgrader["grade_id"],
                          read_cell(cell.source, index, False, dict(aliases))))
        elif utils.is_solution(cell) or cell.source.strip() not in trusted:
            units, tampering[index] = read_statements(cell.source, index, aliases, statements)
            students += units
        else:
            read_cell(cell.source, index, False, aliases)  # the course's own cell: its aliases
    breaches = _breaches(students, [cell for _, _, cell in tests], rules, aliases)
    graded = set().union(*[set(names_of(g)) for _, g, _ in tests]) if names_of else set()
    tainted = _taint(students, breaches, graded)
    first_tampering = next((index for index in sorted(tampering) if tampering[index]), None)
    costs = {}
    for test_index, grade_id, _ in tests:
        if first_tampering is not None and first_tampering < test_index:
            costs[grade_id] = ("the code in cell %d %s, which graded code may not do (it could "
                               "change how the tests run); the tests after it score 0"
                               % (first_tampering + 1, tampering[first_tampering][0]))
            continue
        for name in sorted(names_of(grade_id) if names_of else ()):
            index, why, rule = tainted.get(name, (test_index, None, None))
            # a rule for some names only (ps2's layers) does not reach the others (TorchNet)
            if index < test_index and (rule is None or not rule.names or name in rule.names):
                costs[grade_id] = "%s (cell %d) %s" % (name, index + 1, why)
                break
    return Review(costs, first_tampering)


def _breaches(students, tests, rules, aliases):
    """{id of a student statement: (why, rule)} for the statements that break a rule, or
    borrow a test's helper (rule None: it applies to every graded name)."""
    # the functions and classes of the test cells (stand-ins, reference helpers) are not the
    # student's to hand in, unless a student cell defines its own of that name; those of the
    # notebook's other cells (a base class, a training loop) are there to be used
    helpers = set().union(*[cell.functions for cell in tests])
    helpers -= set().union(*[unit.defines for unit in students])
    breaches = {}
    for unit in students:
        for rule in rules:
            found = _library_breach(unit, rule, aliases)
            if found:
                breaches[id(unit)] = ("uses %s: %s" % (found, rule.why), rule)
                break
        borrowed = sorted(unit.uses & helpers)
        if borrowed and id(unit) not in breaches:
            breaches[id(unit)] = ("uses %s, defined by the notebook's tests, not by you"
                                  % ", ".join(borrowed), None)
    return breaches


def _taint(students, breaches, graded=frozenset()):
    """{name: (cell index, why, rule)} for the names bound by breaching statements; a
    statement that uses such a name breaks the same rule (followed in order). A ``graded``
    part passes its breach on only to the classes that inherit from it (LinearL2 from
    Linear): a part that calls it is judged on its own, and the called part's cells pay."""
    tainted = {}
    for unit in students:
        if id(unit) not in breaches:
            used = sorted(n for n in unit.uses if n in tainted
                          and (n not in graded or n in unit.bases))
            if used:
                index, why, rule = tainted[used[0]]
                breaches[id(unit)] = ("calls %s from cell %d, which %s" % (used[0], index + 1,
                                                                           why), rule)
        if id(unit) in breaches:
            why, rule = breaches[id(unit)]
            for name in unit.bound:
                tainted.setdefault(name, (unit.index, why, rule))
    return tainted

