"""The grade table of a problem set, from the gradebook."""

import csv
import os

from nbgrader.api import Gradebook, MissingEntry

BONUS_PREFIX = "bonus_"  # cells whose grade_id starts with this add points beyond the maximum


def grade_table(db_url, problem_set):
    """One row per graded submission: points, the maximum without bonus, manual work left."""
    rows = []
    with Gradebook(db_url, "nncourse") as gradebook:
        try:
            gradebook.find_assignment(problem_set)
        except MissingEntry:
            return rows
        for submission in gradebook.assignment_submissions(problem_set):
            score = maximum = 0.0
            pending = 0
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    score += grade.score or 0.0
                    if not grade.name.startswith(BONUS_PREFIX):
                        maximum += grade.max_score
                    pending += bool(grade.needs_manual_grade)
            rows.append({"student": submission.student_id, "score": round(score, 2),
                         "max_score": round(maximum, 2),
                         "percent": round(100 * score / maximum, 1) if maximum else 0.0,
                         "needs_manual_grading": pending})
    return sorted(rows, key=lambda row: row["student"])


def write_csv(rows, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=["student", "score", "max_score", "percent",
                                                 "needs_manual_grading"])
        writer.writeheader()
        writer.writerows(rows)


def format_table(rows):
    lines = ["%-16s %7s %7s %8s  %s" % ("student", "score", "max", "percent", "manual")]
    for row in rows:
        lines.append("%-16s %7.2f %7.2f %7.1f%%  %s" % (
            row["student"], row["score"], row["max_score"], row["percent"],
            "%d answers to grade" % row["needs_manual_grading"]
            if row["needs_manual_grading"] else "-"))
    return "\n".join(lines)
