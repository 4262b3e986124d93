"""Grading through a Dask cluster: starts a scheduler and two workers as separate processes on
127.0.0.1, grades a class of ps1 submissions through them with `nncourse grade --scheduler`,
and, on copies of the same submissions in the same run, with local worker processes and with
stock `nbgrader autograde`.

    .venv/bin/python benchmarks/dask_grading.py --students 12
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time

from _classes import mixed_class, nbgrader, nncourse, submit_class, write_course


def start_cluster(folder):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = "tcp://127.0.0.1:%d" % port
    dask = os.path.join(os.path.dirname(sys.executable), "dask")
    log = open(os.path.join(folder, "dask.log"), "w")
    processes = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                   "--no-dashboard"], stdout=log, stderr=log, cwd=folder)]
    processes += [subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--no-dashboard",
                                    "--local-directory", folder], stdout=log, stderr=log,
                                   cwd=folder) for _ in range(2)]
    from distributed import Client
    with Client(address, timeout="60s") as client:
        client.wait_for_workers(2, timeout=120)
    return address, processes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=12)
    args = parser.parse_args()
    students = mixed_class(args.students)
    times = {}
    with tempfile.TemporaryDirectory() as scratch:
        address, processes = start_cluster(scratch)
        try:
            for label in ("dask (2 workers)", "local (2 workers)", "stock nbgrader"):
                folder = os.path.join(scratch, label.split()[0])
                write_course(folder, stock=label.startswith("stock"))
                submit_class(folder, students)
                start = time.perf_counter()
                if label.startswith("dask"):
                    summary = nncourse(folder, "grade", "ps1", "--scheduler", address).stdout
                    assert "failed 0" in summary, summary
                elif label.startswith("local"):
                    nncourse(folder, "grade", "ps1", "--workers", "2")
                else:
                    nbgrader(folder, "autograde", "ps1")
                times[label] = time.perf_counter() - start
        finally:
            for process in processes[::-1]:
                process.terminate()
                process.wait()
    print("grading %d ps1 submissions (scheduler and workers on 127.0.0.1, %d cores)"
          % (len(students), os.cpu_count()))
    for label, seconds in times.items():
        print("  %-18s %6.1f s  (%.2f s per submission, %.2fx stock's throughput)"
              % (label, seconds, seconds / len(students), times["stock nbgrader"] / seconds))


if __name__ == "__main__":
    main()
