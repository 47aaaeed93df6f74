"""The site in docs/: the notebooks' copies, the offline check, and a build with warnings as errors.

The build test needs the docs extra (``pip install -e ".[docs]"``) and skips without Sphinx; it
does not execute the notebooks (CI's .ci/run builds the whole site, notebooks executed, and checks
it in a browser).
"""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


def load(name):
    """A module of docs/ by file name (docs/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"_docs_{name}", DOCS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def is_solution(cell):
    return bool(cell.get("metadata", {}).get("nbgrader", {}).get("solution"))


@pytest.mark.parametrize("show", [False, True])
def test_copies_hide_exactly_the_solution_cells_and_the_answers(tmp_path, show):
    conf = load("conf")
    names = conf.copy_notebooks(dest=tmp_path, show_solutions=show)
    assert names == sorted(p.name for p in (conf.ROOT / "minibn" / "notebooks").glob("*.ipynb"))
    solutions = 0
    for name in names:
        original = json.loads((conf.ROOT / "minibn" / "notebooks" / name).read_text(encoding="utf-8"))
        copy = json.loads((tmp_path / name).read_text(encoding="utf-8"))
        added = [c for c in copy["cells"] if c["metadata"].get("minibn_site")]
        assert added[0] is copy["cells"][1] and "fast mode" in added[0]["source"]  # below the title
        assert len(added) == 1 + (0 if show else sum(map(is_solution, original["cells"])))
        kept = [c for c in copy["cells"] if not c["metadata"].get("minibn_site")]
        # the sources are the original's, less the instructor's answers on a student's site
        assert [c["source"] for c in kept] == [
            c["source"] if show or c["cell_type"] != "markdown" else conf.without_answers(c["source"])
            for c in original["cells"]]
        text = json.dumps(copy)
        assert ("MARK SCHEME" in text and "<summary>" in text) == show, name
        assert (conf.ANSWERS_NOTE in text) == (not show), name
        for cell in kept:
            removed = "remove-input" in cell.get("metadata", {}).get("tags", [])
            assert removed == (is_solution(cell) and not show), (name, cell["source"][:2])
            solutions += is_solution(cell)
    assert solutions >= 6  # the six graded notebooks each have at least one


def test_copies_are_rewritten_only_when_changed(tmp_path):
    conf = load("conf")
    conf.copy_notebooks(dest=tmp_path)
    first = tmp_path / "01_batchnorm_from_scratch.ipynb"
    stamp = first.stat().st_mtime_ns
    (tmp_path / "99_gone.ipynb").write_text("{}")
    conf.copy_notebooks(dest=tmp_path)
    assert first.stat().st_mtime_ns == stamp
    assert not (tmp_path / "99_gone.ipynb").exists()


def test_outside_references_are_found(tmp_path):
    check_site = load("check_site")
    (tmp_path / "a.html").write_text(
        '<link rel="stylesheet" href="_static/local.css">'
        '<script src="https://cdn.example.org/mathjax.js"></script>'
        '<svg xmlns="http://www.w3.org/2000/svg"></svg><a href="https://example.org">a link is fine</a>')
    (tmp_path / "b.css").write_text(
        '@import url("https://fonts.example.org/font.css");'
        ' .x { background: url("data:image/svg+xml;utf8,<svg xmlns=\'http://www.w3.org/2000/svg\'/>") }'
        ' .y { src: url(//fonts.example.org/x.woff2) } .z { src: url(fonts/local.woff2) }')
    found = check_site.static_external_references(tmp_path)
    assert [f.split(":")[0] for f in found] == ["a.html", "b.css", "b.css"], found


def test_local_link_targets(tmp_path):
    check_site = load("check_site")
    page = tmp_path / "api" / "index.html"
    page.parent.mkdir()
    page.write_text("")
    assert check_site.local_target(page, "https://example.org/x.html", tmp_path) is None
    assert check_site.local_target(page, "#top", tmp_path) == page
    assert check_site.local_target(page, "../gpu.html#install", tmp_path) == (tmp_path / "gpu.html").resolve()
    assert check_site.local_target(page, "../api/", tmp_path) == (tmp_path / "api" / "index.html").resolve()


@pytest.mark.slow
def test_site_builds_without_warnings(tmp_path):
    pytest.importorskip("sphinx", reason='the docs extra is not installed (pip install -e ".[docs]")')
    pytest.importorskip("myst_nb", reason='the docs extra is not installed (pip install -e ".[docs]")')
    out = tmp_path / "html"
    run = subprocess.run([sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html",
                          "-D", "nb_execution_mode=off", "-d", str(tmp_path / "doctrees"), str(DOCS), str(out)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    for page in ["index", "course", "reproductions", "benchmarks", "distributed", "gpu", "architecture",
                 "api/index", "api/generated/minibn.functional.batchnorm", "api/generated/minibn.kernels",
                 "api/generated/minibn.nn", "notebooks/01_batchnorm_from_scratch", "benchmarks/history"]:
        assert (out / f"{page}.html").is_file(), page


def test_a_full_build_does_not_say_fast_mode(tmp_path):
    conf = load("conf")
    conf.copy_notebooks(dest=tmp_path, fast=False)
    note = json.loads((tmp_path / "01_batchnorm_from_scratch.ipynb").read_text(encoding="utf-8"))["cells"][1]
    assert note["metadata"]["minibn_site"] and "sliders" in note["source"] and "fast mode" not in note["source"]


def test_the_answers_are_cut_between_their_marks():
    conf = load("conf")
    lines = ["Question?\n", "\n", "<!-- BEGIN MARK SCHEME: answers -->\n", "<details>\n", "secret\n",
             "</details>\n", "<!-- END MARK SCHEME -->\n", "\n", "After."]
    assert conf.without_answers(lines) == ["Question?\n", "\n", conf.ANSWERS_NOTE + "\n", "\n", "After."]
    assert conf.without_answers(["No answers.\n", "Here."]) == ["No answers.\n", "Here."]
    assert conf.without_answers("".join(lines)) == conf.without_answers(lines)  # a source as one string
