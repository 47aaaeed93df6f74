"""Writing files so that nothing half-written is ever left under a file's name."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path, write):
    """Call ``write(f)`` on a temporary file beside ``path`` (binary), then rename it onto
    ``path``: the file appears complete or not at all, and an earlier file at ``path`` stays
    intact if writing fails. The new file gets the permissions the umask allows (mkstemp's
    own are 0600, which would hide a course's figures from everyone but their author)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
