"""``--precision bf16`` on a small study: Table 1's numbers, the benchmark's PertVAE scores and Figure 2's VAE
reconstruction equal fp32's within the run-to-run spread of seeds, and the precision that ran is recorded in
the store's science key and run.json, and how each fit computed its products in the store and the report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from harness.run import main
from pertvae_core import layers
from pertvae_core.precision import native_bf16
from tests.e2e import DRUGS, load, tiny_args, tiny_cube

pytestmark = pytest.mark.timeout(900)

STUDY = ("--models", "pertvae", "vae", "--latents-vae", "3", "--n-repeats", "1", "--max-epochs", "20",
         "--patience", "5")


def _numbers(out) -> dict[str, float]:
    """Table 1 (per drug: mean rho_rec_pert, rho_pred_pert), the benchmark's PertVAE scores (mean mse_z,
    delta_pearson) and Figure 2 (mean VAE rho_rec) of a finished run."""
    t1 = pd.read_csv(out / "table1.csv").set_index("drug")
    ds = load(out)
    got = {f"{d}:{c}": float(t1.loc[d, c]) for d in DRUGS for c in ("rho_rec_pert", "rho_pred_pert")}
    for d in DRUGS:
        sc = ds.score.sel({"model": "pertvae", "drug": d, "latent": 3, "method": "pertvae"})
        for m in ("mse_z", "delta_pearson"):
            got[f"{d}:{m}"] = float(np.nanmean(sc.sel({"metric": m}).values))
    got["figure2:rho_rec"] = float(np.nanmean(ds.rho_rec.sel(model="vae", latent=3).values))
    return got


def test_bf16_numbers_are_fp32_numbers_within_the_spread_of_seeds(tmp_path_factory, tmp_path, monkeypatch,
                                                                  capsys):
    # the tiny study's products are all below SMALL_PRODUCT_FLOPS: take them in bf16 as a paper-sized
    # model's are (the fits run in this process, --cluster none)
    monkeypatch.setattr(layers, "SMALL_PRODUCT_FLOPS", 0)
    cube = tiny_cube(tmp_path_factory)
    runs = {}
    for name, precision, seed in (("fp32-0", "fp32", 0), ("fp32-1", "fp32", 1), ("fp32-2", "fp32", 2),
                                  ("bf16-0", "bf16", 0)):
        out = tmp_path / name
        assert main(tiny_args(cube, out, *STUDY, "--precision", precision, "--base-seed", str(seed),
                              cluster="none")) == 0
        # bf16 on a CPU without bfloat16 instructions is emulated, 9-11x fp32's step: the run says so first
        emulated = "note: this machine's CPU has no bfloat16 matrix instructions, so bf16 products are"
        said = emulated in capsys.readouterr().out
        assert said == (precision == "bf16" and not native_bf16("cpu"))
        science = json.loads(load(out).attrs["config"])["science"]
        assert science["precision"] == precision
        assert json.loads((out / "run.json").read_text())["config"]["science"]["precision"] == precision
        way = layers.products_way(precision, "cpu")   # recorded per fit, and counted in the report
        products = load(out).products.sel(model=["pertvae", "vae"]).values
        assert set(products[load(out).status.sel(model=["pertvae", "vae"]).values == "done"]) == {way}
        assert f"as each fit's worker computed them: {way} in " in (out / "table1.md").read_text()
        runs[name] = _numbers(out)
    for k, bf16 in runs["bf16-0"].items():
        fp32 = [runs[f"fp32-{s}"][k] for s in range(3)]
        spread = max(fp32) - min(fp32)
        assert np.isfinite(bf16) and abs(bf16 - fp32[0]) <= spread, (k, bf16, fp32)
    assert runs["bf16-0"] != runs["fp32-0"]   # bf16 did run: not bit-identical to fp32
