"""Mutation test of the path cube -> DrugData -> SplitData -> fit: the test cell lines' controls,
post-treatment and baseline profiles are changed in the cube, and every training-side quantity must stay
bit-identical (the split's training, validation, singleton and unpaired-control rows, the standardization,
the early-stopping epochs and the trained weights); only the test rows may change."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from datasets.pairs import drug_data, pooled_data
from datasets.splits import make_splits
from datasets.synthetic import generate
from harness.task_data import paired_cell_lines, split_data

TRAIN_SIDE = ("x1_train", "x2_train", "x1_val", "x2_val", "xs_train", "xu_train")


@pytest.fixture(scope="module")
def cube() -> xr.Dataset:
    return generate("demo", seed=0, n_genes=24, max_cells=12, n_baseline=40)


def _drugs(ds: xr.Dataset) -> list[str]:
    return [str(c) for c in ds["condition"].values if str(c) not in ("control", "baseline")]


def _mutated(ds: xr.Dataset, cells: tuple[str, ...]) -> xr.Dataset:
    """``ds`` with every profile (control, drugs, baseline) of ``cells`` shifted by random noise."""
    out = ds.copy(deep=True)
    names = [str(c) for c in ds["cell_line"].values]
    rows = [names.index(c) for c in cells]
    e = out["expression"].values
    e[rows] += np.random.default_rng(1).normal(0.0, 3.0, e[rows].shape).astype(e.dtype)
    return out


@pytest.mark.parametrize("pooled", [False, True])
def test_test_cell_lines_profiles_reach_no_training_side_row(cube: xr.Dataset, pooled: bool) -> None:
    def get(ds: xr.Dataset):
        return pooled_data(ds, _drugs(ds)[:3], "POOLED") if pooled else drug_data(ds, _drugs(ds)[0])

    dd = get(cube)
    assert np.isin(dd.singleton_cell_line, paired_cell_lines(dd)).any()   # test cell lines have singletons
    for split in make_splits(paired_cell_lines(dd), dd.drug, n_repeats=1):
        a, b = split_data(dd, split), split_data(get(_mutated(cube, split.test_cell_lines)), split)
        for f in TRAIN_SIDE:
            assert np.array_equal(getattr(a, f), getattr(b, f)), (split.fold, f)
        assert not np.array_equal(a.x1_test, b.x1_test) and not np.array_equal(a.xc_test, b.xc_test)


def test_a_fit_is_bit_identical_whatever_the_test_cell_lines_hold(cube: xr.Dataset) -> None:
    from pertvae_core.api import predict
    from pertvae_core.config import FitConfig
    from pertvae_core.train import fit

    dd = drug_data(cube, _drugs(cube)[0])
    split = make_splits(paired_cell_lines(dd), dd.drug, n_repeats=1)[0]
    a, b = split_data(dd, split), split_data(drug_data(_mutated(cube, split.test_cell_lines), dd.drug), split)
    cfg = FitConfig(latent=3, hidden=(8, 8), context=4, iaf_steps=1, iaf_hidden=4, max_epochs=4, patience=2,
                    mc_samples=2)
    sa, sb = fit([a], cfg, [7]), fit([b], cfg, [7])
    for k in ("mean", "scale", "single_mean", "single_scale"):
        assert torch.equal(getattr(sa.std, k), getattr(sb.std, k)), k
    assert (sa.epochs, sa.best_epoch) == (sb.epochs, sb.best_epoch)
    for (k, p), q in zip(sa.model.state_dict().items(), sb.model.state_dict().values(), strict=True):
        assert torch.equal(p, q), k
    # test predictions change only through the test x1
    assert np.array_equal(predict(sa, [a.x1_test], 2)["pred"][0], predict(sb, [a.x1_test], 2)["pred"][0])
