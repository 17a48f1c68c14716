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


def test_a_drug_whose_name_has_a_comma_is_selected_whole():
    """LINCS names such as '2,3-DCPE' were split at the comma ('2', '3-DCPE': 'not in cube'), so no --drugs
    could select them; a comma still separates names that are not the cube's."""
    cube = ["2,3-DCPE", "olaparib", "SN-38"]
    assert select_drugs(make_config("demo", drugs=("2,3-DCPE",)), cube, Path("c.zarr")) == ["2,3-DCPE"]
    assert select_drugs(make_config("demo", drugs=("olaparib,sn38", "2,3-DCPE")), cube, Path("c.zarr")) == [
        "olaparib", "SN-38", "2,3-DCPE"]
    assert _refusal("olaparib,olaparib") == "--drugs: 'olaparib' given twice; give each drug once"
