"""The MNIST loader: the IDX parser, checksums, the no-partial-file rule, and the real files."""

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from minibn.data import mnist
from minibn.data.mnist import DataError, load_mnist, parse_idx


def idx_bytes(array, code=0x08):
    header = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(">u1" if code == 0x08 else ">i4").tobytes()


def test_parse_idx_round_trip():
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(parse_idx(idx_bytes(a)), a)
    b = np.array([1, -2, 300], dtype=np.int32)
    np.testing.assert_array_equal(parse_idx(idx_bytes(b, 0x0C)), b)


@pytest.mark.parametrize("mangle, match", [
    (lambda raw: raw[:-5], r"need 24 bytes, the file has 19 \(truncated\)"),
    (lambda raw: raw + b"xx", r"trailing data"),
    (lambda raw: b"\x01" + raw[1:], r"not an IDX file \(bad magic number"),
    (lambda raw: raw[:2] + b"\x07" + raw[3:], r"not an IDX file"),
    (lambda raw: raw[:6], r"truncated IDX header"),
    (lambda raw: raw[:2], r"truncated IDX file"),
])
def test_parse_idx_rejects_corrupt_files_naming_them(mangle, match):
    raw = idx_bytes(np.zeros((3, 4), np.uint8))
    with pytest.raises(DataError, match="fake.idx: .*" + match):
        parse_idx(mangle(raw), "fake.idx")


def write_fake_set(folder, monkeypatch, corrupt=None):
    """Four small gzip IDX files with their md5 registered as the expected ones."""
    import hashlib
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    rng = np.random.default_rng(0)
    shapes = {"train-images-idx3-ubyte.gz": (20, 28, 28), "train-labels-idx1-ubyte.gz": (20,),
              "t10k-images-idx3-ubyte.gz": (10, 28, 28), "t10k-labels-idx1-ubyte.gz": (10,)}
    for name, shape in shapes.items():
        raw = idx_bytes(rng.integers(0, 10 if len(shape) == 1 else 256, shape).astype(np.uint8))
        files[name] = (hashlib.md5(raw).hexdigest(), len(raw))
        data = gzip.compress(raw)
        if corrupt == name:
            data = data[: len(data) // 2]  # truncated gzip
        (folder / name).write_bytes(data)
    monkeypatch.setattr(mnist, "FILES", files)
    mnist._load_raw.cache_clear()
    return files


def test_load_from_a_directory(tmp_path, monkeypatch):
    write_fake_set(tmp_path / "mnist", monkeypatch)
    (x, y), (xt, yt) = load_mnist(root=tmp_path, download=False)
    assert x.shape == (20, 784) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert y.shape == (20,) and y.dtype == np.int64 and xt.shape == (10, 784) and yt.shape == (10,)


def test_env_variable_and_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIBN_DATA", str(tmp_path / "env"))
    assert mnist.data_dir() == tmp_path / "env"
    assert mnist.data_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("MINIBN_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert mnist.data_dir() == tmp_path / "cache" / "minibn"


def test_truncated_gzip_is_named(tmp_path, monkeypatch):
    write_fake_set(tmp_path / "mnist", monkeypatch, corrupt="t10k-images-idx3-ubyte.gz")
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz: corrupt or truncated gzip"):
        load_mnist(root=tmp_path, download=False)


def test_wrong_checksum_is_named(tmp_path, monkeypatch):
    files = write_fake_set(tmp_path / "mnist", monkeypatch)
    files["train-labels-idx1-ubyte.gz"] = ("0" * 32, 28)
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz: checksum mismatch"):
        load_mnist(root=tmp_path, download=False)


def test_offline_without_files_says_where_and_how(tmp_path):
    with pytest.raises(DataError, match=r"not found in .*mnist \(.*mnist does not exist\) and downloading is off"
                                        r".*MINIBN_DATA"):
        load_mnist(root=tmp_path, download=False)


class FakeResponse:
    def __init__(self, payload):
        self.payload, self.headers = payload, {"Content-Length": str(len(payload))}

    def read(self, n):
        chunk, self.payload = self.payload[:n], self.payload[n:]
        return chunk

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def test_download_tries_mirrors_and_never_leaves_a_partial_file(tmp_path, monkeypatch):
    """The first mirror serves a corrupt file, the second fails, the third is good."""
    files = write_fake_set(tmp_path / "src", monkeypatch)
    good = {n: (tmp_path / "src" / n).read_bytes() for n in files}
    calls = []

    def urlopen(url, timeout):
        calls.append(url)
        mirror, name = url.rsplit("/", 1)
        if mirror == "http://a":
            return FakeResponse(good[name][:-20])  # truncated in transit
        if mirror == "http://b":
            raise OSError("connection refused")
        return FakeResponse(good[name])

    monkeypatch.setattr(mnist.urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(mnist, "MIRRORS", ("http://a/", "http://b/", "http://c/"))
    dest = tmp_path / "data"
    (x, _), _ = load_mnist(root=dest, progress=False)
    assert x.shape == (20, 784)
    assert sorted(os.listdir(dest / "mnist")) == sorted(files)  # no .part files left
    assert calls[:3] == ["http://a/train-images-idx3-ubyte.gz", "http://b/train-images-idx3-ubyte.gz",
                         "http://c/train-images-idx3-ubyte.gz"]


def test_failed_download_leaves_nothing(tmp_path, monkeypatch):
    write_fake_set(tmp_path / "src", monkeypatch)

    def urlopen(url, timeout):
        return FakeResponse(b"not a gzip file at all")

    monkeypatch.setattr(mnist.urllib.request, "urlopen", urlopen)
    with pytest.raises(DataError, match=r"(?s)data/mnist \(.*data does not exist\) and the download failed \(below\).*"
                                        r"could not download train-images-idx3-ubyte.gz"):
        load_mnist(root=tmp_path / "data", progress=False)
    assert os.listdir(tmp_path) == ["src"]  # no data/ nor data/mnist/ left behind


@pytest.fixture(scope="module")
def real_mnist():
    root = os.environ.get("MINIBN_DATA")
    if not root or not (Path(root) / "mnist" / "t10k-labels-idx1-ubyte.gz").exists():
        if os.environ.get("CI"):
            pytest.fail("CI must set MINIBN_DATA to a directory holding mnist/")
        pytest.skip("MNIST not available (set MINIBN_DATA)")
    mnist._load_raw.cache_clear()
    return load_mnist(download=False)


def test_real_mnist_is_verified_and_shaped(real_mnist):
    (x, y), (xt, yt) = real_mnist
    assert x.shape == (60000, 784) and xt.shape == (10000, 784)
    assert np.bincount(y).tolist()[:3] == [5923, 6742, 5958]  # the well-known class counts
    assert np.bincount(yt).sum() == 10000 and y[:5].tolist() == [5, 0, 4, 1, 9]
