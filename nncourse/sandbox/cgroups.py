"""cgroups for the sandbox's processes, made only where the grader's own are delegated to it."""

import os

from .zygote import descendants


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


def confine(root, limits):
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
