"""What the instructor reads after grading, all from the gradebook and the markers, written
in one call (:func:`write_reports`): grade tables (CSV in the shape an LMS imports: one row
per student), per-part pass rates, a grade distribution plot, the submissions that need a
look."""

import csv
import os

from nbgrader.api import Gradebook, MissingEntry

from .course import COURSE_ID
from .autograde import markers
from .autograde.markers import FAILED, INCOMPLETE

BONUS_PREFIX = "bonus_"  # cells whose grade_id starts with this add points beyond the maximum


def submissions(db_url, problem_set):
    """``{student: {part: (score, max_score, needs_manual_grade)}}`` for a problem set."""
    table = {}
    with Gradebook(db_url, COURSE_ID) as gradebook:
        try:
            gradebook.find_assignment(problem_set)
        except MissingEntry:
            return table
        for submission in gradebook.assignment_submissions(problem_set):
            parts = table.setdefault(submission.student_id, {})
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    parts[grade.name] = (grade.score or 0.0, grade.max_score,
                                         bool(grade.needs_manual_grade))
    return table


def roster(db_url):
    """The students an instructor entered in the gradebook (``nbgrader db student add`` or
    ``import``, with a name, an email or an LMS id), as opposed to those nbgrader added itself
    on grading a submission. Empty: the course keeps no roster."""
    with Gradebook(db_url, COURSE_ID) as gradebook:
        return {student.id for student in gradebook.students
                if student.first_name or student.last_name or student.email
                or student.lms_user_id}


def _total(parts):
    score = sum(score for score, _, _ in parts.values())
    maximum = sum(top for name, (_, top, _) in parts.items() if not name.startswith(BONUS_PREFIX))
    return score, maximum


def grade_table(db_url, problem_set):
    """One row per graded submission: points, the maximum without bonus, manual work left."""
    return grade_rows(submissions(db_url, problem_set))


def grade_rows(table):
    """:func:`grade_table` from a problem set's :func:`submissions`."""
    rows = []
    for student, parts in sorted(table.items()):
        score, maximum = _total(parts)
        rows.append({"student": student, "score": round(score, 2), "max_score": round(maximum, 2),
                     "percent": round(100 * score / maximum, 1) if maximum else 0.0,
                     "needs_manual_grading": sum(pending for _, _, pending in parts.values())})
    return rows


# a cell that starts with one of these is a formula to a spreadsheet or an LMS (OWASP's rule)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """A value for a CSV file an instructor opens in a spreadsheet: text a submission may have
    chosen (a folder name, a message) cannot start a formula; numbers stay numbers."""
    if not isinstance(value, str):
        return value
    return "'" + value if value.startswith(_FORMULA_START) else value


def _write(path, fieldnames, rows):
    """Writes a CSV report whole or not at all (a reader never finds half a table), in UTF-8."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    partial = path + ".partial"
    with open(partial, "w", newline="", encoding="utf-8", errors="backslashreplace") as out:
        writer = csv.DictWriter(out, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows({key: csv_cell(value) for key, value in row.items()} for row in rows)
    os.replace(partial, path)


def write_problem_set_csv(table, parts, path, failures=None):
    """From a problem set's :func:`submissions`: one row per student, one column per graded
    part (``parts``, in notebook order), then the total. A student in ``failures`` (see
    :func:`nncourse.autograde.markers.problems`) whose grading failed gets a row with empty
    scores."""
    failures = failures or {}
    rows = []
    for student, scores in sorted(table.items()):
        score, maximum = _total(scores)
        row = {"student": student, **{part: round(scores[part][0], 2)
                                      for part in parts if part in scores}}
        row.update(total=round(score, 2), max_score=round(maximum, 2),
                   needs_manual_grading=sum(pending for _, _, pending in scores.values()))
        rows.append(row)
    rows += [{"student": student} for student, (status, _) in failures.items()
             if status == FAILED and student not in table]
    rows.sort(key=lambda row: row["student"])
    _write(path, ["student", *parts, "total", "max_score", "needs_manual_grading"], rows)


def write_class_csv(tables, path, failures=None):
    """From ``{problem set: its submissions()}``: one row per student, one column per graded
    problem set, then the total. A cell is empty where there is no grade: no submission, or
    its grading failed (``failures``: ``{problem set: markers.problems()}``), never 0."""
    failures = failures or {}
    totals, graded = {}, []
    for problem_set, table in tables.items():
        failed = {student for student, (status, _) in failures.get(problem_set, {}).items()
                  if status == FAILED}
        graded += [problem_set] if table or failed else []
        for student, parts in table.items():
            if student not in failed:
                totals.setdefault(student, {})[problem_set] = round(_total(parts)[0], 2)
        for student in failed:
            totals.setdefault(student, {})
    rows = [{"student": student, **scores, "total": round(sum(scores.values()), 2)}
            for student, scores in sorted(totals.items())]
    _write(path, ["student", *graded, "total"], rows)
    return rows


def write_problems(failures, not_graded, path):
    """The companion of the grade tables: one row per submission without a full grade
    (``failed``: no grade, ``incomplete``: graded in part, ``not graded``: a problem with the
    submitted files), with why. Returns the number of rows; an empty table removes the file."""
    rows = [{"problem_set": problem_set, "student": student, "status": status, "reason": reason}
            for problem_set, found in failures.items()
            for student, (status, reason) in found.items()]
    rows += [{"problem_set": problem_set, "student": student, "status": "not graded",
              "reason": reason} for problem_set, student, reason in not_graded]
    rows.sort(key=lambda row: (row["problem_set"], row["student"]))
    if rows:
        _write(path, ["problem_set", "student", "status", "reason"], rows)
    elif os.path.exists(path):
        os.remove(path)
    return len(rows)


def pass_rates(table, parts):
    """From a problem set's :func:`submissions`, per part (``parts``: the automatically graded
    ones, in order): how many students earned its full points. A score still waiting for a
    grader is left out."""
    rows = []
    for part in parts:
        scored = [(score, top) for grades in table.values() if part in grades
                  for score, top, pending in [grades[part]] if not pending]
        if not scored:
            continue
        passed = sum(score >= top for score, top in scored)
        rows.append({"part": part, "points": scored[0][1], "students": len(scored),
                     "passed": passed, "pass_rate": round(passed / len(scored), 3),
                     "mean_score": round(sum(score for score, _ in scored) / len(scored), 2)})
    return rows


def write_pass_rates(rows, path):
    _write(path, ["part", "points", "students", "passed", "pass_rate", "mean_score"], rows)


def plot_distribution(rows, problem_set, path):
    """Histogram of the students' percentages, as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    percents = [row["percent"] for row in rows]
    figure, axes = plt.subplots(figsize=(6, 3.5))
    axes.hist(percents, bins=[10 * i for i in range(11)], color="#4878a8", edgecolor="white")
    axes.set_xlim(0, 100)
    axes.set_xlabel("score (% of the maximum; answers not yet graded by hand count 0)")
    axes.set_ylabel("students")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    mean = sum(percents) / len(percents) if percents else 0.0
    axes.set_title("%s: %d students, mean %.1f%%" % (problem_set, len(percents), mean))
    figure.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    figure.savefig(path + ".partial", dpi=100, format="png")
    os.replace(path + ".partial", path)
    plt.close(figure)


def _answers_to_grade(count):
    if not count:
        return "-"
    return "1 answer to grade" if count == 1 else "%d answers to grade" % count


def format_table(rows, failures=None):
    """The grade table as text; a submission whose grading failed or is incomplete says so."""
    failures = failures or {}
    lines = ["%-16s %7s %7s %8s  %s" % ("student", "score", "max", "percent", "manual")]
    listed = []
    for row in rows:
        listed.append((row["student"], "%-16s %7.2f %7.2f %7.1f%%  %s%s" % (
            row["student"], row["score"], row["max_score"], row["percent"],
            _answers_to_grade(row["needs_manual_grading"]),
            "  (incomplete: see grading-problems.csv)"
            if failures.get(row["student"], ("",))[0] == INCOMPLETE else "")))
    listed += [(student, "%-16s %7s  (grading failed: see grading-problems.csv)" % (student, "-"))
               for student, (status, _) in failures.items() if status == FAILED]
    return "\n".join(lines + [line for _, line in sorted(listed)])


def mistake_counts(found, explanations=None):
    """From ``{student: [mistake records]}`` (markers.mistakes): one row per catalogued
    mistake, the commonest first, with how many students made it and in which cells."""
    explanations = explanations or {}
    rows = {}
    for student, records in found.items():
        for record in records:
            row = rows.setdefault(record["mistake"], {
                "mistake": record["mistake"], "students": set(), "cells": set(),
                "explanation": explanations.get(record["mistake"], "")})
            row["students"].add(student)
            row["cells"].add(str(record.get("cell", "")))
    return [dict(row, students=len(row["students"]), cells=" ".join(sorted(row["cells"])))
            for row in sorted(rows.values(), key=lambda r: (-len(r["students"]), r["mistake"]))]


def write_mistakes(rows, path):
    _write(path, ["mistake", "students", "cells", "explanation"], rows)


def format_mistakes(rows, most=5):
    """The catalogued mistakes most students made."""
    return "\n".join("  %-56s %d student%s" % (row["mistake"], row["students"],
                                              "" if row["students"] == 1 else "s")
                     for row in rows[:most])


def format_pass_rates(rows, worst=5):
    """The parts the fewest students passed."""
    hardest = sorted(rows, key=lambda row: (row["pass_rate"], row["part"]))[:worst]
    return "\n".join("  %-32s %5.0f%% of %d passed" % (row["part"], 100 * row["pass_rate"],
                                                        row["students"]) for row in hardest)


def write_reports(course, problem_sets, not_graded=()):
    """Every report, from the gradebook and the markers: for each of ``problem_sets``, its
    grade table, pass rates and distribution; for the course, ``grades.csv`` (every released
    problem set) and ``grading-problems.csv`` (``not_graded``: (problem set, student, why) of
    submissions that could not even be handed to the grader). Returns (the summary to print,
    grades.csv's path, the number of submissions grading-problems.csv lists)."""
    tables = {ps: submissions(course.db_url, ps) for ps in course.released()}
    failures = {ps: markers.problems(course, ps, tables[ps]) for ps in tables}
    summary = [_write_problem_set(course, ps, tables[ps], failures[ps]) for ps in problem_sets]
    path = course.path("reports", "grades.csv")
    write_class_csv(tables, path, failures)
    listed = write_problems(failures, not_graded, course.path("reports", "grading-problems.csv"))
    return "".join(summary), path, listed


def _write_problem_set(course, problem_set, table, failures):
    """One problem set's reports; returns its summary (its table, the hardest parts, the
    commonest catalogued mistakes)."""
    # a submission that failed has no grade: left out, never counted as 0
    table = {student: parts for student, parts in table.items()
             if failures.get(student, ("",))[0] != FAILED}
    rows = grade_rows(table)
    if not rows and not failures:
        return ""
    folder = course.path("reports")
    write_problem_set_csv(table, course.graded_parts(problem_set),
                          os.path.join(folder, problem_set + "-grades.csv"), failures)
    rates = pass_rates(table, course.graded_parts(problem_set, automatic_only=True))
    write_pass_rates(rates, os.path.join(folder, problem_set + "-pass-rates.csv"))
    plot_distribution(rows, problem_set, os.path.join(folder, problem_set + "-distribution.png"))
    mistakes = mistake_counts(markers.mistakes(course, problem_set), _explanations(problem_set))
    write_mistakes(mistakes, os.path.join(folder, problem_set + "-mistakes.csv"))
    summary = "\n%s\n%s\n" % (problem_set, format_table(rows, failures))
    if rates:
        summary += "parts the fewest students passed:\n" + format_pass_rates(rates) + "\n"
    if mistakes:
        summary += "mistakes most students made:\n" + format_mistakes(mistakes) + "\n"
    return summary + ("reports/%s-{grades,pass-rates,mistakes}.csv, reports/%s-distribution.png"
                      ", feedback/*/%s/\n" % (problem_set, problem_set, problem_set))


def _explanations(problem_set):
    from .catalogue import load
    try:
        return {mutant.name: mutant.explanation for mutant in load(problem_set).MUTANTS}
    except KeyError:  # a problem set of another course
        return {}
