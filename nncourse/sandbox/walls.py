"""How each kernel forked in the sandbox walls itself off from the others before it starts
(:func:`enter_sandbox`): new user, mount and PID namespaces (the kernel is its namespace's
first process, so whatever it starts ends with it), a fresh ``/tmp`` that holds only its own
submission folder and connection files, its own bounded tmpfs for that folder and for
``/dev/shm``, limits on memory, processes and file sizes, no capabilities, and no way to trace
or signal another kernel, the process above it or the zygote (none of them is dumpable).
Under a grader that runs as root, each kernel also becomes a user of its own that owns
nothing on the host (:data:`KERNEL_IDS`), never root mapped into a namespace.

Standard library only, like :mod:`.zygote`, beside which it is copied into the sandbox.
"""

import ctypes
import os
import shutil
import signal

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


def dumpable(flag):
    """A process that is not dumpable cannot be traced, nor its memory read through /proc, by
    another process of the same user without privileges: the zygote, each kernel and the
    process above it are not, so that no kernel can reach into another."""
    _libc_call("prctl", _PR_SET_DUMPABLE, int(flag))


# A kernel forked by a zygote that runs as root takes a uid of its own from this range: none
# of the host's users or groups (nor a container's usual subordinate ids), so it owns nothing
# outside its sandbox and cannot read what only root may (/etc/shadow, root's home).
KERNEL_IDS = (2_000_000_000, 1_000_000)  # first, how many


def kernel_id(pid):
    """The uid and gid of the kernel forked as process ``pid`` by a zygote running as root."""
    first, count = KERNEL_IDS
    return first + pid % count


def _mount_view(spec, job, kernel):
    """In a new mount namespace: a fresh /tmp that holds only this kernel's job folder, its
    connection folder (read-write) and the shared read-only folders (the other kernels' jobs
    and sockets and the zygote's control socket all lived in the old /tmp). The job folder
    becomes a tmpfs of ``job_mb`` with a copy of what it held, and /dev/shm one of ``shm_mb``:
    what a kernel writes is bounded, is its own, and is gone with it."""
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


def _own_user(uid, gid, namespaces=0):
    """Enters a new user namespace (and PID namespace: the next child is its first process;
    and ``namespaces``) that maps only ``uid`` and ``gid`` to themselves."""
    dumpable(True)  # /proc/self/uid_map is writable only so
    _libc_call("unshare", _CLONE_NEWUSER | _CLONE_NEWPID | namespaces)
    with open("/proc/self/setgroups", "w") as out:
        out.write("deny")
    with open("/proc/self/uid_map", "w") as out:
        out.write("%d %d 1" % (uid, uid))
    with open("/proc/self/gid_map", "w") as out:
        out.write("%d %d 1" % (gid, gid))
    dumpable(False)


def _chown_tree(path, uid, gid):
    os.chown(path, uid, gid, follow_symlinks=False)
    for directory, subdirs, files in os.walk(path):
        for name in subdirs + files:
            os.chown(os.path.join(directory, name), uid, gid, follow_symlinks=False)


def _can_change_user():
    """Root of the host's own user namespace (every id is mapped here), as when the grader
    runs as root and bubblewrap made no user namespace."""
    if os.getuid() != 0:
        return False
    with open("/proc/self/uid_map") as ids:
        return any(int(line.split()[2]) > 1 for line in ids if line.strip())


def _private_view(spec, job, kernel):
    """The kernel's own view (:func:`_mount_view`) and user. Under a zygote that runs as root,
    the view is made as root, then the process becomes :func:`kernel_id` (its job and
    connection folders made its own) before it enters its own user namespace; otherwise it
    stays the grader's own (unprivileged) user, in a user namespace made first."""
    if _can_change_user():
        _libc_call("unshare", _CLONE_NEWNS)
        _mount_view(spec, job, kernel)
        uid = gid = kernel_id(os.getpid())
        _chown_tree(job, uid, gid)
        _chown_tree(kernel, uid, gid)
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
        _own_user(uid, gid)
        return
    _own_user(os.getuid(), os.getgid(), _CLONE_NEWNS)
    _mount_view(spec, job, kernel)


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


def enter_sandbox(spec, request):
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
