"""Sphinx configuration of minibn's site: MyST pages, the course's notebooks through MyST-NB, the API
from the docstrings.

Build (docs/building.md says more):

    pip install -e ".[docs]"
    sphinx-build -W -b html docs docs/_build/html

Environment variables read here:

* ``MINIBN_DOCS_FULL=1``: execute the notebooks in their full mode (the real experiments, as a
  student opening them in Jupyter gets them; for a release). Otherwise they run in the fast mode
  the test suite uses (``MINIBN_FAST=1``), a few minutes for all nine.
* ``MINIBN_DOCS_SOLUTIONS=1``: show the graded exercises' solution cells and the instructor's
  answers (an instructor's site).
  Otherwise they are removed from the pages, which show each checker's verdict on the instructor's
  solution (docs/course.md explains why).

The notebooks stay where the package ships them (minibn/notebooks/); at the start of a build
they are copied into docs/notebooks/ (git-ignored), with the tags MyST-NB reads added to the copy.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # autodoc imports the package from this checkout

import minibn  # noqa: E402  (after the path: the checkout's package, not another install)

FULL = os.environ.get("MINIBN_DOCS_FULL", "") == "1"
SHOW_SOLUTIONS = os.environ.get("MINIBN_DOCS_SOLUTIONS", "") == "1"


def notebook_environment() -> None:
    """Set the environment the notebooks' kernels inherit from this process (called when a build starts).

    ``MINIBN_FAST`` is the test suite's switch (conftest.py): 1 unless ``MINIBN_DOCS_FULL=1``.
    Without a GPU, the numba-cuda kernels run in numba-cuda's CPU simulator, as in the tests (the
    GPU cells themselves are skipped where CuPy has no device).
    """
    os.environ["MINIBN_FAST"] = "0" if FULL else "1"
    if "NUMBA_ENABLE_CUDASIM" not in os.environ and "cupy" not in minibn.backend.available():
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"


# What a reader of the site is told on every notebook page, below its title: the page is not
# the live notebook (no sliders) and, in fast mode, not the run its text describes.
PAGE_NOTE = ("This page is the notebook executed when the site was built. Its sliders work in Jupyter "
             "(`minibn course notebooks DEST`, then `jupyter lab DEST`); here each shows its default figure.")
FAST_NOTE = (" The site was built in the notebooks' fast mode (`MINIBN_FAST=1`: short runs, so that it builds "
             "in minutes): where the text describes what the default run shows, it means the full run you get "
             "in Jupyter, and the figures and numbers on this page, from the short one, can differ from it.")
SOLUTION_NOTE = ("*Your solution goes here. On this site the instructor's solution is hidden; the check "
                 "below ran on it. In Jupyter this cell holds a stub for you to replace.*")


ANSWERS_NOTE = ("*The instructor's answers are hidden on this site; they are in the notebooks that `minibn course "
                "notebooks` copies out.*")


def without_answers(source) -> list:
    """A markdown cell's lines (its source: a list of lines, or one string) without their "BEGIN MARK
    SCHEME" ... "END MARK SCHEME" regions (the instructor's answers, which nbgrader also leaves out
    of the student versions), ANSWERS_NOTE in the place of each."""
    out, inside = [], False
    for line in source.splitlines(keepends=True) if isinstance(source, str) else source:
        if "BEGIN MARK SCHEME" in line:
            inside = True
        elif "END MARK SCHEME" in line:
            inside = False
            out.append(ANSWERS_NOTE + ("\n" if line.endswith("\n") else ""))
        elif not inside:
            out.append(line)
    return out


def _site_cell(cell_id: str, text: str) -> dict:
    """A markdown cell the site adds to its copy of a notebook (marked ``minibn_site``)."""
    return {"cell_type": "markdown", "id": cell_id, "metadata": {"minibn_site": True}, "source": text}


def copy_notebooks(source: Path = ROOT / "minibn" / "notebooks", dest: Path = DOCS / "notebooks",
                   show_solutions: bool = SHOW_SOLUTIONS, fast: bool = not FULL) -> list[str]:
    """Copy the course's notebooks into ``dest``, tagging each nbgrader solution cell.

    A solution cell (metadata ``nbgrader.solution``) gets the tag ``remove-input`` (the page shows
    its output only), with a note before it saying so, and the instructor's answers in markdown
    cells are replaced by a note (:func:`without_answers`), unless ``show_solutions``
    (``MINIBN_DOCS_SOLUTIONS=1``). Below the title, a note says that the page is not the live
    notebook and, with ``fast``, that it was executed in fast mode. A copy is rewritten only when
    its content changes, so that MyST-NB's cache and Sphinx's incremental build see an unchanged
    notebook as unchanged. Returns the names of the notebooks copied.
    """
    dest.mkdir(exist_ok=True)
    names = []
    for path in sorted(source.glob("*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        cells = [nb["cells"][0], _site_cell("minibn-site-note",
                                            f":::{{note}}\n{PAGE_NOTE}{FAST_NOTE if fast else ''}\n:::")]
        for i, cell in enumerate(nb["cells"][1:]):
            if cell["cell_type"] == "markdown" and not show_solutions:
                cell["source"] = without_answers(cell["source"])
            if cell.get("metadata", {}).get("nbgrader", {}).get("solution") and not show_solutions:
                tags = cell["metadata"].setdefault("tags", [])
                if "remove-input" not in tags:
                    tags.append("remove-input")
                cells.append(_site_cell(f"minibn-site-solution-{i}", SOLUTION_NOTE))
            cells.append(cell)
        nb["cells"] = cells
        text = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
        target = dest / path.name
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
        names.append(path.name)
    for stale in dest.glob("*.ipynb"):  # a notebook renamed or removed in the package
        if stale.name not in names:
            stale.unlink()
    return names


project = "minibn"
author = "The minibn maintainers"
copyright = "the minibn maintainers, MIT License"
release = version = minibn.__version__

extensions = [
    "myst_nb",  # MyST Markdown pages and the notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",  # NumPy- and Google-style docstrings
    "sphinx.ext.viewcode",
    "sphinx-mathjax-offline",  # MathJax served from the site itself, not from a CDN
]

templates_path = ["_templates"]

exclude_patterns = [
    "_build",
    "**/.ipynb_checkpoints",
    "package-description.md",  # the package index's page (setup.cfg's long_description)
    "check_site.py",
    "notebooks/results",  # what the notebooks write when they run
    # included into pages that give them a title (they are written by the tools, without one)
    "benchmarks/cpu.md",
    "benchmarks/batchnorm_cpu.md",
    "benchmarks/distributed.md",
    "figures",  # the reproductions' tables are linked as files from reproductions.md
]

# --- MyST and MyST-NB ---------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = "cache"  # executed at build time; unchanged notebooks are not run again
# one cache per mode: the cache keys on the code, and the two modes differ only in the environment
nb_execution_cache_path = str(DOCS / "_build" / (".jupyter_cache_full" if FULL else ".jupyter_cache"))
nb_execution_timeout = 1800 if FULL else 300  # seconds per cell
nb_execution_raise_on_error = True  # a notebook that fails fails the build
nb_execution_show_tb = True
nb_merge_streams = True
# Widgets (the sliders of minibn.explore) need a running kernel to redraw; their JavaScript would
# come from a CDN. The site loads none: a page shows the figure for the default values, which
# the notebook also outputs as an ordinary image, and the widget outputs stay inert.
nb_ipywidgets_js = {}

# --- API reference -------------------------------------------------------------------------
autosummary_generate = True
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_numpy_docstring = True
napoleon_google_docstring = True
# numba and CuPy are imported on first use inside minibn; nothing to mock.

# --- HTML ----------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = "minibn"
html_static_path = ["_static"]
html_css_files = ["minibn.css"]
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "header_links_before_dropdown": 6,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_show_sourcelink = False


def setup(app):
    # before Sphinx looks for the sources: the notebooks' copies must be there to be found
    notebook_environment()
    copy_notebooks()
