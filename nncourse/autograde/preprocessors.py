"""nbgrader preprocessors around the grader's own run of the hidden checks.

``nbgrader_config.py`` puts :class:`ExpandChecks` just before nbgrader's ``Execute`` (here
:class:`nncourse.autograde.execute.LimitedExecute`) and
:class:`JudgeChecks` just after it, so the real ``nbgrader autograde`` (gradebook, checksums,
test cells restored from the source, late penalties) grades with them:

1. ExpandChecks takes each ``run_check("psN.name")`` line out of a test cell, as restored
   from the source, and notes the checks the cell names (resources[CALLED]);
2. LimitedExecute runs each cell and, after a test cell, its checks, in this process,
   against the kernel through the call server (nncourse/checks/), noting their outcomes;
3. JudgeChecks appends an error to a test cell for each failed check, which nbgrader then
   scores 0, with the catalogued mistake its replies show, if any
   (:mod:`nncourse.catalogue.diagnosis`). It also drops ``execute_result`` outputs from those
   cells, because nbgrader would read a number there as partial credit that student code
   could fake, puts back the cell's source as it was in the release (visible tests only), so
   neither the graded notebook nor the feedback made from it shows the hidden tests, and from
   the first checked cell on keeps no text of the kernel's.
"""

import os
import re
import sys

import nbformat
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import ClearHiddenTests, NbGraderPreprocessor
from traitlets import Bool

from .. import checks, policy, sanitize, self_check
from ..catalogue import diagnosis
from ..checks import judging, runner
from .execute import CALLED, GRADER_ERRORS, OUTCOMES

IMPORT_LINE = re.compile(r"^\s*from nncourse\.checks import run_check\s*$")
CHECK_LINE = re.compile(r"""^(?P<indent>\s*)run_check\((?P<q>["'])(?P<name>[\w.]+)(?P=q)\)\s*$""")
_STATE = "nncourse_checks"
REVIEW = "nncourse_review"  # resources key: the submission's Review (review_submission)
MISTAKES = "nncourse_mistakes"  # resources key: the catalogued mistakes JudgeChecks named


def check_names(cell):
    """The hidden checks a test cell runs (its ``run_check`` lines)."""
    return [match["name"] for match in map(CHECK_LINE.match, cell.source.splitlines()) if match]


def review_submission(notebook, source, problem_set):
    """The :class:`nncourse.policy.Review` of a submission: the test cells its code forfeits
    by breaking the problem set's rules, judged with the other failures by JudgeChecks."""
    cells = {cell.metadata.nbgrader["grade_id"]: cell for cell in notebook.cells
             if policy.is_test_cell(cell)}

    def names_of(grade_id):
        return set().union(*[runner.names_used(name)
                             for name in check_names(cells[grade_id])] or [set()])
    # the release's own last cell (nncourse.self_check) is the course's code, not the student's
    source = nbformat.from_dict(dict(source, cells=list(source.cells) + self_check.cells()))
    return policy.review(notebook, source, checks.rules(problem_set), names_of)


WORKER = "nncourse_worker"  # resources key set by nncourse grade's workers (nncourse/autograde/)


class RefusedGrading(RuntimeError):
    """Hidden checks expanded outside ``nncourse grade`` (stock autograde, Formgrader)."""


def refuse_stock_autograde(argv=None):
    """Exits with one line when the running program is ``nbgrader autograde``."""
    argv = sys.argv if argv is None else argv
    # `nbgrader autograde` and `python -m nbgrader autograde` (.../nbgrader/__main__.py)
    program = {os.path.basename(argv[0]), os.path.basename(os.path.dirname(argv[0]))}
    if "nbgrader" in program and argv[1:2] == ["autograde"]:
        sys.exit("error: grade this course with `nncourse grade PROBLEM_SET` (it sandboxes "
                 "students' code and judges the hidden checks outside it), not "
                 "`nbgrader autograde`")


class KeepFirstCopy(NbGraderPreprocessor):
    """Before nbgrader's DeduplicateIds (which keeps the last copy and leaves the others with
    metadata that fails the schema check, failing the whole submission): of cells that share
    a ``grade_id`` (a copied cell, a split one), the first is graded and the others become
    ordinary cells. A test cell is then restored from the source, whole, into the first."""

    def preprocess(self, nb, resources):
        seen, copies = set(), {}
        for cell in nb.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if grade_id is None:
                continue
            if grade_id in seen:
                del cell.metadata["nbgrader"]
                copies[grade_id] = copies.get(grade_id, 1) + 1
            seen.add(grade_id)
        for grade_id, count in copies.items():
            self.log.warning("%s%s appears %d times (a copied or split cell): graded from "
                             "the first", COPIES_NOTE, grade_id, count)
        return nb, resources


COPIES_NOTE = "cell "  # the start of KeepFirstCopy's warnings, which the grader passes on


class ExpandChecks(NbGraderPreprocessor):
    """Takes the ``run_check`` lines out of each test cell: the grader runs those checks
    itself once the cell has run (LimitedExecute)."""

    def preprocess(self, nb, resources):
        if not resources.get(WORKER):
            raise RefusedGrading("grade this course with `nncourse grade`: stock nbgrader "
                                 "autograde would run students' code outside the sandbox")
        resources[_STATE] = {}
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, index):
        if not policy.is_test_cell(cell):
            return cell, resources
        called, lines = [], []
        for line in cell.source.splitlines():
            match = CHECK_LINE.match(line)
            if IMPORT_LINE.match(line):
                continue
            if match:
                if runner.function_of(match["name"]) is None:
                    raise KeyError("no hidden check called %r" % match["name"])
                called.append(match["name"])
            else:
                lines.append(line)
        if called:
            grade_id = cell.metadata.nbgrader["grade_id"]
            resources[_STATE][grade_id] = cell.source
            resources.setdefault(CALLED, {})[grade_id] = called
            cell.source = "\n".join(lines)
        return cell, resources


# A traceback shows the lines around the failing one, which may be the hidden region: those
# lines are taken out.
_SECRET_LINE = re.compile(r"HIDDEN TESTS|from nncourse\.checks")


def _scrub(entry):
    return "\n".join(line for line in entry.split("\n") if not _SECRET_LINE.search(line))


def _error(message, ename="HiddenCheckFailed"):
    return NotebookNode(output_type="error", ename=ename, evalue=message,
                        traceback=["%s: %s" % (ename, message)])


# What a test cell shows, from the first checked cell on, of a failure its kernel reported: the
# kernel's own text could hold anything it saw there (the checks' inputs), in any encoding, so
# the grader writes this instead.
VISIBLE_TESTS_FAILED = ("the visible tests of this cell failed: run the cell in your notebook "
                        "to see their message")


class JudgeChecks(NbGraderPreprocessor):
    """Records the failures of the checks the grader ran in their cells, and leaves in every
    cell only what the student may see (nncourse/sanitize.py)."""

    diagnose = Bool(True, help="name the catalogued mistake a failing check's replies show "
                    "(nncourse/catalogue/diagnosis.py)").tag(config=True)

    def preprocess(self, nb, resources):
        self._sanitizer = sanitize.Sanitizer()
        self._review = resources.get(REVIEW) or policy.Review()
        checked = [index for index, cell in enumerate(nb.cells) if policy.is_test_cell(cell)
                  and cell.metadata.nbgrader["grade_id"] in resources.get(_STATE, {})]
        self._first_checked = checked[0] if checked else len(nb.cells)
        self._grader_errors = resources.get(GRADER_ERRORS, [])
        self._hidden_tests = ClearHiddenTests(parent=self)  # the course's delimiters
        return super().preprocess(nb, resources)

    def _visible_tests(self, source):
        """A test cell's source as released: without its hidden tests region."""
        cell = NotebookNode(cell_type="code", source=source, metadata={})
        self._hidden_tests._remove_hidden_test_region(cell)
        return cell.source.rstrip()

    def _silenced(self, index):
        """From a cell that tampers with the kernel on, no output can be trusted to hold only
        the student's own text."""
        return self._review.tampering_cell is not None and index >= self._review.tampering_cell

    def _kernel_text_removed(self, cell, test_cell):
        """A cell run once the kernel has seen a check's inputs keeps only what the grader
        wrote: its own errors (a limit, a lost kernel), and in a test cell one error of its
        own wording in place of the kernel's. The pages show the student's own run of the
        cell instead."""
        mine = [o for o in cell.outputs if any(o is error for error in self._grader_errors)]
        failed = any(o.output_type == "error" for o in cell.outputs if o not in mine)
        cell.outputs = mine + ([_error(VISIBLE_TESTS_FAILED, "VisibleTestsFailed")]
                               if test_cell and failed else [])

    def preprocess_cell(self, cell, resources, index):
        if not policy.is_test_cell(cell):
            if index >= self._first_checked and cell.cell_type == "code":
                self._kernel_text_removed(cell, test_cell=False)
            self._sanitizer.clean_cell(cell, silenced=self._silenced(index))
            return cell, resources
        grade_id = cell.metadata.nbgrader["grade_id"]
        breach = self._review.costs.get(grade_id)
        state = resources.get(_STATE, {}).get(grade_id)
        failures, self._warned = [], []
        if state is not None:
            # the graded notebook (and the feedback made from it) shows the visible tests only
            cell.source = self._visible_tests(state)
            # after code that tampers with the kernel, its replies prove nothing about a mistake
            self._diagnosing = self.diagnose and not self._silenced(index)
            failures = self._judge(cell, grade_id, resources)
        # nbgrader would read a number left as the cell's value as partial credit
        cell.outputs = [o for o in cell.outputs if o.output_type != "execute_result"]
        if index >= self._first_checked:  # every checked cell: what reached stderr goes too
            self._kernel_text_removed(cell, test_cell=True)
        for output in cell.outputs:
            if output.output_type == "error":
                output.traceback = [_scrub(entry) for entry in output.traceback]
        self._sanitizer.clean_cell(cell, silenced=self._silenced(index))
        if breach is not None:
            failures.append(breach)
        if self._warned and not self._silenced(index):  # their classes only (judging.py)
            note = "Note: your code warned while the hidden tests ran (this costs nothing): %s" \
                % ", ".join(dict.fromkeys(judging.error_shown(text) for text in self._warned[:3]))
            cell.outputs.append(NotebookNode(output_type="stream", name="stdout",
                                             text=self._sanitizer.clean_text(note) + "\n"))
        # a failure message may quote what the student's code raised: cleaned like an output
        cell.outputs += [_error(self._sanitizer.clean_text(message))
                         for message in dict.fromkeys(failures)]
        return cell, resources

    def _judge(self, cell, grade_id, resources):
        """The failure messages of the checks the grader ran after the cell
        (LimitedExecute's outcomes): a check with no outcome did not run to completion."""
        outcomes = {o.check: o for o in resources.get(OUTCOMES, {}).get(grade_id, [])}
        already_failed = any(o.output_type == "error" for o in cell.outputs)
        failures = []
        for name in resources.get(CALLED, {}).get(grade_id, []):
            outcome = outcomes.get(name)
            if outcome is None:
                if not already_failed:
                    failures.append("the hidden tests did not run to completion")
                continue
            self._warned += outcome.warned
            if outcome.message is not None:
                failures.append(self._diagnosed(outcome.message, name, outcome.transcript,
                                                cell, resources))
        return failures

    def _diagnosed(self, message, check, replies, cell, resources):
        """The failure message, with the catalogued mistake the kernel's replies to the
        check's calls show, if any (and that mistake recorded for the instructor's report)."""
        # a message is the grader's words; should one ever quote the kernel, that quote may
        # not pass for the grader's own diagnosis
        message = message.replace(diagnosis.PREFIX.strip(), "(quoted)")
        if not self._diagnosing:
            return message
        try:
            mistake = diagnosis.diagnose(check, replies)
        except Exception as exc:  # a bug: no diagnosis
            self.log.warning("diagnosing %s failed: %r", check, exc)
            return message
        if mistake is None:
            return message
        resources.setdefault(MISTAKES, []).append(
            {"cell": cell.metadata.nbgrader["grade_id"], "check": check,
             "mistake": mistake.name})
        return "%s\n%s%s" % (message, diagnosis.PREFIX, mistake.explanation)

