"""What nncourse adds to Formgrader's submission page and to the feedback (nncourse/pages),
without a browser: tests/test_browser.py sees the same pages in one."""

import base64
import io
import os
import re

import matplotlib
import nbformat

from nncourse import pages
from tests.helpers import source_notebook

matplotlib.use("Agg")


def _png():
    import matplotlib.pyplot as plt
    figure = plt.figure(figsize=(1, 1))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def _course(tmp_path, own_outputs):
    """A course folder with ps1's source and one student's handed-in notebook whose first
    code cell has ``own_outputs``; returns (filters, that cell as the grader ran it)."""
    (tmp_path / "source" / "ps1").mkdir(parents=True)
    nbformat.write(source_notebook("ps1"), tmp_path / "source" / "ps1" / "ps1.ipynb")
    handed_in = source_notebook("ps1")
    cell = next(c for c in handed_in.cells if c.cell_type == "code")
    cell.outputs = own_outputs
    folder = tmp_path / "submitted" / "ada" / "ps1"
    folder.mkdir(parents=True)
    nbformat.write(handed_in, folder / "ps1.ipynb")
    graded = nbformat.from_dict(dict(cell, outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="200 steps, fast mode\n")]))
    return pages.CourseFilters(str(tmp_path)), graded


RESOURCES = {"assignment_id": "ps1", "notebook_id": "ps1", "student": "ada"}


def test_the_students_own_outputs_are_shown_as_inert_text_and_real_pictures(tmp_path):
    picture = _png()
    fake = base64.b64encode(b"<svg onload=alert(1)>").decode()
    filters, cell = _course(tmp_path, [
        nbformat.v4.new_output("stream", name="stdout", text="17000 steps <b>done</b>\n"),
        nbformat.v4.new_output("display_data", data={"text/html": "<script>alert(1)</script>",
                                                     "text/plain": "<table>"}),
        nbformat.v4.new_output("display_data", data={"image/png": picture}),
        nbformat.v4.new_output("display_data", data={"image/png": fake}),
        nbformat.v4.new_output("error", ename="ValueError", evalue="<img src=x>",
                               traceback=[]),
    ])
    shown = filters.own_outputs(cell, RESOURCES)
    assert "17000 steps &lt;b&gt;done&lt;/b&gt;" in shown
    assert "<script" not in shown and "&lt;table&gt;" in shown
    assert shown.count("<img") == 1 and picture in shown
    assert "ValueError: &lt;img src=x&gt;" in shown
    assert "<b>" not in shown


def test_own_outputs_are_left_out_when_the_student_ran_nothing_or_the_same(tmp_path):
    filters, cell = _course(tmp_path, [])
    assert filters.own_outputs(cell, RESOURCES) == ""
    filters, cell = _course(tmp_path / "same", [
        nbformat.v4.new_output("stream", name="stdout", text="200 steps, fast mode\n")])
    assert filters.own_outputs(cell, RESOURCES) == ""
    assert filters.own_outputs(cell, dict(RESOURCES, student="nobody")) == ""


def test_an_answer_graded_by_hand_gets_its_model_answer_and_rubric(tmp_path):
    filters, _ = _course(tmp_path, [])
    answer = next(c for c in source_notebook("ps1").cells
                  if c.metadata.get("nbgrader", {}).get("grade_id") == "q2_answer")
    written = nbformat.from_dict(dict(answer, source="The loss stalls at 0.2."))
    model = filters.model_answer(written, RESOURCES)
    assert model.startswith("**Model answer.**") and "**Rubric (2 points).**" in model
    test_cell = next(c for c in source_notebook("ps1").cells
                     if c.metadata.get("nbgrader", {}).get("grade_id") == "test_simplenn")
    assert filters.model_answer(test_cell, RESOURCES) == ""


def test_the_feedback_heading_has_one_maximum_and_says_the_bonus(tmp_path):
    graded = source_notebook("ps1")
    for cell in graded.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            meta["score"] = meta["points"] if meta["grade_id"].startswith("bonus_test") else 0
    resources = {"nbgrader": {"notebook": "ps1", "score": 1.5, "max_score": 18.0}}
    page = ('<h4>ps1 (Score: 1.5 / 18.0)</h4><li><a href="#bonus_q5_answer">Written '
            'response</a> (Score: 0.0 / 0.5)</li><li><a href="#q1_answer">Written response'
            '</a> (Score: 0.0 / 2.0)</li>')
    shown = pages.one_maximum(page, graded, resources)
    assert "ps1 (Score: 1.5 / 16.0, with 1.5 of 2.0 bonus points above the maximum)" in shown
    assert "(Score: 0.0 / 0.5, bonus)" in shown and "(Score: 0.0 / 2.0)</li>" in shown


def test_mathjax_comes_from_the_jupyter_server_not_a_cdn():
    header = '<script src="%s"> </script>' % pages.CDN_MATHJAX
    formgrader = pages.local_mathjax(header, "/user/ta/")
    assert 'src="/user/ta' + pages.MATHJAX_PATH in formgrader and "cdnjs" not in formgrader
    feedback = pages.local_mathjax(header)
    assert "cdnjs" not in feedback and pages.MATHJAX_PATH in feedback
    # the TeX a student wrote makes no link, style, class or id (test_browser.py sees it)
    for page in (formgrader, feedback):
        assert re.search(r'Safe: \{allow: \{URLs: "none", classes: "none", cssIDs: "none",\s+'
                         r'styles: "none"\}\}', page), page


def test_markdown_a_student_wrote_keeps_its_text_and_pictures_but_runs_nothing():
    picture = "data:image/png;base64," + _png()
    answer = ("## My answer\n\nThe loss is *small*: $a < b$. ![plot](%s)\n\n"
              "<img src=x onerror=alert(1)> <script>alert(2)</script>"
              "<a href='javascript:alert(3)'>x</a> <a href='#q1'>up</a>"
              "<img src='data:image/svg+xml;base64,PHN2Zz4='> <iframe src='https://e.org'>"
              % picture)
    from nbconvert.exporters import HTMLExporter
    rendered = HTMLExporter().markdown2html({"cell": {}}, answer)
    page = '<div class="panel"><input id="q1_answer">%s</div>' % rendered
    cleaned = pages.clean_markdown(page, rendered)
    assert '<input id="q1_answer">' in cleaned  # Formgrader's own markup is left alone
    assert "<em>small</em>" in cleaned and "$a &lt; b$" in cleaned and picture in cleaned
    for attack in ("onerror", "<script", "alert(2)", "javascript:", "svg+xml", "<iframe"):
        assert attack not in cleaned, attack
    assert 'href="#q1"' in cleaned and "My answer" in cleaned
    # markup nbgrader no longer renders as expected: the text is shown escaped, not run
    assert "<img" not in pages.clean_markdown("<p>other</p><img src=x onerror=alert(1)>",
                                              "<img src=x>")


def test_the_feedback_writes_maths_as_mathml_and_nothing_a_student_wrote_runs():
    cleaned = ("<p>The loss $\\mathcal L = \\frac{1}{2}(y - \\hat y)^2$ and</p>\n<p>$$a &lt; b$$</p>"
               "<p><code>cost = $x$</code> costs \\$5 and \\$6</p>"
               "<p>$\\text{&lt;script&gt;alert(1)&lt;/script&gt;}$ $\\href{javascript:alert(2)}{x}$"
               " $\\style{background:url(https://e.org)}{y}$</p>")
    shown = pages.mathml(cleaned)
    assert shown.count("<math") == 5 and 'display="block"' in shown
    assert '<mi mathvariant="script">L</mi>' in shown and "<mfrac>" in shown
    assert "<code>cost = $x$</code>" in shown and "\\$5 and \\$6" in shown
    for attack in ("<script", "href", "javascript", "style", "e.org"):
        assert attack not in shown, attack


# what a kernel can display: each would run, link or load in a TA's browser if shown as it is
HOSTILE_OUTPUTS = [
    {"text/markdown": "[hint](javascript:alert(1)) ![](http://198.51.100.7/x.png) "
                      "<img src=x onerror=alert(2)>", "text/plain": "hint"},
    {"text/html": "<a href='javascript:alert(3)'>hint</a><img src='http://198.51.100.7/y.png'>"
                  "<script>alert(4)</script><b>kept</b>"},
    {"application/javascript": "alert(5)"},
    {"image/svg+xml": "<svg onload=alert(6)></svg>"},
]


def _page(template, notebook):
    """The feedback (``template="feedback"``) or Formgrader's page of ``notebook``, rendered
    with the course's settings, as nbgrader renders them."""
    from nbconvert.exporters import HTMLExporter
    from traitlets.config.loader import PyFileConfigLoader
    from nncourse.course import ROOT
    config = PyFileConfigLoader("nbgrader_config.py", path=ROOT).load_config()
    config.HTMLExporter.template_name = template
    config.HTMLExporter.extra_template_paths = [os.path.join(  # the pages' stylesheet
        os.path.dirname(pages.nbgrader_templates()), "static", "node_modules", "bootstrap",
        "dist", "css")]
    return HTMLExporter(config=config).from_notebook_node(notebook, resources={
        "nbgrader": {"notebook": "ps1", "assignment": "ps1", "student": "ada", "score": 0.0,
                     "max_score": 1.0, "late_penalty": 0.0},
        "assignment_id": "ps1", "notebook_id": "ps1", "student": "ada", "index": 0,
        "total": 1, "base_url": "/", "submission_id": "1", "notebook_path": "ps1.ipynb"})[0]


def test_outputs_of_any_kind_run_link_and_load_nothing_in_either_page():
    from nncourse.sanitize import Sanitizer
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "show()", outputs=[nbformat.v4.new_output("display_data", data=data)
                           for data in HOSTILE_OUTPUTS])])
    cleaned = nbformat.from_dict(notebook)
    for cell in cleaned.cells:
        Sanitizer().clean_cell(cell)
    # the graded notebook keeps the text of markdown and HTML outputs, as cleaned HTML
    assert [sorted(output.data) for output in cleaned.cells[0].outputs] == [
        ["text/html", "text/plain"], ["text/html"]]
    # the pages clean again what they show: even outputs the grader did not clean are inert
    for template in ("feedback", "formgrade"):
        for shown in (notebook, cleaned):
            page = re.sub(r"<style.*?</style>", "", _page(template, shown), flags=re.S)
            assert "hint" in page and "<b>kept</b>" in page
            # and MathJax typesets none of it (its TeX could make links)
            assert page.count("tex2jax_ignore") >= 2
            for attack in ("javascript:", "198.51.100.7", "onerror", "onload", "alert("):
                assert attack not in page, (template, attack)
