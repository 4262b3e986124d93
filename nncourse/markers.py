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
still describes the files on disk.
"""

import json
import os
import time

MARKER = ".nncourse-graded.json"
GRADED, INCOMPLETE, FAILED = "graded", "incomplete", "failed"


def path(folder):
    return os.path.join(folder, MARKER)


def write(folder, status, fingerprint, reason="", feedback=True):
    """Writes the marker of the submission graded into ``folder`` (made if missing)."""
    os.makedirs(folder, exist_ok=True)
    target = path(folder)
    with open(target + ".tmp", "w") as out:
        json.dump({"status": status, "fingerprint": fingerprint, "reason": reason,
                   "feedback": feedback, "graded_at": time.time()}, out)
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


def problems(course, problem_set):
    """``{student: (status, reason)}`` for this problem set's submissions that are not plainly
    graded: failed (no grade) or incomplete (graded in part)."""
    folder = course.path("autograded")
    found = {}
    if not os.path.isdir(folder):
        return found
    for student in sorted(os.listdir(folder)):
        marker = read(os.path.join(folder, student, problem_set))
        if marker and marker["status"] in (FAILED, INCOMPLETE):
            found[student] = (marker["status"], marker.get("reason", ""))
    return found
