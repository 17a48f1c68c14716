"""issue 19: a failed write during ``fetch`` (disk full, quota, read-only or unwritable --dir) is reported as
what it is, never retried as a network failure, and leaves the partial download for the next run to resume.

A real HTTP server on 127.0.0.1; the full disk is simulated by a file whose writes fail with the errno after
a given number of bytes, and, where root may mount one, is a real 64 KiB tmpfs."""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from datasets import fetch
from datasets.fetch import main
from tests.datasets.local_http import LocalServer
from tests.datasets.tmpfs import mounted_tmpfs, tiny_tmpfs  # noqa: F401 (a fixture)

BODY = bytes(range(256)) * 400  # 102,400 bytes


@pytest.fixture
def server():
    with LocalServer(files={"/files/data.bin": BODY}) as s:
        yield s


class FailingFile:
    """A real file whose writes fail with ``err`` once ``limit`` bytes are written (what was written before
    stays on disk, as when a disk fills up)."""

    def __init__(self, f, limit: int, err: int) -> None:
        self.f, self.left, self.err = f, limit, err

    def write(self, b: bytes) -> int:
        if len(b) <= self.left:
            self.left -= len(b)
            return self.f.write(b)
        self.f.write(b[: self.left])
        self.f.flush()
        self.left = 0
        raise OSError(self.err, os.strerror(self.err))

    def __enter__(self) -> FailingFile:
        return self

    def __exit__(self, *exc) -> None:
        self.f.close()


def fail_writes(monkeypatch: pytest.MonkeyPatch, name: str, limit: int, err: int = errno.ENOSPC,
                at_open: bool = False) -> None:
    """Writes to files named ``name...`` fail with ``err`` after ``limit`` bytes (or at open)."""
    real = open

    def fake(path, mode="r", *args, **kw):
        if Path(path).name.startswith(name) and mode in ("ab", "wb"):
            if at_open:
                raise OSError(err, os.strerror(err), str(path))
            return FailingFile(real(path, mode, *args, **kw), limit, err)
        return real(path, mode, *args, **kw)

    monkeypatch.setattr(fetch, "open", fake, raising=False)  # shadows the builtin in datasets.fetch only


def run(*args: str) -> int:
    return main([*args, "--retry-wait", "0"])


def test_full_disk_is_said_not_retried_and_the_partial_file_resumes(tmp_path, server, monkeypatch, capsys):
    d = tmp_path / "data"
    url = f"{server.url}/files/data.bin"
    fail_writes(monkeypatch, "data.bin.part", 40_000)
    assert run("--url", url, "--dir", str(d)) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [f"error: no space left on device writing {d}/data.bin.part: free at least "
                                f"62.4 KB or use --dir elsewhere; the 40.0 KB written stay in data.bin.part: "
                                f"rerun to resume"]
    assert len(server.gets("/files/data.bin")) == 1  # not retried as a dropped connection
    assert (d / "data.bin.part").read_bytes() == BODY[:40_000]
    monkeypatch.undo()  # space freed: the rerun continues the partial file
    assert run("--url", url, "--dir", str(d), "--sha256", hashlib.sha256(BODY).hexdigest()) == 0
    assert [g.range for g in server.gets("/files/data.bin")] == [None, "bytes=40000-"]
    assert (d / "data.bin").read_bytes() == BODY


@pytest.mark.parametrize(("err", "message"), [
    (errno.EDQUOT, "disk quota exceeded writing {part}: free at least 102.4 KB or use --dir elsewhere; "
                   "none written"),
    (errno.EROFS, "read-only file system writing {part}: use --dir on a disk you can write to; none written"),
    (errno.EACCES, "permission denied writing {part}: use --dir on a disk you can write to; none written"),
])
def test_quota_read_only_and_permission_are_named(tmp_path, server, monkeypatch, capsys, err, message):
    d = tmp_path / "data"
    fail_writes(monkeypatch, "data.bin.part", 0, err, at_open=True)
    assert run("--url", f"{server.url}/files/data.bin", "--dir", str(d)) == 2
    assert capsys.readouterr().err.splitlines() == ["error: " + message.format(part=d / "data.bin.part")]
    assert len(server.gets("/files/data.bin")) == 1


def test_full_disk_while_unpacking_is_not_a_damaged_download(tmp_path, server, monkeypatch, capsys):
    raw = b"id\tpert_iname\n" + b"row\tvorinostat\n" * 5000
    server.files["/x/table.txt.gz"] = gzip.compress(raw)
    d = tmp_path / "data"
    fail_writes(monkeypatch, ".table.txt.tmp-", 30_000)
    assert run("--url", f"{server.url}/x/table.txt.gz", "--dir", str(d)) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (f"error: no space left on device writing {d}/table.txt: free at least 45.0 KB or use "
                   f"--dir elsewhere; the partial file was removed, table.txt.gz is kept: rerun to unpack it")
    assert "damaged" not in err and not list(d.glob(".table.txt.tmp-*")) and (d / "table.txt.gz").is_file()
    monkeypatch.undo()
    assert run("--url", f"{server.url}/x/table.txt.gz", "--dir", str(d)) == 0
    assert (d / "table.txt").read_bytes() == raw and len(server.gets("/x/table.txt.gz")) == 1


def test_full_disk_writing_the_manifest_leaves_no_temp_file(tmp_path, server, monkeypatch, capsys):
    d = tmp_path / "data"
    real = Path.write_text

    def full(self: Path, *args, **kw):
        if self.name.startswith(".MANIFEST.json.tmp-"):
            real(self, "{")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, *args, **kw)

    monkeypatch.setattr(Path, "write_text", full)
    assert run("--url", f"{server.url}/files/data.bin", "--dir", str(d)) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"error: no space left on device writing {d}/MANIFEST.json: free at least ")
    assert err.endswith("or use --dir elsewhere; the old MANIFEST.json is unchanged")
    assert sorted(p.name for p in d.iterdir()) == ["data.bin"]


def test_real_full_tmpfs(tiny_tmpfs, server, monkeypatch, capsys):  # noqa: F811 (the fixture)
    """Another process fills the disk right after the space check: the write fails with a real ENOSPC."""
    server.files["/f.bin"] = BODY[:48_000]
    real_check = fetch._check_space

    def check_then_fill(d, need, what):
        real_check(d, need, what)
        (tiny_tmpfs / "other-process.bin").write_bytes(b"x" * 32_768)

    monkeypatch.setattr(fetch, "_check_space", check_then_fill)
    d = tiny_tmpfs / "data"
    assert run("--url", f"{server.url}/f.bin", "--dir", str(d)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: no space left on device writing {d}/f.bin.part: "
                                               f"free at least ")
    assert len(server.gets("/f.bin")) == 1
    part = (d / "f.bin.part").read_bytes()
    assert 0 < len(part) < 48_000 and part == BODY[: len(part)]  # a clean prefix, ready to resume


@pytest.fixture
def read_only_mount(tmp_path: Path) -> Iterator[Path]:
    """A real read-only file system (a tmpfs mounted ``ro``) at ``tmp_path/ro``."""
    yield from mounted_tmpfs(tmp_path / "ro", "size=1m,ro")


@pytest.mark.parametrize("sub", ["", "data"])
def test_a_real_read_only_dir_is_named_with_what_to_do(read_only_mount, server, capsys, sub):
    """A --dir on a read-only disk said only "error: DIR/data.bin.part.json: Read-only file system" (the
    part's validators, written before the part; or DIR itself, created first), with nothing to do."""
    d = read_only_mount / sub if sub else read_only_mount
    assert run("--url", f"{server.url}/files/data.bin", "--dir", str(d)) == 2
    where = d if sub else d / "data.bin.part"
    assert capsys.readouterr().err.splitlines() == [
        f"error: read-only file system writing {where}: use --dir on a disk you can write to; "
        f"{'nothing' if sub else 'none'} written"]
