"""The terminal summary of benchmarks/conftest.py: each benchmark's headline extra_info, in a real run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from benchmarks.conftest import headline

ROOT = Path(__file__).resolve().parents[1]


def test_headline_picks_named_or_matching_entries() -> None:
    assert headline({"speedup": 2.0, "gemm_fraction": 0.7, "threads": 2, "note": "x"}) == {
        "speedup": 2.0, "gemm_fraction": 0.7}
    assert headline({"build_s": 1.5, "genes": 978}) == {"build_s": 1.5}
    assert headline({"a": 1, "b": 2, "headline": ["b"]}) == {"b": 2}
    assert headline({"note": "x", "ok": True}) == {}


def test_benchmark_only_prints_headline_figures(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text("from benchmarks.conftest import *  # noqa: F403\n")
    (tmp_path / "test_fake.py").write_text(
        "def test_one(benchmark):\n"
        "    benchmark.pedantic(lambda: None, rounds=1, iterations=1)\n"
        "    benchmark.extra_info.update({'ratio_S50_vs_S1': 21.5, 'threads': 2})\n"
        "def test_two(benchmark):\n"
        "    benchmark.pedantic(lambda: None, rounds=1, iterations=1)\n"
        "    benchmark.extra_info.update({'fit_s': 3.25, 'headline': ['fit_s']})\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--benchmark-only", "-q",
                          "-c", os.devnull, "--rootdir", str(tmp_path), str(tmp_path)],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert "benchmark headline figures" in text
    assert "test_one [test_fake.py]" in text and "ratio_S50_vs_S1=21.5" in text and "threads" not in \
        text.split("benchmark headline figures")[1]
    assert "test_two [test_fake.py]" in text and "fit_s=3.25" in text
