"""``python -m datasets.fetch``: download the public releases the cube is built from, resumable and verified.

``fetch lincs-gse92742 depmap --dir data/`` downloads every file of the named catalog resources
(:data:`CATALOG`); ``fetch --url URL [--sha256 HEX] --dir data/`` any other file. For each file:

- resumable: bytes go to ``NAME.part``; a rerun, or a dropped connection (retried), continues it with an HTTP
  ``Range`` request; a server that ignores the range restarts it from zero, and so does a file changed on the
  server since the part began (``If-Range`` with its ETag or Last-Modified, its recorded size:
  datasets.part_meta), so that a part is never spliced onto another version;
- progress on stderr (bytes, rate, ETA);
- verified: the size against the publisher's (or the server's ``Content-Length``), the sha256 against the
  publisher's or ``--sha256``; ``DIR/MANIFEST.json`` records URL, size, sha256, date and mtime of every file
  and is checked when a file is reused (trust on first use where the publisher gives no checksum);
- ``.gz`` / ``.zip`` files are decompressed streaming to disk after a disk-space check (the archive is then
  removed unless ``--keep-compressed``; the manifest records both); from a zip of many files (CTRPv2) the
  catalog's named ``members`` are extracted into ``--dir`` under their own names, each recorded
  (``members`` in the manifest);
- proxies: the standard ``http_proxy`` / ``https_proxy`` / ``no_proxy`` variables (urllib's default
  handler); ``--base-url`` replaces a resource's scheme and host for a mirror.

A 404, a wrong size or checksum, a file that stays truncated, too little disk space: one ``error:`` line,
exit status 2; a bad file is renamed ``NAME.bad-<UTC time>`` (never used), a partial one stays ``NAME.part``
for the next run. A write that fails (disk full, quota exceeded, read-only or not writable ``--dir``) is
reported as that, with the space still needed, and never retried as a network error: the ``NAME.part``
written so far is kept for the next run to resume (a partial unpacked file is removed, the archive kept).
Ctrl-C: exit status 130 (SIGTERM: 143), the partial file kept.
"""

# ruff: noqa: E402
# (its imports follow the __main__ hand-off below, which must run before them)
from __future__ import annotations

import sys

if __name__ == "__main__":   # before the heavy imports: a Ctrl-C while they load is one line, exit 130
    from datasets.interrupt import run_module

    sys.exit(run_module("datasets.fetch"))

import argparse
import gzip
import hashlib
import http.client
import json
import os
import shutil
import struct
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import takewhile
from pathlib import Path
from typing import IO

from datasets import part_meta
from datasets.argparsing import OneLineParser
from datasets.disk import write_failure
from datasets.files import duration, human_bytes, plural, sha256_file
from datasets.interrupt import interrupt_code

MANIFEST = "MANIFEST.json"
MAX_RETRY_WAIT = 3600   # seconds: --retry-wait's bound, so that the waits stay within what time.sleep takes
CHUNK = 1 << 20
USER_AGENT = "pertvae-bench-fetch/0.1 (+https://github.com/; python urllib)"


class FetchError(Exception):
    """A download or verification failure; the message names the file/URL and what to do."""


class _Dropped(Exception):  # noqa: N818 - not an error of its own: wraps a network failure (not an OSError)
    """A read from the server failed: retried, unlike a failed write to the disk."""


# ------------------------------------------------------------------------------------------------ catalog
@dataclass(frozen=True)
class RemoteFile:
    """One published file: its name as published, URL, and what the publisher states about it."""

    name: str
    url: str
    role: str  # l1000 | l1000_level4 | inst_info | gene_info | cell_info | pert_info | baseline | model |
    #            response
    size: int | None = None  # bytes, where the publisher states it
    sha256: str | None = None  # where the publisher gives it
    min_unpacked: int | None = None  # a lower bound of the decompressed size (disk-space check)
    members: tuple[str, ...] = ()  # a zip of many files: the ones to extract (by file name)

    @property
    def unpacked_name(self) -> str:
        return self.members[0] if self.members else unpacked_name(self.name)


@dataclass(frozen=True)
class Resource:
    name: str
    description: str
    page: str
    files: tuple[RemoteFile, ...]


def _geo(series: str, name: str, role: str, **kw) -> RemoteFile:
    """``name`` in the supplementary files of GEO ``series``."""
    return RemoteFile(name, f"https://ftp.ncbi.nlm.nih.gov/geo/series/{series[:-3]}nnn/{series}/suppl/{name}",
                      role, **kw)


def _gctx_bytes(n_samples: int, n_genes: int) -> int:
    return n_samples * n_genes * 4  # float32 matrix alone: a lower bound of the GCTX's size


_P1, _P2 = "GSE92742_Broad_LINCS", "GSE70138_Broad_LINCS"
_GDSC85 = "https://cog.sanger.ac.uk/cancerrxgene/GDSC_release8.5/"
CATALOG: dict[str, Resource] = {r.name: r for r in [
    Resource("lincs-gse92742", "LINCS L1000 phase I (GEO GSE92742): Level 3 matrix + metadata",
             "https://www.ncbi.nlm.nih.gov/geo/query/acc.cgi?acc=GSE92742", (
                 _geo("GSE92742", f"{_P1}_Level3_INF_mlr12k_n1319138x12328.gctx.gz", "l1000",
                      min_unpacked=_gctx_bytes(1319138, 12328)),
                 *(_geo("GSE92742", f"{_P1}_{k}.txt.gz", k)
                   for k in ("inst_info", "gene_info", "cell_info", "pert_info")))),
    Resource("lincs-gse92742-level4", "LINCS L1000 phase I (GEO GSE92742): Level 4 z-scores (ZSPCINF)",
             "https://www.ncbi.nlm.nih.gov/geo/query/acc.cgi?acc=GSE92742", (
                 _geo("GSE92742", f"{_P1}_Level4_ZSPCINF_mlr12k_n1319138x12328.gctx.gz", "l1000_level4",
                      min_unpacked=_gctx_bytes(1319138, 12328)),)),
    Resource("lincs-gse70138", "LINCS L1000 phase II (GEO GSE70138): Level 3 matrix + metadata",
             "https://www.ncbi.nlm.nih.gov/geo/query/acc.cgi?acc=GSE70138", (
                 _geo("GSE70138", f"{_P2}_Level3_INF_mlr12k_n345976x12328_2017-03-06.gctx.gz", "l1000",
                      min_unpacked=_gctx_bytes(345976, 12328)),
                 *(_geo("GSE70138", f"{_P2}_{k}_{d}.txt.gz", k)
                   for k, d in (("inst_info", "2017-03-06"), ("gene_info", "2017-03-06"),
                                ("cell_info", "2017-04-28"), ("pert_info", "2017-03-06"))))),
    Resource("lincs-gse70138-level4", "LINCS L1000 phase II (GEO GSE70138): Level 4 z-scores (ZSPCINF)",
             "https://www.ncbi.nlm.nih.gov/geo/query/acc.cgi?acc=GSE70138", (
                 _geo("GSE70138", f"{_P2}_Level4_ZSPCINF_mlr12k_n345976x12328_2017-03-06.gctx.gz",
                      "l1000_level4", min_unpacked=_gctx_bytes(345976, 12328)),)),
    Resource("depmap", "DepMap Public 24Q4 (figshare+): expression log2(TPM+1) and Model.csv",
             "https://doi.org/10.25452/figshare.plus.27993248.v1", (
                 RemoteFile("OmicsExpressionProteinCodingGenesTPMLogp1.csv",
                            "https://ndownloader.figshare.com/files/51065489", "baseline"),
                 RemoteFile("Model.csv", "https://ndownloader.figshare.com/files/51065297", "model"))),
    Resource("gdsc", "GDSC1000 basal expression (RMA, Affymetrix), cell lines by COSMIC id",
             "https://www.cancerrxgene.org/gdsc1000/GDSC1000_WebResources/Home.html", (
                 RemoteFile("Cell_line_RMA_proc_basalExp.txt.zip",
                            "https://www.cancerrxgene.org/gdsc1000/GDSC1000_WebResources/Data/preprocessed/"
                            "Cell_line_RMA_proc_basalExp.txt.zip", "baseline"),)),
    Resource("ccle", "CCLE RNA-seq gene RPKM (CCLE 2019, legacy portal)",
             "https://portals.broadinstitute.org/ccle/data", (
                 RemoteFile("CCLE_RNAseq_genes_rpkm_20180929.gct.gz",
                            "https://data.broadinstitute.org/ccle/CCLE_RNAseq_genes_rpkm_20180929.gct.gz",
                            "baseline"),)),
    # Drug response (build --response). Sizes and checksums are not pinned: the publishers state none, and
    # the figures third-party manifests give (GDSC1 CSV 54,084,519 B, GDSC2 CSV 39,830,840 B, PRISM ~252 MB)
    # could not be checked offline; the manifest pins each file on first use.
    Resource("gdsc1-response", "GDSC1 fitted dose response, release 8.5 (27Oct23): LN_IC50, AUC, Z_SCORE per "
             "COSMIC cell line and drug (about 54 MB, unverified)",
             "https://www.cancerrxgene.org/downloads/bulk_download", (
                 RemoteFile("GDSC1_fitted_dose_response_27Oct23.csv",
                            f"{_GDSC85}GDSC1_fitted_dose_response_27Oct23.csv", "response"),)),
    Resource("gdsc2-response", "GDSC2 fitted dose response, release 8.5 (27Oct23): LN_IC50, AUC, Z_SCORE per "
             "COSMIC cell line and drug (about 40 MB, unverified)",
             "https://www.cancerrxgene.org/downloads/bulk_download", (
                 RemoteFile("GDSC2_fitted_dose_response_27Oct23.csv",
                            f"{_GDSC85}GDSC2_fitted_dose_response_27Oct23.csv", "response"),)),
    Resource("ctrpv2", "CTRPv2.0 (CTD2 portal, CTRPv2.0_2015_ctd2_ExpandedDataset.zip): area under the curve "
             "per experiment and compound with its cell-line and compound metadata",
             "https://ctd2-data.nci.nih.gov/Public/Broad/CTRPv2.0_2015_ctd2_ExpandedDataset/", (
                 RemoteFile("CTRPv2.0_2015_ctd2_ExpandedDataset.zip",
                            "https://ctd2-data.nci.nih.gov/Public/Broad/CTRPv2.0_2015_ctd2_ExpandedDataset/"
                            "CTRPv2.0_2015_ctd2_ExpandedDataset.zip", "response",
                            members=("v20.data.curves_post_qc.txt", "v20.meta.per_experiment.txt",
                                     "v20.meta.per_cell_line.txt", "v20.meta.per_compound.txt")),)),
    Resource("prism-secondary", "DepMap PRISM Repurposing 19Q4 secondary screen: dose-response curve "
             "parameters (auc, ic50) per DepMap id and drug (figshare article 9393293; about 250 MB, "
             "unverified)",
             "https://depmap.org/repurposing/", (
                 RemoteFile("secondary-screen-dose-response-curve-parameters.csv",
                            "https://ndownloader.figshare.com/files/20237739", "response"),)),
]}


def unpacked_name(name: str) -> str:
    """The file name after decompression (``x.gz`` / ``x.zip`` -> ``x``); others unchanged."""
    for ext in (".gz", ".zip"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


def with_base_url(url: str, base: str | None) -> str:
    """``url`` with its scheme and host replaced by ``base`` (``base``'s path is prefixed to the URL's)."""
    if not base:
        return url
    b = urllib.parse.urlsplit(base)
    if not b.scheme or not b.netloc:
        raise FetchError(f"--base-url {base!r}: not a URL (expected e.g. https://mirror.example.org/geo)")
    u = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((b.scheme, b.netloc, b.path.rstrip("/") + u.path, u.query, ""))


# ----------------------------------------------------------------------------------------------- progress
class Progress:
    """Bytes, rate and ETA of one download on ``stream`` (``\\r`` on a terminal, a line every 10 s else)."""

    def __init__(self, name: str, total: int | None, start: int = 0, stream: IO[str] | None = None,
                 clock: Callable[[], float] = time.monotonic, every: float | None = None) -> None:
        self.name, self.total, self.done_bytes, self.start_bytes = name, total, start, start
        self.stream = stream or sys.stderr
        self.clock = clock
        self.t0 = self.last = clock()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every = every if every is not None else (0.5 if self.tty else 10.0)

    def line(self) -> str:
        dt = self.clock() - self.t0
        rate = (self.done_bytes - self.start_bytes) / dt if dt > 0 else 0.0
        s = f"{self.name}: {human_bytes(self.done_bytes)}"
        if self.total:
            s += f" of {human_bytes(self.total)} ({100 * self.done_bytes / self.total:.1f}%)"
        s += f", {human_bytes(rate)}/s"
        if self.total and rate > 0:
            s += f", ETA {duration((self.total - self.done_bytes) / rate)}"
        return s

    def update(self, n: int) -> None:
        self.done_bytes += n
        now = self.clock()
        if now - self.last >= self.every:
            self.last = now
            self.stream.write(("\r" + self.line()) if self.tty else self.line() + "\n")
            self.stream.flush()

    def finish(self) -> None:
        dt = self.clock() - self.t0
        got = self.done_bytes - self.start_bytes
        msg = (f"{self.name}: {human_bytes(self.done_bytes)} ({human_bytes(got)} in {dt:.1f} s, "
               f"{human_bytes(got / dt if dt > 0 else 0)}/s)")
        self.stream.write(("\r" + msg + "\n") if self.tty else msg + "\n")
        self.stream.flush()


# ---------------------------------------------------------------------------------------------- manifest
def read_manifest(d: Path) -> dict:
    p = d / MANIFEST
    if not p.exists():
        return {"files": {}}
    try:
        m = json.loads(p.read_text())
        if not isinstance(m, dict) or not isinstance(m.get("files"), dict):
            raise ValueError("no 'files' object")
        return m
    except (ValueError, OSError) as e:
        raise FetchError(f"{p}: unreadable manifest ({e}); move it away to fetch again") from e


def write_manifest(d: Path, m: dict) -> None:
    tmp = d / f".{MANIFEST}.tmp-{os.getpid()}"
    text = json.dumps(m, indent=1, sort_keys=True) + "\n"
    try:
        with disk_errors(d / MANIFEST, len(text), lambda _: f"the old {MANIFEST} is unchanged", tmp):
            tmp.write_text(text)
            os.replace(tmp, d / MANIFEST)
    finally:
        tmp.unlink(missing_ok=True)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def keep_aside(path: Path) -> Path:
    """Rename a bad file to ``NAME.bad-<UTC time>`` (never deleted, never used)."""
    bad = path.with_name(f"{path.name}.bad-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}")
    os.replace(path, bad)
    return bad


# ---------------------------------------------------------------------------------------------- download
def _content_total(resp: http.client.HTTPResponse, offset: int) -> int | None:
    cr = resp.headers.get("Content-Range")
    if cr and "/" in cr and not cr.endswith("/*"):
        try:
            return int(cr.rsplit("/", 1)[1])
        except ValueError:
            return None
    cl = resp.headers.get("Content-Length")
    return offset + int(cl) if cl and cl.isdigit() else None


@contextmanager
def disk_errors(path: Path, total: int | None, kept: Callable[[int], str],
                written: Path | None = None) -> Iterator[None]:
    """Turn an OSError of writing ``path`` (``total`` bytes when complete; written so far to ``written``,
    default ``path``) into one FetchError saying what it is (datasets.disk: disk full, quota, read-only,
    permission), how much space is still needed and what was kept (``kept(bytes written)``)."""
    try:
        yield
    except OSError as e:
        have = (written or path).stat().st_size if (written or path).is_file() else 0
        need = total - have if total is not None else None
        raise FetchError(f"{write_failure(e, path, need, '--dir')}; {kept(have)}") from None


def _read(resp: http.client.HTTPResponse) -> bytes:
    """The next chunk of the response; a failed read is :class:`_Dropped` (a network failure)."""
    try:
        return resp.read(CHUNK)
    except (OSError, http.client.HTTPException) as e:
        raise _Dropped(type(e).__name__) from e


def _check_space(d: Path, need: int, what: str) -> None:
    free = shutil.disk_usage(d).free
    if need > free:
        raise FetchError(f"{d}: not enough disk space for {what}: needs {human_bytes(need)}, "
                         f"{human_bytes(free)} free; free some space or choose another --dir")


def download(url: str, dest: Path, *, size: int | None = None, retries: int = 5, timeout: float = 60.0,
             stream: IO[str] | None = None, backoff: float = 1.0) -> tuple[int, str]:
    """Download ``url`` to ``dest`` through ``dest.part`` (resumed by HTTP Range); returns (size, sha256).

    A dropped connection is retried ``retries`` times, each continuing the partial file. A 404 or other
    client error fails at once, and so does a failed write (:func:`disk_errors`: a full disk is no network
    failure). On failure the partial file stays for the next run.
    """
    part = dest.with_name(dest.name + ".part")
    opener = urllib.request.build_opener()  # includes ProxyHandler: http(s)_proxy / no_proxy honoured
    h = hashlib.sha256()
    offset = part.stat().st_size if part.exists() else 0
    rec = part_meta.load(part) if offset else {}
    if offset:
        with open(part, "rb") as fh:
            while chunk := fh.read(16 * CHUNK):
                h.update(chunk)
    total: int | None = size
    failures = 0

    def kept(have: int) -> str:
        return (f"the {human_bytes(have)} written stay in {part.name}: rerun to resume" if have
                else "none written")

    last_error = ""
    checked_space = False
    while True:
        req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
        if offset:
            req.add_header("Range", f"bytes={offset}-")
            if part_meta.if_range(rec):
                req.add_header("If-Range", part_meta.if_range(rec))
        try:
            resp = opener.open(req, timeout=timeout)
        except urllib.error.HTTPError as e:
            whole = (e.headers.get("Content-Range") or "") if e.headers is not None else ""
            if e.code == 416 and total is None and whole.startswith("bytes */") and whole[8:].isdigit():
                total = int(whole[8:])  # the file's size, as a 416 states it (RFC 9110)
            if e.code == 416 and offset and total is not None and offset == total == rec.get("total", total):
                break  # the partial file is already complete
            if e.code == 416 and offset:  # the part is longer than the file (or of another version): again
                os.replace(part, part.with_name(part.name + f".bad-{int(time.time())}"))
                part_meta.clear(part)
                offset, h, rec = 0, hashlib.sha256(), {}
                continue
            if 400 <= e.code < 500:
                raise FetchError(f"{url}: HTTP {e.code} {e.reason}; check the URL (or --base-url)") from e
            last_error = f"HTTP {e.code} {e.reason}"
            resp = None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            reason = getattr(e, "reason", e)
            last_error = f"{type(reason).__name__}: {reason}"
            resp = None
        if resp is not None:
            with resp:
                here = _content_total(resp, offset if resp.status == 206 else 0)  # a 200 is the whole file
                why = part_meta.changed(rec, resp.headers, here) if offset else ""
                if offset and (resp.status == 200 or why):  # Range ignored, or another version: from zero
                    print(f"{dest.name}: "
                          + (f"changed on the server since {part.name} began ({why})" if why
                             else "the server sent the whole file, not the rest")
                          + f": restarting from zero ({human_bytes(offset)} written discarded)",
                          file=stream or sys.stderr)
                    offset, h, rec = 0, hashlib.sha256(), {}
                    part.unlink(missing_ok=True)
                    part_meta.clear(part)
                    if resp.status != 200:  # a 206 of the new version: ask for all of it
                        continue
                total = here or total
                if size is not None and total is not None and total != size:
                    raise FetchError(f"{url}: the server reports {total} bytes, the publisher states {size}; "
                                     f"the file on the server differs from the catalog's (nothing kept)")
                if not checked_space and total is not None:
                    _check_space(dest.parent, total - offset, f"downloading {dest.name}")
                    checked_space = True
                if not offset:   # its first write: a read-only or full --dir is said here
                    with disk_errors(part, total, kept):
                        rec = part_meta.save(part, resp.headers, total)
                prog = Progress(dest.name, total, offset, stream)
                try:
                    with disk_errors(part, total, kept), open(part, "ab") as out:
                        while chunk := _read(resp):
                            out.write(chunk)
                            h.update(chunk)
                            offset += len(chunk)
                            prog.update(len(chunk))
                except _Dropped as e:
                    last_error = f"connection dropped at {offset} bytes ({e})"
                else:
                    if total is None or offset >= total:
                        prog.finish()
                        break
                    last_error = f"connection closed at {offset} of {total} bytes"
        failures += 1
        if failures > retries:
            raise FetchError(f"{url}: download failed after {plural(failures, 'attempt')} ({last_error}); "
                             f"{kept(offset)}")
        print(f"{dest.name}: {last_error}; retrying ({failures}/{retries}) from byte {offset}",
              file=stream or sys.stderr)
        time.sleep(backoff * failures)
    n = part.stat().st_size
    if total is not None and n != total:
        bad = keep_aside(part)
        part_meta.clear(part)
        raise FetchError(f"{url}: got {n} bytes, expected {total}; the file was kept aside as {bad}; "
                         f"rerun to fetch again")
    os.replace(part, dest)
    part_meta.clear(part)
    return n, h.hexdigest()


# ----------------------------------------------------------------------------------------------- unpack
def gzip_size_hint(path: Path) -> int:
    """A lower bound of a .gz's decompressed size: its ISIZE trailer (size mod 2**32) raised by whole
    2**32 steps to at least the compressed size less gzip's own overhead (header, trailer, 5 bytes per stored
    block: incompressible data comes out slightly larger than it went in)."""
    n = path.stat().st_size
    with open(path, "rb") as fh:
        fh.seek(max(n - 4, 0))
        isize = struct.unpack("<I", fh.read(4).rjust(4, b"\0"))[0]
    while isize + n // 1000 + 1024 < n:
        isize += 2**32
    return isize


DEFLATE_MAX_RATIO = 1032  # deflate's limit on expansion (zlib's technical notes): 1032 bytes out per byte in


def _stated_bound(path: Path, min_size: int | None) -> int:
    """The catalog's lower bound of the unpacked size, where this archive can be the file it describes: an
    archive too small to expand to ``min_size`` is some other file under that name (a mirror's subset, a test
    fixture), and holding it to the real file's bound would refuse a small unpack for want of tens of GB."""
    if not min_size or path.stat().st_size * DEFLATE_MAX_RATIO < min_size:
        return 0
    return min_size


class _Damaged(Exception):  # noqa: N818 - wraps a decompression failure (not an OSError)
    """Reading the archive failed: a damaged download, unlike a failed write of the unpacked file."""


def _unpacked(src: IO[bytes]) -> bytes:
    try:
        return src.read(CHUNK)
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise _Damaged() from e


def _extract(src: IO[bytes], out: Path, need: int, archive: Path) -> tuple[Path, int, str]:
    """Stream ``src`` to ``out`` through ``.out.tmp-<pid>`` (removed on any failure); (path, size, sha256)."""
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    h = hashlib.sha256()

    def kept(_: int) -> str:
        return f"the partial file was removed, {archive.name} is kept: rerun to unpack it"

    try:
        with disk_errors(out, need, kept, tmp), open(tmp, "wb") as dst:
            while chunk := _unpacked(src):
                dst.write(chunk)
                h.update(chunk)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, out)
    return out, out.stat().st_size, h.hexdigest()


class DamagedArchive(FetchError):
    """A downloaded archive that does not unpack (truncated, corrupt, or an HTML page under the name)."""


def _damaged(path: Path, e: BaseException) -> DamagedArchive:
    cause = e.__cause__ if isinstance(e, _Damaged) else e
    return DamagedArchive(f"{path}: cannot decompress ({cause}); the download may be damaged")


def _set_aside(d: Path, m: dict, name: str, dest: Path, rec: dict, e: DamagedArchive) -> FetchError:
    """A download that does not unpack is never trusted: it is set aside and dropped from the manifest, else
    its sha256, trusted on first use, would refuse every later (good) download of the file."""
    bad = keep_aside(dest)
    m["files"].pop(name, None)
    write_manifest(d, m)
    if str(rec.get("checksum", "")).startswith("publisher"):
        return FetchError(f"{e}; it matches the publisher's sha256, so the published file itself does not "
                          f"unpack: set aside as {bad}")
    return FetchError(f"{e}; set aside as {bad} and dropped from {MANIFEST}: rerun to fetch it again")


def _zip_files(z: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    return [i for i in z.infolist() if not i.is_dir() and not i.filename.startswith("__MACOSX")]


def unpack(path: Path, min_size: int | None = None) -> tuple[Path, int, str]:
    """Decompress ``x.gz`` / ``x.zip`` (one member) to ``x`` streaming, after a disk-space check; returns
    (path, size, sha256). Written to ``.x.tmp-<pid>`` and renamed when complete."""
    out = path.with_name(unpacked_name(path.name))
    try:
        if path.name.endswith(".zip"):
            with zipfile.ZipFile(path) as z:
                members = _zip_files(z)
                pick = [i for i in members if Path(i.filename).name == out.name] or members
                if len(pick) != 1:
                    raise FetchError(f"{path}: expected one file in the zip, found "
                                     f"{', '.join(i.filename for i in members) or 'none'}")
                _check_space(path.parent, pick[0].file_size, f"unpacking {path.name}")
                with z.open(pick[0]) as src:
                    return _extract(src, out, pick[0].file_size, path)
        need = max(gzip_size_hint(path), _stated_bound(path, min_size))
        _check_space(path.parent, need, f"unpacking {path.name} (at least {human_bytes(need)})")
        with gzip.open(path, "rb") as src:
            return _extract(src, out, need, path)
    except (_Damaged, OSError, EOFError, zipfile.BadZipFile) as e:
        raise _damaged(path, e) from None


def unpack_members(path: Path, members: Sequence[str]) -> list[tuple[Path, int, str]]:
    """Extract the files named ``members`` (by file name, wherever they sit in the zip) into the zip's
    directory under those names, streaming, after one disk-space check; (path, size, sha256) of each."""
    try:
        with zipfile.ZipFile(path) as z:
            by_name: dict[str, list[zipfile.ZipInfo]] = {}
            for i in _zip_files(z):
                by_name.setdefault(Path(i.filename).name, []).append(i)
            bad = [m for m in members if len(by_name.get(m, [])) != 1]
            if bad:
                raise FetchError(f"{path}: expected one {' and one '.join(bad)} in the zip, found "
                                 f"{', '.join(sorted(by_name)[:12]) or 'no files'}")
            _check_space(path.parent, sum(by_name[m][0].file_size for m in members), f"unpacking {path.name}")
            out = []
            for m in members:
                with z.open(by_name[m][0]) as src:
                    out.append(_extract(src, path.with_name(m), by_name[m][0].file_size, path))
            return out
    except (_Damaged, OSError, EOFError, zipfile.BadZipFile) as e:
        raise _damaged(path, e) from None


# ------------------------------------------------------------------------------------------------- fetch
@dataclass
class Fetched:
    name: str  # the file as downloaded
    path: Path  # the usable file (decompressed when it was an archive)
    reused: bool


def _verify_existing(path: Path, rec: dict, key: str) -> None:
    size, sha = path.stat().st_size, None
    if size != rec.get("size") or (sha := sha256_file(path)) != rec.get("sha256"):
        bad = keep_aside(path)
        got = f"{size} bytes" if size != rec.get("size") else f"sha256 {sha}"
        raise FetchError(f"{path}: does not match {MANIFEST} ({key}: {rec.get('size')} bytes, sha256 "
                         f"{rec.get('sha256')}, fetched {rec.get('date', '?')}; found {got}); kept aside as "
                         f"{bad}, rerun to fetch it again")
    rec["mtime_ns"] = path.stat().st_mtime_ns  # verified: a build may reuse its sha256 (datasets.provenance)


def _unpacked_records(rec: dict, members: Sequence[str]) -> list[dict] | None:
    """The manifest records of an archive's unpacked file(s) (``unpacked``, or ``members`` by name); None when
    one is missing."""
    if members:
        got = rec.get("members") or {}
        return [got[m] for m in members] if all(m in got for m in members) else None
    return [rec["unpacked"]] if rec.get("unpacked") else None


def _reuse_unpacked(outs: Sequence[Path], rec: dict, members: Sequence[str], name: str) -> bool:
    """Verify the unpacked files against their records when all are there and recorded (else False)."""
    recs = _unpacked_records(rec, members)
    if recs is None or not all(o.exists() for o in outs):
        return False
    for o, r in zip(outs, recs, strict=True):
        _verify_existing(o, r, f"{name} unpacked" if not members else f"{name} member {o.name}")
    return True


def fetch_file(url: str, name: str, d: Path, *, sha256: str | None = None, size: int | None = None,
               min_unpacked: int | None = None, unpack_archive: bool = True, keep_compressed: bool = False,
               retries: int = 5, stream: IO[str] | None = None, backoff: float = 1.0,
               members: Sequence[str] = ()) -> Fetched:
    """Fetch one file into ``d`` (or reuse it, verified against the manifest), unpack it (a zip's
    ``members`` only, when named), record it."""
    log = stream or sys.stderr
    with disk_errors(d, None, lambda _: "nothing written"):
        d.mkdir(parents=True, exist_ok=True)
    m = read_manifest(d)
    rec = m["files"].get(name)
    dest = d / name
    archive = unpack_archive and unpacked_name(name) != name
    members = tuple(members) if archive and name.endswith(".zip") else ()
    usable = d / (members[0] if members else unpacked_name(name)) if archive else dest
    outs = [d / f for f in members] or [usable]
    expected = sha256.lower() if sha256 else None
    if rec and expected and rec.get("sha256") != expected:
        raise FetchError(f"{dest}: {MANIFEST} records sha256 {rec.get('sha256')}, the expected one is "
                         f"{expected}; move {dest} and its {MANIFEST} entry away to fetch it again")
    if rec and dest.exists():
        _verify_existing(dest, rec, name)
        if not archive or _reuse_unpacked(outs, rec, members, name):
            print(f"{name}: present, verified against {MANIFEST}", file=log)
            write_manifest(d, m)
            return Fetched(name, usable, True)
    elif rec and archive and _reuse_unpacked(outs, rec, members, name):
        print(f"{', '.join(o.name for o in outs)}: present, verified against {MANIFEST}", file=log)
        write_manifest(d, m)
        return Fetched(name, usable, True)
    elif dest.exists() and not rec:  # a file put there by hand: check it, trust it on first use
        n, got = dest.stat().st_size, sha256_file(dest)
        if (expected and got != expected) or (size is not None and n != size):
            bad = keep_aside(dest)
            raise FetchError(f"{dest}: existing file does not match the expected "
                             f"{'sha256 ' + expected if expected and got != expected else f'{size} bytes'}; "
                             f"kept aside as {bad}, rerun to fetch it again")
        rec = _record(url, n, got, "publisher" if expected else "trust on first use (file found in --dir)")
    downloaded = ""
    if not dest.exists():
        pinned = expected or (rec or {}).get("sha256")  # trust on first use: later downloads must match
        n, got = download(url, dest, size=size, retries=retries, stream=stream, backoff=backoff)
        if pinned and got != pinned:
            bad = keep_aside(dest)
            what = "the expected" if expected else f"the one {MANIFEST} recorded on first use"
            raise FetchError(f"{url}: sha256 {got} differs from {what} ({pinned}); the download was kept "
                             f"aside as {bad} (not used); rerun to fetch it again")
        rec = _record(url, n, got, "publisher or --sha256" if expected
                      else (rec or {}).get("checksum", "trust on first use"))
        downloaded = f"{name}: {n} bytes, sha256 {got} ({rec['checksum']})"
        if not archive:  # an archive's is said once it unpacked (a damaged one is set aside, not trusted)
            print(downloaded, file=log)
    rec["mtime_ns"] = dest.stat().st_mtime_ns  # size + mtime: a build reuses the sha256 (datasets.provenance)
    m["files"][name] = rec
    write_manifest(d, m)
    if archive:
        try:
            done = unpack_members(dest, members) if members else [unpack(dest, min_unpacked)]
        except DamagedArchive as e:
            raise _set_aside(d, m, name, dest, rec, e) from None
        recs = {out.name: {"file": out.name, "size": n, "sha256": got, "date": _now(),
                           "mtime_ns": out.stat().st_mtime_ns} for out, n, got in done}
        if members:
            rec["members"] = recs
        else:
            rec["unpacked"] = next(iter(recs.values()))
        if not keep_compressed:
            dest.unlink()
            rec["archive_removed"] = True
        m["files"][name] = rec
        write_manifest(d, m)
        if downloaded:
            print(downloaded, file=log)
        print(f"{name}: unpacked to {', '.join(recs)} ({human_bytes(sum(n for _, n, _ in done))})", file=log)
    return Fetched(name, usable, False)


def _record(url: str, size: int, sha: str, checksum: str) -> dict:
    return {"url": url, "size": size, "sha256": sha, "date": _now(), "checksum": checksum}


def check_url(url: str, flag: str, any_scheme: bool = False) -> None:
    """An http(s) URL (any scheme with ``any_scheme``) with a host, else one FetchError naming ``flag``
    (urllib's refusal of another scheme would be retried as a network failure, a malformed host a
    traceback)."""
    try:
        u = urllib.parse.urlsplit(url)
        u.port  # noqa: B018 - parses the port: ValueError where it is not a number
    except ValueError as e:
        raise FetchError(f"{flag} {url!r}: not a valid URL ({e})") from None
    if (not any_scheme and u.scheme.lower() not in ("http", "https")) or not u.scheme or not u.hostname:
        raise FetchError(f"{flag} {url!r}: not an http(s) URL with a host (expected e.g. "
                         f"https://example.org/path/file.csv)")


def name_from_url(url: str) -> str:
    name = Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name
    if not name or name in (".", ".."):
        raise FetchError(f"--url {url}: no file name in the URL path; pass --name NAME")
    return name


# ----------------------------------------------------------------------------------------------------- CLI
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = OneLineParser(prog="pertvae-bench fetch", description=__doc__.split("\n")[0],
                      epilog="resources: " + ", ".join(CATALOG) + " (--list describes them)")
    p.add_argument("resources", nargs="*", metavar="RESOURCE", help="catalog names (see --list)")
    p.add_argument("--dir", default="data", help="download directory (default data/)")
    p.add_argument("--url", help="fetch this URL instead of (or besides) catalog resources")
    p.add_argument("--sha256", help="expected sha256 of --url's file (hex)")
    p.add_argument("--name", help="file name for --url (default: the URL's last path part)")
    p.add_argument("--base-url", help="replace the catalog URLs' scheme and host (a mirror)")
    p.add_argument("--keep-compressed", action="store_true", help="keep .gz/.zip files after unpacking")
    p.add_argument("--no-unpack", action="store_true", help="leave .gz/.zip files compressed")
    p.add_argument("--retries", type=int, default=5, help="retries after a dropped connection (default 5)")
    p.add_argument("--retry-wait", type=float, default=2.0,
                   help="seconds before the first retry, growing linearly (default 2)")
    p.add_argument("--list", action="store_true", help="list the catalog and exit")
    return p.parse_args(argv)


def render_catalog() -> str:
    lines = []
    for r in CATALOG.values():
        lines.append(f"{r.name}: {r.description}\n  {r.page}")
        lines += [f"  {f.name}  ({f.role}{'; ' + ', '.join(f.members) if f.members else ''})"
                  for f in r.files]
    return "\n".join(lines)


def _new_dirs(d: Path) -> list[Path]:
    """``d`` and its ancestors that do not exist yet, deepest first: what fetch_file's mkdir will create."""
    return list(takewhile(lambda p: not p.exists(), (d, *d.parents)))


def _remove_empty(made: Sequence[Path]) -> None:
    """Remove the directories this run created that a failure left empty (a failed fetch leaves nothing
    half-made); one holding a file, a partial download or one put there meanwhile stays."""
    for p in made:
        try:
            p.rmdir()
        except OSError:
            return


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry: exit 0 when every file is present and verified; bad input, a network failure or a failed
    verification -> one 'error: ...' line and exit status 2; Ctrl-C -> 130 (partial files kept)."""
    a = parse_args(argv)
    if a.list:
        print(render_catalog())
        return 0
    made: list[Path] = []  # the --dir (and its parents) this run creates
    try:
        unknown = [r for r in a.resources if r not in CATALOG]
        if unknown:
            raise FetchError(f"unknown resource {', '.join(map(repr, unknown))}; choose from "
                             f"{', '.join(CATALOG)}")
        if not a.resources and not a.url:
            raise FetchError("nothing to fetch: name catalog resources (--list) or pass --url URL")
        if a.sha256 and not a.url:
            raise FetchError("--sha256 applies to --url only (catalog files carry their own checksums)")
        if a.sha256 and (len(a.sha256) != 64 or any(c not in "0123456789abcdefABCDEF" for c in a.sha256)):
            raise FetchError(f"--sha256 {a.sha256!r}: expected 64 hex digits")
        if a.url:
            check_url(a.url, "--url")
        if a.base_url:
            check_url(a.base_url, "--base-url", any_scheme=True)
        if a.retries < 0:
            raise FetchError(f"--retries {a.retries}: must be 0 or more")
        d = Path(a.dir)
        if d.exists() and not d.is_dir():
            raise FetchError(f"--dir {d}: exists and is not a directory")
        made = _new_dirs(d)
        if not 0 <= a.retry_wait <= MAX_RETRY_WAIT:   # nan, inf, 1e308: time.sleep's traceback at a retry
            raise FetchError(f"--retry-wait {a.retry_wait}: must be a number of seconds from 0 to "
                             f"{MAX_RETRY_WAIT}")
        kw = dict(unpack_archive=not a.no_unpack, keep_compressed=a.keep_compressed, retries=a.retries,
                  backoff=a.retry_wait)
        done: list[Fetched] = []
        for rname in dict.fromkeys(a.resources):
            for f in CATALOG[rname].files:
                done.append(fetch_file(with_base_url(f.url, a.base_url), f.name, d, sha256=f.sha256,
                                       size=f.size, min_unpacked=f.min_unpacked, members=f.members, **kw))
        if a.url:
            done.append(fetch_file(a.url, a.name or name_from_url(a.url), d, sha256=a.sha256, **kw))
    except FetchError as e:
        _remove_empty(made)
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        _remove_empty(made)
        print(f"error: {getattr(e, 'filename', None) or a.dir}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # while unpacking a downloaded file there is no .part: its .tmp is removed
        _remove_empty(made)
        parts = sorted(p.name for p in Path(a.dir).glob("*.part")) if Path(a.dir).is_dir() else []
        kept = f"partial downloads kept ({', '.join(parts)})" if parts else "no partial file kept"
        print(f"interrupted: {kept}; rerun to resume", file=sys.stderr)
        return interrupt_code(e)
    print(f"{plural(len(done), 'file')} in {a.dir} ({sum(f.reused for f in done)} reused), recorded in "
          f"{Path(a.dir) / MANIFEST}")
    return 0

