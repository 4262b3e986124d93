"""The sandbox's outer wall: the limits a sandboxed kernel runs under, and the bubblewrap
command line that starts a zygote inside it."""

import os
import shutil
import subprocess
import sys

from traitlets import Integer
from traitlets.config import Configurable

from .walls import STAGE


def _ancestors(path):
    """``path`` and the folders above it, but the root."""
    found = []
    while path not in ("/", ""):
        found.append(path)
        path = os.path.dirname(path)
    return found


class Sandbox(Configurable):
    """The limits a sandboxed kernel runs under, and how to start a zygote inside bubblewrap.

    Nothing is visible inside but the system's and Python's files (read-only; of /etc only
    what loading libraries needs, and a user list of its own: ``ETC``), the folders
    named in ``read_only`` (the course's datasets) and the zygote's own folder, which holds
    ``control/`` (the zygote's socket), ``kernels/`` (one folder of connection files and
    sockets per kernel), ``jobs/`` (one folder per submission being graded: ``work/`` and
    ``tmp/``) and ``mpl/`` (matplotlib's cache, made once per zygote). No network.

    The limits are settings of ``nbgrader_config.py`` (``c.Sandbox.memory_mb = 8192``);
    ``cpus`` (the kernel's share of the cores), ``read_only`` and ``hidden`` are the worker's.
    """

    memory_mb = Integer(4096, help="memory a kernel may allocate beyond what it inherits from "
                        "the zygote, in MB (where a memory cgroup is delegated, the zygote's "
                        "holds 2 GB more)").tag(config=True)
    processes = Integer(512, help="processes and threads of a kernel (for root, who is not "
                        "bound by RLIMIT_NPROC, where a pids cgroup is delegated)"
                        ).tag(config=True)
    file_mb = Integer(256, help="the largest file a kernel may write, in MB").tag(config=True)
    tmp_mb = Integer(512, help="a kernel's /tmp (in memory), in MB").tag(config=True)
    job_mb = Integer(512, help="what a kernel may write into its submission's folder, in MB"
                     ).tag(config=True)
    shm_mb = Integer(256, help="a kernel's /dev/shm (PyTorch's DataLoader workers), in MB"
                     ).tag(config=True)

    def __init__(self, cpus=None, read_only=(), hidden=(), **kwargs):
        super().__init__(**kwargs)
        self.limits = {"memory_mb": self.memory_mb, "processes": self.processes,
                       "file_mb": self.file_mb, "cpus": cpus}
        self.read_only = [os.path.realpath(path) for path in read_only]
        # folders inside the visible ones that must look empty (the checks' answer keys)
        self.hidden = [os.path.realpath(path) for path in hidden if os.path.isdir(path)]

    @staticmethod
    def unavailable():
        """Why kernels cannot be sandboxed on this machine, or None when they can."""
        if not sys.platform.startswith("linux"):
            return "the sandbox needs Linux (bubblewrap and namespaces)"
        if not shutil.which("bwrap"):
            return "bubblewrap (bwrap) is not installed"
        probe = subprocess.run(["bwrap", "--ro-bind", "/", "/", "--unshare-all", "true"],
                               capture_output=True, text=True)
        if probe.returncode != 0:
            return "bubblewrap cannot create namespaces here (%s)" % (
                probe.stderr.strip().splitlines() or ["exit status %d" % probe.returncode])[0]
        return None

    def command(self, folder, python, script, arguments):
        """The bwrap command line that runs ``python script arguments`` in the sandbox."""
        prefixes = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)}
        # As root, bubblewrap makes no user namespace, so that the zygote may give each kernel
        # a uid of its own (sandbox/walls.py); otherwise it must, and kernels keep the
        # grader's unprivileged uid.
        unshare = (["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
                    "--unshare-cgroup-try"] if os.geteuid() == 0 else ["--unshare-all"])
        command = ["bwrap", "--die-with-parent", *unshare, "--new-session",
                   "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        for path in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
            if os.path.islink(path):  # merged /usr: /lib -> usr/lib
                command += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                command += ["--ro-bind", path, path]
        command += self._etc(folder)
        # the folders above them, which bwrap would make private to root (kernels run as
        # another user: sandbox/walls.py)
        above = {os.path.dirname(path) for path in prefixes | set(self.read_only)}
        above = {ancestor for path in above for ancestor in _ancestors(path)}
        for path in sorted(above):
            command += ["--perms", "0755", "--dir", path]
        for path in sorted(prefixes | set(self.read_only)):
            command += ["--ro-bind", path, path]
        for path in self.hidden:
            command += ["--tmpfs", path]
        command += ["--bind", folder, folder]
        for name in sorted(os.listdir("/dev")):  # a GPU, when there is one
            if name.startswith("nvidia"):
                command += ["--dev-bind", "/dev/" + name, "/dev/" + name]
        # one mount point per folder a kernel keeps: its job, its kernel folder, the read-only ones
        command += ["--dir", STAGE]
        for number in range(2 + len(self.spec(folder)["read_only"])):
            command += ["--dir", "%s/%d" % (STAGE, number)]
        command += ["--setenv", "MPLCONFIGDIR", os.path.join(folder, "mpl"),
                    "--setenv", "HOME", os.path.join(folder, "mpl"), "--chdir", folder]
        return command + [python, "-s", script] + arguments

    # What of the host's /etc a kernel needs (finding libraries, the time zone, program
    # alternatives); the rest (users, passwords, the host's services) is not there.
    ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "alternatives",
           "nsswitch.conf", "mime.types", "fonts")

    def _etc(self, folder):
        """bwrap arguments for the sandbox's own /etc: a few of the host's files and a user
        list that names only root and nobody (written into ``folder``)."""
        own = os.path.join(folder, "etc")
        os.makedirs(own, exist_ok=True)
        with open(os.path.join(own, "passwd"), "w") as out:
            out.write("root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n"
                      "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
        with open(os.path.join(own, "group"), "w") as out:
            out.write("root:x:0:\nnogroup:x:65534:\n")
        arguments = ["--dir", "/etc"]
        for name in ("passwd", "group"):
            arguments += ["--ro-bind", os.path.join(own, name), "/etc/" + name]
        for name in self.ETC:
            if os.path.exists(os.path.join("/etc", name)):
                arguments += ["--ro-bind", os.path.join("/etc", name), "/etc/" + name]
        return arguments

    def spec(self, folder):
        """What each kernel needs to enter its own sandbox (sent to the zygote as JSON)."""
        mpl = os.path.join(folder, "mpl")
        return {"limits": self.limits, "tmp_mb": self.tmp_mb, "job_mb": self.job_mb,
                "shm_mb": self.shm_mb, "mplconfigdir": mpl,
                "read_only": [mpl] + self.read_only}
