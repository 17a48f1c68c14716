"""Fit settings: one declaration (pertvae_core.config.FitConfig's fields) and one validator (FitConfig's),
which RunConfig's flags, TOML keys and parse-time checks are made from (issue 20)."""

from __future__ import annotations

import dataclasses

import pytest

from harness.config import ConfigError, RunConfig, make_config, parse_args
from harness.contenders import REGISTRY
from harness.run import main
from harness.store import science_hash
from pertvae_core.config import FitConfig, fit_settings

SETTINGS = [f for f in fit_settings() if f.name != "latent"]   # latent: per model, --latents-MODEL
RUN_LEVEL = {"device", "precision"}   # the run's default is "auto", resolved once per run


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda f: f.name)
def test_a_bad_fit_setting_is_one_error_line_at_parse_time(setting, capsys):
    """Each setting's declared check gives a value it refuses; the CLI refuses it before any work (--dry-run
    would calibrate) with one ``error:`` line naming the flag and the value, exit 2."""
    flag = "--" + setting.name.replace("_", "-")
    bad = setting.metadata["check"].bad_example()
    assert main([f"{flag}={bad}", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert flag in err and all(part in err for part in bad.split(",")), err


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda f: f.name)
def test_the_declared_bad_value_is_one_fitconfig_refuses(setting):
    with pytest.raises(ValueError, match=rf"^FitConfig\.{setting.name} = "):
        value = setting.metadata["check"].bad_example()
        FitConfig(**{setting.name: _typed(setting, value)})


def _typed(setting: dataclasses.Field, text: str):
    kind = str(setting.type)
    if kind.startswith("tuple"):
        return tuple(int(x) for x in text.split(","))
    return {"int": int, "float": float}.get(kind, str)(text)


def test_runconfig_holds_every_fit_setting_as_fitconfig_declares_it():
    """RunConfig cannot disagree with FitConfig: every setting is a field of the same name, type, default
    (but the run-level "auto"), help and check; ``latent`` is each registered model's latents."""
    run = {f.name: f for f in dataclasses.fields(RunConfig)}
    assert {n for n, f in run.items() if f.metadata.get("group") == "fit"} == {f.name for f in SETTINGS}
    for f in SETTINGS:
        r = run[f.name]
        assert (r.type, r.metadata["check"]) == (f.type, f.metadata["check"]), f.name
        if f.name in RUN_LEVEL:
            assert r.default == "auto"
        else:
            assert (r.default, r.metadata["help"]) == (f.default, f.metadata["help"]), f.name
    cfg = RunConfig()
    assert all(len(cfg.latents_for(m)) >= 1 for m in REGISTRY)
    made = FitConfig(latent=100, **dict(cfg.fit_kwargs(), device="cpu", precision="fp32"))
    assert made == FitConfig()


def test_fitconfig_values_the_run_refused_before_are_accepted_and_the_other_way_round(tmp_path):
    """batch_singletons 0 (PertVAE without singleton batches) was refused by the CLI and accepted by
    FitConfig; patience 0 the other way round. One validator now: both agree."""
    cfg = parse_args(["--batch-singletons", "0"])
    assert cfg.batch_singletons == 0
    assert FitConfig(latent=2, **dict(cfg.fit_kwargs(), device="cpu")).batch_singletons == 0
    toml = tmp_path / "fit.toml"
    toml.write_text("[fit]\npatience = 0\n")
    with pytest.raises(ConfigError, match=rf"^field 'patience' = 0 \({toml}\): must be a positive int$"):
        parse_args(["--config", str(toml)])
    with pytest.raises(ConfigError, match=r"^field 'min_epochs' = 9 \(--min-epochs\): must be <= max_epochs"):
        parse_args(["--min-epochs", "9", "--max-epochs", "3"])
    with pytest.raises(ConfigError, match=r"^field 'stop_on' = 'nl': must be one of mse, nll; did you mean"):
        make_config("demo", stop_on="nl")


@pytest.mark.parametrize(("argv", "key"), [
    (["--preset", "demo"], "7ea78b054cb10257"),
    (["--preset", "paper", "--precision", "fp32"], "6df77129da6146b6"),
    (["--preset", "paper", "--precision", "bf16", "--data", "c.zarr", "--device", "cuda"],
     "cc84b3563589c687"),
])
def test_the_presets_science_keys_are_those_of_stores_written_before(argv, key):
    """The keys computed before the fit settings moved to one declaration: old stores still resume. (A new
    pertvae_core.evaluation.SCORING changes them on purpose: these are SCORING 5's.)"""
    assert science_hash(parse_args(argv)) == key
