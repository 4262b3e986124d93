"""Python kernels forked from a process that has already imported the heavy libraries.

A fresh ipykernel spends seconds importing ipykernel, NumPy, PyTorch, torchvision and
matplotlib before a notebook's first line runs, and grading starts one kernel per
submission. A *zygote* imports them once, runs no other code, and forks a new kernel for each
submission, so every kernel still starts from the same pristine state and no state passes from
one student to the next.

How a kernel starts (jupyter_client and nbclient are used unchanged):

1. :class:`ForkedKernelManager` is an ``AsyncKernelManager`` whose kernel command is
   ``python -m nncourse.kernels launch --socket Z -- <ipykernel arguments>``;
2. that small *launcher* process (standard library only) connects to the zygote's Unix
   socket, sends its working folder, environment, arguments and its stdin/stdout/stderr, and
   stays alive as the kernel's stand-in: signals sent to it (interrupt, terminate) are
   forwarded to the kernel, and it exits with the kernel's exit status;
3. the zygote forks; the child becomes the kernel (new session, the launcher's folder,
   environment and standard streams, fresh random seeds) and the zygote watches it: when the
   launcher goes away (even killed with SIGKILL) the kernel's whole process group is killed.

The zygote is single-threaded (a selector loop), so forking it is safe, and it exits when its
owner closes its stdin.
"""

import argparse
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

# What the course's notebooks import; a module that is not installed is skipped.
DEFAULT_PRELOAD = ("numpy", "matplotlib.pyplot", "torch", "torchvision", "ipykernel.kernelapp")
_INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


def _send(conn, message, fds=()):
    data = (json.dumps(message) + "\n").encode()
    if fds:
        socket.send_fds(conn, [data], list(fds))
    else:
        conn.sendall(data)


class _Lines:
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


# ---------------------------------------------------------------------------- zygote

def _die_with_parent(parent):
    """Linux: this process is killed when its parent dies (a kernel when its zygote dies)."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # elsewhere the kernel's own parent polling ends it
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(1)


def _become_kernel(request, fds, closing, zygote):
    """In the forked child: turn into an ipykernel as the launcher would have started it."""
    try:
        for item in closing:
            item.close()
        os.setsid()
        _die_with_parent(zygote)
        for target, fd in zip((0, 1, 2), fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
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


def serve(socket_path, preload):
    """The zygote: imports ``preload`` and forks a kernel for each launcher that connects."""
    os.environ.setdefault("MPLBACKEND", _INLINE_BACKEND)
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
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(64)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(sys.stdin, selectors.EVENT_READ, "owner")
    children = {}  # connection -> kernel pid
    readers = {}
    killed = set()  # kernels killed and not yet reaped
    print("ready", flush=True)

    def forget(conn, kill):
        pid = children.pop(conn, None)
        if pid is not None and kill:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            killed.add(pid)
        readers.pop(conn, None)
        selector.unregister(conn)
        conn.close()

    while True:
        for key, _ in selector.select(timeout=0.05):
            if key.data == "owner":
                if not os.read(sys.stdin.fileno(), 4096):  # the owner is gone: so are we
                    for conn in list(readers):
                        forget(conn, kill=True)
                    listener.close()
                    os.unlink(socket_path)
                    return
            elif key.data == "accept":
                conn, _ = listener.accept()
                readers[conn] = _Lines(conn)
                selector.register(conn, selectors.EVENT_READ, "launcher")
            else:
                conn = key.fileobj
                if conn not in children:  # the first message: start the kernel
                    data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
                    messages = readers[conn].feed(data) if data else []
                    if not messages or len(fds) != 3:
                        for fd in fds:
                            os.close(fd)
                        forget(conn, kill=False)
                        continue
                    zygote = os.getpid()
                    pid = os.fork()
                    if pid == 0:
                        _become_kernel(messages[0], fds, [listener, *readers], zygote)
                    for fd in fds:
                        os.close(fd)
                    children[conn] = pid
                    _send(conn, {"pid": pid})
                    continue
                data = conn.recv(4096)
                if not data:  # the launcher exited or was killed
                    forget(conn, kill=True)
                    continue
                for message in readers[conn].feed(data):
                    try:
                        os.killpg(children[conn], message["signal"])
                    except (ProcessLookupError, KeyError):
                        pass
        for pid in list(killed):
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    killed.discard(pid)
            except ChildProcessError:
                killed.discard(pid)
        # report kernels that exited to their launchers
        for conn, pid in list(children.items()):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if done:
                try:
                    _send(conn, {"exit": os.waitstatus_to_exitcode(status)})
                except OSError:
                    pass
                children.pop(conn)
                forget(conn, kill=False)


class Zygote:
    """Owns a zygote process; :meth:`close` (or the owner's exit) ends it and its kernels."""

    def __init__(self, preload=DEFAULT_PRELOAD, env=None):
        self.folder = tempfile.mkdtemp(prefix="nncourse-zygote-")
        self.socket_path = os.path.join(self.folder, "zygote.sock")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "nncourse.kernels", "zygote", "--socket", self.socket_path,
             "--preload", ",".join(preload)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
        ready = self.process.stdout.readline().strip()
        if ready != "ready":
            self.close()
            raise RuntimeError("the kernel zygote did not start (exit status %s)"
                               % self.process.poll())

    def close(self):
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()
        # the socket, and the Unix sockets of kernels killed before they could remove them
        shutil.rmtree(self.folder, ignore_errors=True)


# ---------------------------------------------------------------------------- launcher

def launch(socket_path, argv):
    """The kernel's stand-in process: asks the zygote for a kernel and waits for it."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(socket_path)
    _send(conn, {"cwd": os.getcwd(), "env": dict(os.environ), "argv": argv}, fds=(0, 1, 2))

    def forward(signum, frame):
        try:
            _send(conn, {"signal": signum})
        except OSError:
            pass

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, forward)
    lines = _Lines(conn)
    while True:
        try:
            data = conn.recv(4096)
        except InterruptedError:
            continue
        if not data:
            return 1
        for message in lines.feed(data):
            if "exit" in message:
                code = message["exit"]
                return code if code >= 0 else 128 - code


# ---------------------------------------------------------------------------- kernel manager

def _kernel_manager_class():
    import uuid

    from jupyter_client.manager import AsyncKernelManager
    from traitlets import Unicode, default

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
            return os.path.join(os.path.dirname(self.zygote_socket),
                                "kernel-%s" % uuid.uuid4().hex[:12])

        def format_kernel_cmd(self, extra_arguments=None):
            cmd = super().format_kernel_cmd(extra_arguments)
            forkable = (self.zygote_socket and cmd[:3] == [sys.executable, "-m", "ipykernel_launcher"])
            if not forkable:  # another language or interpreter: started the usual way
                return cmd
            return [sys.executable, "-m", "nncourse.kernels", "launch",
                    "--socket", self.zygote_socket, "--", *cmd[3:]]

        async def _async_launch_kernel(self, kernel_cmd, **kw):
            # The kernel's own log (its startup warnings) is not the grader's business: what
            # a notebook prints reaches the notebook through the kernel's messages.
            if kernel_cmd[1:4] == ["-m", "nncourse.kernels", "launch"]:
                kw.setdefault("stdout", subprocess.DEVNULL)
                kw.setdefault("stderr", subprocess.DEVNULL)
            return await super()._async_launch_kernel(kernel_cmd, **kw)

    return ForkedKernelManager


def __getattr__(name):
    # built on first use, so that the launcher imports nothing beyond the standard library
    if name == "ForkedKernelManager":
        cls = _kernel_manager_class()
        globals()[name] = cls
        return cls
    raise AttributeError(name)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m nncourse.kernels")
    commands = parser.add_subparsers(dest="command", required=True)
    zygote = commands.add_parser("zygote")
    zygote.add_argument("--socket", required=True)
    zygote.add_argument("--preload", default=",".join(DEFAULT_PRELOAD))
    launcher = commands.add_parser("launch")
    launcher.add_argument("--socket", required=True)
    launcher.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command == "zygote":
        serve(args.socket, [m for m in args.preload.split(",") if m])
        return 0
    rest = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    return launch(args.socket, rest)


if __name__ == "__main__":
    sys.exit(main())
