"""Grading a class: nbgrader's autograde, split so that submissions run in parallel.

``nbgrader autograde`` does three things to each submission, one submission after another:

1. *prepare*: records the student and the submission time in the gradebook, copies the
   submission to ``autograded/``, restores the test cells and the kernel spec from the
   source (nbgrader's sanitizing preprocessors);
2. *execute*: runs the notebook in a fresh kernel and post-processes it (the preprocessors of
   ``Autograde.autograde_preprocessors`` before ``SaveAutoGrades``: here ExpandChecks,
   LimitedExecute, JudgeChecks, IgnorePattern, ClearMetadata, LimitOutput), in the sandbox;
3. *record*: ``SaveAutoGrades`` and what follows it (late penalties, metadata checks) write
   the scores to the gradebook, and the graded notebook is written to ``autograded/``.

The coordinator (:mod:`.coordinator`) runs steps 1 and 3 with nbgrader's own classes in the
coordinating process, the only one that touches the gradebook, and ships step 2 (the slow
one) to workers: a local process pool on all cores, or the workers of a Dask cluster
(:mod:`.executors`). A worker (:mod:`.worker`) receives the prepared files, not paths, so it
needs no shared file system, and starts kernels by forking a zygote that has already
imported the heavy libraries (:mod:`nncourse.sandbox`), inside the sandbox that module
describes unless told otherwise.

A submission is done once its graded notebooks, its gradebook rows and its feedback are
written, and then a marker (:mod:`.markers`) that holds a fingerprint of the
submission and of the source: grading again skips what is done and unchanged, and a run that
is interrupted or killed loses at most the submissions in flight.
"""

from .coordinator import ClassGrader
from .executors import DaskExecutor, LocalExecutor
from .records import GradingError, Outcome, Status
from .stop import Stop

__all__ = ["ClassGrader", "DaskExecutor", "GradingError", "LocalExecutor", "Outcome", "Status",
           "Stop"]
