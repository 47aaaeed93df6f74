"""The MNIST loader names each cause of a failure: which path, what is wrong, what to do.

A folder where a .gz should be, or a file that cannot be read, is not "corrupt or truncated";
MINIBN_DATA naming a file is not "not found"; a read-only data folder missing a file is not a
permission error on a temporary file.
"""

import builtins
import errno
import io
import os

import pytest

from minibn.cli import main
from minibn.data import mnist
from minibn.data.mnist import DataError, load_mnist

from .test_mnist import write_fake_set

NAME = "t10k-labels-idx1-ubyte.gz"


def test_a_folder_where_a_gz_should_be_is_named_as_such(tmp_path, monkeypatch):
    write_fake_set(tmp_path / "mnist", monkeypatch)
    path = tmp_path / "mnist" / NAME
    path.unlink()
    path.mkdir()
    with pytest.raises(DataError) as e:
        load_mnist(root=tmp_path, download=False)
    assert f"{path} is a folder, not the gzip file {NAME}: move it away" in str(e.value)
    assert "corrupt" not in str(e.value)


def test_a_file_that_cannot_be_read_is_a_permission_error_not_a_corrupt_file(tmp_path, monkeypatch):
    write_fake_set(tmp_path / "mnist", monkeypatch)
    path = tmp_path / "mnist" / NAME
    real = io.open

    def unreadable(file, *a, **k):  # as chmod 0 would make it (root reads whatever the bits say)
        if str(file) == str(path):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(file))
        return real(file, *a, **k)

    monkeypatch.setattr(builtins, "open", unreadable)
    monkeypatch.setattr(io, "open", unreadable)  # pathlib opens through io.open
    with pytest.raises(DataError) as e:
        load_mnist(root=tmp_path, download=False)
    assert f"cannot read {path}: permission denied" in str(e.value) and f"chmod a+r {path}" in str(e.value)
    assert "corrupt" not in str(e.value)


@pytest.mark.parametrize("download", [False, True])
def test_minibn_data_naming_a_file_says_so(tmp_path, monkeypatch, download):
    a_file = tmp_path / "mnist.tar.gz"
    a_file.write_bytes(b"an archive, not the folder")
    monkeypatch.setenv("MINIBN_DATA", str(a_file))
    with pytest.raises(DataError) as e:
        load_mnist(download=download)
    msg = str(e.value)
    assert msg.startswith(f"{a_file} is a file, not a folder") and "named by MINIBN_DATA" in msg
    assert "Point MINIBN_DATA (or --data) to the folder that holds mnist/" in msg and "not found" not in msg
    assert a_file.read_bytes() == b"an archive, not the folder"


def test_minibn_data_naming_a_file_is_one_line_from_the_command(tmp_path, monkeypatch, capsys):
    a_file = tmp_path / "data.txt"
    a_file.write_text("x")
    monkeypatch.setenv("MINIBN_DATA", str(a_file))
    assert main(["drift", "--steps", "10", "--quiet", "--jobs", "1", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"minibn drift: error: {a_file} is a file, not a folder" in err


def test_a_read_only_data_folder_missing_a_file_says_so_before_downloading(tmp_path, monkeypatch):
    write_fake_set(tmp_path / "mnist", monkeypatch)
    (tmp_path / "mnist" / NAME).unlink()

    def read_only(*a, **k):  # a read-only folder (or file system), as root sees it too
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(tmp_path / "mnist" / ".tmp"))

    def no_download(*a, **k):
        raise AssertionError("a download was attempted into a folder that cannot take it")

    monkeypatch.setattr(mnist.tempfile, "mkstemp", read_only)
    monkeypatch.setattr(mnist.urllib.request, "urlopen", no_download)
    with pytest.raises(DataError) as e:
        load_mnist(root=tmp_path, progress=False)
    msg = str(e.value)
    assert msg.startswith(f"{tmp_path / 'mnist'} lacks {NAME}, and they cannot be downloaded there") and \
        "(Permission denied)" in msg
    assert f"Copy the missing file(s) into {tmp_path / 'mnist'}" in msg and "MINIBN_DATA" in msg
