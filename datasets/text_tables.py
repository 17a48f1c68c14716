"""Metadata tables (CMap inst_info / gene_info / pert_info, DepMap Model.csv) read as text: UTF-8, else
Latin-1 line by line.

The GCTX reader decodes embedded metadata as UTF-8 with a Latin-1 fallback (a dose unit written
``b'\\xb5M'``, micro in Latin-1); a text table is read the same way, but per line: a line that is not UTF-8
is read as Latin-1 when all its bytes above 0x7F are printable Latin-1 (0xA0-0xFF, where Latin-1 and
Windows-1252 agree: ``\\xb5`` is ``µ`` in both), so that a UTF-8 ``µ`` on one line and a Latin-1 one on
another are both ``µ``. A byte 0x80-0x9F on such a line (Windows-1252 quotes, or another encoding) cannot
be told apart: an error naming the file, line and byte, asking for the file as UTF-8.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pandas as pd

from datasets.errors import CubeError

_C1 = re.compile(rb"[\x80-\x9f]")


def decoded_text(path: Path, what: str) -> str:
    """``path``'s text, each line UTF-8 or else printable Latin-1 (module docstring); else CubeError."""
    out = []
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, start=1):
            try:
                out.append(raw.decode("utf-8"))
                continue
            except UnicodeDecodeError:
                pass
            c1 = _C1.search(raw)
            if c1:
                raise CubeError(f"{path}: line {n}, byte {c1.start() + 1}: {c1.group()!r} is neither UTF-8 "
                                f"nor printable Latin-1 text, so the {what} cannot be read unambiguously; "
                                f"save the file as UTF-8 (e.g. iconv -f WINDOWS-1252 -t UTF-8) and rerun")
            out.append(raw.decode("latin-1"))
    return "".join(out)


def undecodable(path: Path) -> str:
    """Where ``path`` first is not UTF-8: ``"line N, byte M (b'\\xb5')"`` ("" where it all is)."""
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as e:
                return f"line {n}, byte {e.start + 1} ({raw[e.start:e.start + 1]!r})"
    return ""


def read_text_table(path: Path, what: str, **kw) -> pd.DataFrame:
    """``pd.read_csv(path, **kw)`` as UTF-8, or of :func:`decoded_text` where the file is not UTF-8."""
    try:
        return pd.read_csv(path, encoding="utf-8", **kw)
    except UnicodeDecodeError:
        return pd.read_csv(io.StringIO(decoded_text(path, what)), **kw)
