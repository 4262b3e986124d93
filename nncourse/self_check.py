"""The "check your work" cell that `nncourse release` puts at the end of every release
notebook (nncourse.release.AppendSelfCheck): a student runs it where there is no nbgrader
(Colab, a laptop) and gets the list of the visible tests that fail, each with its message.

It runs the saved notebook from the top in a fresh kernel, in the grader's fast mode, going
on past errors (a notebook run cell by cell stops at the first failure), and prints one line
per test cell. It needs only nbformat and nbclient, which every Jupyter and Colab has. Under
the grader it does nothing.
"""

import nbformat

GRADE_ID = "check_your_work"  # CELL leaves itself out of the run by this id

MARKDOWN = """## Check your work

Save the notebook, then run the cell below. It runs the whole notebook again from the top in
a fresh kernel, in the grader's fast mode (less data, fewer steps), and lists every test cell
with what it says; it goes on past a failing cell, as the grader does. Passing these tests
does not promise full marks: the grader runs further hidden tests of the same behaviours."""

CELL = '''def check_my_work(path=None, timeout=1800):
    """Runs the saved notebook at `path` (found by itself in Jupyter, VS Code and Colab) in a
    fresh kernel and prints how each test cell did."""
    import os
    if os.environ.get("NBGRADER_EXECUTION"):  # the grader runs the tests itself
        return
    import nbformat
    from nbclient import NotebookClient
    if path is None:
        path = os.environ.get("JPY_SESSION_NAME") or globals().get("__vsc_ipynb_file__")
    if path and os.path.isfile(path):
        notebook = nbformat.read(path, as_version=4)
    else:
        try:  # Colab keeps the notebook in the browser
            from google.colab import _message
        except ImportError:
            raise FileNotFoundError("say where the notebook is: check_my_work('psN.ipynb')")
        notebook = nbformat.from_dict(_message.blocking_request("get_ipynb")["ipynb"])
        path = "."
    notebook.cells = [cell for cell in notebook.cells
                      if cell.metadata.get("nbgrader", {}).get("grade_id") != "check_your_work"]
    folder = os.path.dirname(os.path.abspath(path)) if os.path.isfile(path) else os.getcwd()
    print("running the notebook in a fresh kernel (fast mode)...")
    NotebookClient(notebook, timeout=timeout, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": folder}}).execute(
        env=dict(os.environ, NBGRADER_EXECUTION="validate"))
    tests = failed = 0
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("grade") or meta.get("solution"):
            continue
        tests += 1
        errors = [output for output in cell.outputs if output.output_type == "error"]
        if errors:
            failed += 1
            message = (errors[0].evalue or "").splitlines()[:1]
            print("FAILED  %s: %s" % (meta["grade_id"], ": ".join([errors[0].ename] + message)))
        else:
            print("passed  %s" % meta["grade_id"])
    print("%d of %d test cells failed" % (failed, tests) if failed else "every visible test passed")


check_my_work()'''


def cells():
    """The two cells to append to a release notebook: the heading and the locked check."""
    heading = nbformat.v4.new_markdown_cell(MARKDOWN, id="check-your-work-heading")
    code = nbformat.v4.new_code_cell(CELL, id="check-your-work")
    code.metadata["nbgrader"] = {"grade": False, "grade_id": GRADE_ID, "locked": True,
                                 "schema_version": 3, "solution": False, "task": False}
    code.metadata["editable"] = code.metadata["deletable"] = False
    return [heading, code]
