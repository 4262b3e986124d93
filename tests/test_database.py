"""The gradebook in a real PostgreSQL server, started by the test (initdb and pg_ctl, on a Unix
socket in a temporary folder) and stopped afterwards; and the one-line errors of a gradebook
URL that cannot work."""

import glob
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from tests.helpers import expected_total, grade, gradebook_snapshot, make_class

pytestmark = [pytest.mark.slow]

STUDENTS = ["full", "blank", "mutant-bias", "mutant-ce"]


def _program(name):
    """A PostgreSQL server program: on the PATH, or where Debian puts them."""
    found = shutil.which(name) or next(iter(sorted(
        glob.glob("/usr/lib/postgresql/*/bin/" + name), reverse=True)), None)
    if found is None:
        pytest.fail("PostgreSQL's %s is not installed: run scripts/system_packages.sh (it "
                    "installs the postgresql package)" % name)
    return found


class Server:
    """A throwaway PostgreSQL server owned by this test run."""

    def __init__(self, folder):
        self.folder = str(folder)
        self.data, self.sockets = os.path.join(self.folder, "data"), os.path.join(self.folder, "run")
        os.makedirs(self.sockets)
        # the server refuses to run as root: then it runs as the system's postgres user
        self.prefix = []
        if os.getuid() == 0:
            shutil.chown(self.folder, "postgres")
            shutil.chown(self.sockets, "postgres")
            self.prefix = ["runuser", "-u", "postgres", "--"]
        self._run(_program("initdb"), "-D", self.data, "-A", "trust", "-U", "grader",
                  "--no-sync", "-E", "UTF8")
        self._run(_program("pg_ctl"), "-D", self.data, "-l", os.path.join(self.folder, "log"),
                  "-w", "-o", "-k %s -c listen_addresses='' -F" % self.sockets, "start")

    def _run(self, *command):
        result = subprocess.run(self.prefix + list(command), capture_output=True, text=True,
                                cwd=self.folder)
        assert result.returncode == 0, result.stdout + result.stderr

    def url(self, database):
        return "postgresql://grader@/%s?host=%s" % (database, self.sockets)

    def create(self, database):
        import psycopg
        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute('CREATE DATABASE "%s"' % database)
        return self.url(database)

    def stop(self):
        self._run(_program("pg_ctl"), "-D", self.data, "-m", "fast", "stop")


@pytest.fixture(scope="module")
def postgres():
    # a folder of its own in /tmp: pytest's are private to the user running the tests, who
    # may be root, and the server then runs as another user
    folder = tempfile.mkdtemp(prefix="nncourse-postgres-")
    try:
        server = Server(folder)
        yield server
        server.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_class_graded_into_postgresql_gets_the_grades_it_gets_in_sqlite(
        postgres, tmp_path_factory):
    in_sqlite = make_class(tmp_path_factory, "sqlite", STUDENTS)
    assert grade(in_sqlite, "ps1").returncode == 0
    in_postgres = make_class(tmp_path_factory, "postgres", STUDENTS)
    url = postgres.create("one_class")
    result = grade(in_postgres, "ps1", "--db", url)
    assert result.returncode == 0, result.stderr
    assert not (in_postgres / "gradebook.db").exists()
    assert gradebook_snapshot(in_postgres, url) == gradebook_snapshot(in_sqlite)


def test_two_graders_on_two_machines_share_one_postgresql_gradebook(postgres, tmp_path_factory):
    url = postgres.create("two_graders")
    halves = [make_class(tmp_path_factory, "machine-a", STUDENTS[:2]),
              make_class(tmp_path_factory, "machine-b", STUDENTS[2:])]
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
    running = [subprocess.Popen(["nncourse", "--course", str(course), "grade", "ps1", "--db",
                                 url, "--workers", "1"], cwd=course, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for course in halves]
    for process in running:
        out, err = process.communicate(timeout=900)
        assert process.returncode == 0, err
    from nncourse import report
    rows = report.grade_table(url, "ps1")
    assert {row["student"]: row["score"] for row in rows} == {
        student: expected_total(student) for student in STUDENTS}


def test_a_gradebook_url_that_cannot_work_is_one_line(postgres, tmp_path_factory):
    course = make_class(tmp_path_factory, "bad-url", ["blank"])
    cases = {
        "postgresql+psycopg2://grader@/x": "needs the Python package psycopg2",
        "mysql://grader@localhost/x": "needs the Python package",
        "nosuchdb://grader@localhost/x": "unknown kind of database",
        "not a url": "not a database URL",
        postgres.url("no_such_database"): "cannot reach the gradebook",
        "postgresql://grader:secret@/x?host=" + str(course / "no-server"):
            "cannot reach the gradebook",
    }
    for url, words in cases.items():
        result = grade(course, "ps1", "--db", url, timeout=120)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 2, (url, result.stderr)
        assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], (
            url, result.stderr)
        assert "secret" not in lines[0]
    assert not (course / "autograded").exists()
