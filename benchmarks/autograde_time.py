"""Time to autograde one submission (the reference solution of a problem set, ps1 by
default): stock nbgrader autograde (checks judged in the kernel) beside `nncourse grade` of
that one student (one worker: sandbox, checks judged outside the kernel, reports and
feedback), same input, same run. Prints the median of --runs runs of each and their ratio.

    .venv/bin/python benchmarks/autograde_time.py --runs 5 [--problem-set ps4]
"""

import argparse
import os
import statistics
import tempfile
import time

from _classes import nbgrader, nncourse, submit_class, write_course


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--problem-set", default="ps1")
    arguments = parser.parse_args()
    runs, problem_set = arguments.runs, arguments.problem_set
    times = {"stock nbgrader": [], "nncourse": []}
    with tempfile.TemporaryDirectory() as scratch:
        folders = {}
        for label in times:
            folders[label] = os.path.join(scratch, label.replace(" ", "-"))
            write_course(folders[label], stock=label.startswith("stock"), problem_set=problem_set)
            submit_class(folders[label], {"ada": []}, problem_set)
        for _ in range(runs):  # interleaved, so both see the same machine load
            for label, folder in folders.items():
                start = time.perf_counter()
                if label.startswith("stock"):
                    nbgrader(folder, "autograde", problem_set, "--student", "ada", "--force")
                else:
                    nncourse(folder, "grade", problem_set, "--student", "ada", "--force",
                             "--workers", "1")
                times[label].append(time.perf_counter() - start)
    for label, values in times.items():
        print("%s, %-15s median %.2f s over %d runs (min %.2f, max %.2f)"
              % (problem_set, label, statistics.median(values), runs, min(values), max(values)))
    print("ratio nncourse / stock: %.2f" % (statistics.median(times["nncourse"])
                                              / statistics.median(times["stock nbgrader"])))


if __name__ == "__main__":
    main()
