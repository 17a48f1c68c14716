"""harness.cells: a lookup through the table's index gives what the whole-table mask gives, and the index is
built once per table, so the report's per-drug lookups are no longer one pass over the table each."""

from __future__ import annotations

import gc

import numpy as np
import pandas as pd
import pytest

from harness import cells
from harness.cells import cell


def _table(n_drugs: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 40 * n_drugs
    return pd.DataFrame({"drug": rng.choice([f"d{i}" for i in range(n_drugs)], n),
                         "latent": rng.choice(np.array([2, 100], dtype=np.int64), n),
                         "metric": rng.choice(["delta_pearson", "mse_z"], n),
                         "value": rng.normal(size=n)})


def _mask(t: pd.DataFrame, drug: str, latent: int, metric: str) -> pd.DataFrame:
    return t[(t["drug"] == drug) & (t["latent"] == latent) & (t["metric"] == metric)]


@pytest.mark.parametrize("key", [("d0", 2, "delta_pearson"), ("d3", 100, "mse_z"), ("d9", 2, "mse_z"),
                                 ("absent", 2, "mse_z"), ("d1", 7, "delta_pearson")])
def test_a_cell_is_the_masks_rows_in_the_tables_order(key):
    t = _table(10)
    pd.testing.assert_frame_equal(cell(t, *key), _mask(t, *key))


def test_an_empty_table_gives_its_empty_columns():
    t = _table(3).iloc[:0]
    got = cell(t, "d0", 2, "mse_z")
    assert got.empty and list(got.columns) == list(t.columns)


def test_the_index_is_built_once_per_table(monkeypatch):
    built = []
    real = pd.DataFrame.groupby

    def counting(self, *a, **k):
        built.append(1)
        return real(self, *a, **k)

    monkeypatch.setattr(pd.DataFrame, "groupby", counting)
    t = _table(50)
    for i in range(50):
        cell(t, f"d{i}", 2, "mse_z")
    assert len(built) == 1


def test_rows_added_or_a_new_table_rebuild_and_a_dead_tables_index_goes():
    t = _table(4)
    cell(t, "d0", 2, "mse_z")
    longer = pd.concat([t, t.iloc[:5]], ignore_index=True)
    pd.testing.assert_frame_equal(cell(longer, "d0", 2, "mse_z"), _mask(longer, "d0", 2, "mse_z"))
    n = len(cells._INDEX)
    del longer
    gc.collect()
    assert len(cells._INDEX) == n - 1
