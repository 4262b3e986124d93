"""Puts a master notebook in its stored form: no outputs, the course's kernel, and stable cell
ids (the grade_id of nbgrader cells, a hash of the source for the others), so regenerating a
notebook (from jupytext, say) changes only what was edited.

    .venv/bin/python scripts/normalize_notebook.py source/ps1/ps1.ipynb
"""

import hashlib
import sys

import nbformat

KERNEL = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def normalize(notebook):
    notebook.metadata = nbformat.from_dict({
        "kernelspec": KERNEL, "language_info": {"name": "python", "version": "3.11"}})
    for cell in notebook.cells:
        cell.metadata.pop("lines_to_next_cell", None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        if "nbgrader" in cell.metadata:
            cell.id = cell.metadata.nbgrader["grade_id"].replace("_", "-")
        else:
            cell.id = "c" + hashlib.sha1(cell.source.encode()).hexdigest()[:10]
    nbformat.validate(notebook)
    return notebook


if __name__ == "__main__":
    for path in sys.argv[1:]:
        nbformat.write(normalize(nbformat.read(path, as_version=4)), path)
