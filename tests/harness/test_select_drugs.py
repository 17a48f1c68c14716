"""harness.prepare.select_drugs: a mistyped --drugs name gets the cube's closest drug suggested (review 43,
item 14), in the one error line."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import make_config
from harness.prepare import RunError, select_drugs

DRUGS = ["olaparib", "selumetinib", "vorinostat", "SN-38"]


def _refusal(*drugs: str) -> str:
    with pytest.raises(RunError) as e:
        select_drugs(make_config("demo", drugs=drugs), DRUGS, Path("c.zarr"))
    assert "\n" not in str(e.value)
    return str(e.value)


def test_a_typo_gets_the_closest_drug():
    assert _refusal("selumetinb") == ("--drugs: selumetinb not in cube c.zarr; did you mean selumetinib? "
                                      "(it has: olaparib, selumetinib, vorinostat, SN-38)")


def test_several_typos_each_get_theirs_and_a_far_name_none():
    assert _refusal("Olaparibb", "vorinostt", "aspirin").startswith(
        "--drugs: Olaparibb, vorinostt, aspirin not in cube c.zarr; did you mean olaparib (for Olaparibb), "
        "vorinostat (for vorinostt)? (it has: ")
    assert "did you mean" not in _refusal("aspirin")


def test_known_drugs_are_resolved():
    cfg = make_config("demo", drugs=("selumetinib", "sn38"))
    assert select_drugs(cfg, DRUGS, Path("c.zarr")) == ["selumetinib", "SN-38"]
