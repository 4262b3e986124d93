"""The grader's side of a zygote: starting one (in the sandbox or not), giving it job
folders, ending it; and removing what zygotes of dead graders left."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from . import walls, zygote as zygote_program
from .cgroups import confine, delegated_cgroups
from .zygote import DEFAULT_PRELOAD, kernel_environment


_OWNER = "owner"  # in a zygote's folder: "pid start-time" of the process that owns it


def _start_time(pid):
    """When process ``pid`` started (in clock ticks since boot), or None if there is none
    (a zombie counts as none: a worker killed a moment ago, not yet reaped by its parent)."""
    try:
        with open("/proc/%d/stat" % pid) as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return None if fields[0] in ("Z", "X") else int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def running(pid):
    """Whether process ``pid`` runs (a zombie does not)."""
    return _start_time(pid) is not None


def remove_leftovers(older_than=60.0):
    """Removes what zygotes of dead graders left (killed before they could clean up): their
    folders under the temporary directories, and their empty cgroups. A zygote whose owner
    still runs is left alone."""
    if not os.path.isdir("/proc/self"):  # no way to tell a live owner from a dead one
        return 0
    removed = 0
    now = time.time()
    for parent in {"/tmp", tempfile.gettempdir()}:
        try:
            names = os.listdir(parent)
        except OSError:
            continue
        for name in names:
            folder = os.path.join(parent, name)
            if not name.startswith("nncourse-zygote-") or not os.path.isdir(folder):
                continue
            try:
                with open(os.path.join(folder, _OWNER)) as data:
                    pid, started = (int(field) for field in data.read().split())
                alive = _start_time(pid) == started
            except (OSError, ValueError):  # no owner yet, or an older version's folder
                try:
                    alive = now - os.stat(folder).st_mtime < older_than
                except OSError:
                    continue
            if not alive:
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
    for parent in set(delegated_cgroups().values()):
        try:
            names = [n for n in os.listdir(parent) if n.startswith("nncourse-")]
        except OSError:
            continue
        for name in names:
            folder = os.path.join(parent, name)
            owner = name[len("nncourse-"):]  # the zygote's bwrap (see confine)
            try:
                with open(os.path.join(folder, "cgroup.procs")) as data:
                    busy = bool(data.read().strip())
                # (a cgroup is empty for a moment between its making and its first process)
                gone = owner.isdigit() and not running(int(owner))
                if not busy and (gone or now - os.stat(folder).st_mtime >= older_than):
                    os.rmdir(folder)
                    removed += 1
            except OSError:
                continue
    return removed


class Zygote:
    """Owns a zygote process; :meth:`close` (or the owner's exit) ends it and its kernels.

    With a :class:`Sandbox`, the zygote runs inside bubblewrap and so do its kernels; a
    kernel's working folder must then be ``work/`` in a folder made with :meth:`job_folder`.
    """

    def __init__(self, preload=DEFAULT_PRELOAD, env=None, sandbox=None):
        # under /tmp: the sandboxed kernels get a /tmp of their own that hides everything else
        self.folder = tempfile.mkdtemp(prefix="nncourse-zygote-",
                                       dir="/tmp" if sandbox else None)
        with open(os.path.join(self.folder, _OWNER), "w") as out:  # see remove_leftovers
            out.write("%d %d" % (os.getpid(), _start_time(os.getpid()) or 0))
        self.sandbox = sandbox
        arguments = ["--preload", ",".join(preload)]
        if sandbox:
            for name in ("control", "kernels", "jobs", "mpl", "bin"):
                os.mkdir(os.path.join(self.folder, name))
            self.socket_path = os.path.join(self.folder, "control", "zygote.sock")
            script = os.path.join(self.folder, "bin", "zygote.py")
            for module in (zygote_program, walls):  # the program and what it imports
                shutil.copy(os.path.abspath(module.__file__), os.path.join(self.folder, "bin"))
            arguments += ["--socket", self.socket_path,
                          "--sandbox", json.dumps(sandbox.spec(self.folder))]
            command = sandbox.command(self.folder, os.path.join(os.path.realpath(sys.prefix),
                                                                "bin", "python"),
                                      script, arguments)
        else:
            self.socket_path = os.path.join(self.folder, "zygote.sock")
            command = [sys.executable, os.path.abspath(zygote_program.__file__),
                       "--socket", self.socket_path] + arguments
        env = kernel_environment(os.environ if env is None else env)
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        env=env, text=True)
        self.cgroups = []
        ready = self.process.stdout.readline().strip()
        if ready != "ready":
            self.close()
            raise RuntimeError("the kernel zygote did not start (exit status %s)"
                               % self.process.poll())
        if sandbox:
            self.cgroups = confine(self.process.pid, sandbox.limits)

    def job_folder(self):
        """A new folder for one submission: returns the kernel's working folder (``work/``)."""
        parent = self.folder if not self.sandbox else os.path.join(self.folder, "jobs")
        job = tempfile.mkdtemp(prefix="job-", dir=parent)
        for name in ("work", "tmp"):
            os.mkdir(os.path.join(job, name))
        return os.path.join(job, "work")

    def close(self):
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._remove()

    def kill(self):
        """Ends the zygote and its kernels at once (bwrap's namespace dies with its first
        process), then removes what it leaves. For a signal handler in a process about to
        leave: it takes no lock (Popen's and the streams' could be held by the code it
        interrupted, and would never be released)."""
        if self.process.returncode is None:  # not reaped yet, so the pid is still its own
            try:
                os.kill(self.process.pid, signal.SIGKILL)
                os.waitpid(self.process.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass  # already gone
        self._remove_files()

    def _remove(self):
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except (OSError, ValueError):
                pass
        self._remove_files()

    def _remove_files(self):
        # the socket, and the Unix sockets of kernels killed before they could remove them
        shutil.rmtree(self.folder, ignore_errors=True)
        for folder in self.cgroups:
            for _ in range(100):  # its last processes may take a moment to leave
                try:
                    os.rmdir(folder)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)
