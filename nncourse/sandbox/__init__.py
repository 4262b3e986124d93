"""Running students' code: kernels forked from a zygote, walled off from each other, from the
grader and from the course.

A fresh ipykernel spends seconds importing ipykernel, NumPy, PyTorch, torchvision and
matplotlib before a notebook's first line runs, and grading starts one kernel per
submission. A *zygote* imports them once, runs no other code, and forks a new kernel for each
submission, so every kernel still starts from the same pristine state and no state passes from
one student to the next. With a :class:`Sandbox` (Linux), the zygote runs under bubblewrap: no
network, a read-only view of the system and of Python, and of nothing else but its own folder;
each kernel it forks then enters namespaces and limits of its own.

=================  ==========================================================================
``zygote.py``      what runs in the sandbox (standard library only, copied in with
                   ``walls.py``): the zygote, which forks each kernel
``walls.py``       what a forked kernel does to wall itself off (namespaces, mounts, limits)
``launcher.py``    the process that stands in for a kernel outside (standard library only)
``bubblewrap.py``  :class:`Sandbox`: the limits, and the bwrap command line around a zygote
``cgroups.py``     cgroups for a zygote's processes, only inside the grader's own
``owner.py``       :class:`Zygote`: the grader's side of one (start, job folders, end), and
                   the removal of what dead graders' zygotes left
``manager.py``     :class:`ForkedKernelManager` for nbclient, and a kernel's CPU time
=================  ==========================================================================
"""

from .bubblewrap import Sandbox
from .cgroups import delegated_cgroups, undelegated_cgroups
from .owner import Zygote, remove_leftovers, running
from .walls import die_with_parent
from .zygote import descendants, kernel_environment

__all__ = ["Sandbox", "Zygote", "delegated_cgroups", "descendants", "die_with_parent",
           "kernel_environment", "remove_leftovers", "running", "undelegated_cgroups"]


def __getattr__(name):
    # the kernel manager needs jupyter_client: imported when it is asked for
    if name == "ForkedKernelManager":
        from .manager import ForkedKernelManager
        return ForkedKernelManager
    raise AttributeError(name)
