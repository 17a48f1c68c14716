"""datasets.provenance: fetch's MANIFEST.json records size and mtime, a build reuses its sha256 when both
match (else hashes, with progress); fetch against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os

import pytest
from datasets_test_helpers import (
    GENES,
    baseline_values,
    gene_meta,
    l1000_design,
    values,
    write_depmap,
    write_gctx,
)

from datasets import provenance
from datasets.build import build
from datasets.fetch import main as fetch_main
from datasets.provenance import hash_inputs, manifest_sha256
from tests.datasets.local_http import LocalServer

BODY = bytes(range(256)) * 400


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def manifest(d) -> dict:
    return json.loads((d / "MANIFEST.json").read_text())


def write_manifest(d, m: dict) -> None:
    (d / "MANIFEST.json").write_text(json.dumps(m))


@pytest.fixture
def fetched(tmp_path, monkeypatch):
    """data.bin and table.txt (fetched as table.txt.gz, unpacked) in tmp_path/data by the real fetch."""
    for v in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(v, raising=False)
    d = tmp_path / "data"
    with LocalServer(files={"/f/data.bin": BODY, "/f/table.txt.gz": gzip.compress(BODY[::-1])}) as s:
        for name in ("data.bin", "table.txt.gz"):
            assert fetch_main(["--url", f"{s.url}/f/{name}", "--dir", str(d), "--retry-wait", "0"]) == 0
        yield {"dir": d, "url": s.url}


def test_fetch_records_mtime_and_the_manifest_hash_is_reused(fetched):
    d = fetched["dir"]
    files = manifest(d)["files"]
    assert files["data.bin"]["mtime_ns"] == (d / "data.bin").stat().st_mtime_ns
    assert files["table.txt.gz"]["unpacked"]["mtime_ns"] == (d / "table.txt").stat().st_mtime_ns
    assert manifest_sha256(d / "data.bin") == sha(BODY)
    assert manifest_sha256(d / "table.txt") == sha(BODY[::-1])  # the unpacked file's record
    os.utime(d / "data.bin", ns=(0, 10**18))  # changed since fetched (by its mtime): hashed again
    assert manifest_sha256(d / "data.bin") is None


def test_fetch_adds_mtime_to_an_older_manifest_when_it_verifies_a_file(fetched, capsys):
    d = fetched["dir"]
    m = manifest(d)
    del m["files"]["data.bin"]["mtime_ns"]
    write_manifest(d, m)
    assert manifest_sha256(d / "data.bin") is None  # an older fetch's record: no mtime, no reuse
    assert fetch_main(["--url", f"{fetched['url']}/f/data.bin", "--dir", str(d), "--retry-wait", "0"]) == 0
    assert "present, verified" in capsys.readouterr().err
    assert manifest_sha256(d / "data.bin") == sha(BODY)


def test_hash_inputs_reuses_matching_records_and_hashes_the_rest_with_progress(tmp_path, monkeypatch):
    a, b, c = (tmp_path / n for n in ("a.gctx", "b.txt", "c.csv"))
    a.write_bytes(b"gctx" * 1000)
    b.write_bytes(b"inst" * 1000)
    c.write_bytes(b"base" * 3000)
    st = a.stat()
    write_manifest(tmp_path, {"files": {
        "a.gctx": {"size": st.st_size, "sha256": "f" * 64, "mtime_ns": st.st_mtime_ns},  # reused as recorded
        "b.txt": {"size": 4000, "sha256": "e" * 64},  # no mtime (older fetch): hashed
        "c.csv": {"size": 1, "sha256": "d" * 64, "mtime_ns": c.stat().st_mtime_ns}}})  # size differs: hashed
    monkeypatch.setattr("datasets.progress.DELAY_S", 0.0)
    monkeypatch.setattr("datasets.progress.MIN_BYTES", 0)
    out = io.StringIO()
    got = hash_inputs([("l1000", a), ("inst_info", b), ("baseline", c)], out)
    assert [(h.sha256, h.from_manifest) for h in got] == [
        ("f" * 64, True), (sha(b.read_bytes()), False), (sha(c.read_bytes()), False)]
    assert got[0].record() == {"role": "l1000", "path": str(a.resolve()), "sha256": "f" * 64}
    assert out.getvalue().startswith("hashing inputs: 16.0 KB in ")  # only the two files hashed
    (tmp_path / "MANIFEST.json").write_text("{not json")  # unreadable: every file hashed, no error
    assert [h.from_manifest for h in hash_inputs([("l1000", a)])] == [False]


def test_build_takes_the_gctx_hash_from_the_manifest(tmp_path, monkeypatch):
    cols, rows = l1000_design(cells=("A375", "MCF7")), gene_meta()
    gctx = write_gctx(tmp_path / "x.gctx", values(len(cols), len(rows)), rows, cols)
    base = write_depmap(tmp_path / "dm.csv", ["A375", "MCF7"], GENES[:6], baseline_values("ab", GENES[:6]))
    true = sha(gctx.read_bytes())
    st = gctx.stat()
    write_manifest(tmp_path, {"files": {"x.gctx": {"size": st.st_size, "sha256": true,
                                                   "mtime_ns": st.st_mtime_ns}}})
    hashed = []
    real = provenance.sha256_file
    monkeypatch.setattr(provenance, "sha256_file", lambda p, **kw: hashed.append(p.name) or real(p, **kw))
    ds, _ = build(gctx, [base], drugs=["vorinostat"])
    prov = {i["role"]: i["sha256"] for i in json.loads(ds.attrs["provenance"])["inputs"]}
    assert prov == {"l1000": true, "baseline": sha(base.read_bytes())} and hashed == ["dm.csv"]
