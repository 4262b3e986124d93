"""The course folder: where nbgrader's folders are, and running nbgrader on them."""

import json
import os
import re
import subprocess
import sys
import tempfile

import nbformat

from .datasets import write_offline_datasets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


_GENERIC = ("There was an error", "Traceback", "Please see")


def _reason(lines):
    """The most telling line of nbgrader's log: its first specific error, else the last
    exception of a traceback, else the last line."""
    for line in lines:
        if "| ERROR]" in line:
            message = line.split("]", 1)[-1].strip()
            if not message.startswith(_GENERIC):
                return message
    exceptions = [line.strip() for line in lines
                  if re.match(r"^\s*[\w.]+(Error|Exception): ", line)]
    return exceptions[-1] if exceptions else lines[-1].strip()


class CourseError(Exception):
    """A problem with the instructor's input, reported as one line."""


class Course:
    def __init__(self, root=ROOT):
        self.root = os.path.abspath(root)

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    @property
    def db_url(self):
        return "sqlite:///" + self.path("gradebook.db")  # as nbgrader_config.py sets it

    @property
    def data_dir(self):
        """Offline datasets for grading, in torchvision's layout (written on first use)."""
        return self.path("data")

    def problem_sets(self):
        source = self.path("source")
        return sorted(name for name in os.listdir(source)
                      if os.path.isdir(os.path.join(source, name)) and not name.startswith("."))

    def require_problem_set(self, problem_set):
        if problem_set not in self.problem_sets():
            raise CourseError("unknown problem set %r (known: %s)"
                              % (problem_set, ", ".join(self.problem_sets())))

    def notebook_names(self, problem_set):
        folder = self.path("source", problem_set)
        return sorted(name for name in os.listdir(folder) if name.endswith(".ipynb"))

    def students(self, problem_set):
        """Students with a submission folder for this problem set."""
        submitted = self.path("submitted")
        if not os.path.isdir(submitted):
            return []
        return sorted(name for name in os.listdir(submitted)
                      if os.path.isdir(os.path.join(submitted, name, problem_set)))

    def nbgrader(self, *args, env=None, quiet=True):
        """Runs an nbgrader command in the course folder; raises CourseError on failure."""
        command = [sys.executable, "-m", "nbgrader", *args]
        env = dict(env or os.environ)
        # nbgrader runs the `alembic` program of its environment when it creates a gradebook
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        result = subprocess.run(command, cwd=self.root, env=env, text=True,
                                capture_output=quiet)
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines() if quiet else []
            detail = ": " + _reason(lines) if lines else ""
            raise CourseError("nbgrader %s failed%s" % (args[0], detail))
        return result

    def release(self, problem_set):
        """Writes release/<ps>/ and solutions/<ps>/ from source/<ps>/ (and the gradebook)."""
        self.require_problem_set(problem_set)
        self.nbgrader("generate_assignment", problem_set, "--force")
        self.nbgrader("generate_solution", problem_set, "--force")

    def register(self, problem_set):
        """Records the problem set's cells in the gradebook without touching release/."""
        with tempfile.TemporaryDirectory() as scratch:
            self.nbgrader("generate_assignment", problem_set, "--force",
                          "--CourseDirectory.release_directory=" + scratch)

    def check_submissions(self, problem_set, students):
        """One line per unreadable or missing notebook; those are left out of grading."""
        problems, ready = [], []
        for student in students:
            folder = self.path("submitted", student, problem_set)
            bad = []
            for name in self.notebook_names(problem_set):
                notebook = os.path.join(folder, name)
                relative = os.path.relpath(notebook, self.root)
                if not os.path.isfile(notebook):
                    bad.append("%s: missing notebook (it scores 0 until it is submitted)"
                               % relative)
                    continue
                try:
                    nbformat.read(notebook, as_version=4)
                except (json.JSONDecodeError, nbformat.reader.NotJSONError, UnicodeDecodeError,
                        nbformat.ValidationError, KeyError, AttributeError) as exc:
                    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    bad.append("%s: not a readable notebook (%s)" % (relative, reason[:120]))
            problems.extend(bad)
            if not bad:
                ready.append(student)
        return ready, problems

    def autograde(self, problem_set, student, force=False):
        """Grades one submission with nbgrader autograde; returns None, or what went wrong."""
        env = dict(os.environ, NNCOURSE_DATA=write_offline_datasets(self.data_dir))
        args = ["autograde", problem_set, "--student", student] + (["--force"] if force else [])
        try:
            self.nbgrader(*args, env=env)
        except CourseError as error:
            return str(error)
        return None
