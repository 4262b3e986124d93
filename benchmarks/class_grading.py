"""Throughput of grading a class of submissions (ps1 unless --problem-set says otherwise):
stock `nbgrader autograde` (one process, one submission after another) beside `nncourse
grade` (all cores, forked kernels), on the same submissions in the same run; then where one
submission's time goes.

    .venv/bin/python benchmarks/class_grading.py --students 40 [--problem-set ps4]

The mix: half correct (the reference or a rewrite), a third with one catalogue mistake, the
rest blank. nncourse's time is the whole command (gradebook registration, grading, reports
and HTML feedback); stock's is shown for `nbgrader autograde` alone and followed by
`nbgrader generate_feedback` (the same outputs).
"""

import argparse
import datetime
import os
import re
import statistics
import sys
import tempfile
import time

import nbformat

from _classes import environment, mixed_class, nbgrader, nncourse, submit_class, write_course
from nncourse import samples
from nncourse.course import ROOT


def class_times(scratch, students, workers, problem_set):
    folders = {}
    for label in ("stock", "nncourse"):
        folders[label] = os.path.join(scratch, label)
        write_course(folders[label], stock=label == "stock", problem_set=problem_set)
        submit_class(folders[label], students, problem_set)
    start = time.perf_counter()
    nbgrader(folders["stock"], "autograde", problem_set)
    stock = time.perf_counter() - start
    start = time.perf_counter()
    nbgrader(folders["stock"], "generate_feedback", problem_set)
    stock_feedback = time.perf_counter() - start
    args = ["grade", problem_set] + (["--workers", str(workers)] if workers else [])
    start = time.perf_counter()
    output = nncourse(folders["nncourse"], *args).stdout
    ours = time.perf_counter() - start
    return stock, stock_feedback, ours, output


def _cell_seconds(cell):
    timing = cell.metadata.get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not (start and end):
        return 0.0
    parse = lambda text: datetime.datetime.fromisoformat(text.rstrip("Z"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def breakdown(scratch, runs, problem_set):
    """One reference submission: kernel start (fresh and forked), the import cell, the rest
    of the notebook, in a kernel; and the notebook's code as a plain Python script."""
    import subprocess
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient
    from traitlets.config import Config
    from nncourse.sandbox import Zygote
    from nncourse.sandbox.manager import ForkedKernelManager

    name = problem_set + ".ipynb"
    release = nbformat.read(os.path.join(ROOT, "release", problem_set, name), 4)
    source = nbformat.read(os.path.join(ROOT, "source", problem_set, name), 4)
    filled = samples.filled_notebook(release, source)
    env = environment(scratch)
    env["NBGRADER_EXECUTION"] = "autograde"
    os.environ.update(NBGRADER_EXECUTION="autograde", NNCOURSE_DATA=env["NNCOURSE_DATA"])
    class FreshKernelManager(AsyncKernelManager):  # nbgrader's, without its startup warnings
        async def _async_launch_kernel(self, kernel_cmd, **kw):
            kw.setdefault("stderr", subprocess.DEVNULL)
            return await super()._async_launch_kernel(kernel_cmd, **kw)

    zygote = Zygote()
    config = Config()
    config.ForkedKernelManager.zygote_socket = zygote.socket_path
    figures = {}
    for label, manager in (("fresh kernel", FreshKernelManager),
                            ("forked kernel", ForkedKernelManager)):
        for _ in range(runs):
            notebook = nbformat.from_dict(filled)
            client = NotebookClient(notebook, timeout=120, allow_errors=True, record_timing=True,
                                    kernel_manager_class=manager, config=config,
                                    resources={"metadata": {"path": scratch}})
            start = time.perf_counter()
            with client.setup_kernel():
                started = time.perf_counter()
                for index, cell in enumerate(notebook.cells):
                    client.execute_cell(cell, index)
                executed = time.perf_counter()
            end = time.perf_counter()
            code = [c for c in notebook.cells if c.cell_type == "code"]
            imports = _cell_seconds(code[0])
            cells = sum(_cell_seconds(c) for c in code[1:])
            for key, value in (("start", started - start), ("imports", imports),
                               ("rest of the notebook", cells),
                               ("messaging between cells", executed - started - imports - cells),
                               ("shutdown", end - executed), ("total", end - start)):
                figures.setdefault((label, key), []).append(value)
    zygote.close()
    script = "\n".join(cell.source for cell in filled.cells if cell.cell_type == "code")
    # IPython magics (%matplotlib inline) are not Python
    script = "\n".join(line for line in script.splitlines() if not re.match(r"[%!][a-z]", line))
    path = os.path.join(scratch, "notebook_as_script.py")
    with open(path, "w") as out:
        out.write(script)
    for _ in range(runs):
        start = time.perf_counter()
        result = subprocess.run([sys.executable, path], cwd=scratch, env=env,
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit("the notebook as a script failed:\n" + result.stderr[-2000:])
        figures.setdefault(("plain python", "total"), []).append(time.perf_counter() - start)
    return {key: statistics.median(values) for key, values in figures.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=40)
    parser.add_argument("--workers", type=int, default=0, help="default: one per core")
    parser.add_argument("--runs", type=int, default=3, help="runs of the breakdown")
    parser.add_argument("--problem-set", default="ps1")
    args = parser.parse_args()
    students = mixed_class(args.students, args.problem_set)
    with tempfile.TemporaryDirectory() as scratch:
        stock, stock_feedback, ours, output = class_times(scratch, students, args.workers,
                                                          args.problem_set)
        n = len(students)
        print("grading %d %s submissions on %d cores" % (n, args.problem_set, os.cpu_count()))
        print("  stock nbgrader autograde:               %6.1f s  (%.2f s per submission)"
              % (stock, stock / n))
        print("  stock autograde + generate_feedback:    %6.1f s  (%.2f s per submission)"
              % (stock + stock_feedback, (stock + stock_feedback) / n))
        print("  nncourse grade (grading, reports, feedback): %.1f s  (%.2f s per submission)"
              % (ours, ours / n))
        print("  throughput ratio nncourse / stock autograde alone: %.2fx" % (stock / ours))
        print("  throughput ratio nncourse / stock with feedback:   %.2fx"
              % ((stock + stock_feedback) / ours))
        print("  nncourse's summary: " + output.strip().splitlines()[-1])
        core_seconds = ours * os.cpu_count() / n
        figures = breakdown(os.path.join(scratch, "stock"), args.runs, args.problem_set)
    print("\none reference submission, medians of %d runs (seconds):" % args.runs)
    for label in ("fresh kernel", "forked kernel"):
        print("  " + label + ": " + ", ".join("%s %.2f" % (key, value)
                                              for (kind, key), value in figures.items()
                                              if kind == label))
    print("  the notebook's code as a plain Python script (interpreter start included): %.2f"
          % figures[("plain python", "total")])
    print("nncourse grade used %.2f core-seconds per submission of the class (a mix with blanks),"
          " everything included; a reference submission's forked kernel alone takes %.2f"
          % (core_seconds, figures[("forked kernel", "total")]))


if __name__ == "__main__":
    main()
