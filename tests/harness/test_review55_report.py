"""Review 55: every number of a finished report recomputed from its store. Each test builds a real result
store (harness.store), renders the report and checks a number or a sentence found wrong there."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.report import render_report

METHODS = {"pertvae": ("pertvae", "pertvae_rec"),
           "baselines": ("identity", "train_mean", "mean_shift", "pca_latent_linear", "ridge_delta")}


def _store(out: Path, primary: dict[str, list[float]]) -> Path:
    """A real store of PertVAE and the baselines on one drug without a measured change (dA), one repeat of
    5 folds, with the given delta_pearson per method and split."""
    from harness.config import make_config
    from harness.store import ResultStore
    from pertvae_core.methods import METHODS as BUILT_IN

    cfg = make_config("demo", models=list(METHODS), latents_pertvae=[10], latents_baselines=[10],
                      n_repeats=1, n_folds=5)
    ceiling = {"dA": {"ceiling_delta_pearson": 0.0, "se": 0.1, "signal_z": 0.3, "reason": ""}}
    st = ResultStore.open(out, cfg, "fp", drugs=["dA"], n_train_test={"dA": [12.0, 4.0]}, methods=BUILT_IN,
                          extra_attrs={"ceiling": ceiling}, cell_lines=["c1"], genes=["g1", "g2"])
    st.write([{"model": model, "drug": "dA", "latent": 10, "repeat": 0, "fold": f, "status": "done",
               "fit_seconds": 1.0, "scores": {m: {"delta_pearson": primary[m][f]} for m in own}}
              for model, own in METHODS.items() for f in range(5)])
    return out


def _row(out: Path, drug: str = "dA") -> str:
    return next(x for x in (out / "benchmark.md").read_text().splitlines() if x.startswith(f"| {drug} |"))


def test_a_mean_that_rounds_to_minus_zero_ties_with_zero(tmp_path: Path) -> None:
    """On a drug that changes nothing, 'no change' (identity) scores exactly 0 and PertVAE's mean was
    -0.0002: the table printed '0.000' (bold, the best alone) beside '-0.000' (not bold), the same printed
    number, which the report's rule calls a tie. Both now print 0.000, in bold, named together."""
    rng = np.random.default_rng(0)
    primary = {m: list(rng.normal(-0.05, 0.01, 5)) for ms in METHODS.values() for m in ms}
    primary["identity"] = [0.0] * 5
    primary["pertvae"] = [-0.0002 + e for e in (-1e-4, 1e-4, 0.0, 2e-5, -2e-5)]
    out = _store(tmp_path, primary)
    render_report(out, with_figures=False)
    row = _row(out)
    means = row.split(" | ")[3:10]   # pertvae, pertvae_rec, identity, ... (the difference keeps its sign)
    assert means[0] == means[2] == "**0.000**", row
    assert "| identity = pertvae |" in row, row


def test_a_fit_whose_patience_ran_out_at_the_cap_did_not_hit_it(tmp_path: Path) -> None:
    """Figure 2's legend counts the VAE fits that 'ran to max_epochs without stopping early' (they might have
    improved further): a fit whose best epoch was max_epochs - patience stopped by patience on the cap's
    epoch itself, with no improvement in its last 25 epochs, and was counted among them (epochs >= cap)."""
    import json

    import xarray as xr

    from harness.report import figure2_stops
    from tests.harness.test_report import LATENTS
    from tests.harness.test_report_figure2 import _with_epochs

    ds = _with_epochs(tmp_path, 200)   # at latent 100 every fit ends at epoch 200
    ds.attrs["config"] = json.dumps({"science": {"max_epochs": 200, "patience": 25}})
    vae, li = list(ds["model"].values).index("vae"), LATENTS.index(100)
    best = np.full(ds["epochs"].shape, np.nan)
    best[vae, :, li] = 199.0
    best[vae, :, li, 0] = 175.0   # split 0 of each drug: 25 epochs without a better one at epoch 200
    ds = ds.assign(best_epoch=xr.DataArray(best, dims=ds["epochs"].dims))
    stops = figure2_stops(ds)["per_latent"]["100"]
    drugs = ds.sizes["drug"]
    assert stops == {"fits": 10 * drugs, "at_max_epochs": 9 * drugs, "mean_epochs": 200.0}
