"""``--save-predictions`` files join back to the cube exactly (issue 24 #4): a real run (PertVAE and the
baselines) writes OUT/predictions/<method>/<drug>.h5ad whose obs name each row's cell line, drug, dose,
split, repeat, fold, latent and the cube's replicates of its x1 and x2; var the gene ids and symbols; a layer
``x2`` that equals the cube's values at those replicates; uns structured, not a JSON string."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from tests.e2e import tiny_args, tiny_cube

pytestmark = pytest.mark.timeout(300)


def test_saved_predictions_join_back_to_the_cube(tmp_path_factory, tmp_path):
    import anndata as ad

    from harness.run import main

    cube_path = tiny_cube(tmp_path_factory)
    out = tmp_path / "run"
    args = tiny_args(cube_path, out, "--models", "pertvae", "baselines", "--n-repeats", "1",
                     "--save-predictions", workers=1)
    assert main(args) == 0
    cube = xr.open_zarr(cube_path, consolidated=False)
    expr = cube["expression"]
    files = sorted((out / "predictions").glob("*/*.h5ad"))
    assert {f.parent.name for f in files} >= {"pertvae", "pertvae_rec", "mean_shift"}, files
    for f in files:
        a = ad.read_h5ad(f)
        drug = f.stem
        assert list(a.var_names) == [str(g) for g in cube["gene"].values]
        assert list(a.var["gene_symbol"]) == [str(s) for s in cube["gene_symbol"].values]
        for col in ("cell_line", "condition", "dose_um", "split", "repeat", "fold", "latent", "kind",
                    "x1_replicate", "x2_replicate"):
            assert col in a.obs, (f, col, list(a.obs))
        assert set(a.obs["condition"]) == {drug} and a.obs_names.is_unique
        assert a.obs_names[0].startswith(f"{a.obs['cell_line'].iloc[0]}/{drug}/")
        assert isinstance(a.uns["join"], dict) and a.uns["method"] == f.parent.name
        assert "x2" in a.uns["join"] and a.uns["cube"]["fingerprint"]
        cells = a.obs["cell_line"].astype(str).to_numpy()
        x2 = expr.sel(condition=drug).values[
            [list(cube["cell_line"].values).index(c) for c in cells], a.obs["x2_replicate"].to_numpy()]
        np.testing.assert_array_equal(a.layers["x2"], x2.astype(np.float32))   # exactly the cube's values
        x1 = expr.sel(condition="control").values[
            [list(cube["cell_line"].values).index(c) for c in cells], a.obs["x1_replicate"].to_numpy()]
        assert not np.isnan(x1).any()   # a measured control
        dose = cube["dose_um"].sel(condition=drug).to_series()
        np.testing.assert_array_equal(a.obs["dose_um"].to_numpy(), dose.loc[cells].to_numpy())
        # every test pair of every split, once per latent: the measured replicates of its test cell lines
        for (split, latent), rows in a.obs.groupby(["split", "latent"], observed=True):
            n_meas = sum(int((~np.isnan(expr.sel(cell_line=c, condition=drug).values).any(axis=-1)).sum())
                         for c in set(rows["cell_line"].astype(str)))
            assert len(rows) == n_meas, (f, split, latent)
