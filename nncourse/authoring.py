"""``nncourse check psN``: what an instructor asks of a problem set before releasing it,
checked in the grader's own process, in seconds (docs/authoring.md).

Each item is one line: the reference passes every check; every catalogued mistake breaks
exactly the checks it declares and every rewrite none; the visible tests pass on the
reference and, on the blank release, fail naming what to write; the source policy admits the
reference; a check gives the same result under two global seeds; nothing the release defines
passes as an answer; every explained mistake can be named by diagnosis.
"""

import ast
import contextlib
import io
import re
import warnings
from dataclasses import dataclass

import nbformat
import numpy as np

from . import checks, policy, samples
from .catalogue import diagnosis, load
from .checks import runner
from .checks.remote import LocalChannel
from .course import ROOT


@dataclass
class Finding:
    what: str
    problems: list  # empty when it holds

    def __str__(self):
        mark = "ok  " if not self.problems else "FAIL"
        detail = "" if not self.problems else ": " + "; ".join(map(str, self.problems[:5])) + (
            " (and %d more)" % (len(self.problems) - 5) if len(self.problems) > 5 else "")
        return "%s %s%s" % (mark, self.what, detail)


def _quiet():
    """What the notebook's code prints while it is checked is nobody's business here."""
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    return stack


def failing(problem_set, namespace):
    """{check name: message} of the checks that fail on the code in ``namespace``."""
    with _quiet():
        return {name: message for name in checks.names(problem_set)
                if (message := checks.evaluate(name, namespace)) is not None}


def release_notebook(problem_set):
    return nbformat.read("%s/release/%s/%s.ipynb" % (ROOT, problem_set, problem_set), 4)


def test_cells(problem_set):
    """(grade_id, visible tests, check names) of each test cell of the source, in order."""
    found = []
    for cell in diagnosis.source_notebook(problem_set).cells:
        if policy.is_test_cell(cell):
            visible = cell.source.split("### BEGIN HIDDEN TESTS")[0]
            found.append((cell.metadata.nbgrader["grade_id"], visible,
                          re.findall(r'run_check\("([\w.]+)"\)', cell.source)))
    return found


def visible_failures(problem_set, namespace):
    """{grade_id: what its visible tests raised (or warned)} of the cells whose visible tests
    fail on ``namespace``, run in order in it."""
    failed = {}
    for grade_id, visible, _ in test_cells(problem_set):
        with _quiet(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                exec(compile(visible, "<visible tests of %s>" % grade_id, "exec"), namespace)
            except Exception as exc:
                failed[grade_id] = "%s: %s" % (type(exc).__name__, exc)
        if caught and grade_id not in failed:
            failed[grade_id] = "warned %s" % caught[0].category.__name__
    return failed


def blank_namespace(problem_set):
    """The blank release's classes and functions, as a student's kernel holds them before
    writing anything (its setup cell and the cells that only define things)."""
    release = release_notebook(problem_set)
    names = {"__name__": "student"}
    code = [cell for cell in release.cells if cell.cell_type == "code"]
    with _quiet():
        for index, cell in enumerate(code):
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade") and not meta.get("solution"):
                continue
            try:
                if index == 0 or diagnosis.defines_only(cell.source):
                    exec(compile(cell.source, "<release>", "exec"), names)
            except Exception:  # a stub cell that runs a blank function at once
                pass
    return names


def graded_names(problem_set):
    """What the student writes: the functions, classes and variables of solution cells."""
    names = set()
    for cell in diagnosis.source_notebook(problem_set).cells:
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution"):
            for node in ast.parse(cell.source).body:
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                    names.add(node.name)
                elif isinstance(node, ast.Assign):
                    names |= {n.id for target in node.targets for n in ast.walk(target)
                              if isinstance(n, ast.Name)}
    return names


def restored(problem_set, edits=()):
    """The release filled with the reference (and ``edits``), its test cells as the source
    has them: what the grader's policy reads."""
    source = diagnosis.source_notebook(problem_set)
    notebook = samples.filled_notebook(release_notebook(problem_set), source, edits)
    tests = {c.metadata.nbgrader["grade_id"]: c.source for c in source.cells
             if policy.is_test_cell(c)}
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in tests:
            cell.source = tests[grade_id]
    return notebook


def run_twice(problem_set, name):
    """Whether a check gives the same verdict and replies on two runs, each after seeding the
    process's global generators differently (a check's own inputs come from ``rng``; the
    kernel is seeded before each case)."""
    import torch
    results = []
    for global_seed in (1, 2):
        np.random.seed(global_seed)
        torch.manual_seed(global_seed)
        namespace = diagnosis.namespace(problem_set)
        with _quiet():
            outcome = runner.run(name, LocalChannel(namespace))
        results.append((outcome.message, outcome.transcript))
    (message_1, replies_1), (message_2, replies_2) = results
    return message_1 == message_2 and diagnosis.same(replies_1, replies_2)


def check_problem_set(problem_set):
    """Every item, as a list of Finding."""
    with _quiet():
        return _findings(problem_set)


def _findings(problem_set):
    from .autograde.preprocessors import review_submission
    catalogue = load(problem_set)
    reference = diagnosis.namespace(problem_set)
    findings = [Finding("the reference passes every check",
                        ["%s: %s" % item for item in failing(problem_set, reference).items()])]

    wrong = []
    for mutant in catalogue.MUTANTS:
        failed = set(failing(problem_set, diagnosis.namespace(problem_set, mutant.edits)))
        if failed != set(mutant.breaks):
            wrong.append("%s breaks %s, declares %s" % (mutant.name, sorted(failed),
                                                        sorted(mutant.breaks)))
    findings.append(Finding("every catalogued mistake (%d) breaks exactly the checks it "
                            "declares" % len(catalogue.MUTANTS), wrong))
    findings.append(Finding("every rewrite (%d) passes" % len(catalogue.EQUIVALENT), [
        "%s (%s): %s" % (edit[0], edit[2].strip()[:30], sorted(failed))
        for edit in catalogue.EQUIVALENT
        if (failed := failing(problem_set, diagnosis.namespace(problem_set, [edit])))]))

    # visible tests: run in the reference's namespace (cells needing the notebook's data or
    # training runs cannot run here; the grading tests run them)
    on_reference = visible_failures(problem_set, diagnosis.namespace(problem_set))
    on_blank = visible_failures(problem_set, blank_namespace(problem_set))
    to_write = graded_names(problem_set)
    runnable = [grade_id for grade_id, _, _ in test_cells(problem_set)
                if grade_id not in on_reference]
    findings.append(Finding("the visible tests pass on the reference (%d of %d cells run "
                            "here)" % (len(runnable), len(test_cells(problem_set))), []))
    unhelpful = []
    for grade_id, _, _ in test_cells(problem_set):
        message = on_blank.get(grade_id)
        if message is None:
            unhelpful.append("%s passes" % grade_id)
        elif not any(re.search(r"\b%s\b" % re.escape(n), message) for n in to_write) \
                and grade_id in runnable:
            unhelpful.append("%s: %s" % (grade_id, message[:80]))
    findings.append(Finding("on the blank release every visible test fails naming what to "
                            "write", unhelpful))

    review = review_submission(restored(problem_set), diagnosis.source_notebook(problem_set),
                               problem_set)
    findings.append(Finding("the policy admits the reference%s" % (
        "" if checks.rules(problem_set) else " (this problem set has no library rule)"),
        ["%s: %s" % item for item in review.costs.items()]
        + (["tampering in cell %d" % (review.tampering_cell + 1)]
           if review.tampering_cell is not None else [])))

    findings.append(Finding("every check gives the same result under two global seeds", [
        name for name in checks.names(problem_set) if not run_twice(problem_set, name)]))

    from .catalogue.diagnosis import mistake_outputs
    named = {mutant.name for name in checks.names(problem_set)
             for mutant, _ in mistake_outputs(name)}
    findings.append(Finding("diagnosis can name every explained mistake", [
        mutant.name for mutant in catalogue.MUTANTS
        if mutant.explanation and mutant.name not in named]))
    return findings
