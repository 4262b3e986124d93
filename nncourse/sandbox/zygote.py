"""The program that runs in the sandbox: the zygote, the kernels it forks, and the launcher
that stands in for each kernel outside. Standard library only: this file is copied into the
sandbox and run from there (``python zygote.py zygote ...``), so that the kernel never sees
the nncourse package (the hidden checks) or the course.

How a kernel starts (jupyter_client and nbclient are used unchanged):

1. :class:`nncourse.sandbox.manager.ForkedKernelManager` is an ``AsyncKernelManager`` whose
   kernel command is ``python .../zygote.py launch --socket Z -- <ipykernel arguments>``;
2. that small *launcher* process connects to the zygote's Unix socket, sends its working
   folder, environment, arguments and its stdin/stdout/stderr, and stays alive as the kernel's
   stand-in: signals sent to it (interrupt, terminate) are forwarded to the kernel, and it
   exits with the kernel's exit status (128 + N for signal N);
3. the zygote forks; the child becomes the kernel (new session, the launcher's folder,
   environment and standard streams, fresh random seeds) and the zygote watches it: when the
   launcher goes away (even killed with SIGKILL) the kernel's whole process group is killed.

The zygote is single-threaded (a selector loop), so forking it is safe, and it exits when its
owner closes its stdin.

In a sandbox, each kernel the zygote forks walls itself off from the others before it starts
(:func:`_enter_sandbox`): new user, mount and PID namespaces (the kernel is its namespace's
first process, so whatever it starts ends with it), a fresh ``/tmp`` that holds only its own
submission folder and connection files, its own bounded tmpfs for that folder and for
``/dev/shm``, limits on memory, processes and file sizes, no capabilities, and no way to trace
or signal another kernel, the process above it or the zygote (none of them is dumpable).
"""

import argparse
import ctypes
import json
import os
import selectors
import shutil
import signal
import socket
import sys

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

def die_with_parent(parent, signum=signal.SIGKILL):
    """Linux: this process gets ``signum`` when its parent dies (a kernel when its zygote
    dies, a grading worker when the grader does). ``parent``: the parent's pid, to catch a
    parent that died first (None: it cannot have)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signum)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # elsewhere the kernel's own parent polling ends it
    if parent is not None and os.getppid() != parent:
        os._exit(1)


_CLONE_NEWNS, _CLONE_NEWUSER, _CLONE_NEWPID = 0x00020000, 0x10000000, 0x20000000
_MNT_DETACH = 0x2
_PR_SET_DUMPABLE, _PR_CAPBSET_DROP, _PR_SET_NO_NEW_PRIVS = 4, 24, 38
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_REMOUNT = 0x1, 0x2, 0x4, 0x20
_MS_BIND, _MS_MOVE, _MS_REC, _MS_PRIVATE = 0x1000, 0x2000, 0x4000, 0x40000
STAGE = "/nncourse-stage"  # empty folders of the sandbox's root, used while mounting


def _libc_call(name, *args):
    libc = ctypes.CDLL(None, use_errno=True)
    if getattr(libc, name)(*args) != 0:
        error = ctypes.get_errno()
        raise OSError(error, "%s%r: %s" % (name, args, os.strerror(error)))


def _mount(source, target, kind, flags, data=None):
    encode = lambda text: text.encode() if text is not None else None  # noqa: E731
    _libc_call("mount", encode(source), encode(target), encode(kind), ctypes.c_ulong(flags),
               encode(data))


def _limit(resource, value):
    import resource as limits
    soft, hard = limits.getrlimit(resource)
    value = value if hard == limits.RLIM_INFINITY else min(value, hard)
    limits.setrlimit(resource, (value, value))


def _locked_flags(path):
    """The flags of the mount at ``path`` that a user namespace may not drop when it remounts
    (statvfs and mount use the same bits for these, except relatime)."""
    flag = os.statvfs(path).f_flag
    kept = flag & (os.ST_NOSUID | os.ST_NODEV | os.ST_NOEXEC | os.ST_NOATIME | os.ST_NODIRATIME)
    return kept | (0x200000 if flag & os.ST_RELATIME else 0)  # MS_RELATIME


def _dumpable(flag):
    """A process that is not dumpable cannot be traced, nor its memory read through /proc, by
    another process of the same user without privileges: the zygote, each kernel and the
    process above it are not, so that no kernel can reach into another."""
    _libc_call("prctl", _PR_SET_DUMPABLE, int(flag))


def _private_view(spec, job, kernel):
    """Enters new user, mount and PID namespaces (the next child is the PID namespace's first
    process) and mounts a fresh /tmp that holds only this kernel's job folder, its connection
    folder (read-write) and the shared read-only folders: the other kernels' jobs and sockets
    and the zygote's control socket all lived in the old /tmp. The job folder becomes a tmpfs
    of ``job_mb`` with a copy of what it held, and /dev/shm one of ``shm_mb``: what a kernel
    writes is bounded, is its own, and is gone with it."""
    uid, gid = os.getuid(), os.getgid()
    _dumpable(True)  # inherited from the zygote; /proc/self/uid_map is writable only so
    _libc_call("unshare", _CLONE_NEWUSER | _CLONE_NEWNS | _CLONE_NEWPID)
    with open("/proc/self/setgroups", "w") as out:
        out.write("deny")
    with open("/proc/self/uid_map", "w") as out:
        out.write("%d %d 1" % (uid, uid))
    with open("/proc/self/gid_map", "w") as out:
        out.write("%d %d 1" % (gid, gid))
    _dumpable(False)
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
    keep = [(job, False), (kernel, False)] + [(path, True) for path in spec["read_only"]]
    for number, (path, _) in enumerate(keep):
        _mount(path, "%s/%d" % (STAGE, number), None, _MS_BIND | _MS_REC)
    _mount("tmpfs", "/tmp", "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=1777,size=%dm" % spec["tmp_mb"])
    for number, (path, read_only) in enumerate(keep[1:], 1):
        os.makedirs(path, exist_ok=True)
        _mount("%s/%d" % (STAGE, number), path, None, _MS_MOVE)
        if read_only:
            _mount(None, path, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _locked_flags(path))
    os.makedirs(job, exist_ok=True)
    _mount("tmpfs", job, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=0700,size=%dm" % spec["job_mb"])
    shutil.copytree("%s/0" % STAGE, job, symlinks=True, dirs_exist_ok=True)
    _libc_call("umount2", ("%s/0" % STAGE).encode(), _MNT_DETACH)
    _mount("tmpfs", "/dev/shm", "tmpfs", _MS_NOSUID | _MS_NODEV,
           "mode=1777,size=%dm" % spec["shm_mb"])


def _drop_privileges():
    """The kernel keeps no capability in its namespaces (it could mount, or trace its
    neighbours' children) and can gain none."""
    for capability in range(64):
        try:
            _libc_call("prctl", _PR_CAPBSET_DROP, capability)
        except OSError:
            break  # past the last capability this system knows
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    _libc_call("capset", header, (ctypes.c_uint32 * 6)())
    _libc_call("prctl", _PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


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


def _wait_then_leave(kernel):
    """In the process above a sandboxed kernel: wait for it and leave with its exit status.
    The kernel is the first process of its PID namespace, so whatever it started (a fork
    storm included) is killed by the system when it ends."""
    while True:
        try:
            done, status = os.waitpid(kernel, 0)
        except ChildProcessError:
            os._exit(1)
        except InterruptedError:
            continue
        if done == kernel:
            code = os.waitstatus_to_exitcode(status)  # -N: killed by signal N
            os._exit(128 - code if code < 0 else min(code, 127))


def _enter_sandbox(spec, request):
    """In the forked child, before it becomes the kernel: returns in the process that will be
    the kernel, inside its own namespaces and limits; the process above it waits and then
    cleans up after it."""
    import resource
    argv = request["argv"]
    connection = argv[argv.index("-f") + 1]
    job = os.path.dirname(request["cwd"])  # the submission's folder: work/ and tmp/
    _private_view(spec, job, os.path.dirname(connection))
    kernel = os.fork()
    if kernel:
        _wait_then_leave(kernel)
    die_with_parent(None)
    limits = spec["limits"]
    # memory: what the kernel may allocate beyond what it inherited from the zygote
    with open("/proc/self/status") as status:
        inherited = next(int(line.split()[1]) * 1024 for line in status
                         if line.startswith("VmData:"))
    _limit(resource.RLIMIT_DATA, inherited + limits["memory_mb"] * 2**20)
    _limit(resource.RLIMIT_FSIZE, limits["file_mb"] * 2**20)
    _limit(resource.RLIMIT_NPROC, limits["processes"])  # not for root: the cgroup does it
    _limit(resource.RLIMIT_CORE, 0)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # too large a file: an error, not death
    temporary = os.path.join(job, "tmp")
    request["env"].update(TMPDIR=temporary, HOME=temporary,
                          IPYTHONDIR=os.path.join(temporary, ".ipython"),
                          MPLCONFIGDIR=spec["mplconfigdir"])
    _drop_privileges()


def _become_kernel(request, fds, closing, zygote, sandbox=None):
    """In the forked child: turn into an ipykernel as the launcher would have started it."""
    try:
        for item in closing:
            item.close()
        os.setsid()
        die_with_parent(zygote)
        if sandbox:
            _enter_sandbox(sandbox, request)
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
        _dumpable(False)  # no kernel may trace the process all later kernels are forked from
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
                        _become_kernel(messages[0], fds, [listener, *readers], zygote, sandbox)
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


# ---------------------------------------------------------------------------- launcher

def _peer_pid(conn):
    """The pid, in this process's namespace, of the process at the other end of a Unix
    socket (the zygote: its PID namespace is below this one, so its pid is visible here)."""
    import struct
    credentials = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", credentials)[0]


def _namespace_pids(pid):
    """The pids of ``pid`` in each PID namespace from this one down (``NSpid``)."""
    try:
        with open("/proc/%d/status" % pid) as status:
            for line in status:
                if line.startswith("NSpid:"):
                    return [int(field) for field in line.split()[1:]]
    except (OSError, ValueError):
        pass
    return [pid]


def _real_kernel_pid(zygote, reported):
    """The pid, here, of the zygote's child that it knows as ``reported`` (in its own PID
    namespace, which the sandbox makes new), or None."""
    for child in children_of(zygote):
        if _namespace_pids(child)[-1] == reported:
            return child
    return None


def launch(socket_path, argv, pid_file=None):
    """The kernel's stand-in process: asks the zygote for a kernel and waits for it.
    ``pid_file``: where to write the kernel's pid as this process sees it (for the grader's
    CPU accounting: see :func:`kernel_cpu_seconds`)."""
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
            if "pid" in message and pid_file:
                real = _real_kernel_pid(_peer_pid(conn), message["pid"])
                if real is not None:
                    with open(pid_file + ".partial", "w") as out:
                        out.write(str(real))
                    os.replace(pid_file + ".partial", pid_file)
            if "exit" in message:
                code = message["exit"]
                return code if code >= 0 else 128 - code


def main(argv=None):
    parser = argparse.ArgumentParser(prog="zygote.py")
    commands = parser.add_subparsers(dest="command", required=True)
    zygote = commands.add_parser("zygote")
    zygote.add_argument("--socket", required=True)
    zygote.add_argument("--preload", default=",".join(DEFAULT_PRELOAD))
    zygote.add_argument("--sandbox", help="JSON: what each kernel needs to enter its sandbox")
    launcher = commands.add_parser("launch")
    launcher.add_argument("--socket", required=True)
    launcher.add_argument("--pid-file")
    launcher.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command == "zygote":
        serve(args.socket, [m for m in args.preload.split(",") if m],
              json.loads(args.sandbox) if args.sandbox else None)
        return 0
    rest = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    return launch(args.socket, rest, args.pid_file)


if __name__ == "__main__":
    sys.exit(main())
