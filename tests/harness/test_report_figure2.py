"""Figure 2's VAE: the share of its fits that ran to max_epochs instead of stopping early, in the figure's
legend and in run.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr

from harness.report import figure2_stops, render_report
from tests.harness.test_report import LATENTS, make_store


def _with_epochs(out: Path, max_epochs: int | None) -> xr.Dataset:
    """make_store's store with the VAE's epochs set: at latent 2 every fit stops early (epoch 40); at 10 the
    first 7 of 10 splits run to the cap; at 100 all do. One fit at latent 10 failed (not counted)."""
    ds = make_store(out).load()
    vae = list(ds["model"].values).index("vae")
    epochs = ds["epochs"].values
    cap = max_epochs or 200
    epochs[vae, :, LATENTS.index(2)] = 40
    epochs[vae, :, LATENTS.index(10)] = np.where(np.arange(10) < 7, cap, 55)
    epochs[vae, :, LATENTS.index(100)] = cap
    status = ds["status"].values
    status[vae, 0, LATENTS.index(10), 0] = "failed"
    science = {"models": ["pertvae", "vae", "pca", "baselines"]}
    if max_epochs is not None:
        science["max_epochs"] = max_epochs
    ds.attrs["config"] = json.dumps({"science": science})
    ds.to_zarr(str(out / "results.zarr"), zarr_format=3, mode="w", consolidated=False)
    return ds


def test_share_of_vae_fits_at_max_epochs_in_legend_and_run_json(tmp_path: Path) -> None:
    ds = _with_epochs(tmp_path, 200)
    stops = figure2_stops(ds)
    drugs = ds.sizes["drug"]
    done = 3 * 10 * drugs - 1
    at_cap = 7 * drugs - 1 + 10 * drugs   # latent 10: the failed fit was one that hit the cap
    assert stops["max_epochs"] == 200 and stops["fits"] == done and stops["at_max_epochs"] == at_cap
    assert stops["share_at_max_epochs"] == round(at_cap / done, 4)
    assert stops["per_latent"]["2"] == {"fits": 10 * drugs, "at_max_epochs": 0, "mean_epochs": 40.0}
    assert stops["per_latent"]["10"]["at_max_epochs"] == 7 * drugs - 1
    assert stops["per_latent"]["100"] == {"fits": 10 * drugs, "at_max_epochs": 10 * drugs, "mean_epochs": 200}
    render_report(tmp_path)
    info = json.loads((tmp_path / "run.json").read_text())
    assert info["report"]["figure2_vae_stops"] == json.loads(json.dumps(stops))
    svg = (tmp_path / "figure2.svg").read_text()
    k10 = (7 * drugs - 1) / (10 * drugs - 1)   # the pooled share hides that every size-100 fit hit the cap
    assert f"{at_cap / done:.0%} ran to max_epochs 200 without stopping early" in svg
    assert f"(by latent size 2: 0%, 10: {k10:.0%}, 100: 100%)" in svg


def test_no_share_without_the_cap_or_vae_epochs(tmp_path: Path) -> None:
    assert figure2_stops(_with_epochs(tmp_path, None)) == {}   # a store without max_epochs in its config
    ds = make_store(tmp_path)
    assert figure2_stops(ds.drop_vars("epochs")) == {}
    render_report(tmp_path)
    assert "figure2_vae_stops" not in json.loads((tmp_path / "run.json").read_text())["report"]
    assert "max_epochs" not in (tmp_path / "figure2.svg").read_text()


def test_figure2_says_what_its_bands_are(tmp_path):
    """The shaded bands are labelled (+/- 1 s.d. over fits) and the legend sits below the axes."""
    import matplotlib.image as mpimg

    from harness.report import render_report
    from tests.harness.test_report import make_store

    make_store(tmp_path)
    render_report(tmp_path)
    svg = (tmp_path / "figure2.svg").read_text()
    assert "VAE: +/- 1 s.d. over fits" in svg and "PCA: mean of 30 fits per size" in svg
    assert mpimg.imread(tmp_path / "figure2.png").shape[0] > 500
