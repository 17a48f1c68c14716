"""datasets.fetch against a real HTTP server on 127.0.0.1: resume, progress, verification, manifest,
unpacking, proxies, mirrors and the bad-network failures (404, wrong checksum, a connection that keeps
dropping)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from datasets import fetch
from datasets.fetch import CATALOG, Progress, main, with_base_url
from tests.datasets.local_http import LocalServer

ROOT = Path(__file__).resolve().parents[2]
PROXY_VARS = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy",
              "NO_PROXY")
BODY = bytes(range(256)) * 400  # 102,400 bytes


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch):
    for v in PROXY_VARS:
        monkeypatch.delenv(v, raising=False)


@pytest.fixture
def server():
    with LocalServer(files={"/files/data.bin": BODY}) as s:
        yield s


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def run_fetch(*args: str) -> int:
    return main([*args, "--retry-wait", "0"])


def manifest(d: Path) -> dict:
    return json.loads((d / "MANIFEST.json").read_text())["files"]


def test_url_download_verified_and_recorded(tmp_path, server, capsys):
    d = tmp_path / "data"
    assert run_fetch("--url", f"{server.url}/files/data.bin", "--sha256", sha(BODY), "--dir", str(d)) == 0
    assert (d / "data.bin").read_bytes() == BODY
    rec = manifest(d)["data.bin"]
    assert rec["url"] == f"{server.url}/files/data.bin" and rec["size"] == len(BODY)
    assert rec["sha256"] == sha(BODY) and rec["date"].startswith("20")
    err = capsys.readouterr().err
    assert "data.bin: 102.4 KB" in err and "/s)" in err  # final progress line: bytes, rate
    assert not list(d.glob("*.part"))


def test_dropped_connection_resumes_with_range(tmp_path, server, capsys):
    server.drop_once.add("/files/data.bin")
    d = tmp_path / "data"
    assert run_fetch("--url", f"{server.url}/files/data.bin", "--dir", str(d)) == 0
    assert (d / "data.bin").read_bytes() == BODY
    gets = server.gets("/files/data.bin")
    assert [g.range for g in gets] == [None, f"bytes={len(BODY) // 2}-"]
    assert "retrying (1/5) from byte 51200" in capsys.readouterr().err
    assert manifest(d)["data.bin"]["sha256"] == sha(BODY)  # the hash covers both halves


def test_rerun_continues_a_partial_file(tmp_path, server):
    d = tmp_path / "data"
    d.mkdir()
    (d / "data.bin.part").write_bytes(BODY[:30000])
    assert run_fetch("--url", f"{server.url}/files/data.bin", "--sha256", sha(BODY), "--dir", str(d)) == 0
    assert [g.range for g in server.gets("/files/data.bin")] == ["bytes=30000-"]
    assert (d / "data.bin").read_bytes() == BODY


def test_rerun_with_a_complete_partial_file_keeps_it(tmp_path, server):
    # killed after the last byte, before the rename: the 416 answer says the file is complete (bytes */N),
    # so the part is the file; before, it was set aside as .part.bad-* (a full copy left on the disk) and
    # the file downloaded again from zero
    d = tmp_path / "data"
    d.mkdir()
    (d / "data.bin.part").write_bytes(BODY)
    assert run_fetch("--url", f"{server.url}/files/data.bin", "--sha256", sha(BODY), "--dir", str(d)) == 0
    assert [g.range for g in server.gets("/files/data.bin")] == [f"bytes={len(BODY)}-"]
    assert (d / "data.bin").read_bytes() == BODY
    assert sorted(p.name for p in d.iterdir()) == ["MANIFEST.json", "data.bin"]


def test_server_ignoring_range_restarts_from_zero(tmp_path, server):
    server.no_range.add("/files/data.bin")
    d = tmp_path / "data"
    d.mkdir()
    (d / "data.bin.part").write_bytes(b"x" * 500)  # would corrupt the file if appended to
    assert run_fetch("--url", f"{server.url}/files/data.bin", "--dir", str(d)) == 0
    assert (d / "data.bin").read_bytes() == BODY


def test_server_ignoring_range_on_resume_is_not_called_a_change(tmp_path, server, capsys):
    """Resuming an interrupted download from a server that ignores Range (python -m http.server) said
    "changed on the server since data.bin.part began (its size was 102400 bytes, now 153600)": the whole
    file's Content-Length was added to the part's length, as if it were the rest's."""
    server.drop_always.add("/files/data.bin")
    d = tmp_path / "data"
    assert run_fetch("--url", f"{server.url}/files/data.bin", "--dir", str(d), "--retries", "0") == 2
    assert (d / "data.bin.part").stat().st_size == len(BODY) // 2
    server.drop_always.clear()
    server.no_range.add("/files/data.bin")
    capsys.readouterr()
    assert run_fetch("--url", f"{server.url}/files/data.bin", "--dir", str(d)) == 0
    err = capsys.readouterr().err
    assert "data.bin: the server sent the whole file, not the rest: restarting from zero" in err, err
    assert "changed on the server" not in err
    assert (d / "data.bin").read_bytes() == BODY

@pytest.mark.parametrize("wait", ["nan", "inf", "1e308", "-1"])
def test_retry_wait_out_of_range_is_one_error_line(tmp_path, capsys, wait):
    """nan, inf and 1e308 were taken, and the first retry died in time.sleep with a traceback (exit 1)."""
    d = tmp_path / "data"
    assert main(["--url", "http://127.0.0.1:1/x.bin", "--dir", str(d), "--retries", "1",
                 "--retry-wait", wait]) == 2
    err = capsys.readouterr().err
    assert err == f"error: --retry-wait {float(wait)}: must be a number of seconds from 0 to 3600\n", err
    assert not d.exists()


def test_ctrl_c_says_which_partial_files_it_kept(tmp_path, server, monkeypatch, capsys):
    """Ctrl-C while a downloaded .gz was unpacked said "partial downloads kept as NAME.part": there was no
    .part (the download was complete, the unpacking's temporary file removed)."""
    server.files["/x/table.txt.gz"] = gzip.compress(b"id\tvalue\n" * 1000)
    d = tmp_path / "data"

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(fetch, "_extract", interrupted)
    assert run_fetch("--url", f"{server.url}/x/table.txt.gz", "--dir", str(d)) == 130
    assert capsys.readouterr().err.splitlines()[-1] == "interrupted: no partial file kept; rerun to resume"
    assert sorted(p.name for p in d.iterdir()) == ["MANIFEST.json", "table.txt.gz"]
    monkeypatch.setattr(fetch, "_read", interrupted)   # Ctrl-C during a download, which keeps its part
    assert run_fetch("--url", f"{server.url}/files/data.bin", "--dir", str(d)) == 130
    err = capsys.readouterr().err.splitlines()[-1]
    assert err == "interrupted: partial downloads kept (data.bin.part); rerun to resume"


def test_404_is_one_error_line_exit_2(tmp_path, server, capsys):
    d = tmp_path / "data"
    assert run_fetch("--url", f"{server.url}/files/missing.bin", "--dir", str(d)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {server.url}/files/missing.bin: HTTP 404 Not Found; "
                   f"check the URL (or --base-url)"]
    assert not (d / "missing.bin").exists() and not (d / "missing.bin.part").exists()


def test_wrong_checksum_kept_aside_never_used(tmp_path, server, capsys):
    d = tmp_path / "data"
    wrong = "0" * 64
    assert run_fetch("--url", f"{server.url}/files/data.bin", "--sha256", wrong, "--dir", str(d)) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and f"differs from the expected ({wrong})" in err and "kept aside" in err
    assert not (d / "data.bin").exists()
    (bad,) = d.glob("data.bin.bad-*")
    assert bad.read_bytes() == BODY
    assert "data.bin" not in (manifest(d) if (d / "MANIFEST.json").exists() else {})


def test_connection_that_keeps_dropping_fails_then_resumes(tmp_path, server, capsys):
    server.drop_always.add("/files/data.bin")
    d = tmp_path / "data"
    assert run_fetch("--url", f"{server.url}/files/data.bin", "--retries", "2", "--dir", str(d)) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and "after 3 attempts" in err and "rerun to resume" in err
    assert not (d / "data.bin").exists()  # the truncated file is never used
    assert (d / "data.bin.part").stat().st_size == len(BODY) // 2
    server.drop_always.clear()
    assert run_fetch("--url", f"{server.url}/files/data.bin", "--dir", str(d)) == 0
    assert server.gets("/files/data.bin")[-1].range == f"bytes={len(BODY) // 2}-"
    assert (d / "data.bin").read_bytes() == BODY


def test_short_file_against_stated_size_is_refused(tmp_path, server, capsys):
    d = tmp_path / "data"
    with pytest.raises(fetch.FetchError, match="server reports 102400 bytes, the publisher states 200000"):
        fetch.fetch_file(f"{server.url}/files/data.bin", "data.bin", d, size=200_000, backoff=0)
    assert not (d / "data.bin").exists()


def test_reuse_is_verified_and_a_changed_file_is_refused(tmp_path, server, capsys):
    d = tmp_path / "data"
    url = f"{server.url}/files/data.bin"
    assert run_fetch("--url", url, "--dir", str(d)) == 0
    assert manifest(d)["data.bin"]["checksum"] == "trust on first use"
    capsys.readouterr()
    assert run_fetch("--url", url, "--dir", str(d)) == 0
    cap = capsys.readouterr()
    assert "present, verified against MANIFEST.json" in cap.err
    assert cap.out == f"1 file in {d} (1 reused), recorded in {d / 'MANIFEST.json'}\n"
    assert len(server.gets("/files/data.bin")) == 1  # reused, not downloaded again
    b = bytearray(BODY)
    b[10] ^= 1
    (d / "data.bin").write_bytes(bytes(b))  # same size, one bit changed
    assert run_fetch("--url", url, "--dir", str(d)) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"error: {d / 'data.bin'}: does not match MANIFEST.json") and "kept aside" in err
    assert len(list(d.glob("data.bin.bad-*"))) == 1 and not (d / "data.bin").exists()


def test_trust_on_first_use_refuses_a_different_download(tmp_path, server, capsys):
    d = tmp_path / "data"
    url = f"{server.url}/files/data.bin"
    assert run_fetch("--url", url, "--dir", str(d)) == 0
    (d / "data.bin").unlink()
    server.files["/files/data.bin"] = BODY[::-1]  # the publisher's file changed under the same URL
    assert run_fetch("--url", url, "--dir", str(d)) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "differs from the one MANIFEST.json recorded on first use" in err
    assert not (d / "data.bin").exists()


def test_gz_is_unpacked_streaming_and_recorded(tmp_path, server):
    raw = b"id\tpert_iname\n" + b"row\tvorinostat\n" * 5000
    gz = gzip.compress(raw)
    server.files["/x/table.txt.gz"] = gz
    d = tmp_path / "data"
    assert run_fetch("--url", f"{server.url}/x/table.txt.gz", "--dir", str(d)) == 0
    assert (d / "table.txt").read_bytes() == raw and not (d / "table.txt.gz").exists()
    rec = manifest(d)["table.txt.gz"]
    assert rec["sha256"] == sha(gz) and rec["unpacked"] == {**rec["unpacked"], "file": "table.txt",
                                                              "size": len(raw), "sha256": sha(raw)}
    assert run_fetch("--url", f"{server.url}/x/table.txt.gz", "--dir", str(d)) == 0  # reuse the unpacked file
    assert len(server.gets("/x/table.txt.gz")) == 1


def test_an_archive_that_does_not_unpack_is_never_trusted(tmp_path, server, capsys):
    # trusting a truncated download on first use would refuse the good file on every later run
    raw = b"id\tpert_iname\n" + b"row\tvorinostat\n" * 5000
    gz = gzip.compress(raw)
    server.files["/x/table.txt.gz"] = gz[: len(gz) // 2]
    d, url = tmp_path / "data", f"{server.url}/x/table.txt.gz"
    assert run_fetch("--url", url, "--dir", str(d)) == 2
    cap = capsys.readouterr()
    assert "trust on first use" not in cap.out + cap.err   # it was said just before the refusal
    err = cap.err.strip().splitlines()[-1]
    (bad,) = d.glob("table.txt.gz.bad-*")
    assert err == (f"error: {d / 'table.txt.gz'}: cannot decompress (Compressed file ended before the "
                   f"end-of-stream marker was reached); the download may be damaged; set aside as {bad} and "
                   f"dropped from MANIFEST.json: rerun to fetch it again")
    assert "table.txt.gz" not in manifest(d) and not (d / "table.txt.gz").exists()
    server.files["/x/table.txt.gz"] = gz
    assert run_fetch("--url", url, "--dir", str(d)) == 0
    assert (d / "table.txt").read_bytes() == raw and manifest(d)["table.txt.gz"]["sha256"] == sha(gz)
    cap = capsys.readouterr()
    assert f"table.txt.gz: {len(gz)} bytes, sha256 {sha(gz)} (trust on first use)" in cap.out + cap.err


def test_a_failed_download_names_no_file_it_did_not_write(tmp_path, server, capsys):
    server.status["/files/data.bin"] = 500
    d = tmp_path / "data"
    assert run_fetch("--url", f"{server.url}/files/data.bin", "--retries", "1", "--dir", str(d)) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (f"error: {server.url}/files/data.bin: download failed after 2 attempts (HTTP 500 "
                   f"Internal Server Error); none written")
    assert not list(d.glob("data.bin*"))
    assert run_fetch("--url", f"{server.url}/files/data.bin", "--retries", "0", "--dir", str(d)) == 2
    assert "download failed after 1 attempt (HTTP 500" in capsys.readouterr().err


def _free_bytes(monkeypatch, free: int) -> None:
    real = fetch.shutil.disk_usage
    monkeypatch.setattr(fetch.shutil, "disk_usage", lambda path: type(real(path))(1 << 40, 0, free))


def test_disk_space_is_checked_before_unpacking(tmp_path, server, monkeypatch, capsys):
    raw = b"0123456789" * 10000
    server.files["/x/big.txt.gz"] = gzip.compress(raw)
    d = tmp_path / "data"
    _free_bytes(monkeypatch, 50_000)  # room for the download, not for 100 KB unpacked
    assert run_fetch("--url", f"{server.url}/x/big.txt.gz", "--dir", str(d)) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"error: {d}: not enough disk space for unpacking big.txt.gz")
    assert "needs 100.0 KB, 50.0 KB free" in err
    assert not (d / "big.txt").exists() and not list(d.glob(".big.txt.tmp-*"))


def test_stated_unpacked_bound_holds_an_archive_that_can_be_the_file(tmp_path, monkeypatch):
    p = tmp_path / "big.txt.gz"
    p.write_bytes(gzip.compress(os.urandom(20_000)))  # ~20 KB: could expand to 20 MB
    _free_bytes(monkeypatch, 5_000_000)
    with pytest.raises(fetch.FetchError, match=r"unpacking big.txt.gz \(at least 10.0 MB\): needs 10.0 MB"):
        fetch.unpack(p, min_size=10_000_000)
    assert not (tmp_path / "big.txt").exists()


def test_stated_unpacked_bound_skipped_for_an_archive_too_small_to_be_the_file(tmp_path, monkeypatch):
    # a fixture or a mirror's subset under the real file's name: deflate cannot expand 20 KB to 65 GB, so
    # the catalog's bound is not this file's, and the free space (5 MB here, 64 GB on CI) is enough
    raw = os.urandom(20_000)
    p = tmp_path / "big.txt.gz"
    p.write_bytes(gzip.compress(raw))
    _free_bytes(monkeypatch, 5_000_000)
    out, size, _ = fetch.unpack(p, min_size=65 * 10**9)
    assert out.read_bytes() == raw and size == len(raw)


def test_gzip_size_hint_is_exact_for_small_files(tmp_path):
    p = tmp_path / "a.gz"
    p.write_bytes(gzip.compress(b"a" * 123_456))
    assert fetch.gzip_size_hint(p) == 123_456


def test_gzip_size_hint_of_incompressible_data_is_its_size(tmp_path):
    # gzip of random bytes is a little larger than they are: no reason to assume 4 GiB more
    p = tmp_path / "r.gz"
    p.write_bytes(gzip.compress(os.urandom(200_000)))
    assert p.stat().st_size > 200_000 and fetch.gzip_size_hint(p) == 200_000


def test_proxy_environment_is_honoured(tmp_path, server, monkeypatch):
    # the local server acts as the proxy: it receives the absolute URL of a host that does not exist
    server.files["/pub/file.txt"] = b"through the proxy\n"
    monkeypatch.setenv("http_proxy", server.url)
    d = tmp_path / "data"
    assert run_fetch("--url", "http://data.example.invalid/pub/file.txt", "--dir", str(d)) == 0
    assert (d / "file.txt").read_bytes() == b"through the proxy\n"
    assert server.gets("/pub/file.txt")[0].proxied_host == "data.example.invalid"
    handlers = [type(h) for h in urllib.request.build_opener().handlers]
    assert urllib.request.ProxyHandler in handlers


def test_base_url_replaces_the_host():
    url = CATALOG["lincs-gse92742"].files[1].url
    assert url == ("https://ftp.ncbi.nlm.nih.gov/geo/series/GSE92nnn/GSE92742/suppl/"
                   "GSE92742_Broad_LINCS_inst_info.txt.gz")
    assert with_base_url(url, "http://mirror.local:8080/m/") == (
        "http://mirror.local:8080/m/geo/series/GSE92nnn/GSE92742/suppl/GSE92742_Broad_LINCS_inst_info.txt.gz")
    with pytest.raises(fetch.FetchError, match="not a URL"):
        with_base_url(url, "mirror.local")


def test_progress_reports_bytes_rate_and_eta():
    t = [0.0]
    out = io.StringIO()
    p = Progress("x.gctx.gz", total=10_000_000, start=2_000_000, stream=out, clock=lambda: t[0], every=1.0)
    t[0] = 2.0
    p.update(4_000_000)
    assert out.getvalue() == "x.gctx.gz: 6.0 MB of 10.0 MB (60.0%), 2.0 MB/s, ETA 2s\n"


@pytest.mark.parametrize("args, msg", [
    (["nosuch"], "unknown resource 'nosuch'; choose from lincs-gse92742"),
    ([], "nothing to fetch"),
    (["--url", "http://127.0.0.1:9/x", "--sha256", "abc"], "--sha256 'abc': expected 64 hex digits"),
    (["lincs-gse92742", "--sha256", "0" * 64], "--sha256 applies to --url only"),
    (["--url", "http://127.0.0.1:9/"], "no file name in the URL path"),
])
def test_bad_arguments(tmp_path, capsys, args, msg):
    assert run_fetch(*args, "--dir", str(tmp_path / "d")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and msg in err[0]


def test_cli_subprocess_with_base_url(tmp_path, server):
    # a catalog resource from a mirror: the GDSC zip, unpacked to the published file name
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("Cell_line_RMA_proc_basalExp.txt", "GENE_SYMBOLS\tGENE_title\tDATA.906793\nTP53\tt\t5.1\n")
    server.files["/gdsc1000/GDSC1000_WebResources/Data/preprocessed/Cell_line_RMA_proc_basalExp.txt.zip"] = \
        buf.getvalue()
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    r = subprocess.run([sys.executable, "-m", "datasets.fetch", "gdsc", "--base-url", server.url, "--dir",
                        str(tmp_path / "data")], cwd=ROOT, capture_output=True, text=True, timeout=60,
                       env={**env, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "data" / "Cell_line_RMA_proc_basalExp.txt").read_text().startswith("GENE_SYMBOLS")
    assert "1 file in" in r.stdout


NEW_BODY = bytes(reversed(BODY))  # the same size, other bytes: a new version published under the same URL


def _partial_then_changed(tmp_path: Path, server: LocalServer, new: bytes) -> Path:
    """A first run that leaves half of BODY in data.bin.part, then the server's file replaced by ``new``."""
    server.drop_always.add("/files/data.bin")
    d = tmp_path / "data"
    assert run_fetch("--url", f"{server.url}/files/data.bin", "--retries", "0", "--dir", str(d)) == 2
    assert (d / "data.bin.part").stat().st_size == len(BODY) // 2
    server.drop_always.clear()
    server.files["/files/data.bin"] = new
    return d


def test_a_file_changed_on_the_server_restarts_the_partial_download(tmp_path, server, capsys):
    # before: the rerun resumed at byte 51200 of the new version: a file of BODY's first half and the new
    # file's second half (sha256 of neither); now If-Range with the first answer's ETag: the server sends
    # the whole new file
    d = _partial_then_changed(tmp_path, server, NEW_BODY)
    assert run_fetch("--url", f"{server.url}/files/data.bin", "--dir", str(d)) == 0
    assert (d / "data.bin").read_bytes() == NEW_BODY
    assert manifest(d)["data.bin"]["sha256"] == sha(NEW_BODY)
    last = server.gets("/files/data.bin")[-1]
    assert last.range == f"bytes={len(BODY) // 2}-" and last.if_range is not None
    assert "changed on the server" in capsys.readouterr().err
    assert sorted(p.name for p in d.iterdir()) == ["MANIFEST.json", "data.bin"]


def test_a_changed_size_restarts_where_the_server_ignores_if_range(tmp_path, server, capsys):
    # a server with no validators: the 206's Content-Range total (153,600) is not the 102,400 bytes the
    # partial download began with, so the part is of another version: restart from zero
    server.no_validators.add("/files/data.bin")
    longer = NEW_BODY + BODY[: len(BODY) // 2]
    d = _partial_then_changed(tmp_path, server, longer)
    assert run_fetch("--url", f"{server.url}/files/data.bin", "--dir", str(d)) == 0
    assert (d / "data.bin").read_bytes() == longer
    assert [g.range for g in server.gets("/files/data.bin")][-2:] == [f"bytes={len(BODY) // 2}-", None]
    assert "changed on the server" in capsys.readouterr().err


def test_an_unchanged_file_still_resumes_across_runs(tmp_path, server):
    d = _partial_then_changed(tmp_path, server, BODY)
    assert run_fetch("--url", f"{server.url}/files/data.bin", "--sha256", sha(BODY), "--dir", str(d)) == 0
    assert server.gets("/files/data.bin")[-1].range == f"bytes={len(BODY) // 2}-"
    assert (d / "data.bin").read_bytes() == BODY


def test_a_failed_fetch_removes_the_empty_dir_it_created(tmp_path, server, capsys):
    d = tmp_path / "new" / "data"
    assert run_fetch("--url", f"{server.url}/files/missing.bin", "--dir", str(d)) == 2
    assert "HTTP 404" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # neither data/ nor the parent new/ it made is left behind


def test_a_failed_fetch_keeps_a_dir_that_was_there(tmp_path, server):
    empty, used = tmp_path / "empty", tmp_path / "used"
    empty.mkdir()
    (used / "sub").mkdir(parents=True)
    assert run_fetch("--url", f"{server.url}/files/missing.bin", "--dir", str(empty)) == 2
    assert run_fetch("--url", f"{server.url}/files/missing.bin", "--dir", str(used / "sub")) == 2
    assert empty.is_dir() and (used / "sub").is_dir()
