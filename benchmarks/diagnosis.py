"""What naming the mistake costs, and how much of the catalogue it names.

1. Cost: the same mixed class (half correct, a third with one catalogue mistake, the rest
   blank) graded by `nncourse grade --force` with the diagnosis on and off
   (`c.JudgeChecks.diagnose`), alternately, --runs times each, and by stock `nbgrader
   autograde` on the same submissions in the same run; medians per submission and the rise.
   Each `nncourse grade` is a new process, so each run pays for computing the mistakes'
   outputs afresh (once per worker and failing check).
2. Coverage (--every): every catalogued mistake of the problem set handed in alone and
   graded through `nncourse grade`; how many feedback files name that very mistake.

    .venv/bin/python benchmarks/diagnosis.py --students 16 --runs 3 [--problem-set ps2] [--every]
"""

import argparse
import html
import os
import statistics
import tempfile
import time

from _classes import mixed_class, nbgrader, nncourse, submit_class, write_course
from nncourse.catalogue import diagnosis, load


def cost(scratch, students, runs, problem_set, workers):
    folders = {label: os.path.join(scratch, label) for label in ("stock", "on", "off")}
    for label, folder in folders.items():
        write_course(folder, stock=label == "stock", problem_set=problem_set)
        submit_class(folder, students, problem_set)
    with open(os.path.join(folders["off"], "nbgrader_config.py"), "a") as config:
        config.write("\nc.JudgeChecks.diagnose = False\n")
    for label in ("on", "off"):  # registration and datasets, once
        nncourse(folders[label], "grade", problem_set, "--workers", str(workers))
    times = {label: [] for label in folders}
    for _ in range(runs):  # interleaved, so all see the same machine load
        for label, folder in folders.items():
            start = time.perf_counter()
            if label == "stock":
                nbgrader(folder, "autograde", problem_set, "--force")
            else:
                nncourse(folder, "grade", problem_set, "--force", "--workers", str(workers))
            times[label].append((time.perf_counter() - start) / len(students))
    return {label: statistics.median(values) for label, values in times.items()}


def coverage(scratch, problem_set, workers):
    folder = os.path.join(scratch, "every")
    write_course(folder, stock=False, problem_set=problem_set)
    mutants = {"mistake-%03d" % n: m for n, m in enumerate(load(problem_set).MUTANTS)}
    submit_class(folder, {student: m.edits for student, m in mutants.items()}, problem_set)
    start = time.perf_counter()
    nncourse(folder, "grade", problem_set, "--workers", str(workers), check=False)
    seconds = time.perf_counter() - start
    named, missed = 0, []
    for student, mutant in mutants.items():
        path = os.path.join(folder, "feedback", student, problem_set, problem_set + ".html")
        text = html.unescape(open(path).read()) if os.path.exists(path) else ""
        if mutant.explanation and diagnosis.PREFIX + mutant.explanation in text:
            named += 1
        else:
            missed.append(mutant.name + (" (catalogued as undiagnosable: %s)"
                                         % mutant.undiagnosable if mutant.undiagnosable else ""))
    return named, len(mutants), seconds, missed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--students", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--problem-set", default="ps1")
    parser.add_argument("--every", action="store_true", help="also grade the whole catalogue")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        times = cost(scratch, mixed_class(args.students, args.problem_set), args.runs,
                     args.problem_set, args.workers)
        print("%s, %d students, %d workers, median of %d runs, seconds per submission:"
              % (args.problem_set, args.students, args.workers, args.runs))
        for label, text in (("stock", "stock nbgrader autograde"),
                            ("off", "nncourse grade, diagnosis off"),
                            ("on", "nncourse grade, diagnosis on")):
            print("  %-32s %6.2f" % (text, times[label]))
        print("  rise with the diagnosis: %+.1f%%" % (100 * (times["on"] / times["off"] - 1)))
        if args.every:
            named, total, seconds, missed = coverage(scratch, args.problem_set, args.workers)
            print("%s: %d of %d catalogued mistakes named in their own feedback (%.0f%%), "
                  "graded in %.0f s" % (args.problem_set, named, total, 100 * named / total,
                                        seconds))
            for name in missed:
                print("  not named: " + name)


if __name__ == "__main__":
    main()
