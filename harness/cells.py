"""The rows of one (drug, latent, metric) cell of a long score or comparison table, through an index built
once per table.

The report looks each drug's rows up many times (verdicts, best lines, tables, figures); a boolean mask over
the whole table per lookup made it quadratic in the number of drugs (1.2 of 9.7 s CPU at the paper's 19
drugs; minutes at a few hundred). The index is kept while its table lives and rebuilt if the table's rows
change in number; the report never edits a table's drug, latent or metric values in place.
"""

from __future__ import annotations

import weakref

import numpy as np
import pandas as pd

__all__ = ["cell"]

KEYS = ["drug", "latent", "metric"]
_INDEX: dict[int, tuple[weakref.ref, int, dict]] = {}


def cell(table: pd.DataFrame, drug: str, latent: int, metric: str) -> pd.DataFrame:
    """``table``'s rows of (drug, latent, metric), in the table's order: what the mask
    ``(drug == d) & (latent == x) & (metric == m)`` selects."""
    rows = _index(table).get((drug, latent, metric))
    return table.iloc[rows if rows is not None else np.arange(0)]


def _index(table: pd.DataFrame) -> dict:
    key = id(table)
    entry = _INDEX.get(key)
    if entry is not None and entry[0]() is table and entry[1] == len(table):
        return entry[2]
    groups = {} if table.empty else table.groupby(KEYS, sort=False, dropna=False).indices
    _INDEX[key] = (weakref.ref(table, lambda _, k=key: _INDEX.pop(k, None)), len(table), groups)
    return groups
