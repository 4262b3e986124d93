"""What nncourse's feedback pages cost beside nbgrader's own.

A mixed class is graded once by `nncourse grade`; then every student's feedback is written
again, --runs times, by nbgrader's GenerateFeedback in this one process, as the grader writes
it: with nbgrader's own template, with nncourse's pages without MathML (cleaned markdown,
one maximum, local MathJax), and with them as shipped (maths also written as MathML). The
three alternate, so all see the same machine load. Prints the median seconds per feedback.

    .venv/bin/python benchmarks/feedback.py --students 8 --runs 3 [--problem-set ps2]
"""

import argparse
import os
import statistics
import tempfile
import time

from traitlets.config import Config

from _classes import mixed_class, nncourse, submit_class, write_course
from nncourse import pages
from nncourse.autograde.coordinator import ClassGrader
from nncourse.course import Course


def without_mathml(page, rendered, maths=False):
    return pages.clean_markdown(page, rendered, maths=False)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--students", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--problem-set", default="ps1")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = os.path.join(scratch, "course")
        write_course(folder, stock=False, problem_set=args.problem_set)
        students = mixed_class(args.students, args.problem_set)
        submit_class(folder, students, args.problem_set)
        nncourse(folder, "grade", args.problem_set)
        grader = ClassGrader(Course(folder), executor=None, sandbox=False)
        shipped = dict(grader.config.HTMLExporter)
        settings = {
            "nbgrader's own template": Config(),
            "nncourse pages, no MathML": Config(dict(
                shipped, filters=dict(shipped["filters"], nncourse_clean_markdown=without_mathml))),
            "nncourse pages (shipped)": Config(shipped),
        }
        times = {label: [] for label in settings}
        for _ in range(args.runs):
            for label, html_settings in settings.items():
                grader.config.HTMLExporter = html_settings
                start = time.perf_counter()
                for student in students:
                    grader.feedback(args.problem_set, student)
                times[label].append((time.perf_counter() - start) / len(students))
        print("%s, %d students, median of %d runs, seconds per feedback page:"
              % (args.problem_set, len(students), args.runs))
        for label, values in times.items():
            print("  %-28s %6.2f" % (label, statistics.median(values)))


if __name__ == "__main__":
    main()
