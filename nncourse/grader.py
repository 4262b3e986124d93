"""Grading a class: nbgrader's autograde, split so that submissions run in parallel.

``nbgrader autograde`` does three things to each submission, one submission after another:

1. *prepare*: records the student and the submission time in the gradebook, copies the
   submission to ``autograded/``, restores the test cells and the kernel spec from the
   source (nbgrader's sanitizing preprocessors);
2. *execute*: runs the notebook in a fresh kernel and post-processes it (the preprocessors of
   ``Autograde.autograde_preprocessors`` before ``SaveAutoGrades``: here ExpandChecks,
   LimitedExecute, JudgeChecks, IgnorePattern, ClearMetadata, LimitOutput), in the sandbox;
3. *record*: ``SaveAutoGrades`` and what follows it (late penalties, metadata checks) write
   the scores to the gradebook, and the graded notebook is written to ``autograded/``.

This module runs steps 1 and 3 with nbgrader's own classes in the coordinating process, the
only one that touches the gradebook, and ships step 2 (the slow one) to workers: a local
process pool on all cores, or the workers of a Dask cluster. A worker receives the prepared
files, not paths, so it needs no shared file system, and starts kernels by forking a zygote
that has already imported the heavy libraries (:mod:`nncourse.kernels`), inside the sandbox
that module describes unless told otherwise.

A submission is done once its graded notebooks and a marker file are written; the marker
holds a fingerprint of the submission and of the source, so grading again skips what is
done and unchanged, and an interrupted run loses at most the submissions in flight.
"""

import atexit
import copy
import fnmatch
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import warnings
from concurrent import futures
from dataclasses import dataclass

import nbformat
import sqlalchemy

from .datasets import answer_keys, write_offline_datasets

MARKER = ".nncourse-graded.json"
# Everything a worker receives is held in memory and sent over the network: keep it bounded.
MAX_SUBMISSION_BYTES = 200 * 2**20


@dataclass
class Outcome:
    """What happened to one submission."""
    problem_set: str
    student: str
    status: str  # "graded", "skipped" (done and unchanged) or "failed"
    reason: str = ""  # why it failed; for the others, a problem with its feedback
    seconds: float = 0.0


class GradingError(Exception):
    """A submission could not be graded; the message is one line for the instructor."""


# ---------------------------------------------------------------------------- worker side

_zygote = None
_zygote_settings = None  # (sandboxed, datasets folder) it was started with
_zygote_lock = threading.Lock()


def _init_local_worker(threads):
    # Ctrl-C in the terminal is the coordinator's to handle: it stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Each kernel gets a fair share of the cores instead of all of them (oversubscription
    # makes every kernel slower). Set before the zygote imports torch, which reads it.
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)


def _worker_zygote(sandboxed, data_dir):
    """This worker's zygote (started again if it died or the sandbox settings changed)."""
    global _zygote, _zygote_settings
    from .kernels import Sandbox, Zygote
    with _zygote_lock:
        wanted = (sandboxed, data_dir)
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
                sandbox = Sandbox(read_only=[data_dir], hidden=answer_keys(),
                                  cpus=int(threads) if threads and threads.isdigit() else None)
            _zygote = Zygote(sandbox=sandbox)
            _zygote_settings = wanted
            atexit.register(_close_zygote)  # its folder and cgroups go with the worker
        return _zygote


def _close_zygote():
    with _zygote_lock:
        if _zygote is not None:
            _zygote.close()


def execute_submission(payload):
    """Step 2, in a worker: runs the prepared notebooks and returns them (JSON text each).

    Returns ``{"notebooks": {name: json}}`` or ``{"error": one line}``; never raises for a
    problem of the submission, so a bad submission cannot take a worker down.
    """
    from nbgrader import utils
    from nbgrader.preprocessors import Execute
    from .grading import REVIEW, WORKER
    from .kernels import ForkedKernelManager

    config = payload["config"]
    started = time.perf_counter()
    # nbclient leaves a task polling a lost kernel; asyncio would print its traceback
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    data_dir = write_offline_datasets(payload["data_dir"])
    try:
        zygote = _worker_zygote(payload["sandbox"], data_dir)
    except GradingError as exc:
        return {"error": str(exc), "seconds": time.perf_counter() - started}
    folder = zygote.job_folder()
    try:
        for relative, data in payload["files"].items():
            path = os.path.join(folder, relative)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as out:
                out.write(data)
        config.ForkedKernelManager.zygote_socket = zygote.socket_path
        environment = dict(NBGRADER_EXECUTION="autograde", NNCOURSE_DATA=data_dir)
        executed, notes = {}, []
        for name in payload["notebooks"]:
            notebook = nbformat.reads(payload["files"][name].decode(), as_version=4)
            resources = {"metadata": {"path": folder}, "unique_key": name[:-len(".ipynb")],
                         REVIEW: payload.get("reviews", {}).get(name), WORKER: True,
                         "nbgrader": {"student": payload["student"],
                                      "assignment": payload["problem_set"],
                                      "notebook": name[:-len(".ipynb")], "db_url": None}}
            try:
                with utils.setenv(**environment):
                    for cls in payload["preprocessors"]:
                        options = ({"kernel_manager_class": ForkedKernelManager}
                                   if issubclass(cls, Execute) else {})
                        notebook, resources = cls(config=config, **options)(notebook, resources)
            except Exception as exc:  # a kernel that died, a cell that never returned, ...
                reason = str(exc).strip().splitlines()
                return {"error": "%s: %s" % (name, reason[0] if reason else type(exc).__name__),
                        "seconds": time.perf_counter() - started}
            executed[name] = nbformat.writes(notebook)
            notes += ["%s: %s" % (name, note) for note in resources.get("nncourse_notes", [])]
    finally:
        # what the kernel wrote stays here: it is the student's code's output, not a file the
        # instructor or the feedback should receive
        shutil.rmtree(os.path.dirname(folder), ignore_errors=True)
    return {"notebooks": executed, "notes": notes,
            "seconds": time.perf_counter() - started}


# ---------------------------------------------------------------------------- executors

class LocalExecutor:
    """Worker processes on this machine (spawned, so they share nothing with the grader)."""

    def __init__(self, workers):
        self.workers = workers
        self.pool = self._new_pool()

    def _new_pool(self):
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        return futures.ProcessPoolExecutor(
            self.workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_local_worker, initargs=(threads,))

    def submit(self, payload):
        return self.pool.submit(execute_submission, payload)

    @staticmethod
    def lost_worker(exc):
        """Whether a job failed because a worker process died (killed, out of memory): then
        every job in flight fails with it, and the pool must be replaced."""
        return isinstance(exc, futures.process.BrokenProcessPool)

    def restart(self):
        """A new pool in place of a broken one (its dead workers' zygotes die with them)."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = self._new_pool()

    def as_completed(self, pending):
        return futures.as_completed(pending)

    def close(self, abort=False):
        if abort:  # interrupted: the submissions in flight are dropped (they are not recorded)
            for process in list(self.pool._processes.values()):
                process.terminate()  # its zygote, and with it the kernels, follow
        self.pool.shutdown(wait=not abort, cancel_futures=True)


class DaskExecutor:
    """The workers of a running Dask scheduler (``tcp://host:port``)."""

    def __init__(self, address):
        from distributed import Client
        try:
            self.client = Client(address, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise GradingError("cannot reach the Dask scheduler at %s (%s)" % (address, exc))
        self.workers = max(1, len(self.client.scheduler_info()["workers"]))

    def submit(self, payload):
        return self.client.submit(execute_submission, payload, pure=False)

    @staticmethod
    def lost_worker(exc):
        return False  # the scheduler itself runs a dead worker's tasks again elsewhere

    def restart(self):
        pass

    def as_completed(self, pending):
        from distributed import as_completed
        return as_completed(pending)

    def close(self, abort=False):
        self.client.close()  # the scheduler forgets the tasks of a closed client


# ---------------------------------------------------------------------------- coordinator

def _files_under(folder, ignore):
    """Relative paths of the files under ``folder``, without nbgrader's ignored patterns."""
    found = []
    for directory, subdirs, files in os.walk(folder):
        subdirs[:] = sorted(d for d in subdirs
                            if not any(fnmatch.fnmatch(d, pattern) for pattern in ignore))
        for name in sorted(files):
            if not any(fnmatch.fnmatch(name, pattern) for pattern in ignore):
                found.append(os.path.relpath(os.path.join(directory, name), folder))
    return found


class _LogLines(logging.Handler):
    """Keeps the warnings and errors nbgrader logs while one submission is prepared."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines = []

    def emit(self, record):
        self.lines.append((record.levelno, record.getMessage()))

    def reason(self):
        """The most specific error logged (nbgrader ends with generic ones)."""
        generic = ("There was an error", "Please see", "Traceback", "Removing failed")
        for level in (logging.ERROR, logging.WARNING):
            for levelno, line in self.lines:
                if levelno >= level and not line.startswith(generic):
                    return line.strip().splitlines()[0]
        return None


def load_config(course):
    """The course's nbgrader_config.py, with the gradebook the course was given."""
    from traitlets.config.loader import PyFileConfigLoader
    config = PyFileConfigLoader("nbgrader_config.py", path=course.root).load_config()
    config.CourseDirectory.db_url = course.db_url
    config.CourseDirectory.root = course.root
    return config


@dataclass
class _Job:
    problem_set: str
    student: str
    fingerprint: str
    payload: dict
    attempts: int = 1  # a job whose worker died is run once more (see ClassGrader.grade)


class ClassGrader:
    """Grades the submissions of problem sets; the gradebook is written by this process only."""

    def __init__(self, course, executor, progress=None, sandbox=True):
        self.course = course
        self.executor = executor
        self.sandbox = sandbox  # run every kernel in the sandbox (nncourse.kernels.Sandbox)
        self.config = load_config(course)
        self.progress = progress  # called with each Outcome as it is known
        preprocessors = list(self.config.Autograde.autograde_preprocessors)
        names = [cls.__name__ for cls in preprocessors]
        if "SaveAutoGrades" not in names:
            raise GradingError("nbgrader_config.py: Autograde.autograde_preprocessors has no "
                               "SaveAutoGrades, so no grade would be recorded")
        split = names.index("SaveAutoGrades")
        self.execute_steps, self.record_steps = preprocessors[:split], preprocessors[split:]
        from nbgrader.coursedir import CourseDirectory
        self._ignore = list(CourseDirectory(config=self.config).ignore) + [MARKER]
        self._source_digests = {}
        self._source_notebooks = {}  # path -> master notebook, read once (policy reviews)
        write_offline_datasets(course.data_dir)  # once here, rather than by each worker
        # nbgrader runs its environment's `alembic` program when it creates a gradebook
        bin_dir = os.path.dirname(sys.executable)
        if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")

    @property
    def db_url(self):
        return self.config.CourseDirectory.db_url

    def _coursedir(self, problem_set, student, config):
        from nbgrader.coursedir import CourseDirectory
        coursedir = CourseDirectory(config=config)
        coursedir.assignment_id, coursedir.student_id = problem_set, student
        return coursedir

    def _converter(self, cls, problem_set, student, **settings):
        """An nbgrader converter for one submission, on its own copy of the configuration
        (nbgrader's converters change it while they set themselves up)."""
        config = copy.deepcopy(self.config)
        for section, values in settings.items():
            config[section].update(values)
        return cls(coursedir=self._coursedir(problem_set, student, config), config=config)

    def _run_converter(self, cls, problem_set, student, **settings):
        """Runs an nbgrader converter in this process; its errors become one GradingError."""
        converter = self._converter(cls, problem_set, student, **settings)
        captured = _LogLines()
        converter.log.addHandler(captured)
        propagate, converter.log.propagate = converter.log.propagate, False
        try:
            with warnings.catch_warnings():
                # nbgrader's gradebook code trips SQLAlchemy's autoflush warnings
                warnings.simplefilter("ignore", sqlalchemy.exc.SAWarning)
                converter.start()
        except Exception as exc:
            raise GradingError(captured.reason() or str(exc) or type(exc).__name__)
        finally:
            converter.log.removeHandler(captured)
            converter.log.propagate = propagate
        return converter

    def register(self, problem_set):
        """Records the problem set's cells in the gradebook (nbgrader generate_assignment,
        into a scratch folder: release/ is left as it is)."""
        from nbgrader.converters import GenerateAssignment
        with tempfile.TemporaryDirectory() as scratch:
            self._run_converter(GenerateAssignment, problem_set, ".",
                                CourseDirectory={"release_directory": scratch},
                                BaseConverter={"force": True})

    def feedback(self, problem_set, student):
        """nbgrader's HTML feedback for one graded submission, written anew."""
        from nbgrader.converters import GenerateFeedback
        shutil.rmtree(self.course.path("feedback", student, problem_set), ignore_errors=True)
        self._run_converter(GenerateFeedback, problem_set, student)

    def _autograded(self, problem_set, student):
        return self.course.path("autograded", student, problem_set)

    def _folder_digest(self, folder):
        digest = hashlib.sha256()
        for relative in _files_under(folder, self._ignore):
            digest.update(relative.encode() + b"\0")
            with open(os.path.join(folder, relative), "rb") as data:
                digest.update(hashlib.sha256(data.read()).digest())
        return digest.digest()

    def fingerprint(self, problem_set, student):
        """Changes when the submission, the source notebooks or their files change."""
        if problem_set not in self._source_digests:  # the same for every student
            self._source_digests[problem_set] = self._folder_digest(
                self.course.path("source", problem_set))
        return hashlib.sha256(
            self._folder_digest(self.course.path("submitted", student, problem_set))
            + self._source_digests[problem_set]).hexdigest()

    def _recorded(self, problem_sets):
        """(problem set, student) pairs with a submission in the gradebook."""
        from nbgrader.api import Gradebook, MissingEntry
        pairs = set()
        with Gradebook(self.db_url, self.config.CourseDirectory.course_id) as gradebook:
            for problem_set in problem_sets:
                try:
                    pairs |= {(problem_set, submission.student_id) for submission
                              in gradebook.assignment_submissions(problem_set)}
                except MissingEntry:
                    pass
        return pairs

    def is_done(self, problem_set, student, fingerprint):
        """Graded before from the same files (the gradebook is checked by the caller)."""
        marker = os.path.join(self._autograded(problem_set, student), MARKER)
        try:
            with open(marker) as data:
                return json.load(data).get("fingerprint") == fingerprint
        except (OSError, ValueError):
            return False

    # step 1 ----------------------------------------------------------------------------
    def prepare(self, problem_set, student):
        """nbgrader's own first half of autograde; returns the payload for a worker."""
        from nbgrader.converters import Autograde
        from nbgrader.converters.base import BaseConverter

        class Prepare(Autograde):
            """Autograde up to the sanitized notebooks in autograded/ (nothing executed)."""

            def convert_single_notebook(self, notebook_filename):
                self._sanitizing = True
                self._init_preprocessors()
                BaseConverter.convert_single_notebook(self, notebook_filename)

        destination = self._autograded(problem_set, student)
        shutil.rmtree(destination, ignore_errors=True)  # graded again from scratch
        self._run_converter(Prepare, problem_set, student)
        files, size = {}, 0
        for relative in _files_under(destination, []):
            with open(os.path.join(destination, relative), "rb") as data:
                files[relative] = data.read()
            size += len(files[relative])
        if size > MAX_SUBMISSION_BYTES:
            raise GradingError("the submission holds %d MB of files (at most %d MB are graded)"
                               % (size >> 20, MAX_SUBMISSION_BYTES >> 20))
        notebooks = sorted(name for name in files if "/" not in name and name.endswith(".ipynb"))
        return {"problem_set": problem_set, "student": student, "files": files,
                "notebooks": notebooks, "config": self.config,
                "reviews": self._review(problem_set, notebooks, files),
                "preprocessors": self.execute_steps, "data_dir": self.course.data_dir,
                "sandbox": self.sandbox}

    def _review(self, problem_set, notebooks, files):
        """The test cells each notebook forfeits by breaking the problem set's rules on what
        graded code may use (read here, from the source, never in the kernel)."""
        from .grading import review_submission
        reviews = {}
        for name in notebooks:
            source_path = self.course.path("source", problem_set, name)
            if not os.path.isfile(source_path):
                continue
            if source_path not in self._source_notebooks:  # the same for every student
                self._source_notebooks[source_path] = nbformat.read(source_path, 4)
            submitted = nbformat.reads(files[name].decode(), as_version=4)
            try:
                reviews[name] = review_submission(
                    submitted, self._source_notebooks[source_path], problem_set)
            except Exception as exc:  # a bug of the reader: this submission only, loudly
                raise GradingError("%s: reading its code failed (%s: %s); tell the course's "
                                   "maintainers" % (name, type(exc).__name__, exc))
        return reviews

    # step 3 ----------------------------------------------------------------------------
    def record(self, problem_set, student, executed, fingerprint):
        """Saves the scores (nbgrader's SaveAutoGrades and what follows) and the notebooks."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sqlalchemy.exc.SAWarning)
            self._record(problem_set, student, executed, fingerprint)

    def _record(self, problem_set, student, executed, fingerprint):
        destination = self._autograded(problem_set, student)
        for name, text in sorted(executed.items()):
            notebook = nbformat.reads(text, as_version=4)
            resources = {"unique_key": name[:-len(".ipynb")],
                         "nbgrader": {"student": student, "assignment": problem_set,
                                      "notebook": name[:-len(".ipynb")], "db_url": self.db_url}}
            for cls in self.record_steps:
                notebook, resources = cls(config=self.config)(notebook, resources)
            nbformat.write(notebook, os.path.join(destination, name))
        from nbgrader.converters import Autograde
        self._converter(Autograde, problem_set, student).set_permissions(problem_set, student)
        # written last: its presence says that everything above is complete
        marker = os.path.join(destination, MARKER)
        with open(marker + ".tmp", "w") as out:
            json.dump({"fingerprint": fingerprint, "graded_at": time.time()}, out)
        os.replace(marker + ".tmp", marker)

    def _feedback_problem(self, problem_set, student):
        """Writes the feedback; returns "" or why there is none (the grades stand)."""
        try:
            self.feedback(problem_set, student)
        except GradingError as error:
            return "no feedback written: %s" % error
        return ""

    def _finish(self, job, result):
        """Records a worker's result (or its failure); returns the Outcome."""
        seconds = result.get("seconds", 0.0)
        if "error" in result:
            self._fail(job.problem_set, job.student)
            return Outcome(job.problem_set, job.student, "failed", result["error"], seconds)
        try:
            self.record(job.problem_set, job.student, result["notebooks"], job.fingerprint)
        except Exception as exc:
            self._fail(job.problem_set, job.student)
            return Outcome(job.problem_set, job.student, "failed",
                           "recording the grades failed: %s" % exc, seconds)
        notes = result.get("notes", []) + [self._feedback_problem(job.problem_set, job.student)]
        if job.attempts > 1:
            notes.append("graded again after a grading worker died")
        return Outcome(job.problem_set, job.student, "graded",
                       "; ".join(note for note in notes if note), seconds)

    def _fail(self, problem_set, student):
        shutil.rmtree(self._autograded(problem_set, student), ignore_errors=True)

    # all of it ---------------------------------------------------------------------------
    def grade(self, submissions, force=False):
        """Grades ``(problem_set, student)`` pairs; returns an Outcome for each, in order."""
        outcomes, jobs, pending = {}, {}, set()

        def done(outcome):
            outcomes[(outcome.problem_set, outcome.student)] = outcome
            if self.progress:
                self.progress(outcome)

        # a marker counts only if its grades are in this gradebook (not a new or another one)
        recorded = set() if force else self._recorded({ps for ps, _ in submissions})
        try:
            for problem_set, student in submissions:
                fingerprint = self.fingerprint(problem_set, student)
                if (not force and (problem_set, student) in recorded
                        and self.is_done(problem_set, student, fingerprint)):
                    reason = ""
                    if not os.path.isdir(self.course.path("feedback", student, problem_set)):
                        reason = self._feedback_problem(problem_set, student)
                    done(Outcome(problem_set, student, "skipped", reason))
                    continue
                try:
                    payload = self.prepare(problem_set, student)
                except GradingError as error:
                    self._fail(problem_set, student)
                    done(Outcome(problem_set, student, "failed", str(error)))
                    continue
                job = _Job(problem_set, student, fingerprint, payload)
                future = self.executor.submit(payload)
                jobs[future] = job
                pending.add(future)
            while pending:
                lost = []  # jobs whose worker died: graded once more, by a new pool
                for future in self.executor.as_completed(list(pending)):
                    pending.discard(future)
                    job = jobs.pop(future)
                    try:
                        result = future.result()
                    except Exception as exc:  # the worker itself died
                        if self.executor.lost_worker(exc) and job.attempts < 2:
                            lost.append(job)
                            continue
                        result = {"error": "the grading worker failed (%s)"
                                           % (str(exc).splitlines() or [type(exc).__name__])[0]}
                    done(self._finish(job, result))
                if lost:
                    self.executor.restart()
                for job in lost:
                    job.attempts += 1
                    future = self.executor.submit(job.payload)
                    jobs[future] = job
                    pending.add(future)
        finally:
            for future in pending:
                future.cancel()
        return [outcomes[key] for key in submissions if key in outcomes]
