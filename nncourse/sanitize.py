"""What a graded notebook (and the feedback made from it) may show of what the kernel sent.

Everything in a cell's outputs came from the student's kernel, so it is treated as the
student's own text: it may hold markup meant to run in the TA's browser, or text copied from
the hidden tests that the kernel saw while they ran. Here:

- HTML outputs are cleaned with bleach (no script, no event handlers, no styles, no links,
  no pictures that load anything); Markdown outputs are rendered to HTML first and kept as
  that cleaned HTML (cleaning markdown text would leave links and pictures that its rendering
  makes); kinds a browser would run or that can carry a script (JavaScript, SVG, widgets,
  anything unknown) are dropped. The pages clean these outputs' final HTML once more
  (nncourse/pages);
- any text that contains a piece of the hidden tests (the call server's code, the encoding of
  the checks' inputs) is replaced by a note (a second line of defence: from the first
  checked cell on, JudgeChecks keeps no text of the kernel's at all);
- after a cell that tampers with the kernel (nncourse/policy/), student cells keep nothing
  (such code could print anything the kernel held).
"""

import re

import bleach

ERROR_TEXT = 4000  # an error's message and each traceback entry are cut to this
REMOVED = "[output removed: it showed part of the grader's hidden tests]"
# markers of the call server's code and the checks' data in anything a kernel can print
MARKERS = ("nncourse", "_nncourse_calls", "_user_ns", "__ndarray__", "HIDDEN TESTS")
KEPT_KINDS = ("text/plain", "image/png", "image/jpeg", "image/gif", "text/latex",
              "text/html", "text/markdown")
_TAGS = ["a", "abbr", "b", "blockquote", "br", "caption", "code", "div", "em", "h1", "h2", "h3",
         "h4", "h5", "h6", "hr", "i", "li", "ol", "p", "pre", "span", "strong", "sub", "sup",
         "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul"]
_ATTRIBUTES = {"td": ["colspan", "rowspan"], "th": ["colspan", "rowspan"], "a": ["title"]}


# elements whose content is code, not text: removed with it (bleach would keep it as text)
_CODE_ELEMENTS = re.compile(r"<(script|style|template)\b.*?(</\1\s*>|$)", re.I | re.S)


def markdown_to_html(text):
    """Markdown as nbconvert renders it in a page."""
    from nbconvert.filters.markdown_mistune import markdown2html_mistune
    return markdown2html_mistune(text)


def clean_html(text):
    """HTML a student's code displayed, without anything that runs or loads."""
    return bleach.clean(_CODE_ELEMENTS.sub("", text), tags=_TAGS, attributes=_ATTRIBUTES,
                        protocols=[], strip=True, strip_comments=True)


# rendered markdown (a written answer, a cell a student added) keeps its structure, links to
# the web or within the page, and pictures carried in the notebook (attachments, data: URLs)
_MARKDOWN_TAGS = _TAGS + ["img", "del", "s", "dl", "dt", "dd", "kbd", "th"]
_PICTURE_URL = re.compile(r"data:image/(png|jpeg|gif);base64,[A-Za-z0-9+/=\s]*$")


def _markdown_attribute(tag, name, value):
    if name in ("class", "id", "title") or (tag in ("td", "th") and name in ("colspan",
                                                                           "rowspan")):
        return True
    if tag == "a" and name == "href":
        return value.startswith(("#", "http://", "https://", "mailto:"))
    if tag == "img":
        return name in ("alt", "width", "height") or (name == "src"
                                                      and bool(_PICTURE_URL.match(value)))
    return False


def clean_markdown_html(text):
    """A markdown cell rendered to HTML (nbconvert's markdown2html), without anything that
    runs or loads: the student's own HTML in an answer must not run in a grader's browser."""
    return bleach.clean(_CODE_ELEMENTS.sub("", text), tags=_MARKDOWN_TAGS,
                        attributes=_markdown_attribute, protocols=["http", "https", "mailto",
                                                                  "data"],
                        strip=True, strip_comments=True)


# MathML as latex2mathml writes it (nncourse.pages.mathml): elements and presentation
# attributes only (its \\href and \\style would carry links and styles)
_MATHML_TAGS = ["math", "mrow", "mi", "mn", "mo", "ms", "mtext", "mspace", "mfrac", "msqrt",
                "mroot", "msub", "msup", "msubsup", "munder", "mover", "munderover", "mtable",
                "mtr", "mtd", "mstyle", "mpadded", "mphantom", "menclose", "semantics",
                "annotation", "merror"]
_MATHML_ATTRIBUTES = ["xmlns", "display", "mathvariant", "stretchy", "fence", "separator",
                      "accent", "accentunder", "largeop", "movablelimits", "symmetric", "form",
                      "lspace", "rspace", "width", "height", "depth", "linethickness",
                      "columnalign", "rowalign", "columnspacing", "rowspacing", "columnlines",
                      "rowlines", "frame", "notation", "minsize", "maxsize", "scriptlevel",
                      "displaystyle", "encoding"]


def clean_mathml(text):
    """MathML made from a student's LaTeX, with nothing but MathML's own markup."""
    return bleach.clean(text, tags=_MATHML_TAGS,
                        attributes={tag: _MATHML_ATTRIBUTES for tag in _MATHML_TAGS},
                        protocols=[], strip=True, strip_comments=True)


def _text(value):
    return "".join(value) if isinstance(value, list) else str(value)


class Sanitizer:
    """Cleans the outputs of an executed notebook in place (see the module's docstring)."""

    @staticmethod
    def leaks(text):
        return any(marker in text for marker in MARKERS)

    def clean_text(self, text):
        """``text`` from the kernel, as it may be shown."""
        return REMOVED if self.leaks(text) else text

    def _data(self, output):
        kept = {}
        for kind, value in output.get("data", {}).items():
            if kind not in KEPT_KINDS:
                continue
            text = _text(value)
            if kind.startswith("image/"):
                kept[kind] = value
            elif kind == "text/markdown":
                if "text/html" not in output.get("data", {}):  # what a page would show
                    kept["text/html"] = self.clean_text(clean_html(markdown_to_html(text)))
            elif kind == "text/html":
                kept[kind] = self.clean_text(clean_html(text))
            else:
                kept[kind] = self.clean_text(text)
        return kept

    def clean_output(self, output):
        """The output as it may be shown, or None when nothing of it may be."""
        kind = output.get("output_type")
        if kind == "stream":
            output["text"] = self.clean_text(_text(output.get("text", "")))
        elif kind in ("display_data", "execute_result"):
            output["data"] = self._data(output)
            output["metadata"] = {k: v for k, v in output.get("metadata", {}).items()
                                  if k in KEPT_KINDS and isinstance(v, dict)}
            if not output["data"]:
                return None
        elif kind == "error":
            output["ename"] = self.clean_text(str(output.get("ename", "")))[:200]
            output["evalue"] = self.clean_text(str(output.get("evalue", "")))[:ERROR_TEXT]
            output["traceback"] = [self.clean_text(str(entry))[:ERROR_TEXT]
                                   for entry in output.get("traceback", [])]
        else:
            return None
        return output

    def clean_cell(self, cell, silenced=False):
        """``silenced``: a student cell after tampering (nothing kept)."""
        if cell.cell_type != "code":
            return
        if silenced:
            cell.outputs = []
            return
        cell.outputs = [output for output in map(self.clean_output, cell.outputs)
                        if output is not None]
