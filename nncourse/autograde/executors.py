"""Where step 2 runs: a pool of local worker processes, or the workers of a Dask cluster.
Both take a prepared submission (:class:`.records.Prepared`) and give back a future of
:func:`nncourse.autograde.worker.execute_submission`'s result."""

import multiprocessing
import os
import sys
import time
from concurrent import futures

from ..sandbox import remove_leftovers
from .records import GradingError
from .worker import init_local_worker, execute_submission


class LocalExecutor:
    """Worker processes on this machine (spawned, so they share nothing with the grader)."""

    def __init__(self, workers):
        self.workers = workers
        # The pool's resource tracker (a process of its own, started with these options)
        # cleans up after a grader ended by Ctrl-C and warns of each semaphore already gone:
        # noise after the one line an interrupted run prints.
        quiet = "ignore::UserWarning:multiprocessing.resource_tracker"
        if quiet not in sys.warnoptions:
            sys.warnoptions.append(quiet)
        self.pool = self._new_pool()

    def _new_pool(self):
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        return futures.ProcessPoolExecutor(
            self.workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=init_local_worker, initargs=(threads, os.getpid()))

    def submit(self, prepared):
        return self.pool.submit(execute_submission, prepared)

    @staticmethod
    def lost_worker(exc):
        """Whether a job failed because a worker process died (killed, out of memory): then
        every job in flight fails with it, and the pool must be replaced."""
        return isinstance(exc, futures.process.BrokenProcessPool)

    def restart(self):
        """A new pool in place of a broken one (its dead workers' zygotes die with them, and
        what those leave is removed)."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        remove_leftovers()
        self.pool = self._new_pool()

    def wait(self, pending, stop):
        """The jobs of ``pending`` that are done, once there is one (``stop`` is checked
        twice a second meanwhile)."""
        while True:
            done, _ = futures.wait(pending, timeout=0.5, return_when=futures.FIRST_COMPLETED)
            stop.check()
            if done:
                return done

    def close(self, abort=False):
        if not abort:
            self.pool.shutdown(wait=True)
            remove_leftovers()  # of workers that died during the run, now surely gone
            return
        # interrupted: the submissions in flight are dropped (they are not recorded); a worker
        # kills its zygote, and with it the kernels, on SIGTERM
        processes = list((self.pool._processes or {}).values())
        for process in processes:
            process.terminate()
        deadline = time.monotonic() + 10
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
        self.pool.shutdown(wait=False, cancel_futures=True)


class DaskExecutor:
    """The workers of a running Dask scheduler (``tcp://host:port``)."""

    def __init__(self, address):
        from distributed import Client
        try:
            self.client = Client(address, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise GradingError("cannot reach the Dask scheduler at %s (%s)" % (address, exc))
        self.workers = max(1, len(self.client.scheduler_info()["workers"]))

    def submit(self, prepared):
        return self.client.submit(execute_submission, prepared, pure=False)

    @staticmethod
    def lost_worker(exc):
        return False  # the scheduler itself runs a dead worker's tasks again elsewhere

    def restart(self):
        pass

    def wait(self, pending, stop):
        from distributed import wait
        while True:
            try:
                done, _ = wait(list(pending), timeout=0.5, return_when="FIRST_COMPLETED")
            except TimeoutError:
                done = set()
            stop.check()
            if done:
                return done

    def close(self, abort=False):
        self.client.close()  # the scheduler forgets the tasks of a closed client
