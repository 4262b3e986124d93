"""Faults injected into `nncourse grade` with real signals and processes, and what survives.

Each test runs the real command in a process of its own, kills or interrupts part of it
(the grader, one of its workers, one kernel) at a moment chosen from what it prints or
writes, and checks the grades, the files and the processes left behind, then the next run.
"""

import csv
import os
import signal
import subprocess
import sys
import time

import pytest

from nncourse.autograde import markers as marker_files
from nncourse.sandbox import delegated_cgroups, descendants
from tests.helpers import (cell_scores, environment, expected_total, grade, make_class, markers,
                           processes, scores, submit)

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]

def _start(course, *args, new_session=False):
    return subprocess.Popen(["nncourse", "--course", str(course), "grade", "ps1", *args],
                            cwd=course, env=environment(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=new_session)


def _below(pid):
    return set(descendants(pid)) - {pid}


def _wait_until_gone(pids, seconds=20):
    """The pids of ``pids`` still running after ``seconds`` (zombies count as gone)."""
    deadline = time.monotonic() + seconds
    while True:
        alive = set()
        for pid in pids:
            try:
                with open("/proc/%d/stat" % pid) as stat:
                    if stat.read().rsplit(")", 1)[1].split()[0] != "Z":
                        alive.add(pid)
            except OSError:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def _until(process, text, count=1):
    """Reads the process's output until ``text`` has appeared ``count`` times."""
    seen = 0
    for line in process.stdout:
        seen += text in line
        if seen == count:
            return
    raise AssertionError("the grader ended before printing %r" % text)


def _pool_workers(grader):
    """The local pool's worker processes of a running `nncourse grade` (its spawned children,
    not multiprocessing's resource tracker)."""
    return [pid for pid, (ppid, args) in processes().items()
            if ppid == grader and "spawn_main" in args
            and "resource_tracker import main" not in args]


def _zygote_folders(owners):
    """The zygote folders whose owner (the worker that made them) is one of ``owners``."""
    found = set()
    for name in os.listdir("/tmp"):
        try:
            with open(os.path.join("/tmp", name, "owner")) as data:
                owner = int(data.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        if name.startswith("nncourse-zygote-") and owner in owners:
            found.add(name)
    return found


def _cgroups(owners):
    """The zygotes' cgroups (named after their bwrap) of ``owners``, where this machine
    delegates any to the grader."""
    return {os.path.join(parent, name) for parent in set(delegated_cgroups().values())
            for name in os.listdir(parent) if name.startswith("nncourse-")
            and name[len("nncourse-"):].isdigit() and int(name[len("nncourse-"):]) in owners}


def test_a_killed_grader_leaves_nothing_running_and_the_next_run_grades_only_the_rest(
        tmp_path_factory):
    students = ["full", "blank", "mutant-bias", "mutant-ce"]
    course = make_class(tmp_path_factory, "killed", students)
    process = _start(course, "--workers", "2")
    _until(process, ": graded in", 2)
    below = _below(process.pid)  # workers, resource tracker, bwrap, zygotes, kernels
    assert len(below) >= 4 and _zygote_folders(below)
    os.kill(process.pid, signal.SIGKILL)  # the grader only: what it started must follow
    process.wait()
    assert _wait_until_gone(below) == set()
    done = markers(course)
    assert len(done) >= 2

    result = grade(course, "ps1", "--workers", "1")
    assert result.returncode == 0, result.stderr
    assert "graded %d, already graded %d, failed 0" % (4 - len(done), len(done)) in result.stdout
    for student, marker in done.items():
        assert markers(course)[student] == marker  # not graded a second time
    assert scores(course) == {student: expected_total(student) for student in students}
    # the dead workers' zygote folders and cgroups were removed by the next run (other
    # graders' on this machine are not this test's business)
    assert _zygote_folders(below) == set()
    assert _cgroups(below) == set()


def test_a_worker_killed_from_outside_costs_no_submission(tmp_path_factory):
    students = ["full", "blank", "equivalent", "mutant-bias", "mutant-ce"]
    course = make_class(tmp_path_factory, "dead-worker", students)
    process = _start(course, "--workers", "2")
    _until(process, ": graded in")  # one done, the next ones in flight
    workers = _pool_workers(process.pid)
    assert workers
    os.kill(workers[0], signal.SIGKILL)
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    assert "graded again after a grading worker died" in err
    assert scores(course) == {student: expected_total(student) for student in students}


def test_a_kernel_killed_from_outside_is_graded_again_in_a_fresh_kernel(tmp_path_factory):
    course = make_class(tmp_path_factory, "dead-kernel", ["full"])
    process = _start(course, "--workers", "1")
    # the zygote (whose parent is bwrap) forks a process above each sandboxed kernel
    deadline, killed = time.monotonic() + 120, None
    while killed is None and time.monotonic() < deadline:
        table = processes()
        below = _below(process.pid)
        zygotes = {pid for pid, (ppid, args) in table.items() if pid in below
                   and "zygote" in args and not args.startswith("bwrap")
                   and table.get(ppid, (0, ""))[1].startswith("bwrap")}
        kernels = [pid for pid, (ppid, _) in table.items() if ppid in zygotes]
        if kernels:
            time.sleep(1.0)  # a few cells in
            try:
                os.kill(kernels[0], signal.SIGKILL)
                killed = kernels[0]
            except ProcessLookupError:  # that notebook had just ended: the next one
                continue
        time.sleep(0.1)
    assert killed
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    assert "graded again in a fresh kernel (the kernel died in cell" in err
    assert "SIGKILL" in err
    assert scores(course) == {"full": expected_total("full")}
    marker = marker_files.read(course / "autograded" / "full" / "ps1")
    assert marker["status"] == marker_files.GRADED


def test_ctrl_c_stops_at_once_with_one_line_and_loses_nothing(tmp_path_factory):
    students = ["full", "blank", "equivalent", "mutant-bias", "mutant-ce"]
    course = make_class(tmp_path_factory, "ctrl-c", students)
    for trial in range(2):  # at two moments: after the first and after the second grade
        process = _start(course, "--workers", "2", "--force", new_session=True)
        _until(process, ": graded in", trial + 1)
        below = _below(process.pid)
        interrupted = time.monotonic()
        os.killpg(process.pid, signal.SIGINT)  # as the terminal sends it: to the whole group
        out, err = process.communicate(timeout=60)
        assert time.monotonic() - interrupted < 20
        assert process.returncode == 130, err
        assert "Traceback" not in err
        assert err.strip().splitlines()[-1].startswith("interrupted: the grades written so far")
        assert _wait_until_gone(below) == set()
        for student, marker in markers(course).items():  # what is marked is complete
            assert marker["status"] == marker_files.GRADED
            assert (course / "feedback" / student / "ps1" / "ps1.html").exists()
    result = grade(course, "ps1")
    assert result.returncode == 0, result.stderr
    assert scores(course) == {student: expected_total(student) for student in students}


def test_a_grader_killed_while_writing_feedback_writes_it_on_the_next_run(tmp_path_factory):
    students = ["full", "mutant-bias"]
    course = make_class(tmp_path_factory, "feedback-kill", students)
    process = _start(course, "--workers", "1")
    feedback = course / "feedback"
    deadline = time.monotonic() + 300
    # nbgrader writes the feedback into a scratch folder, moved in place when complete
    while time.monotonic() < deadline and not (
            feedback.is_dir() and any(name.startswith(".partial") for name in
                                      os.listdir(feedback))):
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    writing = [student for student in students
               if not (feedback / student / "ps1" / "ps1.html").exists()]
    assert writing  # killed before the first feedback was complete
    for student in writing:
        assert student not in markers(course)  # so not done: graded again below

    result = grade(course, "ps1", "--workers", "1")
    assert result.returncode == 0, result.stderr
    for student in students:
        assert (feedback / student / "ps1" / "ps1.html").exists()
    assert not [name for name in os.listdir(feedback) if name.startswith(".partial")]
    assert scores(course) == {student: expected_total(student) for student in students}


def test_a_failed_submission_is_never_a_zero_in_the_grade_tables(tmp_path_factory):
    course = make_class(tmp_path_factory, "failed", ["full"])
    # another problem set's notebook handed in under this one's name
    (course / "submitted" / "wrongset" / "ps1").mkdir(parents=True)
    (course / "submitted" / "wrongset" / "ps1" / "ps1.ipynb").write_text(
        (course / "release" / "ps2" / "ps2.ipynb").read_text())
    result = grade(course, "ps1")
    assert result.returncode == 1
    assert "failed 1" in result.stdout and "grading-problems.csv" in result.stdout
    with open(course / "reports" / "grades.csv") as data:
        rows = {row["student"]: row for row in csv.DictReader(data)}
    assert rows["wrongset"]["ps1"] == "" and float(rows["full"]["ps1"]) == expected_total("full")
    with open(course / "reports" / "ps1-grades.csv") as data:
        rows = {row["student"]: row for row in csv.DictReader(data)}
    assert rows["wrongset"]["total"] == ""
    with open(course / "reports" / "grading-problems.csv") as data:
        problems = list(csv.DictReader(data))
    assert [(p["student"], p["status"]) for p in problems] == [("wrongset", "failed")]
    assert problems[0]["reason"]
    with open(course / "reports" / "ps1-pass-rates.csv") as data:
        assert {int(row["students"]) for row in csv.DictReader(data)} == {1}


def _busy(count):
    """``count`` processes that each keep a core busy (the machine's other work)."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def test_on_a_busy_machine_limits_are_cpu_time_and_still_stop_loops_and_sleeps(
        tmp_path_factory):
    course = make_class(tmp_path_factory, "busy", ["full"])
    CPU_LIMIT, WALL_LIMIT = 4, 30  # seconds per cell
    with open(course / "nbgrader_config.py", "a") as config:
        config.write("\nc.LimitedExecute.cell_cpu_limit = %d\nc.Execute.timeout = %d\n"
                     % (CPU_LIMIT, WALL_LIMIT))
    after_relu = "return output_gradient * (input_array > 0)"
    submit(course, "loops", [("relu_solution", after_relu,
                              after_relu + "\n\n\nwhile True:\n    pass")])
    submit(course, "sleeps", [("relu_solution", after_relu,
                               after_relu + "\n\n\nimport time\ntime.sleep(10**6)")])
    hogs = _busy(2 * (os.cpu_count() or 1))  # two per core: every kernel gets a third of one
    try:
        result = grade(course, "ps1", "--workers", "2")
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert result.returncode == 0, result.stderr
    # each cell's work is judged by the CPU time it used, not by how long the machine took
    assert scores(course) == {"full": expected_total("full"), "loops": expected_total("full"),
                              "sleeps": expected_total("full")}
    for student, error in (("loops", "CPUTimeLimit"), ("sleeps", "TimeLimit")):
        _, notebook = cell_scores(course, student)
        stopped = [cell for cell in notebook.cells if cell.cell_type == "code"
                   and any(output.get("ename") == error for output in cell.outputs)]
        assert len(stopped) == 1, (student, [c.outputs for c in stopped])
        assert "while True" in stopped[0].source or "sleep" in stopped[0].source
