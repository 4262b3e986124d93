"""The course folder: where nbgrader's folders are, and running nbgrader on them."""

import contextlib
import importlib.util
import os
import re
import shutil
import stat
import subprocess
import sys
import unicodedata

import nbformat

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COURSE_ID = "nncourse"  # nbgrader's course id, read by nbgrader_config.py


# nbgrader's log lines that say only that something failed, not what (it ends with them)
NBGRADER_GENERIC_LINES = ("There was an error", "Please see", "Traceback", "Removing failed")


def _reason(lines):
    """The most telling line of nbgrader's log: its first specific error, else the last
    exception of a traceback, else the last line."""
    for line in lines:
        if "| ERROR]" in line:
            message = line.split("]", 1)[-1].strip()
            if not message.startswith(NBGRADER_GENERIC_LINES):
                return message
    exceptions = [line.strip() for line in lines
                  if re.match(r"^\s*[\w.]+(Error|Exception): ", line)]
    return exceptions[-1] if exceptions else lines[-1].strip()


class CourseError(Exception):
    """A problem with the instructor's input, reported as one line."""


# What one submission folder may hold: more is that student's problem line, never the class's
# (every file is copied into autograded/ and feedback/, and read to fingerprint it).
MAX_SUBMISSION_FILES = 500  # files and folders
MAX_SUBMISSION_DEPTH = 16  # folders inside folders
MAX_SUBMISSION_BYTES = 200 * 2**20
MAX_NOTEBOOK_CELLS = 1000  # the problem sets have at most a few hundred
# what a student id may hold besides letters and digits: nothing that is markup in a page,
# a pattern to nbgrader (which globs paths made from ids: "*" would be every student) or a
# control character to a terminal
ID_PUNCTUATION = " ._-+@"


def shown(text):
    """``text`` that came from a submission (a folder name, a cell id, a kernel's message),
    safe to print on a terminal or put in a one-line report: control characters, invisible
    format characters and bytes that were not UTF-8 are written as escapes."""
    text = str(text).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(char if unicodedata.category(char)[0] != "C"
                   else char.encode("unicode_escape").decode("ascii") for char in text)


def student_id_problem(name):
    """Why ``name`` (a folder under submitted/) cannot be a student id, or None. Ids enter
    here and nowhere else: nbgrader strips whitespace (so ``"alice "`` would grade alice's
    files) and globs paths made from them, and ids reach terminals, CSV files and
    Formgrader's pages."""
    if name != name.strip():
        return "it begins or ends with whitespace, which nbgrader strips"
    if any(0xDC80 <= ord(char) <= 0xDCFF for char in name):
        return "it is not valid UTF-8 text"
    others = sorted({char for char in name if not (char.isalnum() or char in ID_PUNCTUATION)})
    if others:
        return "it holds characters other than letters, digits, spaces and %s (%s)" % (
            " ".join(ID_PUNCTUATION.strip()), shown(" ".join(others)))
    return None


def submission_files_problem(folder):
    """Why the files under ``folder`` cannot be graded, or None. Only regular files, each
    with one name (a hard link would carry another file of the machine in), and folders, all
    readable, with UTF-8 names of no control characters; at most MAX_SUBMISSION_FILES entries
    in all, MAX_SUBMISSION_DEPTH deep, MAX_SUBMISSION_BYTES (a symbolic link could point at
    /dev/zero or at the course's own files; a fifo would block a reader)."""
    for path in (os.path.dirname(folder), folder):
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            return "%s is a symbolic link, not a folder" % os.path.basename(path)
    count = size = 0
    pending = [(folder, 0)]  # walked without recursion (os.walk's would exhaust the stack)
    while pending:
        directory, depth = pending.pop()
        if depth > MAX_SUBMISSION_DEPTH:
            return "its folders are nested more than %d deep" % MAX_SUBMISSION_DEPTH
        if not os.access(directory, os.R_OK | os.X_OK):
            return "%s cannot be read" % shown(os.path.relpath(directory, folder))
        with os.scandir(directory) as entries:
            for entry in entries:
                relative = shown(os.path.relpath(entry.path, folder))
                if not _plain_file_name(entry.name):
                    return "the name %s is not valid UTF-8 text of printable characters" \
                        % relative
                count += 1
                if count > MAX_SUBMISSION_FILES:
                    return "it holds more than %d files and folders" % MAX_SUBMISSION_FILES
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISLNK(info.st_mode):
                    return "%s is a symbolic link (only regular files are graded)" % relative
                if stat.S_ISDIR(info.st_mode):
                    pending.append((entry.path, depth + 1))
                    continue
                if not stat.S_ISREG(info.st_mode):
                    return "%s is not a regular file" % relative
                if info.st_nlink > 1:
                    return "%s is a hard link (only files of its own are graded)" % relative
                if not os.access(entry.path, os.R_OK):
                    return "%s cannot be read" % relative
                size += info.st_size
                if size > MAX_SUBMISSION_BYTES:
                    return "its files hold more than %d MB" % (MAX_SUBMISSION_BYTES >> 20)
    return None


def _plain_file_name(name):
    """A file name that is text (UTF-8) with no control or invisible characters."""
    return not any(0xDC80 <= ord(char) <= 0xDCFF or unicodedata.category(char)[0] == "C"
                   for char in name)


def notebook_problem(path):
    """Why the notebook at ``path`` cannot be graded, or None. nbformat only logs a notebook
    that does not follow its schema, and some malformed ones make it raise anything
    (TypeError, RecursionError): both are refused here, before nbgrader reads it."""
    try:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
    except nbformat.ValidationError as exc:
        return "not a valid notebook (%s)" % _first_line(exc.message)
    except Exception as exc:  # anything nbformat raises on bad JSON, text or structure
        return "not a readable notebook (%s)" % _first_line(str(exc) or type(exc).__name__)
    if len(notebook.cells) > MAX_NOTEBOOK_CELLS:
        return "it has %d cells (at most %d are graded)" % (len(notebook.cells),
                                                            MAX_NOTEBOOK_CELLS)
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if not isinstance(meta, dict):
            return "a cell's nbgrader metadata is not a mapping"
        grade_id = meta.get("grade_id")
        if grade_id is not None and (not isinstance(grade_id, str)
                                     or not re.fullmatch(r"[\w-]{1,100}", grade_id)):
            return "a cell's grade_id is not a name of letters, digits, - and _"
    return None


def _first_line(text):
    lines = str(text).strip().splitlines()
    return shown(lines[0] if lines else text)[:120]


# the package that provides a database driver module, where its name is not the module's
_DRIVER_PACKAGES = {"psycopg": "psycopg[binary]", "psycopg2": "psycopg2-binary",
                    "pymysql": "PyMySQL", "MySQLdb": "mysqlclient"}


def check_gradebook(url):
    """One line (CourseError) if the gradebook at ``url`` cannot be used: not a URL, a kind
    of database SQLAlchemy does not know, a driver that is not installed, a server that cannot
    be reached (PostgreSQL: ``postgresql://user@host/database``, or on a Unix socket
    ``postgresql://user@/database?host=/folder``)."""
    import sqlalchemy
    from sqlalchemy.engine import make_url
    try:
        parsed = make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise CourseError("not a database URL: %r (expected sqlite:///path/gradebook.db or "
                          "postgresql://user@host/database)" % url)
    shown = parsed.render_as_string(hide_password=True)
    try:
        dialect = parsed.get_dialect()
    except sqlalchemy.exc.NoSuchModuleError:
        raise CourseError("unknown kind of database in the gradebook URL %s (nbgrader's "
                          "gradebook works with sqlite:// and postgresql://)" % shown)
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        module = (exc.name or str(exc)).split(".")[0]
        raise CourseError("the gradebook URL %s needs the Python package %s, which is not "
                          "installed (pip install %s)"
                          % (shown, module, _DRIVER_PACKAGES.get(module, module)))
    if parsed.get_backend_name() == "sqlite":
        return
    engine = sqlalchemy.create_engine(parsed, connect_args=(
        {"connect_timeout": 10} if parsed.get_backend_name() == "postgresql" else {}))
    try:
        with engine.connect():
            pass
    except sqlalchemy.exc.DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines() if exc.orig else []
        raise CourseError("cannot reach the gradebook database %s: %s"
                          % (shown, reason[0] if reason else type(exc.orig).__name__))
    finally:
        engine.dispose()


def environment_on_path():
    """Puts this environment's programs first on the PATH: nbgrader runs its `alembic` when it
    creates a gradebook, and `.venv/bin/nncourse` may be run without activating .venv."""
    bin_dir = os.path.dirname(sys.executable)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")


def find_course(start):
    """The course folder that holds ``start``: the nearest folder, ``start`` or above it,
    with an ``nbgrader_config.py`` (where nbgrader reads its settings)."""
    folder = os.path.abspath(start)
    while True:
        if os.path.isfile(os.path.join(folder, "nbgrader_config.py")):
            return folder
        parent = os.path.dirname(folder)
        if parent == folder:
            raise CourseError("no course here: %s and the folders above it have no "
                              "nbgrader_config.py (run nncourse in a course folder, or pass "
                              "--course FOLDER)" % os.path.abspath(start))
        folder = parent


class Course:
    def __init__(self, root=ROOT, db_url=None):
        self.root = os.path.abspath(root)
        self._db_url = db_url

    def require_course(self):
        """One line when the folder is not a course (nothing, or no source/ in it)."""
        for needed in ("nbgrader_config.py", "source"):
            if not os.path.exists(self.path(needed)):
                raise CourseError("%s is not a course folder: it has no %s"
                                  % (self.root, needed))

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    @property
    def db_url(self):
        """The gradebook: SQLite in the course folder (as nbgrader_config.py sets it), unless
        another database URL was given (PostgreSQL, when several machines grade)."""
        return self._db_url or "sqlite:///" + self.path("gradebook.db")

    @contextlib.contextmanager
    def gradebook_lock(self):
        """Held while creating what two graders sharing a gradebook would both create (its
        tables, a problem set's cells): a PostgreSQL advisory lock, so that graders on several
        machines take turns. A SQLite gradebook is one file on one machine: no lock."""
        import sqlalchemy
        url = sqlalchemy.engine.make_url(self.db_url)
        if url.get_backend_name() != "postgresql":
            yield
            return
        engine = sqlalchemy.create_engine(url)
        try:
            with engine.connect() as connection:
                key = sqlalchemy.text("SELECT pg_advisory_lock(hashtext('nncourse gradebook'))")
                connection.execute(key)
                try:
                    yield
                finally:
                    connection.execute(sqlalchemy.text(
                        "SELECT pg_advisory_unlock(hashtext('nncourse gradebook'))"))
        finally:
            engine.dispose()

    def _db_option(self):
        return ["--CourseDirectory.db_url=" + self._db_url] if self._db_url else []

    @property
    def data_dir(self):
        """Offline datasets for grading, in torchvision's layout (written on first use)."""
        return self.path("data")

    def problem_sets(self):
        source = self.path("source")
        return sorted(name for name in os.listdir(source)
                      if os.path.isdir(os.path.join(source, name)) and not name.startswith("."))

    def require_problem_set(self, problem_set, checked=True):
        if problem_set not in self.problem_sets():
            raise CourseError("unknown problem set %r (known: %s)"
                              % (problem_set, ", ".join(self.problem_sets())))
        if checked:
            self.require_checks(problem_set)

    def require_checks(self, problem_set):
        """A problem set exists with its hidden checks, nncourse/checks/psN.py."""
        if not problem_set.isidentifier() or importlib.util.find_spec(
                "nncourse.checks." + problem_set) is None:
            raise CourseError("%s has no hidden checks: write nncourse/checks/%s.py "
                              "(docs/authoring.md)" % (problem_set, problem_set))

    def require_released(self, problem_set):
        self.require_problem_set(problem_set, checked=False)
        if not os.path.isdir(self.path("release", problem_set)):
            raise CourseError("%s was never released (run: nncourse release %s)"
                              % (problem_set, problem_set))
        self.require_checks(problem_set)

    def released(self):
        return [name for name in self.problem_sets() if os.path.isdir(self.path("release", name))]

    def notebook_names(self, problem_set):
        folder = self.path("source", problem_set)
        return sorted(name for name in os.listdir(folder) if name.endswith(".ipynb"))

    def graded_parts(self, problem_set, automatic_only=False):
        """The grade_ids of a problem set's graded cells, in notebook order (with
        ``automatic_only``, its test cells: not the answers graded by hand)."""
        parts = []
        for name in self.notebook_names(problem_set):
            notebook = nbformat.read(self.path("source", problem_set, name), as_version=4)
            for cell in notebook.cells:
                meta = cell.metadata.get("nbgrader", {})
                by_hand = meta.get("solution") or cell.cell_type != "code"
                if meta.get("grade") and not (automatic_only and by_hand):
                    parts.append(meta["grade_id"])
        return parts

    def misplaced(self, problem_set):
        """Students whose notebook lies in their folder itself (``submitted/x/ps1.ipynb``),
        not in the problem set's folder where nbgrader looks for it."""
        submitted = self.path("submitted")
        if not os.path.isdir(submitted):
            return []
        return sorted(name for name in os.listdir(submitted)
                      if os.path.isfile(os.path.join(submitted, name, problem_set + ".ipynb"))
                      and not os.path.isdir(os.path.join(submitted, name, problem_set)))

    def students(self, problem_set):
        """Students with a submission folder for this problem set."""
        submitted = self.path("submitted")
        if not os.path.isdir(submitted):
            return []
        # hidden folders are not students (nbgrader's own globs skip them too)
        return sorted(name for name in os.listdir(submitted) if not name.startswith(".")
                      and os.path.isdir(os.path.join(submitted, name, problem_set)))

    def nbgrader(self, *args, quiet=True):
        """Runs an nbgrader command in the course folder; raises CourseError on failure."""
        environment_on_path()
        result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=self.root,
                                text=True, capture_output=quiet)
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines() if quiet else []
            detail = ": " + _reason(lines) if lines else ""
            raise CourseError("nbgrader %s failed%s" % (args[0], detail))
        return result

    def release(self, problem_set):
        """Writes release/<ps>/ and solutions/<ps>/ from source/<ps>/ (and the gradebook)."""
        self.require_problem_set(problem_set)
        self.nbgrader("generate_assignment", problem_set, "--force", *self._db_option())
        # the release's notebooks carry their pictures (nncourse.release.EmbedImages)
        shutil.rmtree(self.path("release", problem_set, "images"), ignore_errors=True)
        self.nbgrader("generate_solution", problem_set, "--force", *self._db_option())

    def check_submissions(self, problem_set, students):
        """Splits students into those ready to grade and one ``(student, line)`` per problem
        found, and notes.

        A student id nbgrader cannot take, a folder holding what is not a regular file (or
        too much), a missing, misnamed or unreadable notebook keeps the student out of this
        run (nothing is recorded, so a corrected submission is graded by the next run); an
        extra notebook is reported and left out of grading.
        """
        expected = self.notebook_names(problem_set)
        problems, notes, ready = [], [], []
        for student in students:
            folder = self.path("submitted", student, problem_set)
            where = shown(os.path.relpath(folder, self.root))
            refused = student_id_problem(student)
            if refused:
                problems.append((student, "%s: not graded: the folder name '%s' cannot be a "
                                 "student id: %s (rename the folder)"
                                 % (where, shown(student), refused)))
                continue
            try:
                refused = submission_files_problem(folder)
                present = sorted(name for name in os.listdir(folder) if name.endswith(".ipynb"))
            except Exception as exc:  # whatever the folder holds: this student's line only
                refused = "cannot be read (%s)" % (getattr(exc, "strerror", None)
                                                   or type(exc).__name__)
            if refused:
                problems.append((student, "%s: not graded: %s" % (where, shown(refused))))
                continue
            extra = [name for name in present if name not in expected]
            bad = []
            for name in expected:
                notebook = os.path.join(folder, name)
                if not os.path.isfile(notebook):
                    hint = (" (found %s: rename it to %s)" % (shown(", ".join(extra)), name)
                            if extra else " (it scores 0 until it is submitted)")
                    bad.append((student, "%s: missing notebook %s%s" % (where, name, hint)))
                    continue
                problem = notebook_problem(notebook)
                if problem:
                    bad.append((student, "%s/%s: %s" % (where, name, problem)))
            if not bad:
                notes.extend("%s: extra notebook %s is not graded (expected only %s)"
                             % (where, shown(name), ", ".join(expected)) for name in extra)
                ready.append(student)
            problems.extend(bad)
        return ready, problems, notes
