"""`minibn course release`: the student versions of the course notebooks, and their graded
cells, which must fail on the stubs (the instructor versions pass them: the test run
executes every notebook)."""

import json
from pathlib import Path

import pytest

from minibn.cli import main
from minibn.release import BEGIN, END, graded_cells, strip_solutions, student_version

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
GRADED = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")
                if any(True for _ in graded_cells(json.loads(p.read_text()))))


def test_strip_solutions_keeps_the_indentation_and_everything_outside():
    src = f"def f(x):\n    '''doc'''\n    {BEGIN}\n    return x + 1\n    {END}\n\nprint(f)\n"
    assert strip_solutions(src) == "def f(x):\n    '''doc'''\n    # YOUR CODE HERE\n    raise NotImplementedError()\n" \
                                   "\nprint(f)\n"
    with pytest.raises(ValueError, match="without"):
        strip_solutions(f"{BEGIN}\nx = 1\n")


def test_the_course_has_the_graded_exercises_it_promises():
    names = {gid for p in GRADED for gid, _, _ in graded_cells(json.loads((NOTEBOOKS / p).read_text()))}
    assert {"bn_forward_check", "bn_backward_chain_check", "bn_backward_closed_check", "inference_check",
            "fold_check", "running_stats_check", "layernorm_check", "groupnorm_check", "renorm_check",
            "pooled_check", "merge_check", "iit_check", "numerical_gradient_check", "gradcheck_check"} <= names
    for p in GRADED:
        nb = json.loads((NOTEBOOKS / p).read_text())
        for cell in nb["cells"]:
            meta = cell["metadata"].get("nbgrader", {})
            assert not cell.get("outputs"), f"{p}: committed with outputs"
            if meta.get("solution"):
                assert BEGIN in "".join(cell["source"]), f"{p}: a solution cell without a solution region"


def test_release_writes_student_versions(tmp_path, capsys):
    assert main(["course", "release", str(tmp_path), "--notebooks", str(NOTEBOOKS)]) == 0
    assert "points in all" in capsys.readouterr().out
    for p in GRADED:
        student = json.loads((tmp_path / p).read_text())
        text = json.dumps(student)
        assert BEGIN not in text and END not in text and "NotImplementedError" in text
        assert student == student_version(json.loads((NOTEBOOKS / p).read_text()))


@pytest.mark.slow
@pytest.mark.parametrize("name", GRADED)
def test_every_graded_cell_fails_on_the_student_stubs(tmp_path, name, monkeypatch):
    """Run the student version top to bottom (errors allowed): each graded cell must end in an
    error, so that a stub can never earn its points."""
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("MINIBN_FAST", "1")
    nb = nbformat.reads(json.dumps(student_version(json.loads((NOTEBOOKS / name).read_text()))), as_version=4)
    NotebookClient(nb, timeout=600, allow_errors=True, resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    graded = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert graded
    for cell in graded:
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert errors, f"{name}: graded cell {cell.metadata['nbgrader']['grade_id']} passed on the stubs"
        assert errors[0].ename in ("NotImplementedError", "ExerciseError", "NameError"), errors[0].ename
