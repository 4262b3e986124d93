"""LimitedExecute: nbgrader's Execute under limits of CPU time, wall-clock time and output,
with a kernel that may be lost; after each test cell it runs that cell's hidden checks against
the kernel, through the call server (nncourse/checks/)."""

import inspect
import json
import os
import signal
import threading
import time
from queue import Empty

from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import run_sync
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Integer, default

from ..checks import runner, server, wire
from ..checks.remote import Interrupted

LOST = "nncourse_lost"  # resources key: why the kernel was lost (died, stopped answering)
# resources key: the error outputs this preprocessor wrote itself (a limit, a lost kernel), as
# opposed to those the kernel sent: JudgeChecks may show them where it shows no kernel text
GRADER_ERRORS = "nncourse_grader_errors"


# resources key: {grade_id: [runner.Outcome]} of the checks run after a test cell
OUTCOMES = "nncourse_outcomes"
CALLED = "nncourse_called"  # resources key: {grade_id: names of the checks to run there}

# The only code the grader sends the kernel: the call server (nncourse/checks/server.py),
# installed afresh before each checked cell's checks. Nothing of a check goes with it.
SERVER_PROGRAM = "\n".join([inspect.getsource(wire), inspect.getsource(server),
                             "install(_user_ns)\n"])
INSTALL_SERVER = ("exec(compile(%r, '<nncourse call server>', 'exec'), "
                  "{'__name__': 'nncourse_calls', '_user_ns': globals()})" % SERVER_PROGRAM)
CALL = "_nncourse_calls(%r)"  # a request, evaluated as a user expression


class KernelChannel:
    """Requests to the call server in the kernel, one at a time, each waited for under the
    cell's limits (remote.LocalChannel is the same in-process)."""

    def __init__(self, executor, cell):
        self.executor, self.cell = executor, cell

    def send(self, request):
        content = self.executor.ask_kernel(self.cell, expressions={
            "reply": CALL % json.dumps(request)})
        reply = content.get("user_expressions", {}).get("reply", {})
        if reply.get("status") != "ok":
            if reply.get("ename") == "KeyboardInterrupt":  # a limit of the grader's
                raise Interrupted()
            return None  # the server is gone (student code removed it): no reply
        return reply.get("data", {}).get("application/json")


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
    ones. A cell keeps at most ``cell_output_bytes`` of output and the notebook at most
    ``notebook_output_bytes`` (a flood of prints is cut, not held in the grader's memory);
    errors are always kept, since they are what fails a test cell, but cut short, and to
    their name and first line once the notebook's budget is spent.

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
    notebook_output_bytes = Integer(20_000_000, help="output kept per notebook, in bytes, "
                                    "errors included").tag(config=True)

    @default("store_widget_state")
    def _no_widget_state(self):
        return False  # widget state would grow the graded notebook without bound

    def preprocess(self, nb, resources=None, km=None):
        self._deadline = time.monotonic() + self.notebook_timeout
        self._output_bytes = {}
        self._notebook_bytes = 0
        resources = {} if resources is None else resources
        self._written = resources[GRADER_ERRORS] = []
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
        for signal N), or "". In a few words of the grader's: an exit status or a signal's
        number is the kernel's choice, and could carry what it saw of the hidden tests."""
        process = self._launcher()
        try:
            code = process.wait(timeout=5) if process is not None else None
        except Exception:  # still running (it stopped answering), or already reaped
            return ""
        if code is None or code == 0:
            return ""
        if code == 128 + signal.SIGKILL:
            return " (killed by SIGKILL: out of memory, or killed from outside)"
        if code == 128 + signal.SIGSEGV:
            return " (it crashed: SIGSEGV)"
        return " (killed by a signal)" if code > 128 else " (it exited)"

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

    def _not_run(self, cell, name, text):
        error = NotebookNode(output_type="error", ename=name, evalue="",
                             traceback=["%s: %s" % (name, text)])
        cell.outputs.append(error)
        self._written.append(error)

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
        self._timed_out = None
        try:
            cell, resources = super().preprocess_cell(cell, resources, index)
            called = resources.get(CALLED, {}).get(cell.metadata.get("nbgrader", {}).get(
                "grade_id"))
            if called and self._timed_out is None and not (watch is not None and watch.tripped):
                self._run_checks(cell, called, resources)
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
        elif self._timed_out is not None:  # in the grader's words, not the kernel's
            self._not_run(cell, "TimeLimit", "cell %d ran past its time limit (%d s) while "
                          "using little CPU (waiting, sleeping): it was interrupted"
                          % (index, self._timed_out))
        return cell, resources

    def ask_kernel(self, cell, code="", expressions=None):
        """Sends the kernel a request outside the notebook (not shown, not in its history)
        and waits for the reply's content under the cell's limits; raises Interrupted when
        a limit stopped it."""
        msg_id = self.kc.execute(code, silent=True, store_history=False, allow_stdin=False,
                                 user_expressions=expressions or {})
        reply = self.wait_for_reply(msg_id, cell)
        self._drain_iopub()
        if reply is None or self._timed_out is not None:
            raise Interrupted()
        return reply["content"]

    def _drain_iopub(self):
        """Drops the broadcasts of these requests (busy, idle, what student code printed),
        which nbclient would otherwise have to read through, under its short iopub timeout,
        before the next cell's."""
        while True:
            try:
                run_sync(self.kc.iopub_channel.get_msg)(timeout=0)
            except Empty:
                return

    def _run_checks(self, cell, names, resources):
        """Runs the cell's checks (nncourse/checks/runner.py) against the kernel, now that
        it holds the cell's state; their outcomes go to resources[OUTCOMES]. A check cut off
        by a limit has none (JudgeChecks: "did not run to completion")."""
        outcomes = resources.setdefault(OUTCOMES, {})[cell.metadata.nbgrader["grade_id"]] = []
        try:
            if self.ask_kernel(cell, code=INSTALL_SERVER).get("status") != "ok":
                return  # the cell left the kernel unable to run it
            for name in names:
                outcomes.append(runner.run(name, KernelChannel(self, cell)))
        except Interrupted:
            pass

    async def _async_handle_timeout(self, timeout, cell=None):
        self._timed_out = timeout
        return await super()._async_handle_timeout(timeout, cell)

    # Every message that can add to or replace a notebook's outputs counts against the cell
    # that is running: display updates rewrite outputs (of any cell) without output(), and
    # comm messages feed widget state into the notebook's metadata.
    _COUNTED = ("stream", "display_data", "update_display_data", "execute_result", "error")

    def process_message(self, msg, cell, cell_index):
        kind = msg["msg_type"]
        # An output belongs to the cell that made it, as it was made: a display id would let
        # a later cell rewrite an earlier cell's outputs (one run before the kernel saw a
        # hidden check, whose outputs are kept, with what it saw there: docs/checks.md).
        if kind == "update_display_data":
            return None
        if isinstance(msg.get("content"), dict):
            msg["content"].pop("transient", None)
        if kind not in self._COUNTED and not kind.startswith("comm"):
            return super().process_message(msg, cell, cell_index)
        if kind == "error":  # always kept, so that a failure is never lost; only cut short
            content = msg.get("content", {})
            content["ename"] = str(content.get("ename", ""))[:200]
            content["evalue"] = str(content.get("evalue", ""))[:20_000]
            content["traceback"] = [str(entry)[:20_000]
                                    for entry in content.get("traceback", [])][-40:]
            if self._notebook_bytes > self.notebook_output_bytes:
                content["evalue"] = (content["evalue"].splitlines() or [""])[0][:200]
                content["traceback"] = []
            self._notebook_bytes += len(json.dumps(content))
            return super().process_message(msg, cell, cell_index)
        size = len(json.dumps(msg.get("content", {})))
        total = self._output_bytes.get(cell_index, 0)
        self._output_bytes[cell_index] = total + size
        if (total + size <= self.cell_output_bytes
                and self._notebook_bytes + size <= self.notebook_output_bytes):
            self._notebook_bytes += size
            return super().process_message(msg, cell, cell_index)
        if total <= self.cell_output_bytes:  # the first output over a limit: say so once
            self._output_bytes[cell_index] = self.cell_output_bytes + 1
            cut = ("more than %d bytes" % self.cell_output_bytes
                   if total + size > self.cell_output_bytes
                   else "the notebook's outputs passed %d bytes" % self.notebook_output_bytes)
            cell.outputs.append(NotebookNode(output_type="stream", name="stdout",
                                             text="\n[output cut: %s]\n" % cut))
        return None
