"""What a student hands in reaches no further than their own grade: malformed notebooks,
strange folder names, links and floods of files beside the notebook are each that student's
one `error:` line; the rest of the class is graded and every report is written, safe to open
in a terminal, a spreadsheet or a browser."""

import csv
import json
import os
import subprocess

import nbformat
import pytest

from nncourse import report
from nncourse.course import (MAX_SUBMISSION_FILES, notebook_problem, shown,
                             student_id_problem, submission_files_problem)
from tests.helpers import cell_scores, expected_points, grades, make_course, run, submit

ESC = "\x1b"

# 60-byte notebooks that once stopped a whole class's grading (nbformat raised, or only
# logged that the notebook breaks its schema)
MALFORMED = {
    "cells-a-number": '{"cells": 5, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}',
    "cells-of-numbers": '{"cells": [5], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}',
    "nbformat-text": '{"cells": [], "metadata": {}, "nbformat": "4", "nbformat_minor": 5}',
    "minor-text": '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": "x"}',
    "nested-deep": '{"cells": %s, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
                   % ("[" * 100_000 + "]" * 100_000),
    "not-json": '{"cells": [',
}


def _notebook_with_grade_id(grade_id):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    notebook.cells[0].metadata["nbgrader"] = {"grade_id": grade_id, "grade": False,
                                              "solution": True, "locked": False}
    return nbformat.writes(notebook)


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_malformed_notebook_is_refused_with_a_reason(tmp_path, name):
    path = tmp_path / "ps1.ipynb"
    path.write_text(MALFORMED[name])
    problem = notebook_problem(str(path))
    assert problem and problem.startswith("not a") and "\n" not in problem


def test_a_cell_id_that_could_drive_a_terminal_is_refused(tmp_path):
    path = tmp_path / "ps1.ipynb"
    path.write_text(_notebook_with_grade_id(ESC + "]52;c;cm0gLXJmIH4=" + "\a"))
    assert "grade_id" in notebook_problem(str(path))
    path.write_text(_notebook_with_grade_id("linear_solution"))
    assert notebook_problem(str(path)) is None


OTHER = "characters other than letters"


@pytest.mark.parametrize("name, words", [
    ("alice ", "whitespace"), (" alice", "whitespace"),
    ("caf\udce9", "not valid UTF-8"),
    ("eve\x1b]0;owned\a", OTHER), ("eve\u200bx", OTHER),
    ("<img src=x onerror=alert(1)>", OTHER), ('=HYPERLINK("http://e.org","x")', OTHER),
    # nbgrader globs paths made from ids: "*" would prepare (and overwrite) every student's
    ("*", OTHER), ("control*", OTHER), ("a?c", OTHER), ("[ab]", OTHER),
])
def test_a_folder_name_that_cannot_be_a_student_id_is_refused_by_name(name, words):
    assert words in student_id_problem(name)


@pytest.mark.parametrize("name", ["alice", "ada.lovelace", "mary ann", "o_brien-2", "+1+1",
                                  "zoë", "学生"])
def test_ordinary_student_ids_are_taken(name):
    assert student_id_problem(name) is None


def test_only_regular_files_in_bounds_are_graded(tmp_path):
    folder = tmp_path / "submitted" / "amy" / "ps1"
    folder.mkdir(parents=True)
    (folder / "ps1.ipynb").write_text("{}")
    (folder / "data").mkdir()
    (folder / "data" / "x.npy").write_bytes(b"\0" * 10)
    assert submission_files_problem(str(folder)) is None
    os.symlink("/dev/zero", folder / "data.bin")
    assert "data.bin is a symbolic link" in submission_files_problem(str(folder))
    os.remove(folder / "data.bin")
    os.mkfifo(folder / "pipe")
    assert "not a regular file" in submission_files_problem(str(folder))
    os.remove(folder / "pipe")
    for index in range(MAX_SUBMISSION_FILES + 1):
        (folder / "data" / str(index)).touch()
    assert "more than" in submission_files_problem(str(folder))


def test_names_depth_hard_links_and_unreadable_files_are_refused(tmp_path):
    folder = tmp_path / "submitted" / "amy" / "ps1"
    folder.mkdir(parents=True)
    (folder / "ps1.ipynb").write_text("{}")
    bad = os.path.join(os.fsencode(folder), b"data-\xff.bin")
    open(bad, "wb").close()
    assert "not valid UTF-8" in submission_files_problem(str(folder))
    os.remove(bad)
    (folder / "x\x1b[2Jy").touch()
    assert "printable" in submission_files_problem(str(folder))
    os.remove(folder / "x\x1b[2Jy")
    _make_deep(folder)
    assert "nested more than" in submission_files_problem(str(folder))
    _remove_deep(folder / "d")
    os.link(folder / "ps1.ipynb", tmp_path / "elsewhere")  # a file of the machine, by another name
    assert "hard link" in submission_files_problem(str(folder))
    os.remove(tmp_path / "elsewhere")
    assert submission_files_problem(str(folder)) is None
    if os.getuid() != 0:  # root reads any file
        os.chmod(folder / "ps1.ipynb", 0)
        assert "cannot be read" in submission_files_problem(str(folder))


def _make_deep(folder):
    """Folders 1200 deep in ``folder``, as a student's archive can hold (os.walk, and
    os.makedirs too, recurse past Python's limit)."""
    subprocess.run(["mkdir", "-p", os.path.join(folder, *["d"] * 1200)], check=True)


def _remove_deep(path):
    """rm -r: shutil.rmtree (and so pytest's own cleanup) recurses past Python's limit."""
    subprocess.run(["rm", "-rf", str(path)], check=True)


def test_a_cells_nbgrader_metadata_must_be_a_mapping(tmp_path):
    path = tmp_path / "ps1.ipynb"
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    for value in ([], None, "grade"):
        notebook.cells[0].metadata["nbgrader"] = value
        path.write_text(json.dumps(notebook))
        assert "not a mapping" in notebook_problem(str(path)), value


def test_a_linked_submission_folder_is_refused(tmp_path):
    (tmp_path / "submitted" / "amy" / "ps1").mkdir(parents=True)
    os.symlink(tmp_path / "submitted" / "amy", tmp_path / "submitted" / "mallory")
    assert "symbolic link" in submission_files_problem(
        str(tmp_path / "submitted" / "mallory" / "ps1"))


def test_text_from_a_submission_is_printed_without_control_characters():
    assert shown("ok " + ESC + "]0;title\a\r\nnext\u202e") == \
        "ok \\x1b]0;title\\x07\\r\\nnext\\u202e"
    assert shown("caf\udce9") == "caf\\xe9" and shown("zoë 学生") == "zoë 学生"


def test_a_csv_cell_a_submission_chose_starts_no_formula(tmp_path):
    rows = [{"student": name, "score": -1.5} for name in
            ("=1+1", "+1+1", "-1", "@SUM(A1)", "\tx", "\rx", "alice")]
    path = tmp_path / "reports" / "t.csv"
    report._write(str(path), ["student", "score"], rows)
    with open(path, encoding="utf-8", newline="") as data:
        read = list(csv.DictReader(data))
    assert [row["student"] for row in read] == ["'=1+1", "'+1+1", "'-1", "'@SUM(A1)", "'\tx",
                                                "'\rx", "alice"]
    assert {row["score"] for row in read} == {"-1.5"}  # numbers stay numbers
    assert os.listdir(path.parent) == ["t.csv"]  # written whole: no partial file left


# Through `nncourse grade`: an honest student and a blank one among submissions that each
# once stopped the class, changed a classmate's files or reached the instructor's terminal.
HONEST = {"alice": [], "+1+1": None}  # "+1+1": a formula to a spreadsheet, a fine id


def _hostile_class(course):
    """Writes the hostile submissions; returns {folder name: words its error line holds}."""
    submitted = course / "submitted"
    expected = {}
    for name, text in MALFORMED.items():
        (submitted / name / "ps1").mkdir(parents=True)
        (submitted / name / "ps1" / "ps1.ipynb").write_text(text)
        expected[name] = "not a"
    blank = (course / "release" / "ps1" / "ps1.ipynb").read_text()
    for name, words in [("alice ", "whitespace"), ("<img src=x onerror=alert(1)>", OTHER),
                        ('=HYPERLINK("e.org","x")', OTHER), ("eve" + ESC + "]0;owned\a", OTHER),
                        ("*", OTHER), ("alice*", OTHER)]:
        (submitted / name / "ps1").mkdir(parents=True)
        (submitted / name / "ps1" / "ps1.ipynb").write_text(blank)
        expected[name] = words
    os.makedirs(os.path.join(os.fsencode(submitted), b"caf\xe9", b"ps1"))
    with open(os.path.join(os.fsencode(submitted), b"caf\xe9", b"ps1", b"ps1.ipynb"), "w") as out:
        out.write(blank)
    expected[os.fsdecode(b"caf\xe9")] = "not valid UTF-8"
    for name, target in [("zero", "/dev/zero"),
                         ("source-link", str(course / "source" / "ps1" / "ps1.ipynb"))]:
        (submitted / name / "ps1").mkdir(parents=True)
        (submitted / name / "ps1" / "ps1.ipynb").write_text(blank)
        os.symlink(target, submitted / name / "ps1" / "data.bin")
        expected[name] = "symbolic link"
    (submitted / "many" / "ps1" / "files").mkdir(parents=True)
    (submitted / "many" / "ps1" / "ps1.ipynb").write_text(blank)
    for index in range(20_000):
        (submitted / "many" / "ps1" / "files" / str(index)).touch()
    expected["many"] = "more than"
    # the second review's: a file name that is not text, folders 1200 deep, a hard link to
    # the master notebook, a cell's nbgrader metadata that is a list
    (submitted / "badname" / "ps1").mkdir(parents=True)
    (submitted / "badname" / "ps1" / "ps1.ipynb").write_text(blank)
    open(os.path.join(os.fsencode(submitted / "badname" / "ps1"), b"\xff.bin"), "wb").close()
    expected["badname"] = "not valid UTF-8"
    deep = submitted / "deep" / "ps1"
    deep.mkdir(parents=True)
    (deep / "ps1.ipynb").write_text(blank)
    _make_deep(deep)
    expected["deep"] = "nested more than"
    (submitted / "hardlink" / "ps1").mkdir(parents=True)
    (submitted / "hardlink" / "ps1" / "ps1.ipynb").write_text(blank)
    os.link(course / "source" / "ps1" / "ps1.ipynb", submitted / "hardlink" / "ps1" / "m.ipynb")
    expected["hardlink"] = "hard link"
    (submitted / "meta-list" / "ps1").mkdir(parents=True)
    listed = json.loads(blank)
    listed["cells"][0]["metadata"]["nbgrader"] = ["grade"]
    (submitted / "meta-list" / "ps1" / "ps1.ipynb").write_text(json.dumps(listed))
    expected["meta-list"] = "not a mapping"
    (submitted / "escapes" / "ps1").mkdir(parents=True)
    (submitted / "escapes" / "ps1" / "ps1.ipynb").write_text(
        _notebook_with_grade_id("linear" + ESC + "]52;c;cm0gLXJmIH4=\a graded 2, failed 0"))
    expected["escapes"] = "grade_id"
    return expected


@pytest.fixture(scope="module")
def hostile_files(tmp_path_factory):
    course = make_course(tmp_path_factory.mktemp("submissions") / "course")
    for student, edits in HONEST.items():
        submit(course, student, edits)
    expected = _hostile_class(course)
    try:
        result = run(["nncourse", "--course", str(course), "grade", "ps1", "--workers", "2"],
                     cwd=course, timeout=1200)
        yield course, result, expected
    finally:
        _remove_deep(course / "submitted" / "deep")


@pytest.mark.slow
def test_the_honest_students_are_graded_and_each_hostile_folder_is_one_line(hostile_files):
    course, result, expected = hostile_files
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    # from the gradebook and from her graded notebook (which "alice*" must not have touched)
    assert float(grades(course)["alice"]["score"]) == sum(expected_points()[0].values())
    scores, notebook = cell_scores(course, "alice")
    assert scores == expected_points()[0]
    assert any(cell.get("execution_count") for cell in notebook.cells)  # the graded run
    assert float(grades(course)["+1+1"]["score"]) == 0.0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == len(expected), result.stderr
    for name, words in expected.items():
        lines = [line for line in errors if "submitted/%s/ps1" % shown(name) in line]
        assert len(lines) == 1 and words in lines[0], (name, errors)
    assert (course / "feedback" / "alice" / "ps1" / "ps1.html").is_file()
    assert sorted(os.listdir(course / "feedback")) == sorted(HONEST)


@pytest.mark.slow
def test_nothing_a_submission_holds_reaches_the_terminal_as_control_characters(hostile_files):
    _, result, _ = hostile_files
    for text in (result.stdout, result.stderr):
        assert not [char for char in text if char in ESC + "\a\r\x9b"], text


@pytest.mark.slow
def test_the_reports_are_whole_utf8_and_start_no_formula(hostile_files):
    course, _, expected = hostile_files
    reports = course / "reports"
    assert not [name for name in os.listdir(reports) if name.endswith(".partial")]
    tables = {}
    for name in ("grades.csv", "ps1-grades.csv", "grading-problems.csv"):
        with open(reports / name, encoding="utf-8", newline="") as data:  # strict UTF-8
            tables[name] = list(csv.DictReader(data))
    for rows in tables.values():
        for row in rows:
            assert not any(value.startswith(("=", "+", "-", "@", "\t", "\r"))
                           for value in row.values() if value), row
    assert {row["student"] for row in tables["grades.csv"]} == {"alice", "'+1+1"}
    listed = {row["student"] for row in tables["grading-problems.csv"]}
    assert listed == {report.csv_cell(shown(name)) for name in expected}


def test_reading_a_submissions_code_has_a_time_limit(monkeypatch):
    from types import SimpleNamespace
    from nncourse.autograde import coordinator
    from nncourse.autograde.records import GradingError
    from nncourse.course import ROOT, Course
    notebook = nbformat.read(os.path.join(ROOT, "release", "ps1", "ps1.ipynb"), 4)
    grader = SimpleNamespace(course=Course(ROOT), _source_notebooks={})
    files = {"ps1.ipynb": nbformat.writes(notebook).encode()}
    assert coordinator.ClassGrader._review(grader, "ps1", ["ps1.ipynb"], files)["ps1.ipynb"]
    # IPython's transforms take time quadratic in a cell's magics
    for cell in notebook.cells:
        if cell.metadata.get("nbgrader", {}).get("solution") and cell.cell_type == "code":
            cell.source = "\n".join(["%time x = 1"] * 499)
    files = {"ps1.ipynb": nbformat.writes(notebook).encode()}
    monkeypatch.setattr(coordinator, "REVIEW_SECONDS", 1)
    with pytest.raises(GradingError, match="took more than 1 s"):
        coordinator.ClassGrader._review(grader, "ps1", ["ps1.ipynb"], files)


def test_a_notebook_of_too_many_cells_is_refused(tmp_path):
    from nncourse.course import MAX_NOTEBOOK_CELLS
    path = tmp_path / "ps1.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("print(1)") for _ in range(MAX_NOTEBOOK_CELLS + 1)]), path)
    assert "cells" in notebook_problem(str(path))
