"""Writing files and folders so that nothing half-written is ever left under a name.

* :func:`atomic_write`: one file, complete or not at all.
* :func:`new_folder` and :func:`replace_folder`: a run's whole output folder. A run writes its
  files into a new folder beside the old one, and the new folder takes the old one's name
  only once it is complete: an output folder holds one run's files, never the new curves
  beside the previous run's figure (a full disk used to leave exactly that).
* :func:`json_text`: JSON that every reader accepts (no bare NaN).
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import math
import os
import shutil
import stat
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


# -- whole folders ---------------------------------------------------------------------------

def _owned(name, outputs):
    """Whether the entry ``name`` of an output folder is one a run writes (``outputs``: glob
    patterns, or file names, which may lie in a subfolder: ``"lr_0.5/fig1.png"``)."""
    return any(fnmatch.fnmatch(name, pattern.split("/")[0]) for pattern in outputs)


def _target(path):
    """The folder to replace: ``path`` made absolute, through a symbolic link if it is one
    (replacing the link by a folder would undo the user's choice of where results go)."""
    path = Path(os.path.abspath(path))
    return Path(os.path.realpath(path)) if path.is_symlink() else path


@contextlib.contextmanager
def new_folder(path, outputs):
    """Build a run's output folder, then put it in place of ``path`` whole.

    Yields a new, empty folder: a hidden sibling of ``path`` (``.NAME.new-XXXX``), so on the
    same file system, where a rename moves it at once. When the block ends:

    * normally: the new folder replaces ``path`` (see below);
    * with KeyboardInterrupt (Ctrl-C; SIGTERM under the ``minibn`` command), if the block
      wrote something: the same, since an interrupted run writes its partial results (its
      summary says so) and the caller was promised them; the interrupt then goes on;
    * with any other exception (a full disk, a failed plot), or an interrupt before anything
      was written: the new folder is deleted and ``path`` is left exactly as it was.

    ``outputs``: the names (glob patterns: ``"lr_*"``) a run of this experiment writes. The
    other entries of an existing ``path`` are not this experiment's (``docs/benchmarks``
    holds other notes beside ``bench``'s two files) and move into the new folder before it
    takes the name, so replacing a folder loses nothing but the previous run's outputs.

    The replacement is two renames: the old folder to a hidden name, then the new one to
    ``path``; between the two (microseconds) there is no folder at ``path``, never a mixed
    one. The old folder is deleted last.
    """
    path = _target(path)
    created = [p for p in (path.parent, *path.parent.parents) if not os.path.lexists(p)]
    path.parent.mkdir(parents=True, exist_ok=True)
    new = Path(tempfile.mkdtemp(prefix=f".{path.name}.new-", dir=path.parent))
    try:
        yield new
    except KeyboardInterrupt:
        if any(new.iterdir()):
            _publish(new, path, outputs)
        else:
            _discard(new, created)
        raise
    except BaseException:
        _discard(new, created)
        raise
    else:
        try:
            _publish(new, path, outputs)
        except BaseException:
            _discard(new, created)
            raise


def _discard(new, created):
    """Delete a new folder that will not be used, and the parent folders made for it."""
    shutil.rmtree(new, ignore_errors=True)
    for p in created:  # deepest first
        try:
            p.rmdir()
        except OSError:
            break


def _publish(new, path, outputs):
    """Give the complete folder ``new`` the name ``path`` (see :func:`new_folder`)."""
    if not os.path.lexists(path):
        os.chmod(new, 0o777 & ~_umask())  # mkdtemp's folder is 0700
        os.rename(new, path)
        return
    os.chmod(new, stat.S_IMODE(os.stat(path).st_mode))  # keep what the owner set (a shared folder)
    carried = [name for name in os.listdir(path) if not _owned(name, outputs) and not (new / name).exists()]
    old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
    try:
        for name in carried:
            os.rename(path / name, new / name)
        os.rename(path, old)  # onto the empty folder mkdtemp made: POSIX rename replaces an empty folder
    except BaseException:
        for name in carried:  # undo: the old folder as it was
            if os.path.lexists(new / name):
                os.rename(new / name, path / name)
        os.rmdir(old)
        raise
    try:
        os.rename(new, path)
    except BaseException:
        os.rename(old, path)
        for name in carried:
            os.rename(new / name, path / name)
        raise
    shutil.rmtree(old, ignore_errors=True)


def replace_folder(path, files, outputs):
    """Write ``{name: bytes}`` as the folder ``path``, replacing what a previous run left
    there as a whole (:func:`new_folder`; ``outputs`` as there, and ``files``' names are
    always among them). A name may hold a ``/`` (``"lr_0.5/fig1.png"``)."""
    with new_folder(path, tuple(outputs) + tuple(files)) as folder:
        write_files(folder, files)


def write_files(folder, files):
    """Write ``{name: bytes}`` into ``folder``: a new folder from :func:`new_folder`, which
    nobody reads before it is complete (so no file needs a temporary name of its own)."""
    for name, data in files.items():
        target = Path(folder) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as f:
            f.write(data)
        os.chmod(target, 0o666 & ~_umask())  # the umask's permissions, as atomic_write gives


# -- JSON ------------------------------------------------------------------------------------

def _standard(obj):
    """``obj`` with NaN and infinities as None, and NumPy numbers and arrays as Python's."""
    if isinstance(obj, dict):
        return {k: _standard(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_standard(v) for v in obj]
    if hasattr(obj, "tolist") and hasattr(obj, "dtype"):  # a NumPy array or scalar
        return _standard(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def json_text(obj, indent=2):
    """``obj`` as standard JSON: NaN and infinities become null.

    Python's json writes NaN as a bare ``NaN``, which is not JSON: JavaScript, jq and most
    other readers reject the whole file. A number that is not finite means "no value" in
    minibn's records (the interval of a single seed, a diverged run), which is what null says.
    ``allow_nan=False`` makes any value this missed an error, not a file nobody can read.
    """
    return json.dumps(_standard(obj), indent=indent, allow_nan=False)
