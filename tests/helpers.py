"""What the tests (and benchmarks) share: scratch courses, submissions, running the CLI and
reading back what grading wrote. Test modules import from here, never from each other."""

import html
import json
import os
import shutil
import subprocess
import sys

import nbformat
from nbgrader.api import Gradebook

from nncourse import report, samples
from nncourse.catalogue import diagnosis, ps1 as ps1_catalogue
from nncourse.course import COURSE_ID, ROOT, Course
from nncourse.autograde.markers import MARKER


def source_notebook(problem_set):
    return nbformat.read(os.path.join(ROOT, "source", problem_set, problem_set + ".ipynb"), 4)


# the solution's classes in a fresh namespace, as a kernel holds them (with a mistake's edits)
reference_namespace = diagnosis.namespace


def make_course(root):
    """A copy of the course folder (source, release, solutions, config) at ``root``."""
    root.mkdir(exist_ok=True)
    for name in ("source", "release", "solutions"):
        shutil.copytree(os.path.join(ROOT, name), root / name)
    shutil.copy(os.path.join(ROOT, "nbgrader_config.py"), root)
    return root


def environment():
    """The environment a user's shell gives the CLI: this venv's bin first, and not inside
    an nbgrader run."""
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    env.pop("NBGRADER_EXECUTION", None)
    return env


def run(command, cwd, **kwargs):
    return subprocess.run(command, cwd=cwd, env=environment(), text=True, capture_output=True,
                          **kwargs)


def grade(course, *args, **kwargs):
    """`nncourse grade ARGS` on ``course``, as an instructor types it."""
    return run(["nncourse", "--course", str(course), "grade", *args], cwd=course, **kwargs)


def submit(course, student, edits, problem_set="ps1"):
    """A student's submission: the release filled with the solution (with ``edits``), or the
    blank release for ``edits=None``."""
    samples.write_submission(course, student, problem_set, {
        problem_set + ".ipynb": samples.submission(course, problem_set, edits)})


def cell_scores(course, student, problem_set="ps1"):
    """({grade_id: points} of a graded notebook's test cells, read from their outputs;
    the notebook)."""
    notebook = nbformat.read(
        course / "autograded" / student / problem_set / (problem_set + ".ipynb"), 4)
    scores = {}
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and cell.cell_type == "code":
            failed = any(o.output_type == "error" or getattr(o, "name", "") == "stderr"
                         for o in cell.outputs)
            scores[meta["grade_id"]] = 0.0 if failed else float(meta["points"])
    return scores, notebook


def expected_points(problem_set="ps1"):
    """({grade_id: points} of the source's test cells, {check name: grade_id})."""
    points, by_check = {}, {}
    for cell in source_notebook(problem_set).cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and cell.cell_type == "code":
            points[meta["grade_id"]] = float(meta["points"])
            name = cell.source.split('run_check("')[1].split('")')[0]
            by_check[name] = meta["grade_id"]
    return points, by_check


def named_mistakes(course, student, problem_set="ps1"):
    """{grade_id: the Likely mistake lines of its failure} of a graded notebook, and the
    feedback HTML's text."""
    _, notebook = cell_scores(course, student, problem_set)
    found = {}
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                lines = [line for line in output.evalue.split("\n")
                         if line.startswith(diagnosis.PREFIX)]
                if lines:
                    found.setdefault(cell.metadata.nbgrader["grade_id"], []).extend(lines)
    feedback = course / "feedback" / student / problem_set / (problem_set + ".html")
    return found, html.unescape(feedback.read_text())


def expect_named(course, student, mutants, problem_set="ps1"):
    """Each of ``mutants`` is named in the cells its checks are in, and only there, in the
    graded notebook and in the feedback."""
    _, by_check = expected_points(problem_set)
    named, feedback = named_mistakes(course, student, problem_set)
    expected = {}
    for mutant in mutants:
        for check in mutant.breaks:
            expected.setdefault(by_check[check], set()).add(diagnosis.PREFIX + mutant.explanation)
    assert {cell: set(lines) for cell, lines in named.items()} == expected, student
    for lines in expected.values():
        assert all(line in feedback for line in lines)


def grades(course, problem_set="ps1"):
    """The grade table's rows by student, read from the course's gradebook."""
    return {row["student"]: row for row in report.grade_table(Course(str(course)).db_url,
                                                             problem_set)}


def scores(course, problem_set="ps1"):
    return {student: row["score"] for student, row in grades(course, problem_set).items()}


def gradebook_snapshot(course, db_url=None):
    """Every recorded grade and comment of ps1, by (student, notebook, cell)."""
    snapshot = {}
    with Gradebook(db_url or Course(str(course)).db_url, COURSE_ID) as gradebook:
        for submission in gradebook.assignment_submissions("ps1"):
            snapshot[(submission.student_id, "submitted at")] = str(submission.timestamp)
            for notebook in submission.notebooks:
                for grade_ in notebook.grades:
                    snapshot[(submission.student_id, notebook.name, grade_.name)] = (
                        grade_.auto_score, grade_.manual_score, grade_.needs_manual_grade)
                for comment in notebook.comments:
                    snapshot[(submission.student_id, notebook.name, comment.name, "comment")] = (
                        comment.auto_comment, comment.manual_comment)
    return snapshot


def hand_grade(course, student, grade_id, problem_set="ps1"):
    """(manual score, manual comment, needs grading by hand) of one cell of a submission."""
    with Gradebook(Course(str(course)).db_url, COURSE_ID) as gradebook:
        grade_ = gradebook.find_grade(grade_id, problem_set, problem_set, student)
        comment = gradebook.find_comment(grade_id, problem_set, problem_set, student)
        return grade_.manual_score, comment.manual_comment, grade_.needs_manual_grade


def markers(course, problem_set="ps1"):
    """The done markers of ``problem_set``, by student."""
    found = {}
    for student in os.listdir(course / "autograded"):
        path = course / "autograded" / student / problem_set / MARKER
        if path.exists():
            found[student] = json.loads(path.read_text())
    return found


# A small ps1 class: the reference, a blank, a rewrite and two realistic mistakes.
_MUTANTS = {m.name: m for m in ps1_catalogue.MUTANTS}
SUBMITTED = "2026-10-02 17:45:12.000000 UTC"
CLASS = {
    "full": [],
    "blank": None,
    "equivalent": list(ps1_catalogue.EQUIVALENT),
    "mutant-bias": _MUTANTS["bias gradient averaged instead of summed"].edits,
    "mutant-ce": _MUTANTS["cross-entropy gradient without the max shift"].edits,
}


def make_class(tmp_path_factory, name, students=CLASS):
    """A scratch course with ``students`` (names from CLASS) submitted for ps1."""
    course = make_course(tmp_path_factory.mktemp(name) / "course")
    for student in students:
        submit(course, student, CLASS[student])
    if "mutant-bias" in students:  # as nbgrader collect leaves it: the time of submission
        (course / "submitted" / "mutant-bias" / "ps1" / "timestamp.txt").write_text(SUBMITTED)
    return course


def expected_total(student):
    """The ps1 score a student of CLASS should get: every point but those of the cells
    their mistake breaks."""
    if CLASS[student] is None:
        return 0.0
    points, by_check = expected_points("ps1")
    mutant = next((m for m in ps1_catalogue.MUTANTS if m.edits == CLASS[student]), None)
    lost = {by_check[name] for name in mutant.breaks} if mutant else set()
    return sum(value for cell, value in points.items() if cell not in lost)


def processes():
    """{pid: (parent pid, command line)} of every live (not zombie) process on the machine."""
    out = subprocess.run(["ps", "-e", "-ww", "-o", "pid=,ppid=,stat=,args="],
                         capture_output=True, text=True).stdout
    table = {}
    for line in out.splitlines():
        pid, ppid, state, *args = line.split(None, 3)
        if not state.startswith("Z"):
            table[int(pid)] = (int(ppid), args[0] if args else "")
    return table
