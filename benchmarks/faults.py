"""Faults injected into `nncourse grade` of a 16-student ps1 class on 2 workers, with real
signals and processes, and what survives each: how many submissions the faulty run graded,
how many of the submissions it marked done have a wrong grade or no feedback (against a clean
run of the same class), how many grades are wrong or missing after one more run of the same
command, what it left behind (processes,
zygote folders, cgroups), and the seconds the faulty run took (for Ctrl-C: to stop).

    .venv/bin/python benchmarks/faults.py [--students 16] [--only ctrl-c]

Run from the repository root. Each fault gets a fresh copy of the class.
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

from _classes import environment, mixed_class, submit_class, write_course
from nncourse import report
from nncourse.autograde import markers
from nncourse.course import Course
from nncourse.sandbox import delegated_cgroups, descendants, remove_leftovers
from tests.helpers import processes


class Run:
    """One `nncourse grade ps1` in a process group of its own."""

    def __init__(self, folder, *args):
        self.folder = folder
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [os.path.join(os.path.dirname(sys.executable), "nncourse"), "--course", folder,
             "grade", "ps1", "--workers", "2", *args], cwd=folder, env=environment(folder),
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            start_new_session=True)
        self.graded = 0

    def until_graded(self, count):
        for line in self.process.stdout:
            self.graded += ": graded" in line
            if self.graded >= count:
                return
        raise SystemExit("the run ended before %d submissions were graded" % count)

    def finish(self, timeout=1800):
        out, _ = self.process.communicate(timeout=timeout)
        self.graded += out.count(": graded")
        return time.monotonic() - self.started

    def below(self):
        return set(descendants(self.process.pid)) - {self.process.pid}


def _alive(pid):
    return os.path.exists("/proc/%d" % pid)


def _leftovers():
    """What zygotes of dead owners left: folders (whose owner, the worker that made them, is
    gone) and cgroups (whose zygote's bwrap is gone). Others' live zygotes do not count."""
    folders = 0
    for name in os.listdir("/tmp"):
        if name.startswith("nncourse-zygote-"):
            try:
                with open(os.path.join("/tmp", name, "owner")) as data:
                    folders += not _alive(int(data.read().split()[0]))
            except (OSError, ValueError, IndexError):
                folders += 1
    cgroups = sum(name[len("nncourse-"):].isdigit() and not _alive(int(name[len("nncourse-"):]))
                  for parent in set(delegated_cgroups().values())
                  for name in os.listdir(parent) if name.startswith("nncourse-"))
    return folders, cgroups


def _scores(folder):
    """{student: score} as recorded in the course's gradebook ("" where grading failed)."""
    gradebook = os.path.join(folder, "gradebook.db")
    if not os.path.exists(gradebook):
        return {}
    scores = {row["student"]: row["score"]
              for row in report.grade_table("sqlite:///" + gradebook, "ps1")}
    for student, (status, _) in markers.problems(Course(folder), "ps1").items():
        if status == markers.FAILED:
            scores[student] = ""
    return scores


def _wrong(folder, expected, done_only):
    """Students whose grade in the gradebook differs from the clean run's, or whose feedback
    is missing; ``done_only``: among those marked done (what a killed run must never get
    wrong), else among all (what a rerun must leave right)."""
    scores = _scores(folder)
    wrong = 0
    for student, score in expected.items():
        marker = markers.read(os.path.join(folder, "autograded", student, "ps1"))
        done = marker is not None and marker["status"] == markers.GRADED
        if done_only and not done:
            continue
        html = os.path.join(folder, "feedback", student, "ps1", "ps1.html")
        wrong += scores.get(student) != score or (done and not os.path.exists(html))
    return wrong


class Bench:
    def __init__(self, scratch, students):
        self.scratch, self.students, self.count = scratch, students, 0
        self.rows = []
        self.expected = None

    def course(self, config=""):
        self.count += 1
        folder = os.path.join(self.scratch, "course%02d" % self.count)
        write_course(folder, stock=False)
        if config:
            with open(os.path.join(folder, "nbgrader_config.py"), "a") as out:
                out.write("\n" + config + "\n")
        submit_class(folder, self.students)
        return folder

    def record(self, fault, folder, run, seconds, below, rerun=True, expected=None):
        time.sleep(10)  # whatever outlives the grader has had time to notice
        alive = len(below & set(processes()))
        folders, cgroups = _leftovers()
        expected = expected or self.expected
        lost_now = _wrong(folder, expected, done_only=True)
        lost_after = "-"
        if rerun:
            again = Run(folder)
            again.finish()
            lost_after = _wrong(folder, expected, done_only=False)
        left = "%d processes, %d folders, %d cgroups" % (alive, folders, cgroups)
        self.rows.append((fault, run.graded, lost_now, lost_after, left, seconds))
        print("  %s: graded %d, wrong %s then %s, left %s, %.1f s"
              % (fault, run.graded, lost_now, lost_after, left, seconds), flush=True)

    def clean(self):
        remove_leftovers()  # of earlier crashes: what this run leaves is what counts
        folder = self.course()
        run = Run(folder)
        seconds = run.finish()
        self.expected = _scores(folder)
        self.record("none (a clean run)", folder, run, seconds, set(), rerun=False)

    def worker_killed(self):
        folder = self.course()
        run = Run(folder)
        run.until_graded(4)
        workers = [pid for pid, (ppid, args) in processes().items()
                   if ppid == run.process.pid and "spawn_main" in args
                   and "resource_tracker import main" not in args]
        below = run.below()
        os.kill(workers[0], signal.SIGKILL)
        self.record("SIGKILL of one pool worker at [4/%d]" % len(self.students), folder, run,
                    run.finish(), below - {workers[0]}, rerun=False)

    def grader_killed(self):
        folder = self.course()
        run = Run(folder)
        run.until_graded(6)
        below = run.below()
        os.kill(run.process.pid, signal.SIGKILL)
        seconds = run.finish()
        self.record("SIGKILL of the grader at [6/%d], then a rerun" % len(self.students),
                    folder, run, seconds, below)

    def feedback_killed(self):
        folder = self.course()
        run = Run(folder)
        feedback = os.path.join(folder, "feedback")
        while not (os.path.isdir(feedback) and any(name.startswith(".partial")
                                                   for name in os.listdir(feedback))):
            time.sleep(0.005)
        below = run.below()
        os.kill(run.process.pid, signal.SIGKILL)
        seconds = run.finish()
        self.record("SIGKILL while feedback is written, then a rerun", folder, run, seconds,
                    below)

    def ctrl_c(self, trials=3):
        folder = self.course()
        slowest, graded, below = 0.0, 0, set()
        for trial in range(trials):
            run = Run(folder, "--force")
            run.until_graded(2 + 2 * trial)
            below |= run.below()
            asked = time.monotonic()
            os.killpg(run.process.pid, signal.SIGINT)
            run.finish(timeout=300)
            slowest = max(slowest, time.monotonic() - asked)
            graded += run.graded
            if run.process.returncode != 130:
                print("  Ctrl-C trial %d: exit status %s" % (trial, run.process.returncode))
        run.graded = graded
        self.record("Ctrl-C (SIGINT to the group), %d trials: seconds to stop" % trials,
                    folder, run, slowest, below)

    def kernel_killed(self):
        folder = self.course()
        run = Run(folder)
        run.until_graded(3)
        table = processes()
        below = run.below()
        zygotes = {pid for pid, (ppid, args) in table.items() if pid in below
                   and "zygote" in args and not args.startswith("bwrap")
                   and table.get(ppid, (0, ""))[1].startswith("bwrap")}
        kernels = [pid for pid, (ppid, _) in table.items() if ppid in zygotes]
        os.kill(kernels[0], signal.SIGKILL)
        self.record("a kernel killed from outside", folder, run, run.finish(), set(),
                    rerun=False)

    def busy(self, limit=2, hogs_per_core=8, students=4):
        """The first ``students`` of the class beside ``hogs_per_core`` busy processes per
        core (each kernel gets about a ninth of a core), with cells limited to ``limit``
        seconds of wall-clock time (the old rule) and of CPU time (now)."""
        hogs, everyone = [], self.students
        self.students = dict(list(everyone.items())[:students])
        expected = {student: self.expected[student] for student in self.students}
        try:
            for label, config in (
                    ("busy machine, cells limited to %d s of wall-clock time (before)" % limit,
                     "c.LimitedExecute.cell_cpu_limit = 0\nc.Execute.timeout = %d" % limit),
                    ("busy machine, cells limited to %d s of CPU time (now)" % limit,
                     "c.LimitedExecute.cell_cpu_limit = %d\nc.Execute.timeout = 120" % limit)):
                folder = self.course(config)
                if not hogs:
                    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                            for _ in range(hogs_per_core * (os.cpu_count() or 1))]
                run = Run(folder)
                self.record(label + ", %d students" % students, folder, run, run.finish(),
                            set(), rerun=False, expected=expected)
        finally:
            self.students = everyone
            for hog in hogs:
                hog.kill()
                hog.wait()

    def failed_submission(self):
        folder = self.course()
        wrong = os.path.join(folder, "submitted", "wrongset", "ps1")
        os.makedirs(wrong)
        with open(os.path.join(folder, "release", "ps2", "ps2.ipynb")) as data, \
                open(os.path.join(wrong, "ps1.ipynb"), "w") as out:
            out.write(data.read())
        run = Run(folder)
        seconds = run.finish()
        score = _scores(folder).get("wrongset")
        self.record("another problem set's notebook (grades.csv: %r)" % score, folder, run,
                    seconds, set(), rerun=False, expected=dict(self.expected, wrongset=""))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=16)
    parser.add_argument("--only", help="one fault: worker, grader, feedback, ctrl-c, kernel, "
                                       "busy, failed")
    args = parser.parse_args()
    faults = {"worker": "worker_killed", "grader": "grader_killed",
              "feedback": "feedback_killed", "ctrl-c": "ctrl_c", "kernel": "kernel_killed",
              "busy": "busy", "failed": "failed_submission"}
    with tempfile.TemporaryDirectory(prefix="nncourse-faults-") as scratch:
        bench = Bench(scratch, mixed_class(args.students))
        print("%d-student ps1 class, 2 workers, %d cores" % (args.students, os.cpu_count()))
        bench.clean()
        for name, method in faults.items():
            if args.only in (None, name):
                getattr(bench, method)()
    print("\n| fault | graded by that run | of those marked done, wrong | wrong or missing "
          "after a rerun | left behind | seconds |\n|---|---|---|---|---|---|")
    for fault, graded, lost_now, lost_after, left, seconds in bench.rows:
        print("| %s | %d | %s | %s | %s | %.1f |" % (fault, graded, lost_now, lost_after, left,
                                                     seconds))


if __name__ == "__main__":
    main()
