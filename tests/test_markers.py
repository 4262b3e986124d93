"""The done markers and the fingerprints they hold (nncourse/autograde/markers.py), on folders
written here: what counts as graded, what is graded again, what the reports list."""

import json
import os

from nncourse.autograde import markers
from nncourse.autograde.records import Status
from nncourse.course import Course

IGNORE = [".ipynb_checkpoints", "*.pyc", "__pycache__", markers.MARKER]


def write_files(folder, files):
    for relative, text in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_digest_covers_names_and_contents_but_not_ignored_files(tmp_path):
    write_files(tmp_path / "a", {"ps1.ipynb": "{}", "data/x.csv": "1,2"})
    write_files(tmp_path / "b", {"ps1.ipynb": "{}", "data/x.csv": "1,2",
                                 ".ipynb_checkpoints/ps1-checkpoint.ipynb": "old",
                                 "data/__pycache__/m.pyc": "bytes", markers.MARKER: "{}"})
    assert sorted(markers.files_under(tmp_path / "b", IGNORE)) == ["data/x.csv", "ps1.ipynb"]
    digest = markers.folder_digest(tmp_path / "a", IGNORE)
    assert markers.folder_digest(tmp_path / "b", IGNORE) == digest
    write_files(tmp_path / "b", {"data/x.csv": "1,3"})  # a changed file
    assert markers.folder_digest(tmp_path / "b", IGNORE) != digest
    os.rename(tmp_path / "a" / "data" / "x.csv", tmp_path / "a" / "data" / "y.csv")  # renamed
    assert markers.folder_digest(tmp_path / "a", IGNORE) != digest


def test_only_a_graded_marker_of_the_same_files_means_done(tmp_path):
    for status, fingerprint, done in [(Status.GRADED, "f1", True), (Status.GRADED, "f0", False),
                                      (Status.INCOMPLETE, "f1", False),
                                      (Status.FAILED, "f1", False)]:
        markers.write(tmp_path, status, fingerprint)
        assert markers.describes(markers.read(tmp_path), "f1") is done, status
    assert not markers.describes(None, "f1")


def test_a_marker_is_written_whole_and_an_unreadable_one_is_no_marker(tmp_path):
    folder = tmp_path / "autograded" / "amy" / "ps1"
    assert markers.read(folder) is None
    markers.write(folder, Status.GRADED, "f1", reason="no feedback written: x", feedback=False)
    assert os.listdir(folder) == [markers.MARKER]  # made the folder; no scratch file is left
    marker = markers.read(folder)
    assert (marker["status"], marker["fingerprint"], marker["reason"], marker["feedback"]) == (
        "graded", "f1", "no feedback written: x", False)
    for broken in ("{", "[1, 2]", ""):
        (folder / markers.MARKER).write_text(broken)
        assert markers.read(folder) is None
    # a marker of an earlier version had no status: it was written only once graded
    (folder / markers.MARKER).write_text(json.dumps({"fingerprint": "f1"}))
    assert markers.describes(markers.read(folder), "f1")


def test_the_problems_are_the_failed_and_incomplete_submissions(tmp_path):
    course = Course(str(tmp_path))
    assert markers.problems(course, "ps1") == {}  # nothing graded yet
    for student, status in [("amy", Status.GRADED), ("bob", Status.FAILED),
                            ("cy", Status.INCOMPLETE)]:
        markers.write(course.path("autograded", student, "ps1"), status, "f", reason=student)
    markers.write(course.path("autograded", "dan", "ps2"), Status.FAILED, "f", reason="other")
    assert markers.problems(course, "ps1") == {"bob": ("failed", "bob"),
                                               "cy": ("incomplete", "cy")}
    # in the gradebook with no marker: the grader stopped while grading it (its rows are
    # nbgrader's first half, never a grade); with its marker, as the marker says
    os.makedirs(course.path("autograded", "eve", "ps1"))
    assert markers.problems(course, "ps1", recorded={"amy", "bob", "eve", "fay"}) == {
        "bob": ("failed", "bob"), "cy": ("incomplete", "cy"),
        "eve": ("failed", markers.UNFINISHED), "fay": ("failed", markers.UNFINISHED)}
