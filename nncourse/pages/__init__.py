"""What nncourse adds to the two HTML pages made from a graded notebook: Formgrader's
submission page (a TA grades written answers there) and the feedback a student reads.

nbgrader renders both with nbconvert's HTMLExporter, from its templates ``formgrade`` and
``feedback``. nbgrader_config.py points the exporter at ``templates/<that name>/nncourse.html.j2``,
which extends nbgrader's own page and adds:

- on the submission page, under each answer graded by hand, the model answer and rubric (from
  the master notebook), and under each code cell the outputs of the student's own run as
  handed in (the graded notebook shows the grader's fast-mode run), text and pictures only;
- on both, one maximum score: bonus points (cells ``bonus_*``) are shown as bonus, above the
  maximum, as the reports count them;
- on both, MathJax from the Jupyter server itself (jupyter-server-mathjax), not from a CDN, so
  that maths renders offline;
- on both, markdown cells cleaned of anything that runs or loads (nbgrader shows a student's
  written answer as raw HTML, which would run in the TA's browser, in Formgrader's session);
- on both, the HTML and markdown outputs of the graded run cleaned again as the page shows
  them, and outputs that run (JavaScript, widgets, SVG) left out.
"""

import base64
import functools
import html
import os
import re

import nbformat
from markupsafe import Markup

from .. import sanitize
from ..report import BONUS_PREFIX

TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")
TEMPLATE_FILE = "nncourse.html.j2"
# the MathJax that jupyter-server-mathjax serves, below the server's base URL
MATHJAX_PATH = "/static/jupyter_server_mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"
# what nbgrader's templates load instead (nbconvert's mathjax() macro, called without a URL)
CDN_MATHJAX = ("https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/latest.js"
               "?config=TeX-AMS_CHTML-full,Safe")
_PICTURES = {"image/png": b"\x89PNG\r\n\x1a\n", "image/jpeg": b"\xff\xd8\xff"}
OWN_OUTPUT_TEXT = 20_000  # characters of the student's own outputs shown per cell


def nbgrader_templates():
    import nbgrader
    return os.path.join(os.path.dirname(nbgrader.__file__), "server_extensions", "formgrader",
                        "templates")


@functools.lru_cache(maxsize=64)
def _notebook(path, modified):
    return nbformat.read(path, as_version=4)


def _read(path):
    """The notebook at ``path`` (cached while it is unchanged), or None."""
    try:
        return _notebook(path, os.stat(path).st_mtime_ns)
    except (OSError, ValueError):
        return None


def _names(resources):
    """(problem set, notebook, student) of the page being rendered (Formgrader's resources or
    GenerateFeedback's)."""
    graded = resources.get("nbgrader") or {}
    return (resources.get("assignment_id") or graded.get("assignment"),
            resources.get("notebook_id") or graded.get("notebook"),
            resources.get("student") or graded.get("student"))


class CourseFilters:
    """The Jinja filters the templates use, for the course in ``root``."""

    def __init__(self, root):
        self.root = root

    def filters(self):
        return {"nncourse_clean_markdown": clean_markdown,
                "nncourse_clean_output": clean_output,
                "nncourse_model_answer": self.model_answer,
                "nncourse_own_outputs": self.own_outputs,
                "nncourse_is_bonus": is_bonus,
                "nncourse_one_maximum": one_maximum,
                "nncourse_local_mathjax": local_mathjax}

    def model_answer(self, cell, resources):
        """The master notebook's text of an answer cell graded by hand (its model answer and
        rubric), as markdown; "" for any other cell."""
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if not (meta.get("grade") and meta.get("solution")):
            return ""
        problem_set, notebook, _ = _names(resources)
        source = _read(os.path.join(self.root, "source", str(problem_set), "%s.ipynb" % notebook))
        for master in source.cells if source else []:
            if master.metadata.get("nbgrader", {}).get("grade_id") == meta.get("grade_id"):
                return master.source
        return ""

    def own_outputs(self, cell, resources):
        """The outputs the student's own copy of this code cell had when handed in (text,
        errors and pictures, escaped), as HTML; "" when it had none or the same as here."""
        problem_set, notebook, student = _names(resources)
        if cell.get("cell_type") != "code" or not student:
            return ""
        submitted = _read(os.path.join(self.root, "submitted", str(student), str(problem_set),
                                       "%s.ipynb" % notebook))
        own = next((c for c in submitted.cells if c.get("id") == cell.get("id")), None) \
            if submitted else None
        if own is None or not own.get("outputs"):
            return ""
        shown = [_output_html(output) for output in own.outputs]
        if [_output_html(output) for output in cell.get("outputs", [])] == shown:
            return ""
        return Markup("".join(shown))


def clean_output(html_text):
    """An output's HTML as the page shows it: nothing that runs, links or loads (the kernel's
    outputs are the student's text, however they were encoded)."""
    return Markup(sanitize.clean_html(str(html_text)))


def _output_html(output):
    """One output of a notebook the student handed in, as inert HTML: text escaped, pictures
    only when they are what they claim to be; anything else (HTML, scripts) left out."""
    kind = output.get("output_type")
    if kind == "stream":
        return _pre(output.get("text", ""))
    if kind == "error":
        return _pre("%s: %s" % (output.get("ename", ""), output.get("evalue", "")))
    data = output.get("data", {})
    for mime, magic in _PICTURES.items():
        try:
            picture = base64.b64decode(data.get(mime, ""), validate=True)
        except (ValueError, TypeError):
            continue
        if picture.startswith(magic):
            return '<img src="data:%s;base64,%s">' % (mime, base64.b64encode(picture).decode())
    if "text/plain" in data:
        return _pre(data["text/plain"])
    return ""


def _pre(text):
    text = "".join(text) if isinstance(text, list) else str(text)
    if len(text) > OWN_OUTPUT_TEXT:
        text = text[:OWN_OUTPUT_TEXT] + "\n[... cut]"
    return "<pre>%s</pre>" % html.escape(text)


def clean_markdown(page, rendered, maths=False):
    """nbgrader renders every markdown cell as raw HTML (``rendered``: nbconvert's
    markdown2html of its source); ``page``, its part of the page, gets it cleaned instead
    (nncourse.sanitize.clean_markdown_html), with its maths as MathML when ``maths``."""
    if not rendered.strip():
        return page
    if rendered not in page:  # nbgrader's markup changed: show the answer as text, not HTML
        return Markup(html.escape(str(page)))
    cleaned = sanitize.clean_markdown_html(rendered)
    return Markup(str(page).replace(rendered, mathml(cleaned) if maths else cleaned))


# $$display$$ or $inline$ maths in the text of rendered markdown (nbconvert leaves it as
# written, for MathJax); a dollar sign escaped as \$ is not one
_MATHS = re.compile(r"(?<!\\)\$\$(.+?)(?<!\\)\$\$|(?<![\\$])\$(?!\$)(.+?)(?<!\\)\$", re.S)
_TAG = re.compile(r"(<[^>]*>)")
_VERBATIM = ("code", "pre")


@functools.lru_cache(maxsize=4096)  # the course's maths is the same on every student's page
def _mathml(tex, display):
    """``tex`` as cleaned MathML, or None where latex2mathml cannot read it."""
    import latex2mathml.converter
    try:
        written = latex2mathml.converter.convert(tex, display="block" if display else "inline")
    except Exception:  # any LaTeX a student wrote: not ours to fail on
        return None
    return sanitize.clean_mathml(written)


def mathml(cleaned):
    """Cleaned markdown HTML with its LaTeX maths written as MathML, which browsers draw with
    no script (a feedback page opened as a file, offline, or where an LMS strips scripts).
    Maths that latex2mathml cannot read is left as it was, for MathJax."""
    def convert(match):
        display, inline = match.groups()
        return _mathml(html.unescape(display or inline), bool(display)) or match.group(0)

    pieces, verbatim = _TAG.split(cleaned), 0
    for index, piece in enumerate(pieces):
        if index % 2:  # a tag
            name = piece.strip("</>").split()[0].lower() if piece.strip("</>") else ""
            if name in _VERBATIM:
                verbatim += -1 if piece.startswith("</") else 1
        elif not verbatim and "$" in piece:
            pieces[index] = _MATHS.sub(convert, piece)
    return "".join(pieces)


def is_bonus(cell):
    return str(cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", "")).startswith(
        BONUS_PREFIX)


def bonus_points(nb):
    """(points scored, points possible) of a graded notebook's bonus cells (nbgrader puts
    each cell's score in its metadata for the feedback)."""
    scored = possible = 0.0
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade") and is_bonus(cell):
            scored += float(meta.get("score") or 0)
            possible += float(meta.get("points") or 0)
    return scored, possible


def _jinja_round(value):
    return str(round(float(value), 2))  # what nbgrader's `| float | round(2)` prints


def one_maximum(page, nb, resources):
    """nbgrader's feedback heading "psN (Score: s / m)" counts the bonus cells in m; here m
    leaves them out and the bonus is said, and each bonus cell is marked as one."""
    graded = resources.get("nbgrader") or {}
    scored, possible = bonus_points(nb)
    if not possible:
        return page
    heading = "%s (Score: %s / %s)" % (html.escape(str(graded.get("notebook"))),
                                      _jinja_round(graded.get("score", 0)),
                                      _jinja_round(graded.get("max_score", 0)))
    ours = "%s (Score: %s / %s, with %s of %s bonus points above the maximum)" % (
        html.escape(str(graded.get("notebook"))), _jinja_round(graded.get("score", 0)),
        _jinja_round(float(graded.get("max_score", 0)) - possible), _jinja_round(scored),
        _jinja_round(possible))
    page = page.replace(heading, ours, 1)
    return Markup(re.sub(r'(<a href="#%s[^"]*">[^<]*</a> \(Score: [^)<]*)\)' % BONUS_PREFIX,
                         r"\1, bonus)", page))


# where a page served by Jupyter is below the server's base URL (feedback opened in Jupyter)
_JUPYTER_ROUTES = r"/(files|view|tree|lab|notebooks|edit|formgrader)/"
_LOADER = """<script>
(function () {  // MathJax from the Jupyter server showing this page: no network needed
  var path = window.location.pathname, cut = path.search(/%s/);
  if (window.location.protocol.indexOf("http") !== 0 || cut < 0) return;
  var script = document.createElement("script");
  script.src = path.slice(0, cut) + "%s";
  document.head.appendChild(script);
})();
</script>"""


# jupyter-server-mathjax ships MathJax's STIX-Web fonts only (as the classic notebook used);
# the TeX a student wrote makes no link (\href), style (\style, which can load a picture),
# class or id: MathJax's Safe extension allows some of each by default
_MATHJAX_CONFIG = """<script type="text/x-mathjax-config">
MathJax.Hub.Config({"HTML-CSS": {availableFonts: [], preferredFont: null, imageFont: null,
                                 webFont: "STIX-Web"},
                    Safe: {allow: {URLs: "none", classes: "none", cssIDs: "none",
                                   styles: "none"}}});
</script>"""


def local_mathjax(page, base_url=None):
    """nbgrader's page header with MathJax loaded from the Jupyter server (at ``base_url``,
    Formgrader's; None: wherever the page is served from, the feedback) instead of a CDN."""
    tag = '<script src="%s"> </script>' % CDN_MATHJAX
    if base_url is not None:
        local = '<script src="%s%s"></script>' % (html.escape(base_url.rstrip("/")), MATHJAX_PATH)
    else:
        local = _LOADER % (_JUPYTER_ROUTES.replace("/", "\\/"), MATHJAX_PATH)
    return Markup(page.replace(tag, _MATHJAX_CONFIG + local))
