"""The coordinator (steps 1 and 3 of :mod:`nncourse.autograde`): the only process that
touches the gradebook. It prepares each submission with nbgrader's own Autograde, hands it to
an executor, records what comes back, writes the feedback and then the marker."""

import contextlib
import copy
import hashlib
import logging
import os
import shutil
import signal
import tempfile
import threading
import warnings
from dataclasses import dataclass, field

import nbformat
import sqlalchemy
from nbformat.warnings import DuplicateCellId

from . import markers
from ..course import MAX_SUBMISSION_BYTES, NBGRADER_GENERIC_LINES, environment_on_path, shown
from ..datasets import write_offline_datasets
from ..sandbox import remove_leftovers, running
from .preprocessors import COPIES_NOTE, review_submission
from .records import Executed, GradingError, Outcome, Prepared, Status
from .stop import Stop

# nbformat renames a cell id that a copied cell repeats, and says so on stderr each time
warnings.filterwarnings("ignore", category=DuplicateCellId)


# Seconds the coordinator may spend reading one submission's code (IPython's transforms and the
# policy reader; an honest notebook takes about a second): past it, that submission fails.
REVIEW_SECONDS = 30


class _OverTime(Exception):
    pass


@contextlib.contextmanager
def _time_limit(seconds):
    """Raises _OverTime in the block after ``seconds`` of wall-clock time (a timer signal:
    only in the main thread, where the coordinator runs; elsewhere, no limit)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def over(signum, frame):
        raise _OverTime()
    previous = signal.signal(signal.SIGALRM, over)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def hand_grading(submission):
    """A digest of what graders entered by hand for a gradebook submission (scores, extra
    credit, comments): the feedback written from it is stale once this changes."""
    entered = sorted((notebook.name, grade.name, grade.manual_score, grade.extra_credit)
                     for notebook in submission.notebooks for grade in notebook.grades)
    entered += sorted((notebook.name, comment.name, comment.manual_comment or "")
                      for notebook in submission.notebooks for comment in notebook.comments)
    return hashlib.sha256(repr(entered).encode()).hexdigest()


class _LogLines(logging.Handler):
    """Keeps the warnings and errors nbgrader logs while one submission is prepared."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines = []

    def emit(self, record):
        self.lines.append((record.levelno, record.getMessage()))

    def reason(self):
        """The most specific error logged (nbgrader ends with generic ones)."""
        for level in (logging.ERROR, logging.WARNING):
            for levelno, line in self.lines:
                if levelno >= level and not line.startswith(NBGRADER_GENERIC_LINES):
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
    prepared: Prepared
    # {notebook: {grade_id: answer}}: answers graded by hand before, left resolved if unchanged
    hand_graded: dict = field(default_factory=dict)
    attempts: int = 1  # a job whose worker died is run once more (see ClassGrader.grade)


class ClassGrader:
    """Grades the submissions of problem sets; the gradebook is written by this process only."""

    def __init__(self, course, executor, progress=None, sandbox=True):
        self.course = course
        self.executor = executor
        self.sandbox = sandbox  # run every kernel in the sandbox (nncourse.sandbox.Sandbox)
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
        self._ignore = list(CourseDirectory(config=self.config).ignore) + [markers.MARKER]
        self._source_digests = {}
        self._source_notebooks = {}  # path -> master notebook, read once (policy reviews)
        write_offline_datasets(course.data_dir)  # once here, rather than by each worker
        remove_leftovers()  # of graders killed before they could clean up after themselves
        self._remove_partial_feedback()
        environment_on_path()

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
        converter.warnings = [line for level, line in captured.lines if level == logging.WARNING]
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
        """nbgrader's HTML feedback for one graded submission, written anew: into a scratch
        folder first, then moved in place, so that a feedback folder is always complete."""
        from nbgrader.converters import GenerateFeedback
        scratch = os.path.join("feedback", ".partial-%d" % os.getpid())
        shutil.rmtree(self.course.path(scratch), ignore_errors=True)
        try:
            self._run_converter(GenerateFeedback, problem_set, student,
                                CourseDirectory={"feedback_directory": scratch})
            written = self.course.path(scratch, student, problem_set)
            final = self.course.path("feedback", student, problem_set)
            os.makedirs(os.path.dirname(final), exist_ok=True)
            shutil.rmtree(final, ignore_errors=True)
            os.replace(written, final)
        finally:
            shutil.rmtree(self.course.path(scratch), ignore_errors=True)

    def _remove_partial_feedback(self):
        """Scratch feedback folders of graders that were killed while writing (see feedback)."""
        folder = self.course.path("feedback")
        for name in os.listdir(folder) if os.path.isdir(folder) else []:
            owner = name[len(".partial-"):]
            if name.startswith(".partial-") and owner.isdigit() and not running(int(owner)):
                shutil.rmtree(os.path.join(folder, name), ignore_errors=True)

    def has_feedback(self, problem_set, student):
        """Whether the feedback of every notebook of the problem set is there."""
        folder = self.course.path("feedback", student, problem_set)
        return all(os.path.isfile(os.path.join(folder, name[:-len(".ipynb")] + ".html"))
                   for name in self.course.notebook_names(problem_set))

    def _autograded(self, problem_set, student):
        return self.course.path("autograded", student, problem_set)

    def fingerprint(self, problem_set, student):
        """Changes when the submission, the source notebooks or their files change."""
        if problem_set not in self._source_digests:  # the same for every student
            self._source_digests[problem_set] = markers.folder_digest(
                self.course.path("source", problem_set), self._ignore)
        return hashlib.sha256(
            markers.folder_digest(self.course.path("submitted", student, problem_set),
                                  self._ignore)
            + self._source_digests[problem_set]).hexdigest()

    def _gradebook(self):
        from nbgrader.api import Gradebook
        return Gradebook(self.db_url, self.config.CourseDirectory.course_id)

    def _recorded(self, problem_sets):
        """``{(problem set, student): hand grading digest}`` of the submissions in the
        gradebook (see :func:`hand_grading`)."""
        from nbgrader.api import MissingEntry
        recorded = {}
        with self._gradebook() as gradebook:
            for problem_set in problem_sets:
                try:
                    submissions = gradebook.assignment_submissions(problem_set)
                except MissingEntry:
                    continue
                recorded.update({(problem_set, submission.student_id): hand_grading(submission)
                                 for submission in submissions})
        return recorded

    def _hand_grading_now(self, problem_set, student):
        with self._gradebook() as gradebook:
            return hand_grading(gradebook.find_submission(problem_set, student))

    def _hand_graded(self, problem_set, student):
        """``{notebook: {grade_id: answer}}``: the answers of the last grading that a grader
        has scored by hand and resolved (read before the submission is graded again)."""
        from nbgrader.api import MissingEntry
        try:
            with self._gradebook() as gradebook:
                submission = gradebook.find_submission(problem_set, student)
                resolved = {(notebook.name, grade.name) for notebook in submission.notebooks
                            for grade in notebook.grades
                            if grade.manual_score is not None and not grade.needs_manual_grade}
        except MissingEntry:
            return {}
        answers = {}
        for name, grade_id in resolved:
            path = os.path.join(self._autograded(problem_set, student), name + ".ipynb")
            try:
                cells = nbformat.read(path, as_version=4).cells
            except (OSError, ValueError):
                continue
            for cell in cells:
                if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
                    answers.setdefault(name + ".ipynb", {})[grade_id] = cell.source
        return answers

    def _keep_resolved(self, problem_set, student, name, notebook, hand_graded):
        """nbgrader's SaveAutoGrades marks every answer that has a grade by hand as needing
        grading again; one whose text has not changed since it was graded stays resolved."""
        unchanged = {cell.metadata.nbgrader["grade_id"] for cell in notebook.cells
                     if cell.metadata.get("nbgrader", {}).get("grade_id") in hand_graded
                     and hand_graded[cell.metadata.nbgrader["grade_id"]] == cell.source}
        if not unchanged:
            return
        with self._gradebook() as gradebook:
            for grade_id in unchanged:
                grade = gradebook.find_grade(grade_id, name[:-len(".ipynb")], problem_set,
                                             student)
                grade.needs_manual_grade = False
            gradebook.db.commit()

    def is_done(self, problem_set, student, fingerprint):
        """Graded before, completely, from the same files (the gradebook is checked by the
        caller). Returns the marker, or None."""
        marker = markers.read(self._autograded(problem_set, student))
        return marker if markers.describes(marker, fingerprint) else None

    # step 1 ----------------------------------------------------------------------------
    def prepare(self, problem_set, student):
        """nbgrader's own first half of autograde; returns what a worker needs (Prepared)."""
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
        prepared = self._run_converter(Prepare, problem_set, student)
        notes = [line for line in prepared.warnings if line.startswith(COPIES_NOTE)]
        files, size = {}, 0
        for relative in markers.files_under(destination):
            with open(os.path.join(destination, relative), "rb") as data:
                files[relative] = data.read()
            size += len(files[relative])
        if size > MAX_SUBMISSION_BYTES:  # a worker holds it in memory, over the network
            raise GradingError("the submission holds %d MB of files (at most %d MB are graded)"
                               % (size >> 20, MAX_SUBMISSION_BYTES >> 20))
        notebooks = sorted(name for name in files if "/" not in name and name.endswith(".ipynb"))
        return Prepared(problem_set, student, files, notebooks, config=self.config,
                        preprocessors=self.execute_steps,
                        reviews=self._review(problem_set, notebooks, files),
                        data_dir=self.course.data_dir, sandbox=self.sandbox, notes=notes)

    def _review(self, problem_set, notebooks, files):
        """The test cells each notebook forfeits by breaking the problem set's rules on what
        graded code may use (read here, from the source, never in the kernel)."""
        reviews = {}
        for name in notebooks:
            source_path = self.course.path("source", problem_set, name)
            if not os.path.isfile(source_path):
                continue
            if source_path not in self._source_notebooks:  # the same for every student
                self._source_notebooks[source_path] = nbformat.read(source_path, 4)
            submitted = nbformat.reads(files[name].decode(), as_version=4)
            try:
                with _time_limit(REVIEW_SECONDS):
                    reviews[name] = review_submission(
                        submitted, self._source_notebooks[source_path], problem_set)
            except _OverTime:
                raise GradingError("%s: reading its code took more than %d s (the grader's "
                                   "limit on a notebook's source)" % (name, REVIEW_SECONDS))
            except Exception as exc:  # a bug of the reader: this submission only, loudly
                raise GradingError("%s: reading its code failed (%s: %s); tell the course's "
                                   "maintainers" % (name, type(exc).__name__, exc))
        return reviews

    # step 3 ----------------------------------------------------------------------------
    def record(self, problem_set, student, executed, hand_graded=None):
        """Saves the scores (nbgrader's SaveAutoGrades and what follows) and the notebooks;
        ``hand_graded``: see :meth:`_hand_graded`."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sqlalchemy.exc.SAWarning)
            self._record(problem_set, student, executed, hand_graded or {})

    def _record(self, problem_set, student, executed, hand_graded):
        destination = self._autograded(problem_set, student)
        for name, text in sorted(executed.items()):
            notebook = nbformat.reads(text, as_version=4)
            resources = {"unique_key": name[:-len(".ipynb")],
                         "nbgrader": {"student": student, "assignment": problem_set,
                                      "notebook": name[:-len(".ipynb")], "db_url": self.db_url}}
            for cls in self.record_steps:
                notebook, resources = cls(config=self.config)(notebook, resources)
            self._keep_resolved(problem_set, student, name, notebook, hand_graded.get(name, {}))
            path = os.path.join(destination, name)
            nbformat.write(notebook, path + ".partial")
            os.replace(path + ".partial", path)
        from nbgrader.converters import Autograde
        self._converter(Autograde, problem_set, student).set_permissions(problem_set, student)

    def _feedback_problem(self, problem_set, student):
        """Writes the feedback; returns "" or why there is none (the grades stand)."""
        try:
            self.feedback(problem_set, student)
        except Exception as error:  # whatever the submission held: its own line only
            return "no feedback written: %s" % (shown(error) or type(error).__name__)
        return ""

    def _finish(self, job, result):
        """Records a worker's result (or its failure), then its feedback, then its marker;
        returns the Outcome."""
        ps, student = job.problem_set, job.student
        if result.error is not None:
            self._fail(ps, student, job.fingerprint, result.error)
            return Outcome(ps, student, Status.FAILED, result.error, result.seconds)
        try:
            self.record(ps, student, result.notebooks, job.hand_graded)
        except Exception as exc:
            reason = "recording the grades failed: %s" % exc
            self._fail(ps, student, job.fingerprint, reason)
            return Outcome(ps, student, Status.FAILED, reason, result.seconds)
        no_feedback = self._feedback_problem(ps, student)
        incomplete = "; ".join(result.incomplete)
        status = Status.INCOMPLETE if incomplete else Status.GRADED
        # written last: its presence says that everything above is complete
        markers.write(self._autograded(ps, student), status, job.fingerprint,
                      reason=incomplete or no_feedback, feedback=not no_feedback,
                      mistakes=result.mistakes,
                      hand_grading=self._hand_grading_now(ps, student))
        notes = [incomplete] + job.prepared.notes + result.notes + [no_feedback]
        if job.attempts > 1:
            notes.append("graded again after a grading worker died")
        return Outcome(ps, student, status, "; ".join(note for note in notes if note),
                       result.seconds)

    def _fail(self, problem_set, student, fingerprint, reason):
        """No grade: what was written for it goes, and a marker says why (the reports leave
        its score empty)."""
        folder = self._autograded(problem_set, student)
        shutil.rmtree(folder, ignore_errors=True)
        markers.write(folder, Status.FAILED, fingerprint, reason=reason, feedback=False)

    # all of it ---------------------------------------------------------------------------
    def grade(self, submissions, force=False, stop=None):
        """Grades ``(problem_set, student)`` pairs; returns an Outcome for each, in order.

        ``force``: grade again what is done. ``stop``: a :class:`Stop`; once it is requested,
        grading ends (KeyboardInterrupt) between two submissions' records, never in the
        middle of one.
        """
        stop = stop or Stop()
        outcomes, jobs = {}, {}  # jobs: future -> _Job, for those in flight

        def done(outcome):
            outcomes[(outcome.problem_set, outcome.student)] = outcome
            if self.progress:
                self.progress(outcome)

        # a marker counts only if its grades are in this gradebook (not a new or another one)
        recorded = self._recorded({ps for ps, _ in submissions})
        try:
            for problem_set, student in submissions:
                stop.check()
                job = self._start(problem_set, student, recorded.get((problem_set, student)),
                                  force, stop)
                if isinstance(job, Outcome):
                    done(job)
                else:
                    jobs[self.executor.submit(job.prepared)] = job
            self._collect(jobs, stop, done)
        finally:
            for future in jobs:
                future.cancel()
        return [outcomes[key] for key in submissions if key in outcomes]

    def _start(self, problem_set, student, hand_grading, force, stop):
        """A job for a worker; or the Outcome of a submission that needs none: graded before
        from the same files (and recorded in the gradebook: ``hand_grading`` is not None), or
        one nbgrader cannot prepare. The feedback of one graded before is written again when
        it is missing or its hand grading changed since it was written."""
        try:
            fingerprint = self.fingerprint(problem_set, student)
        except Exception as error:  # files that changed or vanished since they were checked
            reason = "reading its files failed (%s)" % type(error).__name__
            self._fail(problem_set, student, "", reason)
            return Outcome(problem_set, student, Status.FAILED, reason)
        marker = (hand_grading is not None and not force
                  and self.is_done(problem_set, student, fingerprint))
        if marker:
            stale = (not marker.get("feedback", True) or not self.has_feedback(problem_set, student)
                     or marker.get("hand_grading") != hand_grading)
            reason = ""
            if stale:
                with stop.held():
                    reason = self._feedback_problem(problem_set, student)
                    markers.write(self._autograded(problem_set, student), Status.GRADED,
                                  fingerprint, reason=reason, feedback=not reason,
                                  mistakes=marker.get("mistakes", []), hand_grading=hand_grading)
            return Outcome(problem_set, student, Status.SKIPPED, reason,
                           refreshed=stale and not reason)
        with stop.held():
            try:
                hand_graded = ({} if hand_grading is None  # not in the gradebook yet
                               else self._hand_graded(problem_set, student))
                return _Job(problem_set, student, fingerprint,
                            self.prepare(problem_set, student), hand_graded)
            except Exception as error:  # whatever the submission held: its own line only
                reason = (shown(error) if isinstance(error, GradingError) else
                          "preparing it failed (%s: %s)" % (type(error).__name__, shown(error)))
                self._fail(problem_set, student, fingerprint, reason)
                return Outcome(problem_set, student, Status.FAILED, reason)

    def _collect(self, jobs, stop, done):
        """Records the workers' results as they come, until ``jobs`` is empty. The jobs of a
        worker that died are run once more, by a new pool."""
        while jobs:
            lost = []
            for future in self.executor.wait(set(jobs), stop):
                job = jobs.pop(future)
                try:
                    result = future.result()
                except Exception as exc:  # the worker itself died
                    if self.executor.lost_worker(exc) and job.attempts < 2:
                        lost.append(job)
                        continue
                    result = Executed(error="the grading worker failed (%s)" % (
                        str(exc).splitlines() or [type(exc).__name__])[0])
                with stop.held():
                    done(self._finish(job, result))
            if lost:
                self.executor.restart()
            for job in lost:
                job.attempts += 1
                jobs[self.executor.submit(job.prepared)] = job
