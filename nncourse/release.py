"""What `nncourse release` adds to nbgrader's generate_assignment (nbgrader_config.py puts
these preprocessors in its list):

- :class:`NameStubs`: a blank stub says which part it is and where the task is described, so
  that every visible test run on it fails with a message that names the task (stock nbgrader
  leaves a bare ``raise NotImplementedError()``);
- :class:`EmbedImages`: the pictures a markdown cell shows from ``images/`` become cell
  attachments, so that a lone ``.ipynb`` (uploaded to Colab, say) is complete;
- :class:`AppendSelfCheck`: a last cell that runs the visible tests where there is no
  nbgrader (:mod:`nncourse.self_check`).
"""

import ast
import base64
import mimetypes
import os
import re

from nbgrader.preprocessors import NbGraderPreprocessor

from . import self_check

BARE_STUB = "raise NotImplementedError()"
# ![alt](images/name.png), as the source notebooks show their figures
_IMAGE_LINK = re.compile(r"!\[([^\]]*)\]\((images/[^)\s]+)\)")


def _heading(cell):
    """The text of the last heading in a markdown cell, or None."""
    lines = [line.lstrip("#").strip() for line in cell.source.splitlines()
             if line.startswith("#")]
    return lines[-1] if lines else None


def _enclosing_names(tree):
    """line number -> the qualified name of the function (or top level: None) that each
    ``raise NotImplementedError()`` is in."""
    names = {}

    def visit(node, qualname):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                visit(child, qualname + [child.name])
            else:
                if isinstance(child, ast.Raise) and ast.unparse(child) == BARE_STUB:
                    names[child.lineno] = ".".join(qualname) or None
                visit(child, qualname)

    visit(tree, [])
    return names


def stub_message(qualname, section):
    """What a blank stub raises: the part to write, and the section that describes it."""
    where = ' (see "%s")' % section if section else ""
    if qualname:
        return "%s is not written yet%s: replace this line with your code" % (qualname, where)
    return "this cell is not written yet%s: replace this line with your code" % where


class NameStubs(NbGraderPreprocessor):
    """Gives every bare ``raise NotImplementedError()`` left by ClearSolutions a message naming
    its function (``Linear.forward``) and the section it belongs to. Runs after ClearSolutions
    and before the checksums are computed."""

    def preprocess(self, nb, resources):
        section = None
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                section = _heading(cell) or section
            elif cell.cell_type == "code" and BARE_STUB in cell.source:
                cell.source = self._named(cell.source, section)
        return nb, resources

    def _named(self, source, section):
        try:
            names = _enclosing_names(ast.parse(source))
        except SyntaxError:  # IPython magics and the like: left as they are
            return source
        lines = source.splitlines(keepends=True)
        for number, qualname in names.items():
            line = lines[number - 1]
            message = stub_message(qualname, section)
            lines[number - 1] = line.replace(BARE_STUB, "raise NotImplementedError(%r)" % message)
        return "".join(lines)


class EmbedImages(NbGraderPreprocessor):
    """Turns ``![alt](images/x.png)`` in markdown cells into ``![alt](attachment:x.png)``,
    with the file's bytes as the cell's attachment."""

    def preprocess(self, nb, resources):
        folder = resources.get("metadata", {}).get("path") or "."
        for cell in nb.cells:
            if cell.cell_type == "markdown" and _IMAGE_LINK.search(cell.source):
                cell.source = _IMAGE_LINK.sub(
                    lambda match: self._attach(cell, folder, *match.groups()), cell.source)
        return nb, resources

    def _attach(self, cell, folder, alt, relative):
        path = os.path.join(folder, relative)
        kind = mimetypes.guess_type(path)[0]
        if not kind or not kind.startswith("image/"):
            raise ValueError("%s: not a picture" % relative)
        with open(path, "rb") as picture:  # a missing picture fails the release loudly
            data = base64.b64encode(picture.read()).decode("ascii")
        name = os.path.basename(relative)
        cell.setdefault("attachments", {})[name] = {kind: data}
        return "![%s](attachment:%s)" % (alt, name)


class AppendSelfCheck(NbGraderPreprocessor):
    """Ends the release with the "check your work" cell (locked: the grader restores it)."""

    def preprocess(self, nb, resources):
        nb.cells = [cell for cell in nb.cells
                    if cell.metadata.get("nbgrader", {}).get("grade_id") != self_check.GRADE_ID]
        nb.cells += self_check.cells()
        return nb, resources
