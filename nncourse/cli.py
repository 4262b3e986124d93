"""The instructor's command line: ``nncourse release|grade|check|demo|figures|data``."""

import argparse
import os
import signal
import sys
import time


from . import report, samples
from .catalogue import load as load_catalogue
from .course import (Course, CourseError, check_gradebook, environment_on_path,
                     find_course, shown)
from .autograde import ClassGrader, DaskExecutor, GradingError, LocalExecutor, Status, Stop
from .datasets import write_offline_datasets


def cmd_release(course, args):
    course.release(args.problem_set)
    print("wrote release/%s and solutions/%s" % (args.problem_set, args.problem_set))
    return 0


class Progress:
    """A bar on a terminal (done, failed, time left); one line per submission otherwise."""

    def __init__(self, total):
        self.total, self.failed, self.count = total, 0, 0
        self.started = time.perf_counter()
        self.bar = None
        if sys.stderr.isatty() and total:
            from tqdm import tqdm
            self.bar = tqdm(total=total, unit="submission", dynamic_ncols=True)

    def __call__(self, outcome):
        self.count += 1
        self.failed += outcome.status == Status.FAILED
        if self.bar is not None:
            self.bar.set_postfix(failed=self.failed, refresh=False)
            self.bar.update(1)
        else:
            detail = {Status.GRADED: "graded in %.1f s" % outcome.seconds,
                      Status.INCOMPLETE: "graded in part in %.1f s" % outcome.seconds,
                      Status.SKIPPED: "already graded, unchanged",
                      Status.FAILED: "FAILED after %.1f s" % outcome.seconds}[outcome.status]
            print("[%d/%d] %s %s: %s%s" % (self.count, self.total, outcome.problem_set,
                                           shown(outcome.student), detail, self._time_left()),
                  flush=True)
        if outcome.reason:  # it can quote a submission (a cell's id, a kernel's message)
            kind = {Status.FAILED: "error",
                    Status.INCOMPLETE: "warning"}.get(outcome.status, "note")
            message = "%s: %s %s: %s" % (kind, outcome.problem_set, shown(outcome.student),
                                         shown(outcome.reason))
            (self.bar.write if self.bar is not None else print)(message, file=sys.stderr)

    def _time_left(self):
        left = self.total - self.count
        if not left:
            return ""
        seconds = (time.perf_counter() - self.started) / self.count * left
        return " (about %s left)" % ("%d min" % round(seconds / 60) if seconds >= 90
                                     else "%d s" % round(seconds))

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _executor(workers, scheduler):
    if scheduler:
        return DaskExecutor(scheduler)
    return LocalExecutor(workers or os.cpu_count() or 1)


class _Problems:
    """The input problems of one run: each printed as one `error:` line; those of one
    submission also listed in reports/grading-problems.csv."""

    def __init__(self):
        self.lines, self.not_graded = [], []  # not_graded: (problem set, student, why)

    def __call__(self, line, problem_set=None, student=None):
        line = shown(line)
        self.lines.append(line)
        if student is not None:
            self.not_graded.append((problem_set, shown(student), line))
        print("error: " + line, file=sys.stderr)


def _problem_sets(course, named, every, problem):
    """The released problem sets ``named`` (or all of them, ``every``)."""
    problem_sets = course.released() if every else []
    for problem_set in named:
        try:
            course.require_released(problem_set)
            problem_sets.append(problem_set)
        except CourseError as error:
            if len(named) == 1:
                raise
            problem(str(error))  # the others are still graded
    return problem_sets


def _submissions(course, problem_sets, students, problem):
    """The (problem set, student) pairs ready to grade; every other case gets its line."""
    submissions = []
    for problem_set in problem_sets:
        known, misplaced = course.students(problem_set), course.misplaced(problem_set)
        for student in misplaced:
            if not students or student in students:
                problem("found submitted/%s/%s.ipynb: move it to submitted/%s/%s/ to have it "
                        "graded" % (shown(student), problem_set, shown(student), problem_set),
                        problem_set, student)
        for student in students or known:
            if student not in known and student not in misplaced:
                problem("no submission of %s for student %s (expected a folder submitted/%s/%s/)"
                        % (problem_set, student, student, problem_set))
        ready, bad, notes = course.check_submissions(
            problem_set, [s for s in students or known if s in known])
        for student, line in bad:
            problem(line, problem_set, student)
        for line in notes:
            print("note: " + shown(line), file=sys.stderr)
        submissions.extend((problem_set, student) for student in ready)
    with course.gradebook_lock():  # opening a new gradebook creates its tables
        enrolled = report.roster(course.db_url)
    for student in sorted({student for _, student in submissions} - enrolled if enrolled
                          else ()):
        print("note: %s is not in the gradebook's roster (graded all the same; add them with "
              "`nbgrader db student add %s`)" % (shown(student), shown(student)),
              file=sys.stderr)
    return submissions


def _check_sandbox():
    """One line if kernels cannot be sandboxed here; a note if their limits are rlimits only."""
    from .sandbox import Sandbox, undelegated_cgroups
    reason = Sandbox.unavailable()
    if reason:
        raise GradingError("cannot run the students' code in a sandbox: %s (install "
                           "bubblewrap, or pass --no-sandbox to grade without one)" % reason)
    missing = undelegated_cgroups()
    if missing:
        limits = [{"memory": "memory", "pids": "processes", "cpu": "CPU share"}[kind]
                  for kind in missing]
        print("note: no %s cgroup is delegated to the grader: the kernels' %s %s limited by "
              "rlimits only" % (" or ".join(missing), " and ".join(limits),
                                "are" if len(limits) > 1 else "is"), file=sys.stderr)


def _run_grader(course, submissions, force, workers, scheduler, sandbox):
    """Grades the submissions; returns their Outcomes. Ctrl-C or SIGTERM ends the process
    (see _interrupted)."""
    stop = Stop()
    previous = {signum: signal.signal(signum, lambda signum, frame: stop.request(signum))
                for signum in (signal.SIGINT, signal.SIGTERM)}
    executor = _executor(workers, scheduler)
    print("grading %d submissions with %d workers%s" % (
        len(submissions), executor.workers, " on " + scheduler if scheduler else ""),
        flush=True)
    progress = Progress(len(submissions))
    try:
        grader = ClassGrader(course, executor, progress=progress, sandbox=sandbox)
        for problem_set in sorted({ps for ps, _ in submissions}):
            with stop.held(), course.gradebook_lock():
                grader.register(problem_set)
        outcomes = grader.grade(submissions, force=force, stop=stop)
    except KeyboardInterrupt:
        _interrupted(progress, executor, stop.requested or signal.SIGINT)
    except BaseException:
        progress.close()
        executor.close(abort=True)
        raise
    progress.close()
    executor.close()
    for signum, handler in previous.items():
        signal.signal(signum, handler)
    return outcomes


def cmd_grade(course, args):
    return grade(course, args.problem_set, every=args.all, students=args.student,
                 force=args.force, workers=args.workers, scheduler=args.scheduler,
                 sandbox=not args.no_sandbox)


def grade(course, problem_sets=(), every=False, students=None, force=False, workers=None,
          scheduler=None, sandbox=True):
    """`nncourse grade`: the submissions of ``problem_sets`` (or of every released one), of
    ``students`` only if given; prints the progress and the reports; returns the exit status
    (1 when a submission was not graded, or not completely)."""
    if every == bool(problem_sets):
        raise CourseError("name the problem sets to grade, or pass --all")
    problem = _Problems()
    problem_sets = _problem_sets(course, problem_sets, every, problem)
    submissions = _submissions(course, problem_sets, students, problem)
    if not submissions:
        if problem.lines:
            return 1
        raise CourseError("nothing to grade: no submissions of %s under submitted/"
                          % ", ".join(problem_sets))
    if sandbox and not scheduler:  # Dask workers check their own machines
        _check_sandbox()
    started = time.perf_counter()
    outcomes = _run_grader(course, submissions, force, workers, scheduler, sandbox)
    elapsed = time.perf_counter() - started
    summary, path, listed = report.write_reports(course, problem_sets, problem.not_graded)
    print("\n".join(map(shown, summary.split("\n"))), end="")  # it lists student ids
    counts = {status: sum(o.status == status for o in outcomes) for status in Status}
    print("graded %d, already graded %d, failed %d" % (
        counts[Status.GRADED] + counts[Status.INCOMPLETE], counts[Status.SKIPPED],
        counts[Status.FAILED])
        + (" (%d graded in part: a kernel was lost)" % counts[Status.INCOMPLETE]
           if counts[Status.INCOMPLETE] else "")
        + " in %.0f s; class grade table: %s" % (elapsed, os.path.relpath(path, course.root)))
    refreshed = sum(outcome.refreshed for outcome in outcomes)
    if refreshed:
        print("feedback written again for %d already graded submission%s (grades or comments "
              "entered by hand since, or feedback missing)" % (refreshed, "s" * (refreshed != 1)))
    if listed:
        print("%d submissions need a look (failed, incomplete or not graded): %s" % (
            listed, os.path.relpath(course.path("reports", "grading-problems.csv"),
                                    course.root)))
    return 1 if problem.lines or counts[Status.FAILED] or counts[Status.INCOMPLETE] else 0


def _interrupted(progress, executor, signum):
    """Ctrl-C or SIGTERM: the workers and their kernels are ended, one line is printed, and
    the process leaves at once (what is recorded is complete: see autograde.Stop)."""
    progress.close()
    try:
        executor.close(abort=True)
    finally:
        print("interrupted: the grades written so far are kept; run the same command again "
              "to grade the rest", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        # not sys.exit: the pool's threads, waiting on workers that are gone, would hold the
        # interpreter's exit. The pool's semaphores are released first (finalizers that do not
        # wait), or multiprocessing's resource tracker would warn about them on the way out.
        import multiprocessing.util
        multiprocessing.util._run_finalizers(0)
        os._exit(128 + signum)


def build_demo_submissions(course, problem_set="ps1"):
    """Sample class: a full solution, a blank one, one with a bug, one written differently."""
    catalogue = load_catalogue(problem_set)
    bug = next(m for m in catalogue.MUTANTS
               if m.name == "bias gradient averaged instead of summed")
    students = {
        "ada": [],
        "blank": None,
        "carl": bug.edits,
        "dora": [edit for edit in catalogue.EQUIVALENT],
    }
    for student, edits in students.items():
        samples.write_submission(course.root, student, problem_set, {
            name: samples.submission(course.root, problem_set, edits, name)
            for name in course.notebook_names(problem_set)})
    return sorted(students)


def cmd_check(course, args):
    from .authoring import check_problem_set
    course.require_problem_set(args.problem_set)
    started = time.perf_counter()
    findings = check_problem_set(args.problem_set)
    for finding in findings:
        print(finding)
    failed = sum(bool(finding.problems) for finding in findings)
    print("%s: %s in %.0f s" % (args.problem_set, "%d of %d items fail" % (failed, len(findings))
                               if failed else "ready to release", time.perf_counter() - started))
    return 1 if failed else 0


def cmd_demo(course, args):
    print("releasing ps1 (release/ps1, solutions/ps1)")
    course.release("ps1")
    students = build_demo_submissions(course)
    print("sample submissions in submitted/: %s" % ", ".join(students))
    return grade(course, ["ps1"], students=students, force=True)


def cmd_figures(course, args):
    from .figures import draw_all
    draw_all(course.root)
    return 0


def cmd_data(course, args):
    print("offline datasets written to %s" % write_offline_datasets(args.root))
    return 0


def _positive(text):
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError("expected a whole number of at least 1, got %r" % text)
    return int(text)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="nncourse", description=__doc__)
    parser.add_argument("--course", default=None,
                        help="course folder (default: the folder holding nbgrader_config.py, "
                             "here or above, as nbgrader finds it)")
    commands = parser.add_subparsers(dest="command", required=True)
    release = commands.add_parser("release", help="write release/ and solutions/ from source/")
    release.add_argument("problem_set")
    release.set_defaults(run=cmd_release)
    grading = commands.add_parser(
        "grade", help="autograde submissions in parallel; write grade tables, pass rates, "
                      "a grade distribution plot and feedback")
    grading.add_argument("problem_set", nargs="*", help="problem sets to grade (e.g. ps1 ps2)")
    grading.add_argument("--all", action="store_true", help="every released problem set")
    grading.add_argument("--student", action="append", help="grade only this student (repeatable)")
    grading.add_argument("--force", action="store_true",
                       help="grade again what is already graded and unchanged")
    grading.add_argument("--workers", type=_positive,
                         help="worker processes (default: one per core)")
    grading.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                       help="grade on the workers of this Dask scheduler instead")
    grading.add_argument("--db", metavar="URL", help="gradebook database URL "
                       "(default: sqlite:///gradebook.db in the course folder)")
    grading.add_argument("--no-sandbox", action="store_true",
                       help="run the students' code without the sandbox (where bubblewrap is "
                            "not available: the code can then read and change the course)")
    grading.set_defaults(run=cmd_grade)
    check = commands.add_parser(
        "check", help="check a problem set before releasing it: the reference, the catalogue "
                      "of mistakes and rewrites, the visible tests, the policy (in seconds)")
    check.add_argument("problem_set")
    check.set_defaults(run=cmd_check)
    demo = commands.add_parser("demo", help="release ps1, make sample submissions, grade them")
    demo.set_defaults(run=cmd_demo)
    figures = commands.add_parser("figures", help="redraw the notebooks' figures")
    figures.set_defaults(run=cmd_figures)
    data = commands.add_parser(
        "data", help="write the offline datasets (MNIST sample, Fashion-MNIST stand-in)")
    data.add_argument("root")
    data.set_defaults(run=cmd_data)
    args = parser.parse_args(argv)
    environment_on_path()
    try:
        course = None
        if args.run is not cmd_data:  # writes datasets anywhere: no course needed
            course = Course(args.course or find_course(os.getcwd()),
                            db_url=getattr(args, "db", None))
            course.require_course()
            if getattr(args, "db", None):
                check_gradebook(args.db)
        return args.run(course, args)
    except (CourseError, GradingError) as error:
        print("error: %s" % shown(error), file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before or after the grading itself (see _interrupted)
        print("interrupted: the grades written so far are kept; run the same command again "
              "to grade the rest", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
