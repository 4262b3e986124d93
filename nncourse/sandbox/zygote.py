"""The zygote: the program that runs in the sandbox and forks a kernel for each launcher
(:mod:`.launcher`) that asks. Standard library only: this file and :mod:`.walls` are copied
into the sandbox and run from there (``python zygote.py --socket ...``), so that a kernel
never sees the nncourse package (the hidden checks) or the course.

How a kernel starts (jupyter_client and nbclient are used unchanged):

1. :class:`nncourse.sandbox.manager.ForkedKernelManager` is an ``AsyncKernelManager`` whose
   kernel command is ``python .../launcher.py --socket Z -- <ipykernel arguments>``;
2. that small *launcher* process connects to the zygote's Unix socket, sends its working
   folder, environment, arguments and its stdin/stdout/stderr, and stays alive as the kernel's
   stand-in: signals sent to it (interrupt, terminate) are forwarded to the kernel, and it
   exits with the kernel's exit status (128 + N for signal N);
3. the zygote forks; the child becomes the kernel (new session, the launcher's folder,
   environment and standard streams, fresh random seeds; in a sandbox, walls of its own:
   :mod:`.walls`) and the zygote watches it: when the launcher goes away (even killed with
   SIGKILL) the kernel's whole process group is killed.

The zygote is single-threaded (a selector loop), so forking it is safe, and it exits when its
owner closes its stdin.
"""

import argparse
import json
import os
import selectors
import signal
import socket
import sys

try:
    from .walls import die_with_parent, dumpable, enter_sandbox
except ImportError:  # run as a program (in the sandbox), beside walls.py
    from walls import die_with_parent, dumpable, enter_sandbox

# The only variables a kernel (and the zygote it is forked from) gets of its starter's
# environment: a grader's own settings (a database URL, a token) are none of a student's
# business (and a Dask nanny's MALLOC_TRIM_THRESHOLD_ would make NumPy much slower). Names
# ending in "*" are prefixes.
KERNEL_ENVIRONMENT = ("PATH", "LANG", "LANGUAGE", "LC_*", "TZ", "TERM", "HOME", "TMPDIR",
                      "NBGRADER_EXECUTION", "NNCOURSE_DATA", "MPLBACKEND", "MPLCONFIGDIR",
                      "IPYTHONDIR", "JPY_PARENT_PID", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                      "OPENBLAS_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES",
                      "PYDEVD_DISABLE_FILE_VALIDATION", "PYTHONHASHSEED", "PYTHONIOENCODING",
                      "LD_LIBRARY_PATH")


def kernel_environment(env):
    """The part of ``env`` that a kernel may see (see KERNEL_ENVIRONMENT)."""
    def allowed(name):
        return any(name == rule or rule.endswith("*") and name.startswith(rule[:-1])
                   for rule in KERNEL_ENVIRONMENT)
    return {name: value for name, value in env.items() if allowed(name)}


# What the course's notebooks import; a module that is not installed is skipped.
DEFAULT_PRELOAD = ("numpy", "matplotlib.pyplot", "torch", "torchvision", "ipykernel.kernelapp")
_INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


def send(conn, message, fds=()):
    """One message (and file descriptors) over a Unix socket, as a line of JSON."""
    data = (json.dumps(message) + "\n").encode()
    if fds:
        socket.send_fds(conn, [data], list(fds))
    else:
        conn.sendall(data)


class Lines:
    """Newline-delimited JSON messages read from a socket."""

    def __init__(self, conn):
        self.conn, self.buffer = conn, b""

    def feed(self, data):
        self.buffer += data
        messages = []
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            messages.append(json.loads(line))
        return messages


def children_of(parent):
    """The processes whose parent is ``parent`` (read from /proc)."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/stat" % name) as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent:
                found.append(int(name))
    return found


def descendants(root):
    """``root`` and every process below it."""
    found, frontier = [root], [root]
    while frontier:
        frontier = [child for parent in frontier for child in children_of(parent)]
        found += frontier
    return found


def _become_kernel(request, fds, closing, zygote, sandbox=None):
    """In the forked child: turn into an ipykernel as the launcher would have started it."""
    try:
        for item in closing:
            item.close()
        os.setsid()
        die_with_parent(zygote)
        if sandbox:
            enter_sandbox(sandbox, request)
        for target, fd in zip((0, 1, 2), fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(kernel_environment(request["env"]))
        os.environ.setdefault("MPLBACKEND", _INLINE_BACKEND)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        # a new process would start from fresh entropy, not from the zygote's random state
        import random
        random.seed()
        if "numpy" in sys.modules:
            sys.modules["numpy"].random.seed()
        sys.argv = ["ipykernel_launcher", *request["argv"]]
        from ipykernel.kernelapp import IPKernelApp
        app = IPKernelApp.instance()
        # its default was read from the zygote's environment when ipykernel was imported
        app.parent_handle = int(os.environ.get("JPY_PARENT_PID") or 0)
        app.initialize(request["argv"])
        app.start()
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException:  # noqa: BLE001 (report and leave: never fall back into the zygote)
        import traceback
        traceback.print_exc()
        code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:  # noqa: BLE001 (streams already gone: nothing left to say)
        pass
    os._exit(code)


def serve(socket_path, preload, sandbox=None):
    """The zygote: imports ``preload`` and forks a kernel for each launcher that connects;
    ``sandbox``: what each kernel needs to enter its own (see :class:`Sandbox`)."""
    os.environ.setdefault("MPLBACKEND", _INLINE_BACKEND)
    if sandbox:
        dumpable(False)  # no kernel may trace the process all later kernels are forked from
    # Ctrl-C in the grader's terminal is for the grader: it ends the zygote by closing stdin
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import importlib
    for module in preload:
        try:
            importlib.import_module(module)
        except ImportError:
            pass
    # what is loaded now is never freed: the collector need not walk it again in every kernel
    # (and, by not touching it, leaves those pages shared between the kernels)
    import gc
    gc.collect()
    gc.freeze()
    _Server(socket_path, sandbox).run()


class _Server:
    """The zygote's loop: launchers connect, each gets a kernel, and each kernel's end is
    reported to its launcher (and a launcher's end kills its kernel)."""

    def __init__(self, socket_path, sandbox):
        self.socket_path, self.sandbox = socket_path, sandbox
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(socket_path)
        self.listener.listen(64)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        self.selector.register(sys.stdin, selectors.EVENT_READ, "owner")
        self.children = {}  # connection -> kernel pid
        self.readers = {}  # connection -> Lines
        self.killed = set()  # kernels killed and not yet reaped

    def run(self):
        print("ready", flush=True)
        while True:
            for key, _ in self.selector.select(timeout=0.05):
                if key.data == "owner":
                    if not os.read(sys.stdin.fileno(), 4096):  # the owner is gone: so are we
                        self.close()
                        return
                elif key.data == "accept":
                    conn, _ = self.listener.accept()
                    self.readers[conn] = Lines(conn)
                    self.selector.register(conn, selectors.EVENT_READ, "launcher")
                elif key.fileobj not in self.children:  # its first message: start the kernel
                    self.start_kernel(key.fileobj)
                else:
                    self.pass_signals(key.fileobj)
            self.reap()

    def forget(self, conn, kill):
        pid = self.children.pop(conn, None)
        if pid is not None and kill:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.killed.add(pid)
        self.readers.pop(conn, None)
        self.selector.unregister(conn)
        conn.close()

    def close(self):
        for conn in list(self.readers):
            self.forget(conn, kill=True)
        self.listener.close()
        os.unlink(self.socket_path)

    def start_kernel(self, conn):
        data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
        messages = self.readers[conn].feed(data) if data else []
        if not messages or len(fds) != 3:
            for fd in fds:
                os.close(fd)
            self.forget(conn, kill=False)
            return
        zygote = os.getpid()
        pid = os.fork()
        if pid == 0:
            _become_kernel(messages[0], fds, [self.listener, *self.readers], zygote,
                           self.sandbox)
        for fd in fds:
            os.close(fd)
        self.children[conn] = pid
        send(conn, {"pid": pid})

    def pass_signals(self, conn):
        """What a launcher sends after its first message: signals for its kernel."""
        data = conn.recv(4096)
        if not data:  # the launcher exited or was killed
            self.forget(conn, kill=True)
            return
        for message in self.readers[conn].feed(data):
            try:
                os.killpg(self.children[conn], message["signal"])
            except (ProcessLookupError, KeyError):
                pass

    def reap(self):
        for pid in list(self.killed):
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    self.killed.discard(pid)
            except ChildProcessError:
                self.killed.discard(pid)
        # report kernels that exited to their launchers
        for conn, pid in list(self.children.items()):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if done:
                try:
                    send(conn, {"exit": os.waitstatus_to_exitcode(status)})
                except OSError:
                    pass
                self.children.pop(conn)
                self.forget(conn, kill=False)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="zygote.py")
    parser.add_argument("--socket", required=True)
    parser.add_argument("--preload", default=",".join(DEFAULT_PRELOAD))
    parser.add_argument("--sandbox", help="JSON: what each kernel needs to enter its sandbox")
    args = parser.parse_args(argv)
    serve(args.socket, [m for m in args.preload.split(",") if m],
          json.loads(args.sandbox) if args.sandbox else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
