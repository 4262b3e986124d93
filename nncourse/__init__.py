"""nncourse: instructor tools for the course (hidden checks, grading, reports)."""
