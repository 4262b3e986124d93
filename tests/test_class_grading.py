"""Grading a whole class with `nncourse grade`: parallel, resumable, on Dask, with reports."""

import csv
import os
import shutil
import socket
import subprocess
import sys

import nbformat
import pytest

from nncourse import report
from nncourse.autograde.markers import MARKER
from nncourse.course import COURSE_ID, Course
from tests.helpers import (CLASS, cell_scores, expected_points, expected_total, grade,
                           gradebook_snapshot, hand_grade, make_class, make_course, markers, run,
                           scores, source_notebook, submit)

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def parallel(tmp_path_factory):
    course = make_class(tmp_path_factory, "parallel")
    result = grade(course, "ps1", "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert "with 2 workers" in result.stdout
    return course, gradebook_snapshot(course)


def test_every_student_gets_the_points_of_their_work(parallel):
    course, _ = parallel
    assert scores(course) == {student: expected_total(student) for student in CLASS}


def test_the_submission_time_is_recorded_as_nbgrader_records_it(parallel):
    _, snapshot = parallel
    assert snapshot[("mutant-bias", "submitted at")] == "2026-10-02 17:45:12"
    assert snapshot[("full", "submitted at")] == "None"


def test_sequential_and_parallel_grading_give_identical_gradebooks(parallel, tmp_path_factory):
    _, snapshot = parallel
    course = make_class(tmp_path_factory, "sequential")
    result = grade(course, "ps1", "--workers", "1")
    assert result.returncode == 0, result.stderr
    assert gradebook_snapshot(course) == snapshot


def test_grading_again_keeps_what_is_done_and_regrading_gives_identical_scores(parallel):
    course, snapshot = parallel
    before = markers(course)
    again = grade(course, "--all")
    assert again.returncode == 0, again.stderr
    assert "graded 0, already graded 5, failed 0" in again.stdout
    assert markers(course) == before and gradebook_snapshot(course) == snapshot
    forced = grade(course, "ps1", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "graded 5, already graded 0" in forced.stdout
    assert gradebook_snapshot(course) == snapshot


def test_a_changed_submission_is_graded_again(parallel, tmp_path):
    course, snapshot = parallel
    notebook = course / "submitted" / "blank" / "ps1" / "ps1.ipynb"
    original = notebook.read_text()
    try:
        shutil.copy(course / "submitted" / "full" / "ps1" / "ps1.ipynb", notebook)
        result = grade(course, "ps1")
        assert "graded 1, already graded 4" in result.stdout, result.stdout + result.stderr
        changed = gradebook_snapshot(course)
        assert {k: v for k, v in changed.items() if k[0] == "blank"} == {
            ("blank",) + k[1:]: v for k, v in snapshot.items() if k[0] == "full"}
    finally:
        notebook.write_text(original)
        assert grade(course, "ps1").returncode == 0
    assert gradebook_snapshot(course) == snapshot


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def dask_cluster(tmp_path):
    """A Dask scheduler and two workers, separate processes on 127.0.0.1."""
    port = _free_port()
    address = "tcp://127.0.0.1:%d" % port
    bin_dir = os.path.dirname(sys.executable)
    logs = open(tmp_path / "dask.log", "w")
    processes = [subprocess.Popen([os.path.join(bin_dir, "dask"), "scheduler", "--host",
                                   "127.0.0.1", "--port", str(port), "--no-dashboard"],
                                  stdout=logs, stderr=logs, cwd=tmp_path)]
    for _ in range(2):
        processes.append(subprocess.Popen(
            [os.path.join(bin_dir, "dask"), "worker", address, "--nthreads", "1",
             "--no-dashboard", "--local-directory", str(tmp_path)],
            stdout=logs, stderr=logs, cwd=tmp_path))
    from distributed import Client
    with Client(address, timeout="60s") as client:
        client.wait_for_workers(2, timeout=120)
    yield address
    for process in processes[::-1]:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
    logs.close()


def test_grading_through_a_dask_scheduler_and_two_workers(parallel, tmp_path_factory,
                                                          dask_cluster):
    _, snapshot = parallel
    students = ["full", "blank", "mutant-bias"]
    course = make_class(tmp_path_factory, "dask", students)
    result = grade(course, "ps1", "--scheduler", dask_cluster)
    assert result.returncode == 0, result.stderr
    assert "with 2 workers on " + dask_cluster in result.stdout
    assert gradebook_snapshot(course) == {k: v for k, v in snapshot.items() if k[0] in students}


def test_a_gradebook_given_by_url_receives_the_grades(tmp_path_factory):
    course = make_class(tmp_path_factory, "database", ["mutant-bias"])
    url = "sqlite:///" + str(course / "elsewhere.db")
    # as `.venv/bin/nncourse` is run without activating the environment: a new gradebook
    # needs the environment's `alembic` program all the same
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp")}
    result = subprocess.run([os.path.join(os.path.dirname(sys.executable), "nncourse"),
                             "--course", str(course), "grade", "ps1", "--db", url],
                            cwd=course, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert not (course / "gradebook.db").exists()
    rows = report.grade_table(url, "ps1")
    assert [(r["student"], r["score"]) for r in rows] == [
        ("mutant-bias", expected_total("mutant-bias"))]


def test_an_unreachable_scheduler_is_a_one_line_error(parallel):
    course, _ = parallel
    result = grade(course, "ps1", "--scheduler", "tcp://127.0.0.1:%d" % _free_port(),
                   "--force", timeout=120)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: cannot reach the Dask scheduler")


def test_each_bad_input_gets_one_line_and_the_rest_of_the_class_is_graded(tmp_path_factory):
    course = make_class(tmp_path_factory, "bad", ["full"])
    # an honest student whose code saves a file: it is graded as usual, and what the kernel
    # wrote reaches neither autograded/ nor the feedback (it is the student's code's output)
    submit(course, "writer", [("linear_solution", "return input_array @ self.W + self.b",
                               "with open('notes.txt', 'w') as out:\n"
                               "            out.write('saved')\n"
                               "        return input_array @ self.W + self.b")])
    release = course / "release" / "ps1" / "ps1.ipynb"
    for student in ("wrongname", "corrupt", "extra", "missing"):
        (course / "submitted" / student / "ps1").mkdir(parents=True)
    shutil.copy(course / "submitted" / "full" / "ps1" / "ps1.ipynb",
                course / "submitted" / "wrongname" / "ps1" / "PS1 final.ipynb")
    (course / "submitted" / "corrupt" / "ps1" / "ps1.ipynb").write_text('{"cells": [')
    shutil.copy(course / "submitted" / "full" / "ps1" / "ps1.ipynb",
                course / "submitted" / "extra" / "ps1" / "ps1.ipynb")
    shutil.copy(release, course / "submitted" / "extra" / "ps1" / "scratch.ipynb")
    shutil.copytree(course / "source" / "ps3", course / "source" / "ps8")  # never released
    os.rename(course / "source" / "ps8" / "ps3.ipynb", course / "source" / "ps8" / "ps8.ipynb")

    args = ["ps1", "ps8"] + [x for s in ("full", "writer", "wrongname", "corrupt", "extra",
                                          "missing", "zed") for x in ("--student", s)]
    result = grade(course, *args)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    # (a machine without delegated cgroups adds a note saying so)
    notes = [line for line in lines if line.startswith("note: ") and "cgroup" not in line]
    assert len(errors) == 5 and len(notes) == 1, result.stderr
    expected = {"ps8": "never released", "wrongname": "rename it to ps1.ipynb",
                "corrupt": "not a readable notebook", "missing": "missing notebook",
                "zed": "no submission"}
    for word, words in expected.items():
        assert any(word in line and words in line for line in errors), (word, errors)
    assert "extra" in notes[0] and "scratch.ipynb" in notes[0]
    assert scores(course) == {student: expected_total("full")
                              for student in ("full", "extra", "writer")}
    assert not (course / "autograded" / "writer" / "ps1" / "notes.txt").exists()
    assert not list((course / "feedback" / "writer").rglob("notes.txt"))


def test_a_notebook_outside_its_problem_set_folder_is_found_and_named(course):
    (course / "submitted" / "x").mkdir(parents=True)
    shutil.copy(course / "release" / "ps1" / "ps1.ipynb", course / "submitted" / "x")
    result = grade(course, "ps1")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == ("error: found submitted/x/ps1.ipynb: move it to "
                                     "submitted/x/ps1/ to have it graded"), result.stderr


def test_a_copied_or_split_test_cell_is_named_and_graded_from_its_first_copy(
        tmp_path_factory):
    import copy
    import nbformat
    course = make_class(tmp_path_factory, "copies", ["full"])
    full = nbformat.read(course / "submitted" / "full" / "ps1" / "ps1.ipynb", 4)
    first_test = next(i for i, cell in enumerate(full.cells)
                      if cell.metadata.get("nbgrader", {}).get("grade")
                      and not cell.metadata.nbgrader.get("solution"))
    grade_id = full.cells[first_test].metadata.nbgrader["grade_id"]
    copied = copy.deepcopy(full)
    copied.cells.insert(first_test + 1, copy.deepcopy(full.cells[first_test]))
    copied.cells[first_test + 1].id = "a-copy"  # as Jupyter gives a pasted cell
    split = copy.deepcopy(full)  # Jupyter's "split cell" gives both halves the metadata
    lines = split.cells[first_test].source.splitlines()
    second = copy.deepcopy(split.cells[first_test])
    split.cells[first_test].source = "\n".join(lines[:len(lines) // 2])
    second.source = "\n".join(lines[len(lines) // 2:])
    second.id = "second-half"
    split.cells.insert(first_test + 1, second)
    for student, notebook in (("copied", copied), ("split", split)):
        (course / "submitted" / student / "ps1").mkdir(parents=True)
        nbformat.write(notebook, course / "submitted" / student / "ps1" / "ps1.ipynb")
    result = grade(course, "ps1")
    assert result.returncode == 0, result.stderr
    for student in ("copied", "split"):
        assert ("note: ps1 %s: cell %s appears 2 times (a copied or split cell): graded from "
                "the first" % (student, grade_id)) in result.stderr
    assert "Traceback" not in result.stderr and "DuplicateCellId" not in result.stderr
    assert scores(course) == {student: expected_total("full")
                              for student in ("full", "copied", "split")}


def test_reports_csv_pass_rates_plot_and_feedback(parallel):
    course, snapshot = parallel
    import csv
    with open(course / "reports" / "grades.csv") as data:
        rows = list(csv.DictReader(data))
    assert list(rows[0]) == ["student", "ps1", "total"]
    assert {r["student"]: float(r["total"]) for r in rows} == {
        s: expected_total(s) for s in CLASS}

    parts = [cell.metadata.nbgrader["grade_id"] for cell in source_notebook("ps1").cells
             if cell.metadata.get("nbgrader", {}).get("grade")]
    with open(course / "reports" / "ps1-grades.csv") as data:
        header = next(csv.reader(data))
    assert header == ["student", *parts, "total", "max_score", "needs_manual_grading"]

    with open(course / "reports" / "ps1-pass-rates.csv") as data:
        rates = {r["part"]: r for r in csv.DictReader(data)}
    points, _ = expected_points()
    assert set(rates) == set(points)  # automatically graded parts only
    for part, row in rates.items():
        scores = [v[0] for k, v in snapshot.items() if len(k) == 3 and k[2] == part]
        assert int(row["passed"]) == sum(score == points[part] for score in scores)
        assert int(row["students"]) == len(CLASS)

    import matplotlib.image
    image = matplotlib.image.imread(course / "reports" / "ps1-distribution.png")
    assert image.shape[0] > 100 and image.shape[1] > 100

    for student in CLASS:
        html = (course / "feedback" / student / "ps1" / "ps1.html").read_text()
        for leak in ("HIDDEN TESTS", "run_check", "nncourse"):
            assert leak not in html, (student, leak)
    html = (course / "feedback" / "mutant-ce" / "ps1" / "ps1.html").read_text()
    assert "overflow encountered in exp" in html  # the failed hidden check's message
    assert not (course / "feedback" / "full" / "ps1" / MARKER).exists()


def test_without_a_sandbox_grading_refuses_unless_told(tmp_path_factory):
    course = make_class(tmp_path_factory, "nosandbox", ["full"])
    # a machine without bubblewrap: only the environment's own programs on the PATH
    env = dict(os.environ, PATH=os.path.dirname(sys.executable))
    env.pop("NBGRADER_EXECUTION", None)
    command = [os.path.join(os.path.dirname(sys.executable), "nncourse"), "--course", str(course),
               "grade", "ps1"]
    refused = subprocess.run(command, cwd=course, env=env, capture_output=True, text=True)
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "--no-sandbox" in refused.stderr
    assert "bubblewrap" in refused.stderr
    assert not (course / "autograded").exists()
    graded = subprocess.run(command + ["--no-sandbox"], cwd=course, env=env, capture_output=True,
                            text=True)
    assert graded.returncode == 0, graded.stderr
    points, _ = expected_points()
    assert cell_scores(course, "full")[0] == points


def test_commands_work_on_the_course_folder_they_are_run_in(tmp_path_factory, tmp_path):
    course = make_class(tmp_path_factory, "here", ["blank"])
    # no --course: the folder holding nbgrader_config.py, here or above, as nbgrader finds it
    result = run(["nncourse", "grade", "ps1"], cwd=course / "submitted")
    assert result.returncode == 0, result.stderr
    assert scores(course) == {"blank": 0.0}
    elsewhere = run(["nncourse", "grade", "ps1"], cwd=tmp_path)
    assert elsewhere.returncode == 2
    assert elsewhere.stderr.count("\n") == 1 and "no course here" in elsewhere.stderr
    assert "--course" in elsewhere.stderr


def test_a_student_missing_from_the_roster_is_noted(tmp_path_factory):
    course = make_class(tmp_path_factory, "roster", ["blank"])
    added = run(["nbgrader", "db", "student", "add", "ada", "--first-name", "Ada",
                 "--last-name", "Lovelace"], cwd=course)
    assert added.returncode == 0, added.stderr
    result = grade(course, "ps1")
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if "roster" in line]
    assert notes == ["note: blank is not in the gradebook's roster (graded all the same; add "
                     "them with `nbgrader db student add blank`)"]
    assert scores(course) == {"blank": 0.0}


def test_the_demo_releases_ps1_and_grades_a_sample_class(tmp_path_factory):
    course = make_course(tmp_path_factory.mktemp("demo") / "course")
    result = run(["nncourse", "--course", str(course), "demo"], cwd=course)
    assert result.returncode == 0, result.stderr
    assert "sample submissions in submitted/: ada, blank, carl, dora" in result.stdout
    full = expected_total("full")
    # carl averages the bias gradient: the mistake of mutant-bias
    assert scores(course) == {"ada": full, "blank": 0.0, "carl": expected_total("mutant-bias"),
                              "dora": full}


def test_the_mistakes_report_counts_the_students_who_made_each_catalogued_mistake(parallel):
    course, _ = parallel
    with open(course / "reports" / "ps1-mistakes.csv") as data:
        rows = list(csv.DictReader(data))
    assert [(row["mistake"], row["students"], row["cells"]) for row in rows] == [
        ("bias gradient averaged instead of summed", "1", "test_linear_update"),
        ("cross-entropy gradient without the max shift", "1", "test_cross_entropy_backward")]
    assert all(row["explanation"] for row in rows)
    # a run that grades nothing new still counts them, from the markers
    result = grade(course, "ps1")
    assert "graded 0, already graded 5" in result.stdout, result.stdout
    summary = result.stdout.split("mistakes most students made:\n")[1].splitlines()
    assert [line.split()[0] for line in summary[:2]] == ["bias", "cross-entropy"]


def _grade_by_hand(course, student, grade_id, score, comment):
    """What a TA's Formgrader does: a score and a comment entered, the answer resolved."""
    from nbgrader.api import Gradebook
    with Gradebook(Course(str(course)).db_url, COURSE_ID) as gradebook:
        grade_ = gradebook.find_grade(grade_id, "ps1", "ps1", student)
        grade_.manual_score, grade_.needs_manual_grade = score, False
        gradebook.find_comment(grade_id, "ps1", "ps1", student).manual_comment = comment
        gradebook.db.commit()


def test_grading_by_hand_reaches_the_feedback_and_regrading_keeps_it(tmp_path_factory):
    course = make_class(tmp_path_factory, "by-hand", students=["full", "mutant-bias"])
    first = grade(course, "ps1")
    assert first.returncode == 0, first.stderr
    assert "5 answers to grade" in first.stdout
    automatic = scores(course)["full"]
    feedback = course / "feedback" / "full" / "ps1" / "ps1.html"
    _grade_by_hand(course, "full", "q1_answer", 1.5, "Numbers right; say why the sigmoid is slow.")

    again = grade(course, "ps1")  # nothing to grade: the feedback follows the gradebook
    assert again.returncode == 0, again.stderr
    assert "graded 0, already graded 2" in again.stdout
    assert "feedback written again for 1 already graded submission " in again.stdout
    assert "4 answers to grade" in again.stdout
    assert "say why the sigmoid is slow" in feedback.read_text()
    with open(course / "reports" / "grades.csv") as table:
        assert {row["student"]: float(row["ps1"]) for row in csv.DictReader(table)}["full"] \
            == automatic + 1.5
    untouched = (course / "feedback" / "mutant-bias" / "ps1" / "ps1.html").stat().st_mtime_ns
    assert grade(course, "ps1").returncode == 0
    assert (course / "feedback" / "mutant-bias" / "ps1" / "ps1.html").stat().st_mtime_ns \
        == untouched  # written only when its grading by hand changed

    forced = grade(course, "ps1", "--force")  # the answer did not change: it stays graded
    assert forced.returncode == 0, forced.stderr
    assert not hand_grade(course, "full", "q1_answer")[2]
    assert scores(course)["full"] == automatic + 1.5
    assert "say why the sigmoid is slow" in feedback.read_text()

    path = course / "submitted" / "full" / "ps1" / "ps1.ipynb"
    notebook = nbformat.read(path, 4)
    answer = next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id")
                  == "q1_answer")
    answer.source += "\n\nEdited after grading."
    nbformat.write(notebook, path)
    changed = grade(course, "ps1")  # a changed answer is graded again by hand
    assert changed.returncode == 0, changed.stderr
    assert hand_grade(course, "full", "q1_answer")[2]
