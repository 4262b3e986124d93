"""Time to autograde one ps1 submission (the reference solution): stock nbgrader autograde
beside nncourse's grading (nbgrader with the checks judged outside the kernel), same input,
same run. Prints the median of --runs runs of each and their ratio.

    .venv/bin/python benchmarks/autograde_time.py --runs 5
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import nbformat

from nncourse import samples
from nncourse.course import ROOT
from nncourse.datasets import write_offline_datasets


def make_course(folder, stock):
    for name in ("source", "release"):
        shutil.copytree(os.path.join(ROOT, name), os.path.join(folder, name))
    config = open(os.path.join(ROOT, "nbgrader_config.py")).read()
    if stock:  # nbgrader's own autograde pipeline: hidden checks run and judge in the kernel
        config = re.sub(r"c\.Autograde\.autograde_preprocessors = \[.*?\]\n", "", config, flags=re.S)
    open(os.path.join(folder, "nbgrader_config.py"), "w").write(config)
    release = nbformat.read(os.path.join(folder, "release", "ps1", "ps1.ipynb"), 4)
    source = nbformat.read(os.path.join(folder, "source", "ps1", "ps1.ipynb"), 4)
    os.makedirs(os.path.join(folder, "submitted", "ada", "ps1"))
    samples.write(samples.filled_notebook(release, source),
                  os.path.join(folder, "submitted", "ada", "ps1", "ps1.ipynb"))


def nbgrader(folder, *args):
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
               NNCOURSE_DATA=write_offline_datasets(os.path.join(folder, "data")))
    subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=folder, env=env, check=True,
                   capture_output=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    times = {"stock nbgrader": [], "nncourse": []}
    with tempfile.TemporaryDirectory() as scratch:
        folders = {}
        for label in times:
            folders[label] = os.path.join(scratch, label.replace(" ", "-"))
            make_course(folders[label], stock=label.startswith("stock"))
            nbgrader(folders[label], "generate_assignment", "ps1", "--force",
                     "--CourseDirectory.release_directory=" + os.path.join(scratch, "unused"))
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
