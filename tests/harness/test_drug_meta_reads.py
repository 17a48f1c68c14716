"""A new store's per-drug figures read each drug's data once: the response test sets came from a second loop
over the drugs, which read every drug again beyond the data cache's four."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import datasets.pairs
import harness.run
import harness.task_data
from datasets.cube import open_cube, write_cube
from datasets.synthetic import generate
from harness.config import parse_args
from harness.contenders.response_splits import response_test_sets
from harness.report import open_results

DRUGS = ["olaparib", "selumetinib", "vorinostat", "bortezomib", "navitoclax", "SN-38"]   # beyond the cache


def test_a_new_store_reads_each_drug_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cube = generate("demo", seed=0, n_genes=30, max_cells=8, min_cells=8, pool_size=8, n_baseline=8,
                    baseline_overlap=1.0, responses=dict.fromkeys(DRUGS, "baseline"))
    write_cube(cube, tmp_path / "cube.zarr")
    reads: list[str] = []
    before_store: list[list[str]] = []
    read, store_open = datasets.pairs.drug_data, harness.run.ResultStore.open
    monkeypatch.setattr(datasets.pairs, "drug_data",
                        lambda c, d, *a, **k: reads.append(d) or read(c, d, *a, **k))
    monkeypatch.setattr(harness.run.ResultStore, "open",
                        lambda *a, **k: before_store.append(list(reads)) or store_open(*a, **k))
    harness.task_data._drug.cache_clear()
    assert harness.run.main(["--preset", "drvae-demo", "--data", str(tmp_path / "cube.zarr"), "--out",
                             str(tmp_path / "out"), "--drugs", *DRUGS, "--models", "response_regression",
                             "--n-repeats", "1", "--cluster", "none", "--no-progress"]) == 0
    assert before_store == [DRUGS]   # was every drug twice: 12 reads
    # the stored values are each drug's response splits' (as the second loop stored them)
    monkeypatch.undo()
    attrs = open_results(tmp_path / "out").attrs
    cfg = parse_args(["--preset", "drvae-demo", "--data", str(tmp_path / "cube.zarr"),
                      "--drugs", *DRUGS, "--n-repeats", "1"])
    c = open_cube(tmp_path / "cube.zarr")
    want = {d: response_test_sets(harness.task_data.drug_data(str(tmp_path / "cube.zarr"), d, cfg), c, cfg)
            for d in DRUGS}
    assert json.loads(attrs["response_test_sets"]) == {d: w[0] for d, w in want.items()}
    assert json.loads(attrs["response_n_train_test"]) == {d: w[1] for d, w in want.items()}
