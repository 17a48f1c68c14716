"""What a partial download (``NAME.part``) is a part of: the server's validators, kept beside it.

``NAME.part.json`` records the ETag, Last-Modified and total size the server gave when the part began. A
resumed request sends ``If-Range`` with the ETag (else Last-Modified), so that a server whose file changed
answers with the whole new file instead of the rest of the old one (RFC 9110 13.1.5); a 206 whose ETag or
total size differs from the recorded ones is of another version too (:func:`changed`). Either way the
download restarts from zero: a part is never spliced onto another version of the file.
"""

from __future__ import annotations

import json
from email.message import Message
from pathlib import Path

KEYS = ("etag", "last_modified", "total")


def meta_path(part: Path) -> Path:
    """``NAME.part.json`` beside ``NAME.part``."""
    return part.with_name(part.name + ".json")


def load(part: Path) -> dict:
    """The recorded validators of ``part`` ({} where none were recorded or the record is unreadable)."""
    try:
        rec = json.loads(meta_path(part).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: rec[k] for k in KEYS if isinstance(rec, dict) and rec.get(k) is not None}


def save(part: Path, headers: Message, total: int | None) -> dict:
    """Record the validators of the response a part begins with; returns them."""
    rec = {"etag": headers.get("ETag"), "last_modified": headers.get("Last-Modified"), "total": total}
    rec = {k: v for k, v in rec.items() if v is not None}
    meta_path(part).write_text(json.dumps(rec), encoding="utf-8")
    return rec


def clear(part: Path) -> None:
    """Forget the validators (the part is gone, or begins again)."""
    meta_path(part).unlink(missing_ok=True)


def if_range(rec: dict) -> str | None:
    """The ``If-Range`` value of a resumed request: a strong ETag, else the Last-Modified date."""
    etag = rec.get("etag")
    if etag and not etag.startswith("W/"):
        return etag
    return rec.get("last_modified")


def changed(rec: dict, headers: Message, total: int | None) -> str:
    """Why a 206 answer is not the rest of the recorded version ("" when it is, or nothing is known)."""
    etag = headers.get("ETag")
    if rec.get("etag") and etag and etag != rec["etag"]:
        return f"ETag {rec['etag']} became {etag}"
    if rec.get("total") is not None and total is not None and total != rec["total"]:
        return f"its size was {rec['total']} bytes, now {total}"
    modified = headers.get("Last-Modified")
    if rec.get("last_modified") and modified and modified != rec["last_modified"]:
        return f"Last-Modified {rec['last_modified']} became {modified}"
    return ""
