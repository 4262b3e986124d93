"""The catalogue of each problem set: realistic mistakes (mutants) and correct solutions
written differently (``EQUIVALENT``), as edits of the reference solution in the source
notebook.

A mutant names exactly the hidden checks it must fail: every other check must still pass, so
one mistake costs the points of the behaviour it breaks and no others. The tests grade every
entry; ``nncourse demo`` builds its sample class from them. It is course content, kept with
the checks it exercises.
"""

import importlib
from dataclasses import dataclass

from nncourse.checks import PROBLEM_SETS


@dataclass(frozen=True)
class Mutant:
    name: str
    edits: list  # (solution cell's grade_id, text in the reference, what replaces it)
    breaks: frozenset  # names of the checks it fails ("ps1.linear_forward", ...)
    # what the code does, for the student whose code does the same (nncourse.catalogue.
    # diagnosis); empty for a mistake that its outputs cannot tell apart (``undiagnosable``)
    explanation: str = ""
    undiagnosable: str = ""  # why its outputs cannot name it


def mutants_of(problem_set):
    """A ``mutant(name, cell, old, new, breaks, explanation)`` maker for one problem set's
    single-edit mistakes (``breaks``: check names without the problem set's prefix)."""
    def mutant(name, cell, old, new, breaks, explanation="", undiagnosable=""):
        return Mutant(name, [(cell, old, new)],
                      frozenset("%s.%s" % (problem_set, b) for b in breaks),
                      explanation, undiagnosable)
    return mutant


def load(problem_set):
    """The catalogue module of a problem set (``MUTANTS``, ``EQUIVALENT``, ...)."""
    if problem_set not in PROBLEM_SETS:
        raise KeyError("no catalogue for %r" % problem_set)
    return importlib.import_module("nncourse.catalogue." + problem_set)
