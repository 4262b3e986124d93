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

With a sandbox (Linux, ``Zygote(sandbox=...)``), the zygote itself runs under bubblewrap: no
network, a read-only view of the system and of Python, and of nothing else but its own folder
(``Sandbox``). Each kernel it forks then walls itself off from the others before it starts
(:func:`_enter_sandbox`): new user, mount and PID namespaces (the kernel is its namespace's
first process, so whatever it starts ends with it), a fresh ``/tmp`` that holds only its own
submission folder and connection files, its own bounded tmpfs for that folder and for
``/dev/shm``, limits on memory, processes and file sizes, no capabilities, and no way to trace
or signal another kernel, the process above it or the zygote (none of them is dumpable).
This file is copied into the sandbox and run from there, so that the kernel never sees the
nncourse package (the hidden checks) or the course.
"""

import argparse
import ctypes
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

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


def _children(parent):
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


class Sandbox:
    """The limits a sandboxed kernel runs under, and how to start a zygote inside bubblewrap.

    Nothing is visible inside but the system's and Python's files (read-only), the folders
    named in ``read_only`` (the course's datasets) and the zygote's own folder, which holds
    ``control/`` (the zygote's socket), ``kernels/`` (one folder of connection files and
    sockets per kernel), ``jobs/`` (one folder per submission being graded: ``work/`` and
    ``tmp/``) and ``mpl/`` (matplotlib's cache, made once per zygote). No network.
    """

    def __init__(self, memory_mb=4096, processes=512, file_mb=256, tmp_mb=512, job_mb=512,
                 shm_mb=256, cpus=None, read_only=(), hidden=()):
        self.limits = {"memory_mb": memory_mb, "processes": processes, "file_mb": file_mb,
                       "cpus": cpus}
        self.tmp_mb, self.job_mb, self.shm_mb = tmp_mb, job_mb, shm_mb
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
        command = ["bwrap", "--die-with-parent", "--unshare-all", "--new-session",
                   "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        for path in ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
            if os.path.islink(path):  # merged /usr: /lib -> usr/lib
                command += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                command += ["--ro-bind", path, path]
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

    def spec(self, folder):
        """What each kernel needs to enter its own sandbox (sent to the zygote as JSON)."""
        mpl = os.path.join(folder, "mpl")
        return {"limits": self.limits, "tmp_mb": self.tmp_mb, "job_mb": self.job_mb,
                "shm_mb": self.shm_mb, "mplconfigdir": mpl,
                "read_only": [mpl] + self.read_only}


def descendants(root):
    """``root`` and every process below it."""
    found, frontier = [root], [root]
    while frontier:
        frontier = [child for parent in frontier for child in _children(parent)]
        found += frontier
    return found


_CONTROLLERS = ("memory", "pids", "cpu")


def delegated_cgroups():
    """``{controller: folder}`` for the controllers (memory, pids, cpu) under which this
    process may make cgroups: its own cgroup of each hierarchy, writable, and never a
    hierarchy's root (that would put the kernels beside, not inside, the grader's limits)."""
    base = "/sys/fs/cgroup"
    try:
        with open("/proc/self/cgroup") as data:
            lines = [line.rstrip("\n").split(":", 2) for line in data]
    except OSError:
        return {}
    found = {}
    for _, names, where in lines:
        if where == "/":
            continue
        if not names:  # cgroup v2: the controllers its own cgroup passes to children
            folder = base + where
            try:
                with open(os.path.join(folder, "cgroup.subtree_control")) as data:
                    enabled = data.read().split()
            except OSError:
                continue
            if os.access(folder, os.W_OK):
                found.update({name: folder for name in _CONTROLLERS if name in enabled})
            continue
        for name in names.split(","):
            folder = os.path.join(base, name) + where
            if name in _CONTROLLERS and os.path.isdir(folder) and os.access(folder, os.W_OK):
                found[name] = folder
    return found


def undelegated_cgroups():
    """The controllers of :func:`delegated_cgroups` that are missing (their limits are then
    the kernels' rlimits only)."""
    found = delegated_cgroups()
    return [name for name in _CONTROLLERS if name not in found]


def _confine(root, limits):
    """Where the grader's own cgroups are delegated to it (:func:`delegated_cgroups`): puts
    the sandbox's processes into cgroups of their own inside them, that cap their memory,
    their number and their share of the CPU (the kernel's rlimits do not bind root). Returns
    the cgroup folders made."""
    name = "nncourse-%d" % root
    # CPU: a worker grades one submission at a time, so its zygote's share is its kernel's
    # share: ``cpus`` cores at most, whatever number of threads the kernel starts
    cpus = limits.get("cpus")
    memory = (limits["memory_mb"] + 2048) * 2**20
    settings = {"pids": {"pids.max": limits["processes"]},
                "memory": {"memory.max": memory, "memory.limit_in_bytes": memory},
                "cpu": {"cpu.max": "%d 100000" % (cpus * 100000) if cpus else "max 100000",
                        "cpu.cfs_quota_us": cpus * 100000 if cpus else -1}}
    by_folder = {}
    for controller, parent in delegated_cgroups().items():
        by_folder.setdefault(os.path.join(parent, name), []).append(controller)
    made = []
    for folder, controllers in by_folder.items():
        try:
            os.mkdir(folder)
            made.append(folder)
            for controller in controllers:
                for setting, value in settings[controller].items():
                    if os.path.exists(os.path.join(folder, setting)):
                        with open(os.path.join(folder, setting), "w") as out:
                            out.write(str(value))
            for pid in descendants(root):
                with open(os.path.join(folder, "cgroup.procs"), "w") as out:
                    out.write(str(pid))
        except OSError:
            continue  # not allowed after all: the rlimits set in each kernel remain
    return made


_OWNER = "owner"  # in a zygote's folder: "pid start-time" of the process that owns it


def _start_time(pid):
    """When process ``pid`` started (in clock ticks since boot), or None if there is none."""
    try:
        with open("/proc/%d/stat" % pid) as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


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
            owner = name[len("nncourse-"):]  # the zygote's bwrap (see _confine)
            try:
                with open(os.path.join(folder, "cgroup.procs")) as data:
                    busy = bool(data.read().strip())
                # (a cgroup is empty for a moment between its making and its first process)
                gone = owner.isdigit() and _start_time(int(owner)) is None
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
            script = os.path.join(self.folder, "bin", "kernels.py")
            shutil.copy(os.path.abspath(__file__), script)
            arguments += ["--socket", self.socket_path,
                          "--sandbox", json.dumps(sandbox.spec(self.folder))]
            command = sandbox.command(self.folder, os.path.join(os.path.realpath(sys.prefix),
                                                                "bin", "python"),
                                      script, ["zygote"] + arguments)
        else:
            self.socket_path = os.path.join(self.folder, "zygote.sock")
            command = [sys.executable, "-m", "nncourse.kernels", "zygote",
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
            self.cgroups = _confine(self.process.pid, sandbox.limits)

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
        process), then removes what it leaves; safe in a signal handler."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._remove()

    def _remove(self):
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except (OSError, ValueError):
                pass
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
    for child in _children(zygote):
        if _namespace_pids(child)[-1] == reported:
            return child
    return None


def _tree_cpu(root):
    """Seconds of CPU time used by ``root`` and every process below it, ended ones included
    once their parent has reaped them (they count in its children's times)."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents, used = {}, {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(name)] = int(fields[1])
        used[int(name)] = sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    if root not in used:
        return None
    below, total = [root], 0
    while below:
        pid = below.pop()
        total += used.get(pid, 0)
        below += [child for child, parent in parents.items() if parent == pid]
    return total / ticks


def kernel_cpu_seconds(pid_file):
    """CPU time used so far by the kernel whose launcher wrote ``pid_file``, or None (not
    known: not Linux, the kernel not started yet, or gone)."""
    try:
        with open(pid_file) as data:
            return _tree_cpu(int(data.read()))
    except (OSError, ValueError):
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


# ---------------------------------------------------------------------------- kernel manager

def _kernel_manager_class():
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
            return [sys.executable, "-m", "nncourse.kernels", "launch",
                    "--socket", self.zygote_socket, "--pid-file", self.pid_file, "--", *cmd[3:]]

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
