"""Building submissions from the source notebook: the reference solution, the blank release,
and variants with a few lines changed (mutants, equivalent solutions), for the demo and the
tests. A variant is a list of edits ``(cell grade_id, old text, new text)`` applied to the
reference solution's cells, exactly as a student would have typed them.
"""

import copy
import os
import shutil

import nbformat
from nbgrader.preprocessors import ClearSolutions

# nbgrader's own solution markers (the course keeps ClearSolutions' default delimiters)
_DELIMITERS = (ClearSolutions().begin_solution_delimeter, ClearSolutions().end_solution_delimeter)


def solution_code(source_cell_text):
    """A source cell's text without the lines that mark its solution region."""
    return "".join(line for line in source_cell_text.splitlines(keepends=True)
                   if not any(delimiter in line for delimiter in _DELIMITERS))


def filled_notebook(release, source, edits=()):
    """The release notebook with every solution cell answered as in the source, then edited."""
    answers = {}
    for cell in source.cells:
        nbgrader = cell.metadata.get("nbgrader", {})
        if nbgrader.get("solution"):
            answers[nbgrader["grade_id"]] = solution_code(cell.source)
    for cell_id, old, new in edits:
        if cell_id not in answers:
            raise KeyError("no solution cell %r" % cell_id)
        if answers[cell_id].count(old) != 1:
            raise ValueError("edit of %s: the text to replace must occur exactly once:\n%s"
                             % (cell_id, old))
        answers[cell_id] = answers[cell_id].replace(old, new)
    filled = copy.deepcopy(release)
    for cell in filled.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id]
    return filled


def submission(course_root, problem_set, edits=(), name=None):
    """A student's notebook ``name`` (the problem set's own by default) for a course: its
    release filled with the source's solution, then ``edits``; the blank release for
    ``edits=None``."""
    name = name or problem_set + ".ipynb"
    release = nbformat.read(os.path.join(course_root, "release", problem_set, name), 4)
    if edits is None:
        return release
    source = nbformat.read(os.path.join(course_root, "source", problem_set, name), 4)
    return filled_notebook(release, source, edits)


def write_submission(course_root, student, problem_set, notebooks):
    """Hands in ``{notebook name: notebook}`` as ``submitted/<student>/<problem_set>/``, as
    nbgrader collect leaves it (what was there before is replaced). Returns the folder."""
    folder = os.path.join(course_root, "submitted", student, problem_set)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    for name, notebook in notebooks.items():
        nbformat.write(notebook, os.path.join(folder, name))
    return folder
