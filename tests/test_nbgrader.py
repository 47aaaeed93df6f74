"""The course as an instructor runs it: nbgrader's own commands on the shipped notebooks.

`minibn course nbgrader` lays out the course directory; nbgrader's `generate_assignment`
writes the student versions, `autograde` executes submissions (with MINIBN_FAST=1, which the
root conftest sets) and `generate_feedback` writes the HTML a student reads. Every graded
notebook is generated; the untouched student version scores 0 in each of those that grade
in seconds (06 and 07 run experiments for about 40 s each even in fast mode: their checkers'
refusal of a stub is tested directly in test_course.py; 03 trains two short networks too, but
its percentile recorder is the exercise that checks what Fig. 1 shows, so it is autograded).
Notebook 01 in full: the instructor's solution scores every point, a typical mistake loses that
exercise's points and its hint reaches the feedback, and an edited check cell is detected and
restored.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from minibn import notebooks
from minibn.cli import main

pytestmark = pytest.mark.slow

GRADED = [p.stem for p in notebooks.paths() if any(notebooks.graded_cells(json.loads(p.read_text())))]
FIRST = "01_batchnorm_from_scratch"
STUBS_GRADED = [a for a in GRADED if not a.startswith(("06", "07"))]
# nbgrader calls the programs of its environment (alembic for the gradebook): this
# interpreter's bin folder first on PATH, as in an activated virtual environment
_ENV = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}


def _nbgrader_or_skip():
    try:
        import nbgrader  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("nbgrader is required for the course tests when CI is set (pip install -e '.[test]')")
        pytest.skip("nbgrader not installed (pip install -e '.[course]')")


def _nbgrader(course, *args):
    """Run an nbgrader command in the course directory; returns its log (stdout + stderr)."""
    done = subprocess.run(["nbgrader", *args], cwd=course, capture_output=True, text=True, timeout=900, env=_ENV)
    log = done.stdout + done.stderr
    assert done.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{log[-3000:]}"
    return log


def _cells(path):
    return json.loads(Path(path).read_text())


def _submit(course, student, assignment, nb):
    folder = course / "submitted" / student / assignment
    folder.mkdir(parents=True)
    (folder / f"{assignment}.ipynb").write_text(json.dumps(nb, indent=1))


def _set_cell(nb, grade_id, source):
    cell = next(c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == grade_id)
    cell["source"] = source


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The course directory after generate_assignment and autograde of every submission."""
    _nbgrader_or_skip()
    course = tmp_path_factory.mktemp("course")
    assert main(["course", "nbgrader", str(course)]) == 0
    logs = {}
    # every assignment in one call (nbgrader takes a glob): each nbgrader command costs about
    # 5 s of start-up on the CI machine before it does anything
    _nbgrader(course, "generate_assignment", "*")
    for a in STUBS_GRADED:
        _submit(course, "stub", a, _cells(course / "release" / a / f"{a}.ipynb"))

    release = _cells(course / "release" / FIRST / f"{FIRST}.ipynb")
    solution = _cells(course / "source" / FIRST / f"{FIRST}.ipynb")
    _submit(course, "solution", FIRST, solution)
    # a typical mistake: the unbiased variance in Algorithm 1 (the other three exercises right)
    mistake = json.loads(json.dumps(solution))
    _set_cell(mistake, "bn_forward", "def batchnorm_forward(x, gamma, beta, eps):\n"
                                     "    mu = x.mean(axis=0)\n    var = x.var(axis=0, ddof=1)\n"
                                     "    return gamma * (x - mu) / np.sqrt(var + eps) + beta\n")
    _submit(course, "mistake", FIRST, mistake)
    # a student who replaces a locked check cell by one that always passes (exercises unsolved)
    tampered = json.loads(json.dumps(release))
    _set_cell(tampered, "bn_forward_check", "print('batchnorm_forward: all checks passed')\n")
    _submit(course, "tampered", FIRST, tampered)

    for a in STUBS_GRADED:
        logs[a] = _nbgrader(course, "autograde", a)
    logs["feedback"] = _nbgrader(course, "generate_feedback", FIRST)
    return course, logs


def _score(course, assignment, student):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        sub = gb.find_submission(assignment, student)
        return sub.score, sub.max_score


@pytest.mark.parametrize("assignment", GRADED)
def test_the_student_version_has_stubs_and_locked_checks(graded, assignment):
    course, logs = graded
    released = _cells(course / "release" / assignment / f"{assignment}.ipynb")
    assert "### BEGIN SOLUTION" not in json.dumps(released) and "NotImplementedError" in json.dumps(released)
    # the discussion questions stay, the instructor's answers to them do not (they were released)
    source = json.dumps(_cells(course / "source" / assignment / f"{assignment}.ipynb"))
    assert "Questions to discuss" in source and "<summary>" in source and "BEGIN MARK SCHEME" in source
    assert "Questions to discuss" in json.dumps(released)
    assert "<summary>" not in json.dumps(released) and "MARK SCHEME" not in json.dumps(released)
    assert "The paper's answer" not in json.dumps(released)  # the graded derivations' results (06, 07)
    checks = [c for c in released["cells"] if c["metadata"].get("nbgrader", {}).get("grade")]
    assert checks and all(c["metadata"]["nbgrader"]["locked"] and c["metadata"]["nbgrader"].get("checksum")
                          for c in checks)


@pytest.mark.parametrize("assignment", STUBS_GRADED)
def test_the_student_version_scores_zero(graded, assignment):
    course, logs = graded
    score, max_score = _score(course, assignment, "stub")
    assert max_score > 0 and score == 0


def test_the_solution_scores_full_marks_without_warnings(graded):
    course, logs = graded
    assert _score(course, FIRST, "solution") == (9.0, 9.0)
    # a checker returns nothing, so nbgrader has no output to read as a score
    assert "cannot be converted to a float" not in logs[FIRST]


def test_a_typical_mistake_loses_its_points_and_the_feedback_names_it(graded):
    course, logs = graded
    assert _score(course, FIRST, "mistake") == (6.0, 9.0)  # Algorithm 1's 3 points lost
    html = (course / "feedback" / "mistake" / FIRST / f"{FIRST}.html").read_text()
    assert "Likely mistake: the unbiased variance" in html


def test_an_edited_check_cell_is_detected_and_restored(graded):
    course, logs = graded
    assert _score(course, FIRST, "tampered") == (0.0, 9.0)
    assert "Attribute 'checksum' for cell bn_forward_check has changed" in logs[FIRST]
    # what a student sees with `nbgrader validate` (or the Validate button) before submitting
    nb = course / "submitted" / "tampered" / FIRST / f"{FIRST}.ipynb"
    out = subprocess.run(["nbgrader", "validate", str(nb)], cwd=course, capture_output=True, text=True, timeout=600,
                         env=_ENV)
    assert "THE CONTENTS OF 1 TEST CELL(S) HAVE CHANGED" in out.stdout + out.stderr
