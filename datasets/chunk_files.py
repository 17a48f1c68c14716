"""Which chunk files a cube's writer wrote, recorded in the cube and checked when it is opened.

A cube's all-missing chunks are never written (their fill value, NaN or "", stands for them), so a chunk
file deleted later (an interrupted or partial copy, a cleanup) reads as data that was never measured: a
damaged cube would pass every check and silently change a run's pairs, singletons and scores.
:func:`record` lists, per array of the store, which chunks of its grid have a file (a bitmap in the grid's
C order, hex), stored by datasets.cube.write_cube in the group attribute :data:`ATTR`; :func:`check`
compares the files there now with it (a walk of the directories, no read). Cubes written before the record
existed have none: :func:`unrecorded_note` says so, and they are opened as before.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

ATTR = "chunk_files"


def _array_meta(store: Path) -> dict[str, list[int]]:
    """Each array of the store (a child directory whose zarr.json says so) and its chunk grid."""
    grids = {}
    for child in sorted(store.iterdir()):
        try:
            meta = json.loads((child / "zarr.json").read_text(encoding="utf-8"))
            if meta.get("node_type") != "array":
                continue
            chunk = meta["chunk_grid"]["configuration"]["chunk_shape"]
            grids[child.name] = [-(-int(n) // max(1, int(c)))
                                 for n, c in zip(meta["shape"], chunk, strict=True)]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
    return grids


def _present(var: Path, grid: list[int]) -> tuple[np.ndarray, list[str]]:
    """Which chunks of ``grid`` have a file under ``var/c`` (the default key encoding, "/"-separated), and
    the files that are no chunk of the grid."""
    have = np.zeros(math.prod(grid), dtype=bool)
    stray = []
    root = var / "c"
    for f in (f for f in root.rglob("*") if f.is_file()) if root.is_dir() else ():
        try:
            have[np.ravel_multi_index(tuple(int(p) for p in f.relative_to(root).parts), grid)] = True
        except (ValueError, TypeError):
            stray.append(str(f.relative_to(var.parent)))
    return have, stray


def _key(name: str, flat: int, grid: list[int]) -> str:
    return "/".join([name, "c", *(str(int(i)) for i in np.unravel_index(flat, grid))])


def record(store: str | Path) -> str:
    """The attribute's value (JSON) for the store at ``store`` as written now: per array, its chunk grid and
    which of its chunks have a file."""
    store = Path(store)
    out = {}
    for name, grid in _array_meta(store).items():
        have, _ = _present(store / name, grid)
        out[name] = {"grid": grid, "written": np.packbits(have).tobytes().hex()}
    return json.dumps(out, sort_keys=True)


def check(store: str | Path, recorded: object) -> str | None:
    """What differs between the chunk files of the store at ``store`` and the attribute ``recorded``
    (:func:`record`): files missing or added, named (the first few) and counted; None when they agree.
    A record that cannot be read is said too: it cannot vouch for the cube."""
    store = Path(store)
    try:
        rec = json.loads(recorded) if isinstance(recorded, str) else None
        arrays = {str(k): ([int(n) for n in v["grid"]], bytes.fromhex(v["written"])) for k, v in rec.items()}
    except (ValueError, TypeError, KeyError, AttributeError):
        return f"its {ATTR!r} attribute (the chunk files its writer wrote) is not readable"
    grids = _array_meta(store)
    missing: list[str] = []
    added: list[str] = []
    n_written = 0
    for name, (grid, bits) in arrays.items():
        if grids.get(name) != grid:
            return f"array {name!r} has another chunk grid ({grids.get(name)}) than written ({grid})"
        wrote = np.unpackbits(np.frombuffer(bits, dtype=np.uint8), count=math.prod(grid)).astype(bool)
        have, stray = _present(store / name, grid)
        n_written += int(wrote.sum())
        missing += [_key(name, i, grid) for i in np.flatnonzero(wrote & ~have)]
        added += [_key(name, i, grid) for i in np.flatnonzero(have & ~wrote)] + stray
    words = []
    if missing:
        words.append(f"{len(missing)} of the {n_written} chunk files its writer wrote "
                     f"{'is' if len(missing) == 1 else 'are'} missing ({_first(missing)}; a missing chunk "
                     f"reads as unmeasured data)")
    if added:
        words.append(f"{len(added)} chunk file(s) its writer did not write "
                     f"{'is' if len(added) == 1 else 'are'} there ({_first(added)})")
    return " and ".join(words) or None


def _first(keys: list[str], n: int = 3) -> str:
    return ", ".join(sorted(keys)[:n]) + (f", ... ({len(keys) - n} more)" if len(keys) > n else "")


def unrecorded_note(attrs: dict) -> str | None:
    """For a cube whose attrs have no record (written before it existed, or by other code than
    datasets.cube.write_cube), what that means and what to do; None for one that has it."""
    if ATTR in attrs:
        return None
    return ("the cube has no record of the chunk files it was written with (written by an older version): a "
            "chunk file deleted since would read as unmeasured data, unnoticed; rebuild it (pertvae-bench "
            "build/synth) to have its files checked")
