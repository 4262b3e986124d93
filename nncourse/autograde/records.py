"""What passes between the coordinator, the workers and the command line."""

import enum
from dataclasses import dataclass, field
from typing import Any


class GradingError(Exception):
    """A submission could not be graded; the message is one line for the instructor."""


class Status(enum.StrEnum):
    """How grading one submission ended (the first three are also its marker's status)."""
    GRADED = "graded"
    INCOMPLETE = "incomplete"  # graded, but a kernel was lost on both attempts
    FAILED = "failed"  # no grade
    SKIPPED = "skipped"  # graded before, completely, from the same files


@dataclass
class Outcome:
    """What happened to one submission."""
    problem_set: str
    student: str
    status: Status
    reason: str = ""  # why it failed or is incomplete; for the others, notes
    seconds: float = 0.0
    refreshed: bool = False  # skipped, but its feedback was written again (see ClassGrader)


@dataclass
class Prepared:
    """A submission prepared by nbgrader (step 1), as a worker receives it: its files, not
    paths, so that a worker needs no shared file system."""
    problem_set: str
    student: str
    files: dict[str, bytes]  # path relative to the submission's folder -> content
    notebooks: list[str]  # the notebooks to execute, in order
    config: Any  # the course's traitlets Config
    preprocessors: list[type]  # Autograde's preprocessors before SaveAutoGrades
    reviews: dict[str, Any]  # notebook -> nncourse.policy.Review
    data_dir: str  # where the offline datasets are (written by the worker if missing)
    sandbox: bool  # run every kernel in the sandbox
    notes: list[str] = field(default_factory=list)  # for the instructor, from preparing


@dataclass
class Executed:
    """What a worker sends back (step 2): the executed notebooks (JSON text), or why there
    are none."""
    notebooks: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)  # "<notebook>: <how a kernel was lost>"
    # the catalogued mistakes named in failure messages: {"notebook", "cell", "check", "mistake"}
    mistakes: list[dict] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
