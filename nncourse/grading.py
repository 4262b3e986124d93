"""nbgrader preprocessors that judge hidden checks outside the student's kernel.

``nbgrader_config.py`` puts :class:`ExpandChecks` just before nbgrader's ``Execute`` and
:class:`JudgeChecks` just after it, so the real ``nbgrader autograde`` (gradebook, checksums,
test cells restored from the source, late penalties) grades with them:

1. ExpandChecks replaces each ``run_check("psN.name")`` line of a test cell, as restored
   from the source, with the probe of that check and a fresh random nonce;
2. nbgrader executes the notebook; each probe publishes the student's outputs as a display
   output of type :data:`nncourse.checks.MIME`;
3. JudgeChecks takes that output out of the cell, judges it in this process and, when the
   check fails (or its output is missing, duplicated or forged), appends an error to the
   cell, which nbgrader then scores 0. It also drops ``execute_result`` outputs from those
   cells, because nbgrader would read a number there as partial credit that student code
   could fake, and puts back the cell's source as it was in the release (visible tests only),
   so neither the graded notebook nor the feedback made from it shows the hidden tests.
"""

import json
import os
import re
import secrets
import signal
import sys
import threading
import time

from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets import Integer, default

from . import checks, policy, sanitize
from .checks import wire

IMPORT_LINE = re.compile(r"^\s*from nncourse\.checks import run_check\s*$")
CHECK_LINE = re.compile(r"""^(?P<indent>\s*)run_check\((?P<q>["'])(?P<name>[\w.]+)(?P=q)\)\s*$""")
HIDDEN_REGION = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS[ \t]*\n?",
                           re.S | re.M)
_STATE = "nncourse_checks"
REVIEW = "nncourse_review"  # resources key: the submission's Review (review_submission)


def check_names(cell):
    """The hidden checks a test cell runs (its ``run_check`` lines)."""
    return [match["name"] for match in map(CHECK_LINE.match, cell.source.splitlines()) if match]


def review_submission(notebook, source, problem_set):
    """The :class:`nncourse.policy.Review` of a submission: the test cells its code forfeits
    by breaking the problem set's rules, judged with the other failures by JudgeChecks."""
    cells = {cell.metadata.nbgrader["grade_id"]: cell for cell in notebook.cells
             if policy.is_test_cell(cell)}

    def names_of(grade_id):
        return set().union(*[policy.probe_names(checks.get(name))
                             for name in check_names(cells[grade_id])] or [set()])
    return policy.review(notebook, source, checks.rules(problem_set), names_of)


WORKER = "nncourse_worker"  # resources key set by nncourse grade's workers (nncourse/grader.py)
LOST = "nncourse_lost"  # resources key: why the kernel was lost (died, stopped answering)


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
    """Swaps each ``run_check`` line of a test cell for the probe it names."""

    def preprocess(self, nb, resources):
        if not resources.get(WORKER):
            raise RefusedGrading("grade this course with `nncourse grade`: stock nbgrader "
                                 "autograde would run students' code outside the sandbox")
        resources[_STATE] = {}
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, index):
        if not policy.is_test_cell(cell):
            return cell, resources
        expected, lines = [], []
        for line in cell.source.splitlines():
            match = CHECK_LINE.match(line)
            if IMPORT_LINE.match(line):
                continue
            if match:
                check = checks.get(match["name"])
                nonce, inputs = secrets.token_hex(16), check.encoded_inputs()
                expected.append((check, nonce, inputs))
                lines.append(match["indent"] + checks.render_probe(check, nonce, inputs))
            else:
                lines.append(line)
        if expected:
            resources[_STATE][cell.metadata.nbgrader["grade_id"]] = (cell.source, expected)
            cell.source = "\n".join(lines)
        return cell, resources


# A traceback shows the lines around the failing one, which may be the hidden region and the
# probe (its source and the grader's inputs, on one line): those lines are taken out.
_SECRET_LINE = re.compile(r"HIDDEN TESTS|nncourse_probe|from nncourse\.checks")


def _scrub(entry):
    return "\n".join(line for line in entry.split("\n") if not _SECRET_LINE.search(line))


def _error(message):
    return NotebookNode(output_type="error", ename="HiddenCheckFailed", evalue=message,
                        traceback=["HiddenCheckFailed: " + message])


class JudgeChecks(NbGraderPreprocessor):
    """Judges the probes' outputs in the grader's process, records failures in the cell, and
    leaves in every cell only what the student may see (nncourse/sanitize.py)."""

    def preprocess(self, nb, resources):
        review = resources.get(REVIEW) or policy.Review()
        secrets = []
        for _, expected in resources.get(_STATE, {}).values():
            secrets += [piece for check, nonce, _ in expected for piece in (check.name, nonce)]
        self._sanitizer = sanitize.Sanitizer(secrets)
        self._review = review
        return super().preprocess(nb, resources)

    def _silenced(self, index):
        """From a cell that tampers with the kernel on, no output can be trusted to hold only
        the student's own text."""
        return self._review.tampering_cell is not None and index >= self._review.tampering_cell

    def preprocess_cell(self, cell, resources, index):
        if not policy.is_test_cell(cell):
            self._sanitizer.clean_cell(cell, silenced=self._silenced(index))
            return cell, resources
        grade_id = cell.metadata.nbgrader["grade_id"]
        breach = self._review.costs.get(grade_id)
        state = resources.get(_STATE, {}).get(grade_id)
        failures, self._warned = [], []
        if state is not None:
            source, expected = state
            # the graded notebook (and the feedback made from it) shows the visible tests only
            cell.source = HIDDEN_REGION.sub("", source).rstrip()
            failures = self._judge(cell, expected, resources)
            # the checks judge this cell: what reached stderr (a library's warning, a
            # progress bar) is shown, not scored (nbgrader gives 0 for any stderr)
            for output in cell.outputs:
                if output.output_type == "stream" and output.name == "stderr":
                    output.name = "stdout"
        # nbgrader would read a number left as the cell's value as partial credit
        cell.outputs = [o for o in cell.outputs if o.output_type != "execute_result"]
        for output in cell.outputs:
            if output.output_type == "error":
                output.traceback = [_scrub(entry) for entry in output.traceback]
        self._sanitizer.clean_cell(cell, checked=state is not None,
                                   silenced=self._silenced(index))
        if breach is not None:
            failures.append(breach)
        if self._warned and not self._silenced(index):
            note = "Note: your code warned while the hidden tests ran (this costs nothing): %s" \
                % "; ".join(dict.fromkeys(text[:300] for text in self._warned[:3]))
            cell.outputs.append(NotebookNode(output_type="stream", name="stdout",
                                             text=self._sanitizer.clean_text(note) + "\n"))
        # a failure message may quote what the student's code raised: cleaned like an output
        cell.outputs += [_error(self._sanitizer.clean_text(message))
                         for message in dict.fromkeys(failures)]
        return cell, resources

    def _judge(self, cell, expected, resources):
        """Takes the probes' reports out of the cell; returns the failure messages."""
        reports = [o for o in cell.outputs if o.output_type == "display_data"
                   and checks.MIME in o.get("data", {})]
        cell.outputs = [o for o in cell.outputs if o not in reports]
        already_failed = any(o.output_type == "error" for o in cell.outputs)
        failures = []
        for check, nonce, inputs in expected:
            mine = [o.data[checks.MIME] for o in reports
                    if isinstance(o.data[checks.MIME], dict)
                    and o.data[checks.MIME].get("nonce") == nonce]
            if len(reports) != len(expected) or len(mine) != 1:
                if not already_failed:
                    failures.append("the hidden tests did not run to completion")
                continue
            outputs = mine[0].get("outputs")
            if isinstance(outputs, dict) and isinstance(outputs.get(wire.WARNINGS_KEY), list):
                self._warned += [str(text) for text in outputs.pop(wire.WARNINGS_KEY)]
            try:
                message = checks.verdict(check, inputs, outputs)
            except Exception as exc:  # a bug in the check itself: the cell fails, loudly
                self.log.error("check %s crashed while judging %s: %r", check.name,
                               resources.get("unique_key", "?"), exc)
                message = "internal error of the grader while judging; tell your instructor"
            if message is not None:
                failures.append(message)
        return failures


class _CPUWatch(threading.Thread):
    """Watches the CPU time a kernel uses while one cell runs: past ``limit`` seconds it
    interrupts the kernel, and if the cell has not ended ``grace`` seconds later, kills it."""

    def __init__(self, read, limit, interrupt, kill, grace=10.0):
        super().__init__(daemon=True)
        self.read, self.limit, self.interrupt, self.kill = read, limit, interrupt, kill
        self.grace = grace
        self.start_cpu = read()
        self.tripped = self.killed = False
        self.done = threading.Event()

    def used(self):
        now = self.read()
        return None if now is None or self.start_cpu is None else now - self.start_cpu

    def run(self):
        interrupted_at = None
        while not self.done.wait(0.2):
            used = self.used()
            if used is None:
                continue
            if not self.tripped and used > self.limit:
                self.tripped, interrupted_at = True, time.monotonic()
                self.interrupt()
            elif self.tripped and time.monotonic() - interrupted_at > self.grace:
                self.killed = True
                self.kill()
                return

    def stop(self):
        self.done.set()
        self.join()


class LimitedExecute(Execute):
    """nbgrader's Execute with limits on CPU time, on the whole notebook, on output, and a
    kernel that may be lost.

    Time is judged on the CPU time of the kernel's processes (read from ``/proc``, where the
    kernel's launcher says which processes are its own), so that a submission's score does not
    depend on what else the machine runs: a cell may use ``cell_cpu_limit`` seconds and the
    notebook ``notebook_cpu_limit``, both per core of the kernel's share (``OMP_NUM_THREADS``).
    A cell past its limit is interrupted (and its kernel stopped if it ignores that); a
    notebook past its own, the cells after it are not run. Wall-clock limits stay, generous,
    for what uses no CPU (a cell that sleeps or waits forever): ``Execute.timeout`` per cell
    and ``notebook_timeout`` per notebook; where CPU time cannot be read, they are the only
    ones. A cell keeps at most ``cell_output_bytes`` of output (a flood of prints is cut, not
    held in the grader's memory).

    A kernel that dies, or stops answering, loses the cell it was running and the cells after
    it, and the notebook is graded with what ran before. Cells that are not run get an error:
    nbgrader would give full points to a test cell without outputs. A kernel lost for no
    reason of its limits is described in ``resources[LOST]`` (the worker runs the notebook
    once more); the rest is noted in ``resources["nncourse_notes"]``.
    """

    notebook_timeout = Integer(1800, help="wall-clock seconds for the whole notebook"
                               ).tag(config=True)
    cell_cpu_limit = Integer(120, help="CPU seconds a cell may use, per core of the kernel's "
                             "share; 0: no limit").tag(config=True)
    notebook_cpu_limit = Integer(600, help="CPU seconds the notebook may use, per core of the "
                                 "kernel's share; 0: no limit").tag(config=True)
    cell_output_bytes = Integer(2_000_000, help="output kept per cell, in bytes").tag(config=True)

    @default("store_widget_state")
    def _no_widget_state(self):
        return False  # widget state would grow the graded notebook without bound

    def preprocess(self, nb, resources=None, km=None):
        self._deadline = time.monotonic() + self.notebook_timeout
        self._output_bytes = {}
        self._lost = None  # why the cells from here on are not run
        self._retry = False  # whether that is worth running the notebook again
        self._notebook_cpu = None  # the kernel's CPU time when the first cell started
        threads = os.environ.get("OMP_NUM_THREADS", "")
        self._cores = int(threads) if threads.isdigit() and int(threads) > 0 else 1
        self.timeout_func = self._time_left
        nb, resources = super().preprocess(nb, resources, km=km)
        if self._lost:
            if self._retry:
                resources[LOST] = self._lost
            else:
                resources.setdefault("nncourse_notes", []).append(self._lost)
        return nb, resources

    def _how_it_died(self):
        """How the kernel's process ended, as far as its launcher tells (exit status 128 + N
        for signal N), or ""."""
        process = self._launcher()
        try:
            code = process.wait(timeout=5) if process is not None else None
        except Exception:  # still running (it stopped answering), or already reaped
            return ""
        if code is None or code == 0:
            return ""
        if code > 128:
            try:
                name = signal.Signals(code - 128).name
            except ValueError:
                name = "signal %d" % (code - 128)
            return (" (killed by SIGKILL: out of memory, or killed from outside)"
                    if name == "SIGKILL" else " (killed by %s)" % name)
        return " (it exited with status %d)" % code

    def _launcher(self):
        """The kernel's process (a launcher standing in for it), as a Popen, or None."""
        return getattr(getattr(self.km, "provisioner", None), "process", None)

    def _cpu(self):
        read = getattr(self.km, "cpu_seconds", None)
        return read() if read is not None else None

    def _signal_kernel(self, signum):
        process = self._launcher()
        if process is not None and process.poll() is None:
            try:
                os.kill(process.pid, signum)  # the launcher passes it on to the kernel
            except ProcessLookupError:
                pass

    def _time_left(self, cell):
        left = max(1, int(self._deadline - time.monotonic()) + 1)
        return left if self.timeout is None or self.timeout < 0 else min(self.timeout, left)

    @staticmethod
    def _not_run(cell, name, text):
        cell.outputs.append(NotebookNode(output_type="error", ename=name, evalue="",
                                         traceback=["%s: %s" % (name, text)]))

    def _cpu_watch(self):
        """A started _CPUWatch for the cell about to run, or None (no CPU limit, or the CPU
        time cannot be read). Returns (watch, what its limit is: "cell" or "notebook")."""
        now = self._cpu()
        if now is None:
            return None, None
        if self._notebook_cpu is None:
            self._notebook_cpu = now
        limits = []
        if self.cell_cpu_limit > 0:
            limits.append((self.cell_cpu_limit * self._cores, "cell"))
        if self.notebook_cpu_limit > 0:
            left = self.notebook_cpu_limit * self._cores - (now - self._notebook_cpu)
            limits.append((max(0.0, left), "notebook"))
        if not limits:
            return None, None
        limit, kind = min(limits)
        watch = _CPUWatch(self._cpu, limit, lambda: self._signal_kernel(signal.SIGINT),
                          lambda: self._signal_kernel(signal.SIGKILL))
        watch.start()
        return watch, kind

    def _over_cpu(self, index, kind):
        if kind == "cell":
            return "cell %d used more than its CPU time (%d s)" % (
                index, self.cell_cpu_limit * self._cores)
        return "the notebook used more than its CPU time (%d s)" % (
            self.notebook_cpu_limit * self._cores)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        if self._lost is None and time.monotonic() >= self._deadline:
            self._lost = "the notebook ran past its time limit (%d s)" % self.notebook_timeout
        if self._lost:
            cell.outputs = []
            self._not_run(cell, "NotRun", "%s; this cell was not run" % self._lost)
            return cell, resources
        watch, kind = self._cpu_watch()
        try:
            cell, resources = super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            if watch is not None and watch.killed:
                self._lost = "%s and ignored the interrupt: its kernel was stopped" \
                    % self._over_cpu(index, kind)
            else:
                self._lost = "the kernel died in cell %d%s" % (index, self._how_it_died())
                self._retry = True
        except CellTimeoutError:
            self._lost = "the kernel stopped answering in cell %d" % index
            self._retry = True
        finally:
            if watch is not None:
                watch.stop()
        if self._lost:
            self._not_run(cell, "KernelLost", self._lost)
        elif watch is not None and watch.tripped:
            self._not_run(cell, "CPUTimeLimit", "%s: it was interrupted" % self._over_cpu(index, kind))
            if kind == "notebook":
                self._lost = self._over_cpu(index, kind)
        return cell, resources

    # Every message that can add to or replace a notebook's outputs counts against the cell
    # that is running: display updates rewrite outputs (of any cell) without output(), and
    # comm messages feed widget state into the notebook's metadata.
    _COUNTED = ("stream", "display_data", "update_display_data", "execute_result", "error")

    def process_message(self, msg, cell, cell_index):
        kind = msg["msg_type"]
        if kind not in self._COUNTED and not kind.startswith("comm"):
            return super().process_message(msg, cell, cell_index)
        if kind == "error":  # always kept, so that a failure is never lost; only cut short
            content = msg.get("content", {})
            content["traceback"] = [str(entry)[:20_000] for entry in content.get("traceback", [])][-40:]
            content["evalue"] = str(content.get("evalue", ""))[:20_000]
            return super().process_message(msg, cell, cell_index)
        size = len(json.dumps(msg.get("content", {})))
        total = self._output_bytes.get(cell_index, 0)
        self._output_bytes[cell_index] = total + size
        if total + size <= self.cell_output_bytes:
            return super().process_message(msg, cell, cell_index)
        if total <= self.cell_output_bytes:  # the first output over the limit: say so once
            cell.outputs.append(NotebookNode(output_type="stream", name="stdout",
                                             text="\n[output cut: more than %d bytes]\n"
                                                  % self.cell_output_bytes))
        return None
