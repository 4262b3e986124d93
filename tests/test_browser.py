"""The TA's and the student's day in a real browser: Playwright driving the distribution's
Chromium (scripts/system_packages.sh installs it) against `jupyter lab` run on a scratch
course, with every request that leaves this machine refused, as offline.

Screenshots of each step go to build/screenshots/ (or $NNCOURSE_SCREENSHOTS)."""

import csv
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request

import nbformat
import pytest

from nncourse.course import ROOT
from tests.helpers import (environment, expected_total, grade, hand_grade, make_class,
                           source_notebook)

pytestmark = [pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = os.environ.get("NNCOURSE_SCREENSHOTS", os.path.join(ROOT, "build", "screenshots"))
COMMENT = "Right numbers. Say why the sigmoid learns slowly: its derivative is at most 1/4."
# what the student's own run printed, as handed in (the grader reruns in fast mode)
OWN_RUN = "ReLU: loss 1e-4 reached after 17000 steps (4.1 s)\n"
# TeX that MathJax (with its Safe extension's defaults) would make a link and a remote load of
TEX_ATTACK = (r"$$\href{https://evil.example/phish}{\text{your full grade}}"
              r"\style{cursor:url(https://evil.example/track.cur)}{\text{hover}}$$")
ATTACK = "<script>alert('the TA ran my script')</script>"
# and in a written answer, which nbgrader renders as HTML
ANSWER_ATTACK = ('<img src="x" onerror="alert(\'my answer ran a script\')"> '
                 '<a href="javascript:alert(1)">more</a>')


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _hand_in_with_own_outputs(course):
    """The full solution's notebook as it would come back from the student's laptop: the
    sine cell with the output of a real run, and an HTML output that tries to run a script."""
    path = course / "submitted" / "full" / "ps1" / "ps1.ipynb"
    notebook = nbformat.read(path, 4)
    cell = next(c for c in notebook.cells if "for activation in (ReLU, Sigmoid)" in c.source)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=OWN_RUN),
                    nbformat.v4.new_output("display_data", data={"text/latex": TEX_ATTACK,
                                                                 "text/plain": TEX_ATTACK}),
                    nbformat.v4.new_output("display_data", data={"text/html": ATTACK,
                                                                 "text/plain": "a table"})]
    answer = next(c for c in notebook.cells
                  if c.metadata.get("nbgrader", {}).get("grade_id") == "q1_answer")
    answer.source = ("ReLU reached a loss of 1e-4 after about 17000 steps; the sigmoid was "
                     "still near 1e-2 after 20000. With 1000 samples each step took ten times "
                     "longer, and the loss was about the same. " + ANSWER_ATTACK + " "
                     + TEX_ATTACK)
    nbformat.write(notebook, path)


@pytest.fixture(scope="module")
def ta_course(tmp_path_factory):
    course = make_class(tmp_path_factory, "browser", students=["full", "mutant-bias"])
    _hand_in_with_own_outputs(course)
    result = grade(course, "ps1")
    assert result.returncode == 0, result.stderr
    return course


@pytest.fixture(scope="module")
def server(ta_course):
    """`jupyter lab` in the course folder, as the README tells a TA to start it."""
    port = _free_port()
    # JupyterLab's workspaces and settings of this run only (not the user's ~/.jupyter), with
    # no offer to fetch Jupyter's news
    settings = ta_course / ".lab" / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    command = ["jupyter", "lab", "--no-browser", "--port=%d" % port, "--ip=127.0.0.1",
               "--IdentityProvider.token=", "--ServerApp.password=",
               "--ServerApp.root_dir=%s" % ta_course,
               "--LabApp.workspaces_dir=%s" % (ta_course / ".lab" / "workspaces"),
               "--LabApp.user_settings_dir=%s" % (ta_course / ".lab" / "settings")]
    if os.geteuid() == 0:
        command.append("--allow-root")
    log = open(ta_course / "jupyter.log", "w")
    process = subprocess.Popen(command, cwd=ta_course, env=environment(), stdout=log,
                               stderr=subprocess.STDOUT)
    url = "http://127.0.0.1:%d" % port
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(url + "/api/status", timeout=2)
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail("jupyter lab did not start: %s"
                            % (ta_course / "jupyter.log").read_text())
            time.sleep(0.5)
    yield url
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("no Chromium (scripts/system_packages.sh installs the distribution's)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        args = ["--no-sandbox"] if os.geteuid() == 0 else []  # root: no setuid sandbox
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        yield instance
        instance.close()


class Offline:
    """A browser page that can reach this machine only; it keeps what it was refused, what
    was not found (a font MathJax lacks, say) and the dialogs a script opened."""

    def __init__(self, browser):
        self.refused, self.missing, self.dialogs = [], [], []
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("response", lambda response: response.status == 404
                     and self.missing.append(response.url))
        self.page.on("dialog", lambda dialog: (self.dialogs.append(dialog.message),
                                               dialog.dismiss()))
        os.makedirs(SCREENSHOTS, exist_ok=True)

    def _route(self, route):
        url = route.request.url
        if url.startswith(("http://127.0.0.1", "data:", "blob:", "file:")):
            route.continue_()
        else:
            self.refused.append(url)
            route.abort()

    def shot(self, name):
        self.page.screenshot(path=os.path.join(SCREENSHOTS, name + ".png"), full_page=False)

    def close(self):
        self.context.close()


def _wait_for(condition, what, seconds=30):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting for " + what
        time.sleep(0.3)


def _maths_rendered(page):
    """MathJax 2 (Formgrader, feedback) or 3 (JupyterLab) typeset something on the page."""
    page.wait_for_function(
        "document.querySelectorAll('.MathJax, .MathJax_CHTML, mjx-container').length > 3",
        timeout=60_000)


def test_a_ta_grades_a_written_answer_in_formgrader_and_the_feedback_follows(
        ta_course, server, browser):
    tab = Offline(browser)
    page = tab.page
    try:
        page.goto(server + "/formgrader/gradebook/ps1/ps1")
        page.wait_for_selector("text=Submission #2")
        tab.shot("1-formgrader-submissions")
        # Formgrader hides the students' names; the link behind one is the same
        link = page.locator("td.name a.name-shown", has_text="full")
        page.locator("td.name a.name-hidden[href='%s']" % link.get_attribute("href")).click()
        page.wait_for_selector("#q1_answer")
        # the written answer, with the master notebook's model answer and rubric under it
        model = page.locator(".nncourse-model-answer").first
        assert "Model answer" in model.inner_text() and "Rubric (2 points)" in model.inner_text()
        _maths_rendered(page)
        assert page.locator("a[href*='evil.example']").count() == 0  # TeX made no link
        # the student's own run is shown, as text: their HTML output did not run
        own = page.locator(".nncourse-own-run").first
        own.locator("summary").click()
        assert OWN_RUN.strip() in own.inner_text()
        assert "<script>" not in own.inner_html() and "a table" in own.inner_text()
        page.evaluate("document.getElementById('q1_answer').closest('.cell')"
                      ".scrollIntoView({block: 'start'})")  # the answer, the model below it
        page.wait_for_timeout(300)
        tab.shot("2-formgrader-model-answer")

        page.fill("#q1_answer", "1.5")
        page.press("#q1_answer", "Tab")
        page.fill("#q1_answer-comment", COMMENT)
        page.press("#q1_answer-comment", "Tab")
        _wait_for(lambda: hand_grade(ta_course, "full", "q1_answer")[:2] == (1.5, COMMENT),
                  "Formgrader to save the grade and the comment")
        tab.shot("3-formgrader-graded")
        assert not hand_grade(ta_course, "full", "q1_answer")[2]  # resolved

        refreshed = grade(ta_course, "ps1")  # the one command after grading by hand
        assert refreshed.returncode == 0, refreshed.stderr
        assert "graded 0, already graded 2" in refreshed.stdout
        with open(ta_course / "reports" / "grades.csv") as table:
            rows = {row["student"]: row for row in csv.DictReader(table)}
        score = expected_total("full") + 1.5
        assert float(rows["full"]["ps1"]) == score

        # opened from Jupyter's file browser, which sends the page it comes from (Jupyter
        # refuses a GET without one once Formgrader has set its XSRF cookie)
        page.goto(server + "/files/feedback/full/ps1/ps1.html", referer=server + "/lab")
        assert COMMENT in page.inner_text("body")
        heading = page.locator("h4").first.inner_text()
        points = {cell.metadata.nbgrader["grade_id"]: cell.metadata.nbgrader["points"]
                  for cell in source_notebook("ps1").cells
                  if cell.metadata.get("nbgrader", {}).get("grade")}
        bonus = sum(p for name, p in points.items() if name.startswith("bonus_"))
        earned = sum(p for name, p in points.items() if name.startswith("bonus_test"))
        assert "Score: %s / %s, with %s of %s bonus points" % (
            score, float(sum(points.values()) - bonus), float(earned), float(bonus)) in heading, \
            heading
        _maths_rendered(page)
        tab.shot("4-feedback")
        # downloaded and opened as a file (an LMS, offline): its maths is MathML, no script
        page.goto((ta_course / "feedback" / "full" / "ps1" / "ps1.html").as_uri())
        assert COMMENT in page.inner_text("body")
        drawn = page.evaluate("[...document.querySelectorAll('math')]"
                              ".filter(m => m.getBoundingClientRect().width > 0).length")
        assert drawn > 50, drawn
        page.locator("math").nth(3).scroll_into_view_if_needed()
        tab.shot("5-feedback-as-a-file")
        assert tab.dialogs == []  # no script of the student's ran
        assert tab.refused == [] and tab.missing == []
    finally:
        tab.close()


def test_a_student_opens_the_release_in_jupyterlab_offline(ta_course, server, browser):
    """The release notebook renders its maths and its pictures (cell attachments) with no
    network, and no file beside it."""
    shutil.copy(os.path.join(ROOT, "release", "ps3", "ps3.ipynb"), ta_course / "alone.ipynb")
    tab = Offline(browser)
    page = tab.page
    try:
        page.goto(server + "/lab/tree/alone.ipynb")
        page.wait_for_selector(".jp-Notebook .jp-MarkdownCell")
        _maths_rendered(page)
        tab.shot("6-jupyterlab-release")
        pictures = set()
        scroller = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer"
        for _ in range(200):  # JupyterLab renders only the cells in view: scroll through
            pictures |= set(page.evaluate(
                "[...document.querySelectorAll('.jp-RenderedMarkdown img')]"
                ".filter(i => i.complete && i.naturalWidth > 0).map(i => i.alt)"))
            if page.evaluate("(e => e.scrollTop + e.clientHeight >= e.scrollHeight - 2)"
                             "(document.querySelector('%s'))" % scroller):
                break
            page.evaluate("document.querySelector('%s').scrollBy(0, 600)" % scroller)
            page.wait_for_timeout(150)
        release = nbformat.read(os.path.join(ROOT, "release", "ps3", "ps3.ipynb"), 4)
        expected = {alt for cell in release.cells for alt in
                    re.findall(r"!\[([^\]]*)\]\(attachment:", cell.source)}
        assert expected and pictures == expected
        assert tab.refused == [] and tab.missing == []
    finally:
        tab.close()
