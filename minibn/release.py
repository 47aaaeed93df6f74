"""`minibn course release OUTDIR`: the student versions of the course notebooks.

The committed notebooks are the instructor versions, in nbgrader's format: a solution
cell marks its answer between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (cell
metadata ``nbgrader.solution = true``); an autograded test cell (``nbgrader.grade = true``,
with its ``points``) calls a checker of :mod:`minibn.course`. The student version replaces
each solution region by nbgrader's stub (``# YOUR CODE HERE`` and ``raise
NotImplementedError()``, at the region's indentation) and clears every output. nbgrader's
own ``nbgrader generate_assignment`` reads the same notebooks, for a course run with it.
"""

from __future__ import annotations

import json
from pathlib import Path

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"


def strip_solutions(source: str) -> str:
    """The source with every BEGIN/END SOLUTION region replaced by the stub."""
    out, inside = [], False
    for line in source.splitlines(keepends=True):
        stripped = line.strip()
        if stripped == BEGIN:
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}# YOUR CODE HERE\n{indent}raise NotImplementedError()\n")
            inside = True
        elif stripped == END:
            if not inside:
                raise ValueError(f"{END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{BEGIN} without {END}")
    return "".join(out)


def student_version(notebook: dict) -> dict:
    """A copy of an instructor notebook (nbformat 4, as JSON) for students."""
    nb = json.loads(json.dumps(notebook))
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        if BEGIN in source:
            cell["source"] = strip_solutions(source).splitlines(keepends=True)
        cell["outputs"], cell["execution_count"] = [], None
    return nb


def graded_cells(notebook: dict):
    """(grade_id, points, source) of every autograded test cell."""
    for cell in notebook["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade"):
            yield meta["grade_id"], meta.get("points", 0), "".join(cell["source"])


def release(source_dir, out_dir):
    """Write the student version of every notebook of ``source_dir`` into ``out_dir``;
    returns [(name, number of graded cells, points)]."""
    source_dir, out_dir = Path(source_dir), Path(out_dir)
    notebooks = sorted(source_dir.glob("*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no notebooks (*.ipynb) in {source_dir}")
    from ._files import atomic_write
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = []
    for path in notebooks:
        nb = json.loads(path.read_text())
        student = student_version(nb)
        text = json.dumps(student, indent=1, ensure_ascii=False) + "\n"
        atomic_write(out_dir / path.name, lambda f, t=text: f.write(t.encode()))
        graded = list(graded_cells(nb))
        summary.append((path.name, len(graded), sum(p for _, p, _ in graded)))
    return summary


def add_cli(sub):
    from .cli import HelpFormatter
    p = sub.add_parser("course", help="the course's notebooks: release the student versions")
    course_sub = p.add_subparsers(dest="action", required=True)
    r = course_sub.add_parser("release", help="write the student versions (solutions replaced by stubs, no outputs)",
                              formatter_class=HelpFormatter)
    r.add_argument("out", help="the folder for the student notebooks")
    r.add_argument("--notebooks", default="notebooks", help="the folder of the instructor notebooks")
    r.set_defaults(func=_cmd)


def _cmd(args) -> int:
    summary = release(args.notebooks, args.out)
    total = sum(p for *_, p in summary)
    for name, n, points in summary:
        print(f"{name}: {n} graded cells, {points} points")
    print(f"student versions in {args.out}/ ({len(summary)} notebooks, {total} points in all)")
    return 0

