"""Time to autograde one ps1 submission (the reference solution): stock nbgrader autograde
beside nncourse's grading (nbgrader with the checks judged outside the kernel), same input,
same run. Prints the median of --runs runs of each and their ratio.

    .venv/bin/python benchmarks/autograde_time.py --runs 5
"""

import argparse
import os
import statistics
import tempfile
import time

from _classes import nbgrader, submit_class, write_course


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    times = {"stock nbgrader": [], "nncourse": []}
    with tempfile.TemporaryDirectory() as scratch:
        folders = {}
        for label in times:
            folders[label] = os.path.join(scratch, label.replace(" ", "-"))
            write_course(folders[label], stock=label.startswith("stock"))
            submit_class(folders[label], {"ada": []})
        for _ in range(runs):  # interleaved, so both see the same machine load
            for label, folder in folders.items():
                start = time.perf_counter()
                nbgrader(folder, "autograde", "ps1", "--student", "ada", "--force")
                times[label].append(time.perf_counter() - start)
    for label, values in times.items():
        print("%-15s median %.2f s over %d runs (min %.2f, max %.2f)"
              % (label, statistics.median(values), runs, min(values), max(values)))
    print("ratio nncourse / stock: %.2f" % (statistics.median(times["nncourse"])
                                              / statistics.median(times["stock nbgrader"])))


if __name__ == "__main__":
    main()
