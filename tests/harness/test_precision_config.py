"""``--precision fp32|bf16|auto``: auto is resolved once, when the run's config is made, on the machine that
makes it, so the science key, the store and the workers hold the precision that actually runs."""

from __future__ import annotations

import dataclasses

import pytest

import pertvae_core.precision as prec
from harness.config import ConfigError, make_config, parse_args, science_key
from harness.store import ResultStore, StoreMismatchError
from pertvae_core.config import FitConfig


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """native_bf16 answers True for every device; the devices asked are recorded."""
    devices: list[str] = []
    monkeypatch.setattr(prec, "native_bf16", lambda d: devices.append(str(d)) or True)
    return devices


def test_auto_is_resolved_when_the_config_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    for native, want in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(prec, "native_bf16", lambda d, native=native: native)
        for cfg in (make_config("paper"), make_config("demo", precision="auto"),
                    parse_args(["--preset", "paper"]), parse_args(["--precision", "auto"])):
            assert cfg.precision == want
            assert science_key(cfg)["precision"] == want
            assert FitConfig(latent=3, **cfg.fit_kwargs()).precision == want
        # an explicit choice is kept whatever the hardware; the demo preset's is fp32 (bf16 pays not there)
        assert make_config("demo").precision == parse_args([]).precision == "fp32"
        assert parse_args(["--precision", "bf16"]).precision == "bf16"
    # a config already resolved stays as it is when copied
    cfg = make_config("demo", precision="bf16")
    monkeypatch.setattr(prec, "native_bf16", lambda d: False)
    assert dataclasses.replace(cfg, workers=3).precision == "bf16"


def test_auto_asks_the_device_the_run_trains_on(asked: list[str]) -> None:
    make_config("paper", device="cpu")
    make_config("paper", device="cuda")
    make_config("paper", cluster="slurm", gpus_per_job=1)   # device auto: the jobs' GPUs
    assert asked == ["cpu", "cuda", "cuda"]


def test_precision_changes_the_science_key_and_a_store_refuses_to_mix(tmp_path) -> None:
    fp32, bf16 = (make_config("demo", precision=p, out=str(tmp_path)) for p in ("fp32", "bf16"))
    assert science_key(fp32) != science_key(bf16)
    ResultStore.open(tmp_path, fp32, "fp", drugs=["d"])
    with pytest.raises(StoreMismatchError, match="precision"):
        ResultStore.open(tmp_path, bf16, "fp", drugs=["d"])


def test_a_bad_precision_is_one_clear_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"^field 'precision' = 'fp16': must be one of auto, fp32, bf16; "
                                          r"did you mean bf16\?$"):
        make_config("demo", precision="fp16")
    with pytest.raises(ConfigError, match="argument --precision: invalid choice 'bf61'"):
        parse_args(["--precision", "bf61"])
    toml = tmp_path / "c.toml"
    toml.write_text('[fit]\nprecision = "half"\n')
    with pytest.raises(ConfigError, match="field 'precision' = 'half'"):
        parse_args(["--config", str(toml)])
    toml.write_text('precision = "fp32"\n')
    assert parse_args(["--config", str(toml)]).precision == "fp32"


def test_a_precision_mismatch_says_how_to_resume(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A paper store made where auto gave bf16, resumed by the same command where auto gives fp32: the error
    names both values and the --precision that resumes it (auto is resolved per machine)."""
    monkeypatch.setattr(prec, "native_bf16", lambda d: True)
    ResultStore.open(tmp_path, make_config("paper", out=str(tmp_path)), "fp", drugs=["d"])
    monkeypatch.setattr(prec, "native_bf16", lambda d: False)
    with pytest.raises(StoreMismatchError, match=r"precision: 'bf16' \(stored\) vs 'fp32' \(now\) "
                                                 r"\(--precision auto is resolved on the machine .*\)\. "
                                                 r"To resume it, give --precision bf16\. Use another"):
        ResultStore.open(tmp_path, make_config("paper", out=str(tmp_path)), "fp", drugs=["d"])
