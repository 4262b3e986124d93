"""What ``nncourse grade`` leaves beside each submission it handled: a small JSON file in
``autograded/<student>/<psN>/`` that says how grading it ended.

It is written last and atomically, so its presence means that everything it describes is
complete:

- ``graded``: the graded notebooks, the gradebook rows and the feedback exist (``feedback``
  false: the feedback could not be written, ``reason`` says why; the next run writes it);
- ``incomplete``: graded, but a kernel was lost on both attempts (``reason`` names the cell);
  the score stands, the reports list it, and the next run grades it again;
- ``failed``: no grade (``reason`` says why); the reports leave its score empty, never 0, and
  the next run grades it again.

The ``fingerprint`` (of the submission and of the source) tells whether a ``graded`` marker
still describes the files on disk; ``mistakes`` lists the catalogued mistakes its feedback
names (``reports/psN-mistakes.csv`` counts them); ``hand_grading`` is a digest of the scores
and comments graders had entered by hand when the feedback was written (when the gradebook's
differ, the next run writes the feedback again).
"""

import fnmatch
import hashlib
import json
import os
import time

from .records import Status

MARKER = ".nncourse-graded.json"
GRADED, INCOMPLETE, FAILED = Status.GRADED, Status.INCOMPLETE, Status.FAILED


def files_under(folder, ignore=()):
    """Relative paths of the files under ``folder``, in a fixed order, without those that
    match one of the ``ignore`` patterns (nbgrader's ``CourseDirectory.ignore``) in their name
    or in the name of a folder above them."""
    found = []
    for directory, subdirs, files in os.walk(folder):
        subdirs[:] = sorted(d for d in subdirs
                            if not any(fnmatch.fnmatch(d, pattern) for pattern in ignore))
        for name in sorted(files):
            if not any(fnmatch.fnmatch(name, pattern) for pattern in ignore):
                found.append(os.path.relpath(os.path.join(directory, name), folder))
    return found


def folder_digest(folder, ignore=()):
    """A digest of the names and contents of the files under ``folder`` (see files_under)."""
    digest = hashlib.sha256()
    for relative in files_under(folder, ignore):
        digest.update(relative.encode() + b"\0")
        with open(os.path.join(folder, relative), "rb") as data:
            digest.update(hashlib.sha256(data.read()).digest())
    return digest.digest()


def path(folder):
    return os.path.join(folder, MARKER)


def write(folder, status, fingerprint, reason="", feedback=True, mistakes=(), hand_grading=None):
    """Writes the marker of the submission graded into ``folder`` (made if missing);
    ``mistakes``: the catalogued mistakes its feedback names (for the instructor's report);
    ``hand_grading``: the digest of the grading by hand its feedback shows."""
    os.makedirs(folder, exist_ok=True)
    target = path(folder)
    with open(target + ".tmp", "w") as out:
        json.dump({"status": status, "fingerprint": fingerprint, "reason": reason,
                   "feedback": feedback, "mistakes": list(mistakes),
                   "hand_grading": hand_grading, "graded_at": time.time()},
                  out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(target + ".tmp", target)


def read(folder):
    """The marker in ``folder`` as a dict, or None (none, or unreadable: as if not graded)."""
    try:
        with open(path(folder)) as data:
            marker = json.load(data)
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict):
        return None
    marker.setdefault("status", GRADED)  # markers of earlier versions: graded, or nothing
    return marker


def describes(marker, fingerprint):
    """Whether ``marker`` says that the submission with ``fingerprint`` was completely graded
    (a failed or incomplete one is graded again, and so is one whose files changed)."""
    return bool(marker) and marker.get("status") == GRADED \
        and marker.get("fingerprint") == fingerprint


def mistakes(course, problem_set):
    """``{student: [mistake records]}`` of this problem set's graded submissions: the
    catalogued mistakes their feedback names (see :mod:`nncourse.catalogue.diagnosis`)."""
    folder = course.path("autograded")
    found = {}
    for student in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        marker = read(os.path.join(folder, student, problem_set))
        if marker and marker["status"] != FAILED and isinstance(marker.get("mistakes"), list):
            found[student] = [m for m in marker["mistakes"] if isinstance(m, dict)]
    return found


UNFINISHED = ("grading did not finish (the grader stopped while grading it); the next run "
              "grades it again")


def problems(course, problem_set, recorded=()):
    """``{student: (status, reason)}`` for this problem set's submissions that are not plainly
    graded: failed (no grade) or incomplete (graded in part). A student of ``recorded`` (those
    with grades in the gradebook) whose folder has no marker counts as failed: nbgrader wrote
    their rows, but the grader stopped before the marker that says they are complete."""
    folder = course.path("autograded")
    found = {}
    for student in sorted(set(os.listdir(folder) if os.path.isdir(folder) else ()) |
                          set(recorded)):
        marker = read(os.path.join(folder, student, problem_set))
        if marker is None and student in recorded:
            found[student] = (FAILED, UNFINISHED)
        elif marker and marker["status"] in (FAILED, INCOMPLETE):
            found[student] = (marker["status"], marker.get("reason", ""))
    return found
