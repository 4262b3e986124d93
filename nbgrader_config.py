# nbgrader settings of the course. nbgrader reads this file from the course root (the folder
# holding source/, release/, solutions/), whichever nbgrader command runs there.
import os
import sys

from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, ClearHiddenTests,
                                    ClearMarkScheme, ClearOutput, ClearSolutions,
                                    ComputeChecksums, DeduplicateIds, IgnorePattern,
                                    IncludeHeaderFooter, InstantiateTests, LimitOutput, LockCells,
                                    OverwriteCells, OverwriteKernelspec, SaveAutoGrades, SaveCells)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nncourse import pages  # noqa: E402
from nncourse.course import COURSE_ID  # noqa: E402
from nncourse.autograde.markers import MARKER  # noqa: E402
from nncourse.autograde.execute import LimitedExecute  # noqa: E402
from nncourse.release import AppendSelfCheck, EmbedImages, NameStubs  # noqa: E402
from nncourse.autograde.preprocessors import (ExpandChecks, JudgeChecks,  # noqa: E402
                                              KeepFirstCopy, refuse_stock_autograde)

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)

# Stock `nbgrader autograde` would run students' code outside the sandbox, in a kernel that
# could import this checkout (and rewrite the hidden checks): it stops here with one line.
# `nncourse grade` loads this file itself; Formgrader's autograde button is refused by
# ExpandChecks (nncourse/autograde/preprocessors.py).
refuse_stock_autograde()

c.CourseDirectory.course_id = COURSE_ID
c.CourseDirectory.solution_directory = "solutions"
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(os.path.dirname(os.path.abspath(__file__)), "gradebook.db")

# nncourse grade marks a finished submission with a file (nncourse/autograde/markers.py) that nbgrader
# must not copy on (to feedback/, for instance).
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", MARKER]

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# A release names each blank stub's part and section in its NotImplementedError, carries its
# pictures as cell attachments and ends with a cell that runs its visible tests where there is
# no nbgrader (nncourse/release.py); otherwise nbgrader's own steps.
c.GenerateAssignment.preprocessors = [
    IncludeHeaderFooter, InstantiateTests, LockCells, ClearSolutions, NameStubs, EmbedImages,
    AppendSelfCheck, ClearOutput, CheckCellMetadata, ComputeChecksums, SaveCells,
    ClearHiddenTests, ClearMarkScheme, ComputeChecksums, CheckCellMetadata,
]

# A cell that a student copied or split appears twice: graded from its first copy (stock
# nbgrader fails the whole submission).
c.Autograde.sanitize_preprocessors = [ClearOutput, KeepFirstCopy, DeduplicateIds,
                                      OverwriteKernelspec, OverwriteCells, CheckCellMetadata]

# Hidden checks are judged outside the student's kernel (docs/checks.md): the probes are put
# in just before execution and judged just after, by nbgrader's own autograde.
c.Autograde.autograde_preprocessors = [
    ExpandChecks,
    LimitedExecute,
    JudgeChecks,
    IgnorePattern,
    ClearMetadataPreprocessor,
    LimitOutput,
    SaveAutoGrades,
    AssignLatePenalties,
    CheckCellMetadata,
]

# Notebooks run in fast mode under the grader. What a cell and a notebook may use is measured
# in CPU time (per core of the kernel's share), so that a score does not depend on how busy the
# machine is; a cell past its limit is interrupted, a notebook past its own runs no more cells.
# The wall-clock limits only catch what uses no CPU (a cell that sleeps or waits forever).
c.LimitedExecute.cell_cpu_limit = 120
c.LimitedExecute.notebook_cpu_limit = 600
c.Execute.timeout = 300
c.LimitedExecute.notebook_timeout = 1200
c.LimitedExecute.cell_output_bytes = 2_000_000
c.LimitedExecute.notebook_output_bytes = 20_000_000  # errors included

# What one sandboxed kernel may use (Sandbox, in nncourse/sandbox/bubblewrap.py, where each
# setting's help says what it bounds; sizes in MB). These are the defaults.
c.Sandbox.memory_mb = 4096
c.Sandbox.processes = 512
c.Sandbox.file_mb = 256
c.Sandbox.tmp_mb = 512
c.Sandbox.job_mb = 512
c.Sandbox.shm_mb = 256

# Formgrader's submission page and the feedback: nbgrader's pages with the model answers and
# rubrics, the student's own outputs, one maximum score (bonus above it) and MathJax served by
# Jupyter, not a CDN (nncourse/pages/).
c.HTMLExporter.extra_template_basedirs = [pages.TEMPLATES, pages.nbgrader_templates()]
c.HTMLExporter.template_file = pages.TEMPLATE_FILE
c.HTMLExporter.filters = pages.CourseFilters(os.path.dirname(os.path.abspath(__file__))).filters()

# Worked solutions are committed without outputs (running them would train in full mode) and
# without hidden tests (they name the grader's checks, which TAs and students do not need).
c.GenerateSolution.preprocessors = [IncludeHeaderFooter, LockCells, ClearOutput, ClearMarkScheme,
                                    ClearHiddenTests]
