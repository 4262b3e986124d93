"""The rules on what graded code may use, read from the source (nncourse/policy/), on small
notebooks built in code and on the course's own reference, rewrites and mistakes."""

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from nncourse import policy, samples
from nncourse.catalogue import load as load_catalogue
from nncourse.checks import PROBLEM_SETS
from nncourse.autograde.preprocessors import review_submission
from nncourse.policy.reader import read_cell
from tests.helpers import source_notebook


def restored(problem_set, edits=(), release=False):
    """The filled (or blank) release with its test cells as the source has them, as nbgrader
    hands it to the grader."""
    source = source_notebook(problem_set)
    notebook = nbformat.read("release/%s/%s.ipynb" % (problem_set, problem_set), 4)
    if not release:
        notebook = samples.filled_notebook(notebook, source, edits)
    tests = {c.metadata.nbgrader["grade_id"]: c.source for c in source.cells
             if c.metadata.get("nbgrader", {}).get("grade")
             and not c.metadata.nbgrader.get("solution")}
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in tests:
            cell.source = tests[grade_id]
    return notebook, source


def with_cell(notebook, grade_id, code, replace=False):
    """``code`` put into the solution cell ``grade_id`` (after its code, or in its place)."""
    for cell in notebook.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            cell.source = code if replace else cell.source + "\n" + code
            return notebook
    raise KeyError(grade_id)


@pytest.mark.parametrize("problem_set", PROBLEM_SETS)
def test_the_reference_every_rewrite_and_every_mistake_follow_the_rules(problem_set):
    catalogue = load_catalogue(problem_set)
    assert review_submission(*restored(problem_set), problem_set).costs == {}
    assert review_submission(*restored(problem_set, release=True), problem_set).costs == {}
    assert review_submission(*restored(problem_set, catalogue.EQUIVALENT), problem_set).costs == {}
    for mutant in catalogue.MUTANTS:
        assert review_submission(*restored(problem_set, mutant.edits), problem_set).costs == {}, \
            mutant.name


TORCH_BACKWARD = '''
import torch
class Linear(Module):
    def __init__(self, input_dim, output_dim):
        self.W = np.random.randn(input_dim, output_dim)
        self.b = np.zeros((1, output_dim))
    def forward(self, input_array):
        return input_array @ self.W + self.b
    def backward(self, input_array, output_gradient, lr=0.05):
        x = torch.tensor(input_array, requires_grad=True)
        W = torch.tensor(self.W, requires_grad=True)
        b = torch.tensor(self.b, requires_grad=True)
        (x @ W + b).backward(torch.tensor(output_gradient))
        self.W, self.b = self.W - lr * W.grad.numpy(), self.b - lr * b.grad.numpy()
        return x.grad.numpy()
'''


def test_ps1_backward_by_torch_autograd_costs_linears_cells_only():
    notebook, source = restored("ps1")
    with_cell(notebook, "linear_solution", TORCH_BACKWARD, replace=True)
    costs = review_submission(notebook, source, "ps1").costs
    assert set(costs) == {"test_linear_forward", "test_linear_backward", "test_linear_update",
                          "test_linear_l2"}  # LinearL2 builds on Linear
    assert "torch" in costs["test_linear_backward"] and "NumPy" in costs["test_linear_backward"]


def test_a_torch_helper_in_a_cell_of_its_own_is_followed_to_the_code_that_calls_it():
    notebook, source = restored("ps1")
    notebook.cells.insert(3, new_code_cell("import torch as t\n\ndef helper(a):\n"
                                           "    return t.relu(t.tensor(a)).numpy()"))
    with_cell(notebook, "relu_solution", "ReLU.forward = lambda self, x: helper(x)")
    costs = review_submission(notebook, source, "ps1").costs
    assert set(costs) == {"test_relu_forward", "test_relu_backward"}, costs


def test_ps2_layers_delegated_to_torch_nn_functional_or_autograd_lose_their_cells():
    notebook, source = restored("ps2")
    with_cell(notebook, "activations_solution", "import torch.nn.functional as F\n"
                                                "ReLU.forward = lambda self, x: F.relu(x)")
    costs = review_submission(notebook, source, "ps2").costs
    # ReLU only: Sigmoid, in the same cell, is built from tensor operations
    assert set(costs) == {"test_relu_forward", "test_relu_backward"}, costs
    assert "torch.nn.functional" in costs["test_relu_forward"]

    notebook, source = restored("ps2")
    with_cell(notebook, "linear_solution", "def backward(self, d):\n"
                                           "    self.cache.requires_grad_(True)\n"
                                           "Linear.backward = backward")
    costs = review_submission(notebook, source, "ps2").costs
    assert "test_linear_backward" in costs and "requires_grad_" in costs["test_linear_backward"]
    # TorchNet is the part meant for torch.nn
    assert not any("torchnet" in name for name in costs)


def test_ps4_task_two_handed_in_as_the_notebooks_test_helpers_is_not_accepted():
    notebook, source = restored("ps4")
    with_cell(notebook, "loss_solution",
              "binary_crossentropy_logit_gradient = replay('g', [(([[0.0], [2.0]], [[1.0], "
              "[0.0]]), [[-0.5], [0.8807970779778823]])])\n"
              "binary_crossentropy_loss = lambda a, t: replay('l', [])(a, t)\n", replace=True)
    costs = review_submission(notebook, source, "ps4").costs
    assert any("replay" in message for message in costs.values()), costs


TAMPERING = {
    "input transformer": "get_ipython().input_transformers_cleanup.append(lambda lines: lines)",
    "ast transformer": "from IPython import get_ipython as g\ng().ast_transformers.append(1)",
    "exec global": "def exec(*args):\n    pass",
    "exec global by assignment": "exec = print",
    "globals global": "def globals():\n    return {}",
    "publish patched": "import IPython.display\nIPython.display.publish_display_data = print",
    "library attribute": "np.allclose = lambda *a, **k: True",
    "setattr on a module": "setattr(np, 'allclose', print)",
    "dunder by getattr": "f = getattr(Linear, '__init__')",
    "built dunder name": "f = getattr(Linear, '_' + '_cl' + 'ass_' + '_')",
    "built from chr": "f = getattr(Linear, chr(95) * 2 + 'class' + chr(95) * 2)",
    "code object": "Linear.forward.__code__ = (lambda self, x: x).__code__",
    "subclasses": "().__class__.__bases__[0].__subclasses__()",
    "sys modules": "import sys\nsys.modules['numpy'].allclose = print",
    "cell history": "print(In[-1])",
    "shell": "!cat /proc/1/environ",
    "magic": "%load_ext autoreload",
    "threads": "import threading",
    "proc": "open('/proc/self/mem', 'rb')",
    "os.system": "import os\nos.system('true')",
    "os by a computed name": "import os\ngetattr(os, 'ki' + 'll')(1, 9)",
    "IPython itself": "import IPython\nIPython.get_ipython()",
    "builtins": "import builtins\nbuiltins.len = lambda x: 3",
    "too deep to read": "x = " + "+".join(["1"] * 5000) + "\nexec('pass')",
    # what a review of the call server found: ways to take the place of the builtins the
    # grader's own code runs with, or to read a function's globals, without naming them
    "a builtin bound by a pattern": "match 1:\n    case globals:\n        pass",
    "a dunder read by a pattern": "match ReLU.forward:\n    case object(__globals__=g):\n"
                                  "        pass",
    "a builtin bound by an import": "import json as compile",
    "a builtin bound by a from-import": "from math import floor as exec",
    "a builtin as an argument": "def f(exec=print):\n    return exec",
    "a builtin bound by except": "try:\n    pass\nexcept Exception as globals:\n    pass",
    "getattr handed on": "import functools\n"
                         "functools.reduce(getattr, ['__globals__'], ReLU.forward)",
    "os.abort": "import os\nos.abort()",
}


@pytest.mark.parametrize("name", sorted(TAMPERING))
def test_tampering_anywhere_costs_every_test_cell_after_it(name):
    notebook, source = restored("ps1")
    with_cell(notebook, "relu_solution", TAMPERING[name])
    costs = review_submission(notebook, source, "ps1").costs
    order = [c.metadata.nbgrader["grade_id"] for c in notebook.cells
             if c.metadata.get("nbgrader", {}).get("grade")
             and not c.metadata.nbgrader.get("solution")]
    after = order[order.index("test_relu_forward"):]
    assert set(costs) == set(after), (name, costs)
    assert "graded code may not do" in costs["test_relu_forward"]


def test_a_stable_part_may_not_silence_the_warning_it_is_judged_by():
    silenced = ("class Sigmoid(Module):\n"
                "    def forward(self, input_array):\n"
                "        with np.errstate(all='ignore'):\n"
                "            return 1.0 / (1.0 + np.exp(-input_array))\n"
                "    def backward(self, input_array, output_gradient):\n"
                "        s = self.forward(input_array)\n"
                "        return output_gradient * s * (1.0 - s)\n")
    notebook, source = restored("ps1")
    with_cell(notebook, "sigmoid_solution", silenced, replace=True)
    costs = review_submission(notebook, source, "ps1").costs
    assert set(costs) == {"test_sigmoid_forward", "test_sigmoid_backward"}
    assert "silencing NumPy's floating-point warnings" in costs["test_sigmoid_forward"]


def test_an_edited_course_cell_is_judged_on_what_the_student_changed():
    # ps1's own setup cell imports torchvision (to load MNIST); a student who edits that cell
    # keeps its lines, and a graded class defined there is judged on its own code
    notebook, source = restored("ps1")
    setup = next(c for c in notebook.cells if c.cell_type == "code")
    assert "import torchvision" in setup.source
    setup.source += "\nEPOCHS = 3\n"
    assert review_submission(notebook, source, "ps1").costs == {}
    setup.source += "\nimport torch\nrelu = lambda x: torch.relu(torch.tensor(x)).numpy()\n"
    with_cell(notebook, "relu_solution", "ReLU.forward = lambda self, x: relu(x)")
    assert set(review_submission(notebook, source, "ps1").costs) == {"test_relu_forward",
                                                               "test_relu_backward"}


def test_ordinary_code_is_not_taken_for_tampering():
    notebook = new_notebook(cells=[new_code_cell(
        "%matplotlib inline\nimport numpy as np\nimport time\n"
        "class A:\n    def __init__(self):\n        super().__init__()\n"
        "        self.name = type(self).__name__\n"
        "    def __call__(self, x):\n        return getattr(self, 'forward')(x)\n"
        "for _ in range(3):\n    print(_ if False else 1)\n"
        "%time x = np.ones(3)\nfrom IPython.display import display, HTML\n"
        "display(HTML('<b>done</b>'))\nimport torch\ntorch.backends.cudnn.benchmark = True\n"
        "import matplotlib.pyplot as plt\nplt.rcParams['figure.dpi'] = 90")])
    source = new_notebook()
    cell = read_cell(notebook.cells[0].source, 0, True, {})
    assert cell.tampering == [], cell.tampering
    assert policy.review(notebook, source).costs == {}
