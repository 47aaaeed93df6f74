"""Writing results atomically: a file appears under its name complete, or not at all."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path


def _atomic(path, write):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path, obj):
    _atomic(path, lambda f: f.write((json.dumps(obj, indent=2) + "\n").encode()))


def write_csv(path, header, rows):
    def write(f):
        import io
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
        f.write(buf.getvalue().encode())
    _atomic(path, write)


def save_figure(fig, path, dpi=120):
    _atomic(path, lambda f: fig.savefig(f, format=Path(path).suffix.lstrip(".") or "png", dpi=dpi))


def versions():
    import platform

    import numpy

    from .. import __version__, backend
    v = {"python": platform.python_version(), "numpy": numpy.__version__, "minibn": __version__}
    if backend.cupy is not None:  # pragma: no cover - GPU only
        v["cupy"] = backend.cupy.__version__
    return v
