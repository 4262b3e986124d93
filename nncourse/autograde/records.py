"""What passes between the coordinator, the workers and the command line."""

from dataclasses import dataclass


class GradingError(Exception):
    """A submission could not be graded; the message is one line for the instructor."""


@dataclass
class Outcome:
    """What happened to one submission."""
    problem_set: str
    student: str
    status: str  # "graded", "incomplete" (a kernel lost twice), "skipped" or "failed"
    reason: str = ""  # why it failed or is incomplete; for the others, notes
    seconds: float = 0.0
