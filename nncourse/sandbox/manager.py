"""The kernel manager that nbclient uses to start a kernel by forking a zygote, and the CPU
time of a kernel's processes (for the grader's time limits)."""

import os
import shutil
import subprocess
import sys
import tempfile

from jupyter_client.manager import AsyncKernelManager
from traitlets import Unicode, default

from . import launcher

# the launcher is run as a program (no package to import: it starts with every kernel)
LAUNCHER = os.path.abspath(launcher.__file__)


def _tree_cpu(root):
    """Seconds of CPU time used by ``root`` and every process below it, ended ones included
    once their parent has reaped them (they count in its children's times)."""
    ticks = os.sysconf("SC_CLK_TCK")
    children, used = {}, {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(name))
        used[int(name)] = sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    if root not in used:
        return None
    below, total = [root], 0
    while below:
        pid = below.pop()
        total += used.get(pid, 0)
        below += children.get(pid, [])
    return total / ticks


def kernel_cpu_seconds(pid_file):
    """CPU time used so far by the kernel whose launcher wrote ``pid_file``, or None (not
    known: not Linux, the kernel not started yet, or gone)."""
    try:
        with open(pid_file) as data:
            return _tree_cpu(int(data.read()))
    except (OSError, ValueError):
        return None


class ForkedKernelManager(AsyncKernelManager):
    """Starts Python kernels by forking the zygote listening on ``zygote_socket``."""

    zygote_socket = Unicode("", help="Unix socket of a running zygote").tag(config=True)

    # Kernels talk over Unix sockets in the zygote's private folder, not over TCP: the
    # client picks free TCP ports and closes them before the kernel binds them, and with
    # several kernels starting at once another process can take one in between (the
    # kernel then dies at startup, "Address already in use").
    @default("transport")
    def _transport_default(self):
        return "ipc" if self.zygote_socket else "tcp"

    @default("ip")
    def _ip_default(self):
        if self.transport != "ipc":
            return super()._ip_default()
        return os.path.join(self._kernel_folder(), "ipc")

    def _kernel_folder(self):
        """This kernel's own folder of connection file and sockets, beside the zygote's
        socket (a sandboxed kernel sees this folder and no other)."""
        if getattr(self, "_folder", None) is None:
            zygote = os.path.dirname(self.zygote_socket)
            if os.path.basename(zygote) == "control":  # a sandboxed zygote's layout
                zygote = os.path.join(os.path.dirname(zygote), "kernels")
            self._folder = tempfile.mkdtemp(prefix="kernel-", dir=zygote)
        return self._folder

    async def _async_pre_start_kernel(self, **kw):
        if self.zygote_socket and not self.connection_file:
            self.connection_file = os.path.join(self._kernel_folder(), "kernel.json")
        return await super()._async_pre_start_kernel(**kw)

    async def _async_cleanup_resources(self, restart=False):
        await super()._async_cleanup_resources(restart=restart)
        if not restart and getattr(self, "_folder", None):
            shutil.rmtree(self._folder, ignore_errors=True)
            try:
                os.remove(self.pid_file)
            except OSError:
                pass

    def format_kernel_cmd(self, extra_arguments=None):
        cmd = super().format_kernel_cmd(extra_arguments)
        forkable = (self.zygote_socket and cmd[:3] == [sys.executable, "-m", "ipykernel_launcher"])
        if not forkable:  # another language or interpreter: started the usual way
            return cmd
        return [sys.executable, LAUNCHER, "--socket", self.zygote_socket,
                "--pid-file", self.pid_file, "--", *cmd[3:]]

    @property
    def pid_file(self):
        """Where the launcher writes the kernel's pid: beside the zygote's socket, a
        folder that no sandboxed kernel sees (so none can point it elsewhere)."""
        return os.path.join(os.path.dirname(self.zygote_socket),
                            os.path.basename(self._kernel_folder()) + ".pid")

    def cpu_seconds(self):
        """CPU time the kernel's processes have used, or None where it is not known."""
        if not self.zygote_socket:
            return None
        return kernel_cpu_seconds(self.pid_file)

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        # The kernel's own log (its startup warnings) is not the grader's business: what
        # a notebook prints reaches the notebook through the kernel's messages.
        if kernel_cmd[1:2] == [LAUNCHER]:
            kw.setdefault("stdout", subprocess.DEVNULL)
            kw.setdefault("stderr", subprocess.DEVNULL)
        return await super()._async_launch_kernel(kernel_cmd, **kw)
