"""Whether OUT's report is still the report of its store: a resume that ran nothing need not render it again.

Rendering the report is most of a no-op resume of a finished paper grid (issue 23: ~10 of its ~13 CPU
seconds). So after each full render (figures included) the run, and ``pertvae-bench report``, record in
OUT/.report.json:

- the store's state: every file under results.zarr with its size, modification and change times (ns) and
  inode; a write to a file changes its times (and its change time cannot be set back), a replaced file
  has a new inode;
- the code's state: the size and modification time of every source file of harness, pertvae_core and
  datasets, and the versions of Python and of the libraries that compute and draw the report;
- each file the render wrote (run.json's ``report.files``) with its size, modification time and inode;
- run.json's ``report`` section and ``partial`` flag, which the run puts back into the run.json it has just
  rewritten when it keeps the report.

A resume renders again unless all of it matches: a changed store, changed code, a missing, edited or
replaced report file, or no (or an unreadable) stamp. A file rewritten in place with the same size within
one tick of a file system's clock (1-2 s on FAT or HFS+, far less on ext4, XFS or APFS) is the one change it
could miss; ``pertvae-bench report OUT`` always renders.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
from pathlib import Path
from typing import Any

STAMP = ".report.json"
LIBRARIES = ("numpy", "pandas", "scipy", "matplotlib", "xarray", "zarr")
PACKAGES = ("harness", "pertvae_core", "datasets")


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _tree(root: Path, suffix: str = "") -> list[list]:
    """[relative path, size, mtime_ns, ctime_ns, inode] of each file under ``root`` ending in ``suffix``."""
    rows = []
    for dirpath, _, names in os.walk(root):
        for name in names:
            if name.endswith(suffix):
                st = os.stat(os.path.join(dirpath, name))
                rel = os.path.relpath(os.path.join(dirpath, name), root)
                rows.append([rel, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino])
    return sorted(rows)


def store_state(out: Path) -> str:
    """A digest of the state of every file of OUT/results.zarr (module docstring)."""
    return _digest(_tree(Path(out) / "results.zarr"))


def source_digest() -> str:
    """SHA-256 (16 hex digits) of the contents of every source file of harness, pertvae_core and datasets:
    the version string stays 0.1.0 from commit to commit (and an install's version says nothing of a source
    tree on PYTHONPATH over it), so run.json and the store record this to name the code that made a run;
    two checkouts of one commit give the same digest, whatever their files' times."""
    from importlib import import_module

    return tree_digest({p: Path(import_module(p).__file__).parent for p in PACKAGES})


def tree_digest(roots: dict[str, Path]) -> str:
    """SHA-256 (16 hex digits) of the names and contents of the .py files under each of ``roots``."""
    h = hashlib.sha256()
    for name, root in sorted(roots.items()):
        for rel, *_ in _tree(root, ".py"):
            h.update(f"{name}/{rel}\n".encode())
            h.update(hashlib.sha256((root / rel).read_bytes()).digest())
    return h.hexdigest()[:16]


def code_state() -> str:
    """A digest of the source files that render a report and of the libraries' versions."""
    from importlib import import_module
    from importlib.metadata import PackageNotFoundError, version

    def lib(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return ""

    trees = {p: _tree(Path(import_module(p).__file__).parent, ".py") for p in PACKAGES}
    return _digest([trees, platform.python_version(), {n: lib(n) for n in LIBRARIES}])


def _outputs(out: Path, names: list[str]) -> dict[str, list | None]:
    """name -> [size, mtime_ns, inode] of each report file in OUT (None when missing)."""
    got: dict[str, list | None] = {}
    for name in names:
        try:
            st = os.stat(Path(out) / name)
        except OSError:
            got[name] = None
        else:
            got[name] = [st.st_size, st.st_mtime_ns, st.st_ino]
    return got


def forget(out: Path) -> None:
    """Remove the stamp (before a render: a render that fails half-way leaves none)."""
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):   # no OUT: the render says so
        (Path(out) / STAMP).unlink()


def record(out: Path) -> None:
    """Stamp the report just rendered into ``out`` (run.json's ``report`` names its files)."""
    out = Path(out)
    info = json.loads((out / "run.json").read_text())
    report = info.get("report")
    if not isinstance(report, dict) or not report.get("files"):
        return
    stamp = {"store": store_state(out), "code": code_state(), "files": _outputs(out, list(report["files"])),
             "report": report, "partial": info.get("partial")}
    tmp = out / f"{STAMP}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(stamp, sort_keys=True))
    os.replace(tmp, out / STAMP)


def fresh(out: Path) -> dict | None:
    """The stamp when OUT's report is still that of its store and code and every report file is as the
    render left it; None when it must be rendered again."""
    out = Path(out)
    try:
        stamp = json.loads((out / STAMP).read_text())
        files = stamp["files"]
        if not isinstance(files, dict) or not files or any(v is None for v in files.values()):
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if _outputs(out, list(files)) != files or stamp.get("store") != store_state(out):
        return None
    return stamp if stamp.get("code") == code_state() else None


def restore(out: Path, stamp: dict) -> None:
    """Put the stamp's ``report`` section and ``partial`` flag back into OUT/run.json (which the run has
    just rewritten without them)."""
    path = Path(out) / "run.json"
    info = json.loads(path.read_text())
    info["report"], info["partial"] = stamp["report"], stamp.get("partial")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(info, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)
