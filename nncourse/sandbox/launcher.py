"""The launcher: the process that jupyter_client starts as a kernel, outside the sandbox. It
asks the zygote (:mod:`.zygote`) for a kernel, passes signals on to it and exits with its
exit status; the kernel dies when the launcher does. Standard library only, and run as a
program (``python launcher.py --socket Z --pid-file F -- <ipykernel arguments>``), so that a
kernel starts without importing nncourse.
"""

import argparse
import os
import signal
import socket
import sys

try:
    from .zygote import Lines, children_of, send
except ImportError:  # run as a program, beside zygote.py
    from zygote import Lines, children_of, send


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
    CPU accounting: see :func:`nncourse.sandbox.manager.kernel_cpu_seconds`)."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(socket_path)
    send(conn, {"cwd": os.getcwd(), "env": dict(os.environ), "argv": argv}, fds=(0, 1, 2))

    def forward(signum, frame):
        try:
            send(conn, {"signal": signum})
        except OSError:
            pass

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, forward)
    lines = Lines(conn)
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
    parser = argparse.ArgumentParser(prog="launcher.py")
    parser.add_argument("--socket", required=True)
    parser.add_argument("--pid-file")
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    rest = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    return launch(args.socket, rest, args.pid_file)


if __name__ == "__main__":
    sys.exit(main())
