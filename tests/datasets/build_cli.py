"""Shared by the bad-input tests of ``python -m datasets.build``: small valid inputs, the CLI (as a subprocess
or its ``main`` in-process) and the checks every failing build must pass."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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

from datasets.build import main

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def build_inputs(tmp_path: Path) -> dict:
    """A valid GCTX (A375, MCF7) and DepMap baseline in ``tmp_path``, their design, and ``out`` (not yet
    written)."""
    cols = l1000_design(cells=("A375", "MCF7"))
    rows = gene_meta()
    mat = values(len(cols), len(rows))
    base = write_depmap(tmp_path / "dm.csv", ["A-375", "MCF7"], GENES[:6], baseline_values("ab", GENES[:6]))
    gctx = write_gctx(tmp_path / "x.gctx", mat, rows, cols)
    return {"cols": cols, "rows": rows, "mat": mat, "base": base, "gctx": gctx, "dir": tmp_path,
            "out": tmp_path / "cube.zarr"}


def cli(*args: str | Path, rc: int = 2, capsys: pytest.CaptureFixture | None = None
        ) -> subprocess.CompletedProcess:
    """The real CLI as a subprocess; with ``capsys``, its ``main`` in this process (parametrized variants of
    a case one subprocess already covers: each CLI start costs seconds)."""
    if capsys is None:
        r = subprocess.run([sys.executable, "-m", "datasets.build", *map(str, args)], cwd=ROOT,
                           capture_output=True, text=True, timeout=120, env=ENV)
    else:
        code = main(list(map(str, args)))
        cap = capsys.readouterr()
        r = subprocess.CompletedProcess(args, code, cap.out, cap.err)
    assert r.returncode == rc, r.stderr
    assert "Traceback" not in r.stderr
    if rc == 2:
        assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    return r


def build_err(f: dict, *extra: str | Path, l1000: Path | None = None, base: Path | None = None,
              capsys: pytest.CaptureFixture | None = None) -> str:
    """A failing build of ``f``'s inputs (or ``l1000``/``base``): its error line; no cube at --out and no
    hidden store beside it."""
    r = cli("--l1000", l1000 or f["gctx"], "--baseline", base or f["base"], "--out", f["out"], *extra,
            capsys=capsys)
    assert not f["out"].exists()
    assert not hidden(f["out"])
    return r.stderr


def hidden(out: Path) -> list[str]:
    """Hidden temp/old stores the build left beside ``out``."""
    return sorted(p.name for p in out.parent.glob(f".{out.name}.*"))
