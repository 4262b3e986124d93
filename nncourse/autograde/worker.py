"""The worker's side of grading (step 2 of :mod:`nncourse.autograde`): the prepared
notebooks of one submission run in kernels forked from this worker's zygote, in the sandbox,
and are returned executed. A worker is a spawned local process (:class:`LocalExecutor`) or a
Dask worker; it receives files, not paths, so it needs no shared file system."""

import atexit
import logging
import os
import shutil
import signal
import socket
import threading
import time

import nbformat

from ..datasets import answer_keys, write_offline_datasets
from .records import Executed, GradingError


_zygote = None
_zygote_settings = None  # (sandboxed, datasets folder) it was started with
_zygote_lock = threading.Lock()


def init_local_worker(threads, coordinator):
    # Ctrl-C in the terminal is the coordinator's to handle: it stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A worker ends with the coordinator, whatever killed it (SIGKILL included): the system
    # sends SIGTERM, and the zygote, its bwrap and kernels go with the worker.
    signal.signal(signal.SIGTERM, _end_worker)
    from ..sandbox import die_with_parent
    die_with_parent(coordinator, signal.SIGTERM)
    # Each kernel gets a fair share of the cores instead of all of them (oversubscription
    # makes every kernel slower). Set before the zygote imports torch, which reads it.
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)


def _end_worker(signum, frame):
    """SIGTERM in a local worker: its zygote (and every kernel) is killed and its folder and
    cgroups removed before the worker leaves."""
    zygote = _zygote
    if zygote is not None:
        zygote.kill()
    os._exit(128 + signum)


def _worker_zygote(sandboxed, data_dir, config):
    """This worker's zygote (started again if it died or the sandbox settings changed)."""
    global _zygote, _zygote_settings
    from ..sandbox import Sandbox, Zygote
    with _zygote_lock:
        wanted = (sandboxed, data_dir, repr(sorted(config.get("Sandbox", {}).items())))
        if _zygote is not None and (_zygote.process.poll() is not None
                                    or _zygote_settings != wanted):
            _zygote.close()
            _zygote = None
        if _zygote is None:
            sandbox = None
            if sandboxed:
                reason = Sandbox.unavailable()
                if reason:
                    raise GradingError("cannot sandbox the kernels on %s: %s"
                                       % (socket.gethostname(), reason))
                threads = os.environ.get("OMP_NUM_THREADS")  # this worker's share of the cores
                sandbox = Sandbox(config=config, read_only=[data_dir], hidden=answer_keys(),
                                  cpus=int(threads) if threads and threads.isdigit() else None)
            _zygote = Zygote(sandbox=sandbox)
            _zygote_settings = wanted
            atexit.register(_close_zygote)  # its folder and cgroups go with the worker
        return _zygote


def _close_zygote():
    with _zygote_lock:
        if _zygote is not None:
            _zygote.close()


def execute_submission(prepared):
    """Step 2, in a worker: runs the prepared notebooks (a :class:`Prepared`) and returns
    them as an :class:`Executed`; never raises for a problem of the submission, so a bad
    submission cannot take a worker down."""
    started = time.perf_counter()
    # nbclient leaves a task polling a lost kernel; asyncio would print its traceback
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    data_dir = write_offline_datasets(prepared.data_dir)
    try:
        zygote = _worker_zygote(prepared.sandbox, data_dir, prepared.config)
    except GradingError as exc:
        return Executed(error=str(exc), seconds=time.perf_counter() - started)
    folder = zygote.job_folder()
    try:
        for relative, data in prepared.files.items():
            path = os.path.join(folder, relative)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as out:
                out.write(data)
        prepared.config.ForkedKernelManager.zygote_socket = zygote.socket_path
        result = Executed()
        for name in prepared.notebooks:
            _execute_notebook(prepared, name, folder, data_dir, result)
    except GradingError as exc:  # a kernel that never started, a bug, ...
        result = Executed(error=str(exc))
    finally:
        # what the kernel wrote stays here: it is the student's code's output, not a file the
        # instructor or the feedback should receive
        shutil.rmtree(os.path.dirname(folder), ignore_errors=True)
    result.seconds = time.perf_counter() - started
    return result


def _execute_notebook(prepared, name, folder, data_dir, result):
    """Runs one notebook through the execute steps into ``result``. A kernel lost for a
    reason outside the student's code (killed from outside, a machine under memory
    pressure) costs nothing: the notebook runs once more in a fresh kernel; lost again, at
    whatever cell, the partial grade stands, marked incomplete."""
    from .execute import LOST
    from .preprocessors import MISTAKES
    for attempt in (1, 2):
        notebook, resources = _run_preprocessors(prepared, name, folder, data_dir)
        lost = resources.get(LOST)
        if not lost:
            break
        if attempt == 1:
            result.notes.append("%s: graded again in a fresh kernel (%s)" % (name, lost))
        else:
            result.incomplete.append("%s: %s, on both attempts" % (name, lost))
    result.notebooks[name] = nbformat.writes(notebook)
    result.mistakes += [dict(found, notebook=name) for found in resources.get(MISTAKES, [])]
    result.notes += ["%s: %s" % (name, note) for note in resources.get("nncourse_notes", [])]


def _run_preprocessors(prepared, name, folder, data_dir):
    """(notebook, resources) after Autograde's execute steps, run on one notebook."""
    from nbgrader import utils
    from nbgrader.preprocessors import Execute
    from .preprocessors import REVIEW, WORKER
    from ..sandbox.manager import ForkedKernelManager
    notebook = nbformat.reads(prepared.files[name].decode(), as_version=4)
    stem = name[:-len(".ipynb")]
    resources = {"metadata": {"path": folder}, "unique_key": stem,
                 REVIEW: prepared.reviews.get(name), WORKER: True,
                 "nbgrader": {"student": prepared.student, "assignment": prepared.problem_set,
                              "notebook": stem, "db_url": None}}
    try:
        with utils.setenv(NBGRADER_EXECUTION="autograde", NNCOURSE_DATA=data_dir):
            for cls in prepared.preprocessors:
                options = ({"kernel_manager_class": ForkedKernelManager}
                           if issubclass(cls, Execute) else {})
                notebook, resources = cls(config=prepared.config, **options)(notebook, resources)
    except Exception as exc:
        reason = str(exc).strip().splitlines()
        raise GradingError("%s: %s" % (name, reason[0] if reason else type(exc).__name__))
    return notebook, resources
