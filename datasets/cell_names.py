"""Cell line names: spellings of one cell line must never become two cell lines.

L1000 plates, inst_info files and AnnData obs spell cell lines inconsistently (``MCF7`` on one plate, ``mcf7``
or ``MCF-7`` on another). Kept apart, two spellings are two cell lines to the benchmark, and one of them can
sit in a training fold while the other is in the test fold of the same split: a leakage route. Names are
compared by :func:`cell_line_key`, the CCLE-style key (upper case, every character but A-Z and 0-9 dropped:
``mcf-7`` -> ``MCF7``, ``Hep G2`` -> ``HEPG2``); datasets.baseline matches GDSC, CCLE and DepMap names to
the L1000 ones by the same key.

Spellings of one key in one input are refused by default (:func:`resolve_spellings` raises one error naming
every clash and its profile counts): the key also joins different cell lines (CCLE's ``KM-H2`` and
``KMH-2``, ``T.T`` and ``TT``), so only the user can say that two spellings are one cell line. With
``merge=True`` (``build --merge-cell-spellings``) they are merged under one spelling, the one with the most
profiles (on a tie, the one already written as its key, as LINCS and CCLE write names; then the first in
sort order), and one warning line on stderr lists every merge; the cube's ``merged_cell_spellings``
attribute records them.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Iterable
from typing import IO

import numpy as np

from datasets.errors import CubeError

MERGE_FLAG = "--merge-cell-spellings"


def cell_line_key(name: object) -> str:
    """The CCLE-style key of a cell line name: upper case, only A-Z and 0-9 (``'Hep G2'`` -> ``'HEPG2'``)."""
    return re.sub(r"[^0-9A-Z]", "", str(name).upper())


def spelling_clashes(names: Iterable[str]) -> dict[str, list[tuple[str, int]]]:
    """{key: [(spelling, count), ...]} for the keys written more than one way in ``names`` (one name per
    profile), each list canonical spelling first (:func:`_canonical_order`)."""
    counts = Counter(str(n) for n in names)
    by_key: dict[str, list[tuple[str, int]]] = {}
    for name, n in counts.items():
        by_key.setdefault(cell_line_key(name), []).append((name, n))
    return {k: _canonical_order(k, v) for k, v in sorted(by_key.items()) if len(v) > 1}


def _canonical_order(key: str, spellings: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Most profiles first; then a spelling equal to its key; then sort order."""
    return sorted(spellings, key=lambda s: (-s[1], s[0] != key, s[0]))


def _counted(spelling: str, n: int) -> str:
    return f"{spelling!r} ({n} profile{'s' if n != 1 else ''})"


def _listing(clashes: dict[str, list[tuple[str, int]]]) -> str:
    return "; ".join(" and ".join(_counted(*s) for s in v) for v in clashes.values())


def resolve_spellings(names: np.ndarray, where: str, merge: bool = False,
                      stream: IO[str] | None = None) -> tuple[np.ndarray, dict[str, str]]:
    """``names`` (one per profile) with no two spellings of one :func:`cell_line_key`.

    Clashing spellings raise :class:`CubeError` naming them all, or with ``merge`` are replaced by the
    canonical spelling (module docstring), with one ``warning:`` line on ``stream`` (stderr) listing every
    merge. Returns (names, {merged spelling: kept spelling}).
    """
    clashes = spelling_clashes(names)
    if not clashes:
        return names, {}
    if not merge:
        raise CubeError(f"{where}: cell line names that differ only in case or punctuation would be separate "
                        f"cell lines (one cell line in a training and a test fold): {_listing(clashes)}; "
                        f"make the spellings agree in the input, or merge them with {MERGE_FLAG} "
                        f"(merge_cell_spellings=True in Python)")
    merged = {s: v[0][0] for v in clashes.values() for s, _ in v[1:]}
    lines = "; ".join(f"{', '.join(_counted(*s) for s in v[1:])} into {_counted(*v[0])}"
                      for v in clashes.values())
    print(f"warning: {where}: merged cell line spellings ({MERGE_FLAG}): {lines}; kept: the spelling with "
          f"the most profiles (on a tie the one written as its key, then the first in sort order)",
          file=stream or sys.stderr)
    out = np.asarray([merged.get(str(n), str(n)) for n in names], dtype=object)
    return out, merged
