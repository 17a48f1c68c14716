"""The sha256 of a build's input files for the cube's provenance, taken from ``datasets.fetch``'s
``MANIFEST.json`` where it already holds it, else hashed with progress.

The manifest (in the file's directory) records per fetched file its size and sha256, and since the size and
modification time (``mtime_ns``) are recorded, a file whose size and mtime both match its record is taken as
the file fetch hashed: its sha256 is reused instead of reading the file again (the 65 GB GCTX: minutes). A
record without ``mtime_ns`` (a manifest from an older fetch), a file changed since (size or mtime differ), a
missing or unreadable manifest: the file is hashed. A file rewritten in place with its old size and mtime
restored would keep its old hash, the same trust ``make`` places in mtimes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from datasets import files
from datasets.fetch import FetchError, read_manifest
from datasets.progress import Phase

BLOCK = 16 * 2**20


def sha256_file(path: str | Path, phase: Phase | None = None) -> str:
    """:func:`datasets.files.sha256_file`, advancing ``phase`` (if given) by the bytes hashed."""
    return files.sha256_file(path, on_bytes=None if phase is None else lambda n: phase.update(phase.done + n))


def manifest_sha256(path: str | Path) -> str | None:
    """The sha256 ``MANIFEST.json`` (next to ``path``) records for this file when its size and mtime match
    the record, else None."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return None
    for cand in dict.fromkeys([p.absolute(), p.resolve()]):
        try:
            files = read_manifest(cand.parent)["files"]
        except FetchError:
            continue
        for name, rec in files.items():
            if not isinstance(rec, dict):
                continue
            unpacked = [rec.get("unpacked"), *(rec.get("members") or {}).values()]  # one archive's files
            mine = [u for u in unpacked if isinstance(u, dict) and u.get("file") == cand.name]
            if mine:
                rec = mine[0]
            elif name != cand.name:
                continue
            if rec.get("size") == st.st_size and rec.get("mtime_ns") == st.st_mtime_ns and rec.get("sha256"):
                return str(rec["sha256"])
    return None


@dataclass(frozen=True)
class InputHash:
    role: str
    path: Path
    sha256: str
    from_manifest: bool  # MANIFEST.json's record reused (else hashed now)

    def record(self) -> dict:
        """The provenance entry (the same whichever way the hash was obtained)."""
        return {"role": self.role, "path": str(self.path.resolve()), "sha256": self.sha256}


def hash_inputs(inputs: Sequence[tuple[str, str | Path]], stream: IO[str] | None = None) -> list[InputHash]:
    """sha256 of each (role, path): from the manifest where it matches, the others hashed, one pass each,
    under one progress line (``hashing inputs``) over their total size."""
    known = {Path(p): manifest_sha256(p) for _, p in inputs}
    todo = [p for p, sha in known.items() if sha is None]
    with Phase("hashing inputs", sum(os.path.getsize(p) for p in todo), stream) as phase:
        hashed = {p: sha256_file(p, phase=phase) for p in todo}
    return [InputHash(role, Path(p), hashed.get(Path(p)) or str(known[Path(p)]), Path(p) not in hashed)
            for role, p in inputs]
