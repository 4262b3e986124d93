"""The instructor's command line: ``nncourse release|grade|demo|figures|data``."""

import argparse
import importlib.util
import os
import shutil
import sys

import nbformat

from . import report, samples
from .course import Course, CourseError
from .datasets import write_offline_datasets


def cmd_release(course, args):
    course.release(args.problem_set)
    print("wrote release/%s and solutions/%s" % (args.problem_set, args.problem_set))
    return 0


def cmd_grade(course, args):
    problem_set = args.problem_set
    course.require_problem_set(problem_set)
    known = course.students(problem_set)
    students = args.student or known
    unknown = [s for s in students if s not in known]
    if unknown:
        raise CourseError("no submission of %s for student %s (expected submitted/%s/%s/)"
                          % (problem_set, ", ".join(unknown), unknown[0], problem_set))
    if not students:
        raise CourseError("no submissions of %s under submitted/" % problem_set)
    ready, problems = course.check_submissions(problem_set, students)
    for problem in problems:
        print("error: " + problem, file=sys.stderr)
    course.register(problem_set)
    for number, student in enumerate(ready, 1):
        print("[%d/%d] grading %s" % (number, len(ready), student), flush=True)
        error = course.autograde(problem_set, student, force=args.force)
        if error:
            problems.append(error)
            print("error: %s: %s" % (student, error), file=sys.stderr)
    rows = report.grade_table(course.db_url, problem_set)
    path = course.path("reports", problem_set + "-grades.csv")
    report.write_csv(rows, path)
    print(report.format_table(rows))
    print("grade table written to %s" % os.path.relpath(path, course.root))
    return 1 if problems else 0


def _catalogue(course, problem_set):
    path = course.path("tests", "catalogue", problem_set + ".py")
    spec = importlib.util.spec_from_file_location("catalogue_" + problem_set, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_demo_submissions(course, problem_set="ps1"):
    """Sample class: a full solution, a blank one, one with a bug, one written differently."""
    catalogue = _catalogue(course, problem_set)
    bug = next(m for m in catalogue.MUTANTS if m.name == "bias gradient averaged instead of summed")
    students = {
        "ada": [],
        "blank": None,
        "carl": bug.edits,
        "dora": [edit for edit in catalogue.EQUIVALENT],
    }
    for notebook_name in course.notebook_names(problem_set):
        release = nbformat.read(course.path("release", problem_set, notebook_name), 4)
        source = nbformat.read(course.path("source", problem_set, notebook_name), 4)
        for student, edits in students.items():
            folder = course.path("submitted", student, problem_set)
            shutil.rmtree(folder, ignore_errors=True)
            os.makedirs(folder)
            notebook = release if edits is None else samples.filled_notebook(release, source, edits)
            samples.write(notebook, os.path.join(folder, notebook_name))
    return sorted(students)


def cmd_demo(course, args):
    print("releasing ps1 (release/ps1, solutions/ps1)")
    course.release("ps1")
    students = build_demo_submissions(course)
    print("sample submissions in submitted/: %s" % ", ".join(students))
    args.problem_set, args.student, args.force = "ps1", students, True
    return cmd_grade(course, args)


def cmd_figures(course, args):
    from .figures import draw_all
    draw_all(course.root)
    return 0


def cmd_data(course, args):
    print("offline datasets written to %s" % write_offline_datasets(args.root))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="nncourse", description=__doc__)
    parser.add_argument("--course", default=None, help="course folder (default: this checkout)")
    commands = parser.add_subparsers(dest="command", required=True)
    release = commands.add_parser("release", help="write release/ and solutions/ from source/")
    release.add_argument("problem_set")
    release.set_defaults(run=cmd_release)
    grade = commands.add_parser("grade", help="autograde submissions and print the grade table")
    grade.add_argument("problem_set")
    grade.add_argument("--student", action="append", help="grade only this student (repeatable)")
    grade.add_argument("--force", action="store_true", help="grade again what is already graded")
    grade.set_defaults(run=cmd_grade)
    demo = commands.add_parser("demo", help="release ps1, make sample submissions, grade them")
    demo.set_defaults(run=cmd_demo)
    figures = commands.add_parser("figures", help="redraw the notebooks' figures")
    figures.set_defaults(run=cmd_figures)
    data = commands.add_parser("data", help="write the offline datasets (MNIST sample, Fashion-MNIST stand-in)")
    data.add_argument("root")
    data.set_defaults(run=cmd_data)
    args = parser.parse_args(argv)
    course = Course(args.course) if args.course else Course()
    try:
        return args.run(course, args)
    except CourseError as error:
        print("error: %s" % error, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
