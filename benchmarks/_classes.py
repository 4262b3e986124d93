"""Scratch courses for the benchmarks: the same submissions (ps1 unless said otherwise)
graded by stock nbgrader and by nncourse. Run from the repository root."""

import os
import re
import shutil
import subprocess
import sys


from nncourse import samples
from nncourse.catalogue import load as load_catalogue
from nncourse.course import ROOT
from nncourse.datasets import write_offline_datasets


def write_course(folder, stock, problem_set="ps1"):
    """source/, release/ and the config; ``stock`` drops nncourse's autograde preprocessors,
    so the hidden checks run and are judged in the student's kernel as nbgrader does it."""
    for name in ("source", "release"):
        shutil.copytree(os.path.join(ROOT, name), os.path.join(folder, name))
    config = open(os.path.join(ROOT, "nbgrader_config.py")).read()
    if stock:  # (and stock autograde allowed, which the course's own config refuses)
        config = re.sub(r"c\.Autograde\.autograde_preprocessors = \[.*?\]\n", "", config,
                        flags=re.S)
        config = config.replace("\nrefuse_stock_autograde()\n", "\n")
    with open(os.path.join(folder, "nbgrader_config.py"), "w") as out:
        out.write(config)
    nbgrader(folder, "generate_assignment", problem_set, "--force",
             "--CourseDirectory.release_directory=" + os.path.join(folder, "unused"))


def mixed_class(count, problem_set="ps1"):
    """``count`` students: half correct (the reference or a rewrite), a third with one
    mistake from the problem set's catalogue, the rest blank."""
    catalogue = load_catalogue(problem_set)
    mutants = list(catalogue.MUTANTS)
    students = {}
    for number in range(count):
        kind = number % 6
        if kind in (0, 1, 2):
            edits = [] if kind != 2 else list(catalogue.EQUIVALENT)
        elif kind in (3, 4):
            edits = mutants[(number * 7) % len(mutants)].edits
        else:
            edits = None
        students["student%03d" % number] = edits
    return students


def submit_class(folder, students, problem_set="ps1"):
    for student, edits in students.items():
        samples.write_submission(folder, student, problem_set, {
            problem_set + ".ipynb": samples.submission(folder, problem_set, edits)})


def environment(folder):
    return dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
                NNCOURSE_DATA=write_offline_datasets(os.path.join(folder, "data")))


def nbgrader(folder, *args):
    subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=folder, check=True,
                   env=environment(folder), capture_output=True)


def nncourse(folder, *args, check=True):
    result = subprocess.run([os.path.join(os.path.dirname(sys.executable), "nncourse"),
                             "--course", folder, *args], cwd=folder, env=environment(folder),
                            capture_output=True, text=True)
    if check and result.returncode != 0:
        raise SystemExit("nncourse %s failed:\n%s" % (" ".join(args), result.stderr))
    return result
