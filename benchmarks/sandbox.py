"""The sandbox: its cost per submission, and what hostile submissions get.

1. Overhead: the same mixed class of ps1 submissions graded by `nncourse grade --force` with
   and without the sandbox, alternately, --runs times each; medians and their ratio.
2. The hostile catalogue (tests/hostile.py) graded in one batch with an honest control
   student (cell timeout 8 s, notebook limit 30 s): each case's score, the control's score and
   the time its grading took.

    .venv/bin/python benchmarks/sandbox.py --students 12 --runs 2
"""

import argparse
import csv
import os
import re
import statistics
import tempfile
import time

from _classes import mixed_class, nncourse, submit_class, write_course

from nncourse import samples
from tests import hostile


def overhead(scratch, students, runs):
    folder = os.path.join(scratch, "overhead")
    write_course(folder, stock=False)
    submit_class(folder, students)
    nncourse(folder, "grade", "ps1", "--no-sandbox")  # registration and datasets, once
    times = {"without the sandbox": [], "in the sandbox": []}
    for _ in range(runs):
        for label, flags in (("without the sandbox", ["--no-sandbox"]), ("in the sandbox", [])):
            start = time.perf_counter()
            nncourse(folder, "grade", "ps1", "--force", *flags)
            times[label].append(time.perf_counter() - start)
    return {label: statistics.median(values) for label, values in times.items()}


def hostile_batch(scratch):
    folder = os.path.join(scratch, "hostile")
    write_course(folder, stock=False)
    with open(os.path.join(folder, "nbgrader_config.py"), "a") as config:
        config.write("\nc.Execute.timeout = %d\nc.LimitedExecute.notebook_timeout = %d\n"
                     % (hostile.CELL_TIMEOUT, hostile.NOTEBOOK_TIMEOUT))
    from pathlib import Path
    course = Path(folder)
    students = hostile.hostile_class(course)
    for student, notebook in students.items():
        samples.write_submission(course, student, "ps1", {"ps1.ipynb": notebook})
    start = time.perf_counter()
    result = nncourse(folder, "grade", "ps1", "--workers", "2", check=False)
    total = time.perf_counter() - start
    seconds = {m.group(1): m.group(2) for m in re.finditer(
        r"ps1 (\S+): (?:graded in|FAILED after) ([\d.]+) s", result.stdout)}
    scores = {}
    with open(course / "reports" / "ps1-grades.csv") as table:
        for row in csv.DictReader(table):
            scores[row["student"]] = row["total"]
    return students, scores, seconds, total, result.stderr


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=12)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        medians = overhead(scratch, mixed_class(args.students), args.runs)
        n = args.students
        print("grading %d ps1 submissions (medians of %d runs):" % (n, args.runs))
        for label, value in medians.items():
            print("  %-20s %6.1f s  (%.2f s per submission)" % (label, value, value / n))
        print("  sandbox / no sandbox: %.2f"
              % (medians["in the sandbox"] / medians["without the sandbox"]))
        students, scores, seconds, total, errors = hostile_batch(scratch)
    print("\nhostile batch (%d submissions, 2 workers): %.1f s in all" % (len(students), total))
    print("  %-22s %-28s %-14s %s" % ("case", "score", "control score", "seconds"))
    for student in students:
        score = scores.get(student) or "not graded (%s)" % (
            "kernel lost" if "error: ps1 %s" % student in errors else "?")
        print("  %-22s %-28s %-14s %s" % (student, score, scores.get("control", "?"),
                                           seconds.get(student, "?")))


if __name__ == "__main__":
    main()
