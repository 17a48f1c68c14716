"""The harness's imports flow one way (docs/api.md): the contenders below the config, the grid and the cost
model; the dry run's cost model without the run. Each import runs in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _loaded(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(m for m in sys.modules if m.startswith('harness')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("module, not_loaded", [
    ("harness.cost", {"harness.run", "harness.tasks"}),
    ("harness.prepare", {"harness.run", "harness.cost"}),
    ("harness.contenders", {"harness.config", "harness.grid", "harness.cost", "harness.tasks", "harness.run",
                            "harness.calibrate"}),
])
def test_imports_flow_one_way(module, not_loaded):
    loaded = _loaded(module)
    assert module in loaded and not loaded & not_loaded, sorted(loaded & not_loaded)
