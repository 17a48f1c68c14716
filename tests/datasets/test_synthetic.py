"""datasets.synthetic: presets, determinism, ground truth and the CLI."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from datasets.cube import CubeError, drugs, open_cube
from datasets.pairs import drug_data
from datasets.synthetic import EFFECTIVE_DRUGS, TABLE1_DRUGS, generate, main

ROOT = Path(__file__).resolve().parents[2]
TABLE1_CSV = Path("/work/shared/paper/table1.csv")


@pytest.fixture(scope="module")
def demo():
    return generate("demo", seed=0)


def test_table1_drugs_match_the_paper() -> None:
    assert len(TABLE1_DRUGS) == 19 and sum(TABLE1_DRUGS.values()) == 577
    assert set(EFFECTIVE_DRUGS) <= set(TABLE1_DRUGS)
    if TABLE1_CSV.exists():
        with TABLE1_CSV.open() as f:
            rows = list(csv.DictReader(f))
        assert TABLE1_DRUGS == {r["drug"]: int(r["n_cell_lines"]) for r in rows}
        assert set(EFFECTIVE_DRUGS) == {r["drug"] for r in rows if float(r["p_value"]) < 0.05}


def test_paper_preset_cell_line_counts() -> None:
    ds = generate("paper", seed=1, n_genes=16, n_baseline=300, max_replicates=3)
    assert drugs(ds) == list(TABLE1_DRUGS)
    assert ds.sizes["gene"] == 16 and ds.sizes["replicate"] == 3
    paired = set()
    for d, n in TABLE1_DRUGS.items():
        cells = set(drug_data(ds, d).pair_cell_line)
        assert len(cells) == n, d
        paired |= cells
    base = set(drug_data(ds, "olaparib").singleton_cell_line)
    assert len(base) == 300
    assert len(paired & base) >= 0.5 * len(paired)  # baseline overlaps the paired cell lines (GDSC vs LINCS)
    dose = ds["dose_um"].sel(condition="olaparib").values
    measured = ~np.isnan(ds["expression"].sel(condition="olaparib").values).all(axis=(1, 2))
    assert np.all(dose[measured] == 10.0) and np.all(np.isnan(dose[~measured]))


def test_demo_sizes_and_overrides(demo) -> None:
    assert demo.sizes["gene"] == 200 and demo.sizes["replicate"] == 4
    counts = {d: len(set(drug_data(demo, d).pair_cell_line)) for d in drugs(demo)}
    assert counts == {d: max(min(n, 20), 6) for d, n in TABLE1_DRUGS.items()}
    assert len(drug_data(demo, "olaparib").xs) == 200
    small = generate("demo", seed=0, n_genes=12, n_baseline=10)
    assert small.sizes["gene"] == 12
    with pytest.raises(CubeError, match=r"unknown override\(s\) \['n_gens'\]"):
        generate("demo", n_gens=3)
    with pytest.raises(CubeError, match="preset 'huge': unknown"):
        generate("huge")


def test_deterministic_by_seed(demo) -> None:
    again = generate("demo", seed=0)
    assert again["expression"].values.tobytes() == demo["expression"].values.tobytes()
    assert again.attrs == demo.attrs
    other = generate("demo", seed=1)
    assert other["expression"].values.tobytes() != demo["expression"].values.tobytes()


def test_ground_truth_and_visible_effects(demo) -> None:
    truth = json.loads(demo.attrs["ground_truth"])
    assert set(truth) == set(TABLE1_DRUGS)
    assert {d for d, t in truth.items() if t["effective"]} == set(EFFECTIVE_DRUGS)
    assert all((t["strength"] > 0) == t["effective"] for t in truth.values())
    shift = {d: float(np.abs(drug_data(demo, d).x2 - drug_data(demo, d).x1).mean()) for d in truth}
    null = [shift[d] for d in truth if not truth[d]["effective"]]
    eff = [shift[d] for d in truth if truth[d]["effective"]]
    assert min(eff) > 2 * max(null)  # effects well above replicate noise (null drugs: replicate-only diffs)
    prov = json.loads(demo.attrs["provenance"])
    assert prov["generator"] == "datasets.synthetic.generate" and prov["seed"] == 0


def test_baseline_is_a_different_platform(demo) -> None:
    dd = drug_data(demo, "olaparib")
    ctrl = dd.x1.mean(axis=0)
    assert float(dd.xs.mean()) > float(ctrl.mean()) + 0.3  # shifted
    assert float(dd.xs.std(axis=0).mean()) > float(dd.x1.std(axis=0).mean())  # scaled + noisier


def test_cli_writes_and_refuses_existing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "cube.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["--out", str(out), "--preset", "demo", "--seed", "2"]) == 0
    assert "19 drugs" in capsys.readouterr().out
    ds = open_cube(out)
    np.testing.assert_array_equal(ds["expression"].values, generate("demo", seed=2)["expression"].values)
    assert main(["--out", str(out), "--preset", "demo"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    r = subprocess.run([sys.executable, "-m", "datasets.synthetic", "--out", str(out), "--preset", "demo",
                        "--overwrite"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout
    assert json.loads(open_cube(out).attrs["provenance"])["seed"] == 0
