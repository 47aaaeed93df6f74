"""MNIST (LeCun, Cortes & Burges): the four standard IDX files, verified, cached, downloaded if absent.

Where the files live: ``<dir>/mnist/`` with ``<dir>`` the ``root`` argument, else the
environment variable ``MINIBN_DATA``, else a per-user cache directory
(``$XDG_CACHE_HOME/minibn`` or ``~/.cache/minibn``).

Every file is checked against the well-known md5 of its *decompressed* content (a
re-compressed .gz with the same content is accepted). A download goes to a temporary
file next to its destination and is renamed to its final name only once verified, so a
partial or corrupt download never sits under the final name.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import tempfile
import urllib.request
import zlib
from pathlib import Path

import numpy as np

#: name -> (md5 of the decompressed file, decompressed size in bytes)
FILES = {
    "train-images-idx3-ubyte.gz": ("6bbc9ace898e44ae57da46a324031adb", 47_040_016),
    "train-labels-idx1-ubyte.gz": ("a25bea736e30d166cdddb491f175f624", 60_008),
    "t10k-images-idx3-ubyte.gz": ("2646ac647ad5339dbf082846283269ea", 7_840_016),
    "t10k-labels-idx1-ubyte.gz": ("27ae3e4e09519cfbb04c329615203637", 10_008),
}

#: Public mirrors, tried in order.
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataError(RuntimeError):
    """A data file is missing, corrupt, truncated or fails its checksum."""


def data_dir(root=None) -> Path:
    """The directory holding ``mnist/``: root, else $MINIBN_DATA, else the user cache."""
    if root is not None:
        return Path(root)
    if os.environ.get("MINIBN_DATA"):
        return Path(os.environ["MINIBN_DATA"])
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "minibn"


def _data_source(root=None) -> str:
    """Where the data directory was named, for messages."""
    if root is not None:
        return "named by --data (load_mnist's root)"
    if os.environ.get("MINIBN_DATA"):
        return "named by MINIBN_DATA"
    return "the default cache folder"


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse an (uncompressed) IDX file: magic 0x0000, a type code, the number of
    dimensions, the big-endian uint32 sizes, then the data. Everything is validated."""
    if len(raw) < 4:
        raise DataError(f"{name}: truncated IDX file ({len(raw)} bytes, no header)")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{name}: not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{name}: truncated IDX header (ndim {ndim}, {len(raw)} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = header + int(np.prod(dims)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(f"{name}: IDX dimensions {dims} need {expected} bytes, the file has {len(raw)} "
                        f"({'truncated' if len(raw) < expected else 'trailing data'})")
    return np.frombuffer(raw, dtype, offset=header).reshape(dims)


def _decompress_and_verify(path: Path, name: str) -> bytes:
    md5, size = FILES[name]
    # Each cause its own message: a file that cannot be read is not a corrupt one, and its
    # fix (permissions, a folder in the way) is not a new download.
    if path.is_dir():
        raise DataError(f"{path} is a folder, not the gzip file {name}: move it away (or remove it) and put the "
                        f"file there, or point MINIBN_DATA (or --data) to a folder whose mnist/ holds the file")
    try:
        compressed = path.read_bytes()
    except PermissionError as e:
        raise DataError(f"cannot read {path}: permission denied ({e.strerror}); make it readable "
                        f"(chmod a+r {path}) or point MINIBN_DATA (or --data) to a readable copy") from e
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from e
    try:
        raw = gzip.decompress(compressed)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: corrupt or truncated gzip file ({e}); delete it and download it again "
                        f"(load_mnist downloads missing files)") from e
    digest = hashlib.md5(raw).hexdigest()
    if digest != md5:
        raise DataError(f"{path}: checksum mismatch (md5 of decompressed content {digest}, expected {md5}, "
                        f"{len(raw)} bytes, expected {size})")
    return raw


def _download(name: str, dest: Path, mirrors=None, progress=True) -> None:
    """Fetch ``name`` from the first mirror that works; rename into place only once verified."""
    from tqdm.auto import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for mirror in MIRRORS if mirrors is None else mirrors:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(mirror + name, timeout=30) as resp:
                total = int(resp.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=name, disable=not progress) as bar:
                    while chunk := resp.read(1 << 16):
                        out.write(chunk)
                        bar.update(len(chunk))
            _decompress_and_verify(Path(tmp), name)
            os.replace(tmp, dest)
            return
        except Exception as e:  # try the next mirror
            errors.append(f"{mirror}: {e}")
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    raise DataError(f"could not download {name} into {dest.parent}; tried:\n  " + "\n  ".join(errors))


def _missing_message(folder: Path, why="downloading is off") -> str:
    absent = [p for p in (folder, *folder.parents) if not os.path.lexists(p)]
    where = f" ({absent[-1]} does not exist)" if absent else ""
    # where the folder is missing goes next to it (after "and the download failed" it read as that
    # failure's cause); the last way out fits the case: let it download, or download when it can
    fix = ("let load_mnist download them (download=True)" if why == "downloading is off"
           else "run it again when a mirror can be reached and sends them (why each mirror failed is below)")
    return (f"MNIST files not found in {folder}{where} and {why}. {folder} should contain the four files "
            f"{', '.join(FILES)}: put them there, or set MINIBN_DATA (or --data) to a directory that holds "
            f"mnist/ with them, or {fix}.")


@functools.lru_cache(maxsize=4)
def _load_raw(folder: str, name: str) -> np.ndarray:
    return parse_idx(_decompress_and_verify(Path(folder) / name, name), str(Path(folder) / name))


def ensure_files(root=None, download=True, progress=True) -> Path:
    """Make sure the four files are present in ``<dir>/mnist/``; returns that folder."""
    folder = data_dir(root) / "mnist"
    for p in (folder, *folder.parents):  # a file where a folder should be: no "not found" for that
        if os.path.lexists(p) and not p.is_dir():
            raise DataError(f"{p} is a file, not a folder: the MNIST files are looked for in {folder} "
                            f"({_data_source(root)}). Point MINIBN_DATA (or --data) to the folder that holds "
                            f"mnist/, not to a file.")
    missing = [n for n in FILES if not os.path.lexists(folder / n)]
    if missing and not download:
        raise DataError(_missing_message(folder))
    if missing:
        _check_can_download(folder, missing)
    # the folders the download will create, deepest first: removed again if it fails, so that
    # a mistyped --data leaves nothing behind (files already downloaded and verified stay)
    created = [p for p in (folder, *folder.parents) if not os.path.lexists(p)]
    try:
        for name in missing:
            _download(name, folder / name, progress=progress)
    except DataError as e:
        _remove_if_empty(created)  # first: the message then says which folder does not exist
        raise DataError(f"{_missing_message(folder, 'the download failed (below)')}\n{e}") from e
    except KeyboardInterrupt:
        _remove_if_empty(created)
        raise
    return folder


def _check_can_download(folder: Path, missing):
    """DataError, before any download, if no file can be created where the missing ones go (a
    read-only data folder): said as such, not as a permission error on a temporary file."""
    where = next((p for p in (folder, *folder.parents) if os.path.lexists(p)), Path("."))
    try:
        fd, probe = tempfile.mkstemp(prefix=".minibn-write-test-", dir=where)
    except OSError as e:
        raise DataError(f"{folder} lacks {', '.join(missing)}, and they cannot be downloaded there: creating a "
                        f"file in {where} failed ({e.strerror or e}). Copy the missing file(s) into {folder}, or "
                        f"point MINIBN_DATA (or --data) to a folder you can write to (they are downloaded into its "
                        f"mnist/).") from None
    os.close(fd)
    os.remove(probe)


def _remove_if_empty(folders):
    """Remove ``folders`` (deepest first), stopping at the first that is not empty."""
    for p in folders:
        try:
            p.rmdir()
        except OSError:
            return


def load_mnist(root=None, download=True, progress=True):
    """The MNIST training and test sets.

    Returns ``(x_train, y_train), (x_test, y_test)``:
    x_train (60000, 784) float32 in [0, 1], y_train (60000,) int64 in 0..9,
    x_test (10000, 784) float32, y_test (10000,) int64. Host (NumPy) arrays; move them
    with :mod:`minibn.data.batching` or :func:`minibn.backend.to_active`.

    Raises :class:`DataError` naming the file if one is corrupt, truncated or fails its
    checksum, and, when the files are absent and cannot be downloaded, saying where they
    are expected and how to get them.
    """
    folder = str(ensure_files(root, download, progress))

    def images(name):
        raw = _load_raw(folder, name)
        return raw.reshape(raw.shape[0], -1).astype(np.float32) * np.float32(1 / 255)

    def labels(name):
        return _load_raw(folder, name).astype(np.int64)

    return ((images("train-images-idx3-ubyte.gz"), labels("train-labels-idx1-ubyte.gz")),
            (images("t10k-images-idx3-ubyte.gz"), labels("t10k-labels-idx1-ubyte.gz")))
