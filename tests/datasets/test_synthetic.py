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
from datasets.synthetic import (
    DEMO_EFFECTS,
    EFFECTIVE_DRUGS,
    KINDS,
    PRESETS,
    TABLE1_DRUGS,
    generate,
    latent_shift,
    main,
)

ROOT = Path(__file__).resolve().parents[2]
TABLE1_CSV = ROOT / "tests" / "data" / "paper_table1.csv"   # the paper's Table 1


@pytest.fixture(scope="module")
def demo():
    return generate("demo", seed=0)


def test_table1_drugs_match_the_paper() -> None:
    assert len(TABLE1_DRUGS) == 19 and sum(TABLE1_DRUGS.values()) == 577
    assert set(EFFECTIVE_DRUGS) <= set(TABLE1_DRUGS)
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
    assert (again["plate"].values == demo["plate"].values).all()
    other = generate("demo", seed=1)
    assert other["expression"].values.tobytes() != demo["expression"].values.tobytes()


def test_ground_truth_and_visible_effects(demo) -> None:
    truth = json.loads(demo.attrs["ground_truth"])
    assert set(truth) == set(TABLE1_DRUGS)
    assert {d for d, t in truth.items() if t["effective"]} == set(EFFECTIVE_DRUGS)
    assert all(set(t) == {"strength", "effective", "kind", "response"} for t in truth.values())
    assert all((t["strength"] > 0) == t["effective"] == (t["kind"] != "none") for t in truth.values())
    kinds = {d: t["kind"] for d, t in truth.items() if t["effective"]}
    assert kinds == {d: DEMO_EFFECTS.get(d, "latent_linear") for d in EFFECTIVE_DRUGS}
    assert set(kinds.values()) == set(KINDS) - {"none"}
    assert list(kinds.values()).count("latent_linear") == 4  # Table 1's pattern stays PertVAE's model class
    assert PRESETS["demo"]["latent_dim"] != 10  # not the demo PertVAE's latent size
    shift = {d: float(np.abs(drug_data(demo, d).x2 - drug_data(demo, d).x1).mean()) for d in truth}
    null = [shift[d] for d in truth if not truth[d]["effective"]]
    eff = [shift[d] for d in truth if truth[d]["effective"]]
    assert min(eff) > 2 * max(null)  # effects well above replicate noise (null drugs: replicate-only diffs)
    assert max(eff) < 1.5 * min(eff)  # the kinds' effects are of comparable size in gene space


def test_effect_kinds_without_noise() -> None:
    """Noise-free cube: none leaves x unchanged, gene_additive adds one vector to every cell line, the latent
    kinds change each cell line differently."""
    effects = {"olaparib": "gene_additive", "navitoclax": "latent_nonlinear", "selumetinib": "latent_linear",
               "vorinostat": "none"}
    ds = generate("demo", seed=3, n_genes=30, n_baseline=10, noise_sd=0.0, latent_jitter=0.0, effects=effects)
    truth = json.loads(ds.attrs["ground_truth"])
    assert {d: truth[d]["kind"] for d in effects} == effects
    assert truth["bortezomib"]["kind"] == "latent_linear" and truth["tipifarnib"]["kind"] == "none"
    change = {d: (drug_data(ds, d).x2 - drug_data(ds, d).x1).astype(np.float64) for d in effects}
    assert np.abs(change["vorinostat"]).max() == 0
    additive = change["olaparib"]
    np.testing.assert_allclose(additive, np.broadcast_to(additive[0], additive.shape), atol=1e-4)
    assert np.sqrt((additive[0] ** 2).mean()) > 0.5
    for d in ("navitoclax", "selumetinib"):
        spread = np.sqrt(((change[d] - change[d].mean(axis=0)) ** 2).mean())
        assert spread > 0.3 * np.sqrt((change[d] ** 2).mean()), d  # depends on the cell line


def test_latent_nonlinear_is_not_affine_in_z() -> None:
    rng = np.random.default_rng(0)
    d = 8
    a, b, z = rng.normal(size=(d, d)) / np.sqrt(d), rng.normal(size=d), rng.normal(size=(2000, d))
    design = np.c_[z, np.ones(len(z))]

    def unexplained(kind: str) -> float:
        dz = latent_shift(kind, z, a, b, 1.5) - z
        fit = design @ np.linalg.lstsq(design, dz, rcond=None)[0]
        return float(((dz - fit) ** 2).sum() / ((dz - dz.mean(axis=0)) ** 2).sum())

    assert unexplained("latent_linear") < 1e-20
    assert unexplained("latent_nonlinear") > 0.3
    for kind in ("gene_additive", "none"):
        np.testing.assert_array_equal(latent_shift(kind, z, a, b, 1.5), z)


def test_effects_override_is_checked() -> None:
    with pytest.raises(CubeError, match=r"effects\['olaparib'\] = 'bogus'"):
        generate("demo", n_genes=8, n_baseline=5, effects={"olaparib": "bogus"})
    with pytest.raises(CubeError, match=r"effects\['aspirin'\]"):
        generate("demo", n_genes=8, n_baseline=5, effects={"aspirin": "none"})


def test_one_gene_is_refused() -> None:
    """issue 19: scores are correlations across genes; a one-gene cube would fail only at run time."""
    with pytest.raises(CubeError, match=r"generate\(\): n_genes must be >= 2, got 1"):
        generate("demo", n_genes=1, n_baseline=5)


def test_plates_exercise_same_plate_and_fallback_pairing(demo) -> None:
    plate = demo["plate"].values
    measured = ~np.isnan(demo["expression"].values).all(axis=-1)
    assert ((plate != "") == measured)[:, :-1].all() and (plate[:, -1] == "").all()  # baseline: no plate
    assert plate[0, 0, 0] == "SYN0001_X1"
    rules = [drug_data(demo, d).pairing for d in drugs(demo)]
    assert all(r.startswith("plate+cyclic fallback for ") for r in rules), rules
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


@pytest.mark.parametrize(("seed", "why"), [("-3", "must be in [0, 2**63), got -3"),
                                           ("x", "invalid int value: 'x'")])
def test_cli_refuses_a_bad_seed_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture, seed: str,
                                            why: str) -> None:
    """A negative --seed was a numpy traceback and exit 1 (review 43, item 5); now one error line, exit 2."""
    out = tmp_path / "c.zarr"
    with pytest.raises(SystemExit) as e:
        main(["--out", str(out), "--preset", "demo", "--seed", seed])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [f"error: argument --seed: {why} (see pertvae-bench synth --help)"]
    assert not out.exists()


@pytest.mark.parametrize("overrides, pattern", [
    ({"baseline_overlap": 1.5}, r"generate\(\): baseline_overlap must be in \[0, 1\].*got 1.5"),
    ({"baseline_overlap": -0.5}, r"generate\(\): baseline_overlap must be in \[0, 1\].*got -0.5"),
    ({"noise_sd": -1.0}, r"generate\(\): noise_sd must be a finite SD >= 0, got -1.0"),
    ({"latent_jitter": float("nan")}, r"generate\(\): latent_jitter must be a finite SD >= 0, got nan"),
    ({"baseline_noise_sd": -0.5}, r"generate\(\): baseline_noise_sd must be a finite SD >= 0"),
    ({"seed": -1}, r"generate\(\): seed must be in \[0, 2\*\*63\), got -1"),
])
def test_out_of_range_options_name_the_option(overrides: dict, pattern: str) -> None:
    """An overlap outside [0, 1] or a negative seed stopped in numpy ('Cannot take a larger sample than
    population', 'expected non-negative integer'), naming no option; a negative SD was taken as its absolute
    value while the provenance recorded the negative one."""
    with pytest.raises(CubeError, match=pattern):
        generate("demo", n_genes=8, n_baseline=5, **overrides)


def test_lazy_blocks_and_threads_give_the_dense_cube(monkeypatch: pytest.MonkeyPatch) -> None:
    """The module's claim 'independent of chunking / workers': every cell line draws from its own stream
    ``[seed, 1, i]``, so the lazy (dask) cube, cut in other blocks and computed on 2 threads, is the dense
    one bit for bit (a stream per block, or a block-relative index, would differ)."""
    import dask

    import datasets.synthetic as synthetic

    kw = dict(n_genes=12, n_baseline=60, max_replicates=3)
    dense = generate("demo", seed=5, **kw)
    monkeypatch.setattr(synthetic, "_DENSE_LIMIT", 0)
    monkeypatch.setattr(synthetic, "_BLOCK", 7)
    lazy = generate("demo", seed=5, **kw)
    assert not isinstance(lazy["expression"].data, np.ndarray)  # the lazy path was taken
    with dask.config.set(scheduler="threads", num_workers=2):
        values = lazy["expression"].values
    assert values.tobytes() == dense["expression"].values.tobytes()
    assert lazy.attrs == dense.attrs


def documented_means(seed: int, g: int, n_base: int) -> tuple[dict[str, np.ndarray], dict]:
    """Per condition, each cell line's mean profile [n_cells, g] under the module docstring's model without
    latent jitter (``generate("demo", seed, n_genes=g, n_baseline=n_base, latent_jitter=0)``), computed here
    from the documented formulas: x1 = decode(z), x2 = decode(z2) with z2 = z + s (A z + b) (latent_linear),
    z + s c (A z) * tanh(A z + b) with c matching the linear map's RMS displacement over the pool
    (latent_nonlinear), decode(z) + delta along u with the linear map's RMS gene change (gene_additive),
    decode(z) (none); baseline 1.3 decode(z) + 0.5. Shared with the implementation: only the order of the
    draws from the stream [seed, 0] (decoder weights, states, then A, b, u per drug). Also the expected
    ground truth {drug: (kind, strength)}."""
    p = PRESETS["demo"]
    d, h, pool = p["latent_dim"], p["hidden"], p["pool_size"]
    rng = np.random.default_rng([seed, 0])
    w1 = rng.normal(size=(d, h)) / np.sqrt(d) * 1.5
    c1 = rng.normal(size=h) * 0.3
    w2 = rng.normal(size=(h, g)) / np.sqrt(h) * 2.0
    c2 = rng.normal(size=g) * 2.0 + 6.0
    n_cells = pool + n_base - min(round(p["baseline_overlap"] * pool), n_base)
    z = rng.normal(size=(n_cells, d))

    def decode(u: np.ndarray) -> np.ndarray:
        return np.tanh(u @ w1 + c1) @ w2 + c2

    def rms(v: np.ndarray) -> float:
        return float(np.sqrt(np.mean(v ** 2)))

    means = {"control": decode(z), "baseline": p["baseline_scale"] * decode(z) + p["baseline_shift"]}
    truth = {}
    for name in TABLE1_DRUGS:
        a, b, u = rng.normal(size=(d, d)) / np.sqrt(d), rng.normal(size=d), rng.normal(size=g)
        kind = DEMO_EFFECTS.get(name, "latent_linear" if name in EFFECTIVE_DRUGS else "none")
        s, zp = (p["strength"] if kind != "none" else 0.0), z[:pool]
        truth[name] = (kind, s)
        linear = s * (zp @ a.T + b)  # the pool's displacement under the linear map
        if kind == "latent_linear":
            means[name] = decode(z + s * (z @ a.T + b))
        elif kind == "latent_nonlinear":
            c = rms(linear) / rms(s * (zp @ a.T) * np.tanh(zp @ a.T + b))
            means[name] = decode(z + s * c * (z @ a.T) * np.tanh(z @ a.T + b))
        elif kind == "gene_additive":
            means[name] = decode(z) + u / rms(u) * rms(decode(zp + linear) - decode(zp))
        else:
            means[name] = decode(z)
    return means, truth


def test_the_ceiling_of_the_demos_null_drugs_sits_below_0_and_the_legend_says_so() -> None:
    """Known answer: a drug that changes nothing has a true ceiling of 0 (the oracle's change is 0). On the
    demo's null drugs, whose replicate noise is shared by genes through the decoder (kappa about 7.5), the
    estimate sat at -0.077 (se 0.020) on average over 12 seeds (156 drugs), its 95% interval covering 0 for
    95% of them; benchmark.md's legend said it was 'centred at 0' whatever the noise."""
    import pandas as pd

    from datasets.splits import make_splits
    from harness.task_data import split_data
    from harness.verdicts import _legend
    from pertvae_core.ceiling import change_ceiling, combine

    values, covered = [], []
    for seed in range(12):
        ds = generate("demo", seed=seed)
        for drug, truth in json.loads(ds.attrs["ground_truth"]).items():
            if truth["effective"]:
                continue
            dd = drug_data(ds, drug)
            splits = make_splits(sorted(set(dd.pair_cell_line)), drug, n_repeats=2, n_folds=5)
            c = combine([change_ceiling(split_data(dd, s)) for s in splits])
            values.append(c["value"])
            covered.append(abs(c["value"]) <= 1.96 * c["se"])
    values = np.asarray(values)
    assert values.mean() < -2 * values.std() / np.sqrt(len(values)) and np.mean(covered) >= 0.9
    empty = pd.DataFrame(columns=["drug", "latent", "metric", "kind", "method", "value", "repeat", "fold"])
    legend = [line for line in _legend([], empty, empty) if line.startswith("- ceiling:")]
    assert "below 0 where genes share noise" in legend[0], legend


def test_noise_free_cube_follows_the_documented_model() -> None:
    """Each profile of a noise-free demo cube is its cell line's mean under the documented model
    (:func:`documented_means`), and the ground truth records each drug's kind and strength."""
    seed, g, n_base = 11, 30, 40
    ds = generate("demo", seed=seed, n_genes=g, n_baseline=n_base, noise_sd=0.0, latent_jitter=0.0,
                  baseline_noise_sd=0.0)
    expected, kinds = documented_means(seed, g, n_base)
    truth = json.loads(ds.attrs["ground_truth"])
    assert {d: (t["kind"], t["strength"]) for d, t in truth.items()} == kinds
    assert ds.sizes["cell_line"] == len(expected["control"])
    e = ds["expression"].values.astype(np.float64)
    for j, cond in enumerate(ds["condition"].values):
        measured = ~np.isnan(e[:, j]).all(axis=-1)  # [cell, replicate]
        assert measured.any(), cond
        cell = np.nonzero(measured)[0]
        np.testing.assert_allclose(e[:, j][measured], expected[str(cond)][cell], atol=1e-4, err_msg=cond)


def test_a_predictor_of_the_true_change_scores_at_the_top_and_within_the_ceiling() -> None:
    """The known answer through the harness's own splits, scoring and ceiling: on a demo cube without latent
    jitter (so each cell line's true means are :func:`documented_means`), an oracle that adds each test cell
    line's true change to its x1 scores delta_pearson at least every baseline's (up to 0.005) on the drugs
    with an effect of each kind, and within the noise ceiling's 95% interval; on a null drug its change is
    0, the metric's chance, exactly, and the ceiling's interval covers 0. Seen (seed 0, 2 x 5 folds): oracle
    0.983, 0.978, 0.979 against ceilings 0.984 +/- 0.002, 0.980 +/- 0.004, 0.979 +/- 0.003; the best baseline
    0.770 (pca_latent_linear), 0.557 (train_mean), 0.978 (mean_shift, gene_additive's best case); olaparib's
    ceiling -0.135 +/- 0.556."""
    from datasets.splits import make_splits
    from harness.task_data import split_data
    from pertvae_core import api
    from pertvae_core.ceiling import change_ceiling, combine
    from pertvae_core.evaluation import score_method

    seed, g, n_base = 0, 60, 60
    ds = generate("demo", seed=seed, n_genes=g, n_baseline=n_base, latent_jitter=0.0)
    means, _ = documented_means(seed, g, n_base)
    controls = ds["expression"].sel(condition="control").values
    cell_of = {row.tobytes(): i for i, rows in enumerate(controls) for row in rows if not np.isnan(row).all()}
    for drug in ("SN-38", "bortezomib", "temsirolimus", "olaparib"):
        dd = drug_data(ds, drug)
        change = (means[drug] - means["control"]).astype(np.float32)

        def oracle(x1: np.ndarray, change: np.ndarray = change) -> np.ndarray:
            return x1 + change[[cell_of[row.astype(np.float32).tobytes()] for row in x1]]

        splits = [split_data(dd, s) for s in make_splits(sorted(set(dd.pair_cell_line)), drug, n_repeats=2,
                                                         n_folds=5)]
        ours = float(np.mean([score_method(sp, oracle)["delta_pearson"] for sp in splits]))
        ceiling = combine([change_ceiling(sp) for sp in splits])
        assert abs(ours - ceiling["value"]) <= 1.96 * ceiling["se"] + 1e-3, (drug, ours, ceiling["value"])
        base = api.evaluate_baselines(splits, 8)
        others = {m: float(np.mean([r["scores"][m]["delta_pearson"] for r in base]))
                  for m in base[0]["scores"]}
        assert others["identity"] == 0.0
        if drug == "olaparib":   # null in the ground truth
            assert not json.loads(ds.attrs["ground_truth"])[drug]["effective"]
            assert ours == 0.0
        else:
            assert ours > 0.9 and all(ours >= v - 0.005 for v in others.values()), (drug, ours, others)
