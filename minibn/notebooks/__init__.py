"""The course's nine notebooks, shipped with the package (instructor versions, nbgrader format).

A student or an instructor who installed minibn gets them with ``minibn course notebooks
DEST`` (a copy to read and run); an instructor gets an nbgrader course directory, one
assignment per notebook, with ``minibn course nbgrader DEST``, and from there uses
nbgrader's own commands (``nbgrader generate_assignment``, ``autograde``,
``generate_feedback``): they write the student versions with checksums and locked check
cells, which a home-made release would have to repeat. docs/course.md has the recipe.

In the notebooks, a graded exercise is a solution cell (metadata ``nbgrader.solution``)
whose answer stands between ``### BEGIN SOLUTION`` and ``### END SOLUTION``, and an
autograded test cell (``nbgrader.grade``, ``points``, locked) that calls a checker of
:mod:`minibn.course`.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

__all__ = ["FOLDER", "paths", "graded_cells", "copy_notebooks", "nbgrader_course"]

FOLDER = Path(__file__).resolve().parent
"""The folder of the instructor notebooks inside the installed package."""

# nbgrader runs each cell with a 30 s limit by default; the experiment cells of notebooks 06,
# 07 and 09 take minutes in the full run (docs/course.md gives the times measured per notebook).
NBGRADER_CONFIG = '''\
# nbgrader's configuration for the minibn course (written by `minibn course nbgrader`).
c = get_config()
c.CourseDirectory.course_id = "minibn"
# Seconds a cell may run when nbgrader executes a notebook (autograde, validate): the
# experiments of notebooks 06, 07 and 09 run for minutes in their full mode. With
# MINIBN_FAST=1 in the environment of `nbgrader autograde` every notebook takes its short
# path (the graded checks are the same).
c.Execute.timeout = {timeout}
# Each notebook's answers to its discussion questions (for the instructor) sit between
# "BEGIN MARK SCHEME" and "END MARK SCHEME" lines in a markdown cell that is not graded:
# generate_assignment's ClearMarkScheme removes them from the student version, which it
# does outside nbgrader's "task" cells only with this option (without it, it stops with
# an error rather than release them).
c.ClearMarkScheme.enforce_metadata = False
'''


def paths() -> list[Path]:
    """The instructor notebooks (``NN_name.ipynb``), in course order."""
    return sorted(FOLDER.glob("[0-9][0-9]_*.ipynb"))


def graded_cells(notebook: dict):
    """Yield ``(grade_id, points, source)`` for every autograded test cell of a notebook
    (nbformat 4, as the dict of its JSON)."""
    for cell in notebook["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade"):
            yield meta["grade_id"], meta.get("points", 0), "".join(cell["source"])


def _select(names) -> list[Path]:
    available = {p.stem: p for p in paths()}
    if not names:
        return list(available.values())
    chosen = []
    for name in names:
        # "01", "01_batchnorm_from_scratch" and "01_batchnorm_from_scratch.ipynb" all name notebook 01
        stem = name.removesuffix(".ipynb")
        match = [p for s, p in available.items() if s == stem or s.split("_")[0] == stem]
        if not match:
            raise ValueError(f"no course notebook named {name!r}; the notebooks are: {', '.join(available)}")
        chosen += match
    return chosen


def _refuse_overwrite(targets):
    existing = [str(t) for t in targets if t.exists()]
    if existing:
        raise FileExistsError(f"would overwrite {len(existing)} existing file(s), e.g. {existing[0]}: "
                              "choose another folder, or move them away first")


def _writable_folder(dest) -> Path:
    dest = Path(dest).expanduser().resolve()
    if dest == FOLDER or FOLDER in dest.parents:
        raise ValueError(f"{dest} is the package's own notebook folder: choose a folder outside it")
    for p in (dest, *dest.parents):
        if p.exists():
            if not p.is_dir():
                raise NotADirectoryError(f"{dest}: {p} exists and is not a folder")
            break
    return dest


def copy_notebooks(dest, names=None) -> list[Path]:
    """Copy the instructor notebooks (all, or those of ``names``, e.g. ``["01", "06"]``) into
    ``dest``, creating it. Never overwrites: raises FileExistsError before copying anything if
    one of the notebooks is already there. Returns the paths written."""
    dest = _writable_folder(dest)
    sources = _select(names)
    targets = [dest / p.name for p in sources]
    _refuse_overwrite(targets)
    dest.mkdir(parents=True, exist_ok=True)
    for src, dst in zip(sources, targets):
        shutil.copyfile(src, dst)
    return targets


def nbgrader_course(dest, names=None, timeout=600) -> list[str]:
    """Lay out an nbgrader course directory in ``dest``: ``source/<stem>/<stem>.ipynb`` for each
    notebook with graded exercises (one assignment per notebook, so a slow notebook's grading
    does not hold up the others) and ``nbgrader_config.py`` with a per-cell timeout of
    ``timeout`` seconds. Never overwrites a file that exists. Returns the assignment names."""
    dest = _writable_folder(dest)
    sources = [p for p in _select(names) if any(graded_cells(json.loads(p.read_text())))]
    if not sources:
        graded = [p.stem[:2] for p in paths() if any(graded_cells(json.loads(p.read_text())))]
        raise ValueError(f"none of the notebooks {' '.join(names)} has graded exercises "
                         f"({', '.join(graded[:-1])} and {graded[-1]} do)")
    config = dest / "nbgrader_config.py"
    targets = [dest / "source" / p.stem / p.name for p in sources]
    _refuse_overwrite([config, *targets])
    for src, dst in zip(sources, targets):
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    config.write_text(NBGRADER_CONFIG.format(timeout=int(timeout)))
    return [p.stem for p in sources]


def add_cli(sub):
    """The ``minibn course`` subcommands."""
    from ..cli_args import HelpFormatter, positive_int

    p = sub.add_parser("course", help="get the course's notebooks, or an nbgrader course directory",
                       description="The course's notebooks ship with minibn. `notebooks` copies them to read "
                                   "and run; `nbgrader` lays out a course directory for nbgrader, whose own "
                                   "commands then release and grade them (the recipe: docs/course.md, in the "
                                   "source distribution and the repository).")
    course_sub = p.add_subparsers(dest="action", required=True)
    n = course_sub.add_parser("notebooks", help="copy the notebooks into a folder", formatter_class=HelpFormatter,
                              description="Copy the course's notebooks (instructor versions, with the solutions) "
                                          "into DEST, e.g. `minibn course notebooks course && jupyter lab course`. "
                                          "Refuses to overwrite a notebook that is already there.")
    n.add_argument("dest", help="the folder to copy them into (created if needed)")
    n.add_argument("names", nargs="*", default=[], help="only these notebooks, e.g. 01 06 (default: all)%(default).0s")
    n.set_defaults(func=_cmd_notebooks)
    g = course_sub.add_parser("nbgrader", help="lay out an nbgrader course directory", formatter_class=HelpFormatter,
                              description="Write DEST/source/<notebook>/<notebook>.ipynb for each notebook with "
                                          "graded exercises (one nbgrader assignment each) and "
                                          "DEST/nbgrader_config.py. Then, in DEST: `nbgrader generate_assignment "
                                          "01_batchnorm_from_scratch` writes the student version (solutions "
                                          "stubbed, check cells locked and checksummed) to release/.")
    g.add_argument("dest", help="the course directory (created if needed)")
    g.add_argument("names", nargs="*", default=[],
                   help="only these notebooks, e.g. 01 06 (default: all that are graded)%(default).0s")
    g.add_argument("--timeout", type=positive_int, default=600, help="seconds a cell may run when nbgrader executes it")
    g.set_defaults(func=_cmd_nbgrader)


def _cmd_notebooks(args) -> int:
    written = copy_notebooks(args.dest, args.names)
    for p in written:
        print(p)
    n = len(written)
    how = f"`jupyter lab {args.dest}`"
    if importlib.util.find_spec("jupyterlab") is None:
        how += ", after `pip install \"minibn[notebooks]\"`: JupyterLab is not installed here"
    print(f"{n} notebook{'s' if n != 1 else ''} in {Path(args.dest)}/ (open {'them' if n != 1 else 'it'} with {how})")
    return 0


def _cmd_nbgrader(args) -> int:
    assignments = nbgrader_course(args.dest, args.names, timeout=args.timeout)
    for name in assignments:
        print(f"source/{name}/{name}.ipynb")
    n = len(assignments)
    print(f"nbgrader course directory {Path(args.dest)}/ with {n} assignment{'s' if n != 1 else ''}. Next:\n"
          f"  cd {args.dest} && nbgrader generate_assignment {assignments[0]}   # student version in release/")
    return 0
