"""The course's notebooks as shipped: `minibn course notebooks` and `minibn course nbgrader`
(nbgrader's own commands on the result are tested in test_nbgrader.py)."""

import json
from pathlib import Path

import pytest

from minibn import notebooks
from minibn.cli import main

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
PATHS = notebooks.paths()
GRADED = [p for p in PATHS if any(notebooks.graded_cells(json.loads(p.read_text())))]


def test_nine_notebooks_ship_inside_the_package():
    assert [p.name[:2] for p in PATHS] == [f"{i:02d}" for i in range(1, 10)]
    assert notebooks.FOLDER == Path(notebooks.__file__).parent


def test_the_course_has_the_graded_exercises_it_promises():
    cells = [c for p in GRADED for c in notebooks.graded_cells(json.loads(p.read_text()))]
    assert {"bn_forward_check", "bn_backward_chain_check", "bn_backward_closed_check", "inference_check",
            "fold_check", "running_stats_check", "layernorm_check", "groupnorm_check", "renorm_check",
            "pooled_check", "merge_check", "iit_check", "numerical_gradient_check", "gradcheck_check",
            "unit_percentiles_check", "init_std_check", "softmax_check"} <= \
        {gid for gid, _, _ in cells}
    assert sum(points for _, points, _ in cells) == 42
    for p in PATHS:
        for cell in json.loads(p.read_text())["cells"]:
            meta = cell["metadata"].get("nbgrader", {})
            assert not cell.get("outputs"), f"{p.name}: committed with outputs"
            if meta.get("solution"):
                assert BEGIN in "".join(cell["source"]) and END in "".join(cell["source"]), p.name
            if meta.get("grade"):
                assert meta.get("locked") and meta.get("points", 0) > 0, f"{p.name}: {meta}"


def test_the_instructors_answers_are_marked_for_nbgrader_to_leave_out():
    """Every folded answer block, and every "The paper's answer" to a graded derivation, lies
    between "BEGIN MARK SCHEME" and "END MARK SCHEME" lines, which generate_assignment removes
    (the student versions carried the answers before)."""
    marked = 0
    for p in PATHS:
        for cell in json.loads(p.read_text())["cells"]:
            text = "".join(cell["source"])
            answers = [i for i, line in enumerate(text.splitlines())
                       if "<details>" in line or "</details>" in line or "The paper's answer" in line]
            if not answers:
                continue
            lines = text.splitlines()
            begin = [i for i, line in enumerate(lines) if "BEGIN MARK SCHEME" in line]
            end = [i for i, line in enumerate(lines) if "END MARK SCHEME" in line]
            assert len(begin) == len(end) == 1 and begin[0] < min(answers) and max(answers) < end[0], p.name
            assert cell["cell_type"] == "markdown" and not cell["metadata"].get("nbgrader"), p.name
            marked += 1
    assert marked == len(PATHS) + 2  # nine discussion answers, and the derivations of 06 and 07


def test_course_notebooks_copies_and_never_overwrites(tmp_path, capsys):
    assert main(["course", "notebooks", str(tmp_path / "c")]) == 0
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [p.name for p in PATHS]
    assert (tmp_path / "c" / PATHS[0].name).read_bytes() == PATHS[0].read_bytes()
    # a student's notebook already there stays as it is, and nothing else is copied
    (tmp_path / "d").mkdir()
    mine = tmp_path / "d" / PATHS[5].name
    mine.write_text("my work")
    capsys.readouterr()
    assert main(["course", "notebooks", str(tmp_path / "d")]) == 2
    assert "would overwrite" in capsys.readouterr().err
    assert mine.read_text() == "my work" and list((tmp_path / "d").iterdir()) == [mine]


def test_course_notebooks_picks_by_number(tmp_path, capsys):
    assert main(["course", "notebooks", str(tmp_path / "one"), "01"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"1 notebook in {tmp_path / 'one'}/ (open it ")
    written = notebooks.copy_notebooks(tmp_path, ["01", "06_renorm_and_memorized_bn.ipynb"])
    assert [p.name[:2] for p in written] == ["01", "06"]
    with pytest.raises(ValueError, match="no course notebook named '10'"):
        notebooks.copy_notebooks(tmp_path / "x", ["10"])


def test_course_notebooks_says_how_to_get_jupyterlab_where_it_is_missing(tmp_path, capsys, monkeypatch):
    """A plain `pip install minibn` has no JupyterLab: the last line said to open the notebooks
    with `jupyter lab` without saying where it comes from."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "jupyterlab" else real(name, *a))
    assert main(["course", "notebooks", str(tmp_path / "c"), "01"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert 'pip install "minibn[notebooks]"' in last and "JupyterLab is not installed here" in last
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name == "jupyterlab" else real(name, *a))
    assert main(["course", "notebooks", str(tmp_path / "d"), "01"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith(f"(open it with `jupyter lab {tmp_path / 'd'}`)")


def test_course_commands_refuse_the_package_folder_and_files(tmp_path, capsys):
    before = {p: p.read_bytes() for p in PATHS}
    for action in ("notebooks", "nbgrader"):
        assert main(["course", action, str(notebooks.FOLDER)]) == 2
        assert "package's own notebook folder" in capsys.readouterr().err
        assert main(["course", action, str(notebooks.FOLDER / "sub")]) == 2
    assert {p: p.read_bytes() for p in PATHS} == before
    (tmp_path / "f").write_text("")
    assert main(["course", "notebooks", str(tmp_path / "f" / "c")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_notebooks_03_04_and_08_are_graded_assignments():
    assert {"03", "04", "08"} <= {p.name[:2] for p in GRADED}


def test_course_nbgrader_names_the_graded_notebooks_when_none_is_chosen(tmp_path, monkeypatch):
    plain = tmp_path / "10_plain.ipynb"  # a notebook without graded exercises
    plain.write_text(json.dumps({"cells": [{"cell_type": "markdown", "metadata": {}, "source": "# plain"}]}))
    monkeypatch.setattr(notebooks, "paths", lambda: [*PATHS, plain])
    with pytest.raises(ValueError, match=r"none of the notebooks 10 has graded exercises \(01, 02, 03, 04, .* do\)"):
        notebooks.nbgrader_course(tmp_path / "course", ["10"])


def test_course_nbgrader_lays_out_one_assignment_per_graded_notebook(tmp_path):
    names = notebooks.nbgrader_course(tmp_path, timeout=120)
    assert names == [p.stem for p in GRADED]
    for p in GRADED:
        assert (tmp_path / "source" / p.stem / p.name).read_bytes() == p.read_bytes()
    assert "c.Execute.timeout = 120" in (tmp_path / "nbgrader_config.py").read_text()
    with pytest.raises(FileExistsError):
        notebooks.nbgrader_course(tmp_path)
