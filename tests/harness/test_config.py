"""RunConfig: presets, TOML, CLI precedence, validation messages, science key."""

from __future__ import annotations

import dataclasses

import pytest

from harness.config import (
    ENUMS,
    ConfigError,
    RunConfig,
    build_parser,
    make_config,
    parse_args,
    science_key,
    walltime_seconds,
)
from harness.contenders import REGISTRY
from harness.presets import PRESETS


def test_demo_is_default_and_paper_preset_matches_the_paper():
    demo = parse_args([])
    assert demo.preset == "demo"
    assert demo.out_dir.as_posix() == "runs/demo"
    paper = parse_args(["--preset", "paper"])
    assert paper.latents_pertvae == (100,)
    assert paper.latents_vae == (2, 5, 10, 20, 50, 100, 200)
    assert paper.latents_pca == paper.latents_vae
    assert (paper.n_repeats, paper.n_folds) == (10, 5)
    assert paper.hidden == (500, 300)
    assert paper.include_test_singletons is False
    assert paper.retries == 2


def test_precedence_preset_then_toml_then_flags(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('preset = "paper"\nmax_epochs = 7\nlr = 0.01\n[latents]\nvae = [3, 4]\n'
                 '[slurm]\njob_extra = ["--qos=x"]\n')
    cfg = parse_args(["--config", str(f), "--lr", "0.5", "--hidden", "8,4"])
    assert cfg.preset == "paper"
    assert cfg.max_epochs == 7            # from TOML over the preset's 200
    assert cfg.lr == 0.5                  # flag over TOML
    assert cfg.latents_vae == (3, 4)
    assert cfg.latents_pca == (2, 5, 10, 20, 50, 100, 200)  # untouched preset value
    assert cfg.hidden == (8, 4)
    assert cfg.job_extra == ("--qos=x",)
    assert parse_args(["--config", str(f), "--preset", "demo"]).preset == "demo"


def test_latents_keep_their_old_spellings(tmp_path):
    """Latent sizes are one mapping now; a config file of before (flat latents_<model> keys) still reads, each
    source replaces only the models it names, and a model given nothing takes its contender's default."""
    f = tmp_path / "old.toml"
    f.write_text('models = ["pertvae", "vae", "pca", "baselines"]\n'
                 'latents_pertvae = [7]\nlatents_vae = [2, 3]\n')
    cfg = parse_args(["--config", str(f), "--latents-vae", "9"])
    assert dict(cfg.latents) == {"pertvae": (7,), "vae": (9,), "pca": (2, 5, 10, 20), "baselines": (10,)}
    assert science_key(cfg)["latents"] == {"pertvae": [7], "vae": [9], "pca": [2, 5, 10, 20],
                                           "baselines": [10]}
    assert make_config("demo", latents={"pca": [3]}).latents_pca == (3,)
    bare = dataclasses.replace(make_config("demo"), latents=())
    assert bare.latents_for("vae") == REGISTRY["vae"].default_latents
    with pytest.raises(ConfigError, match="unknown model 'vea' in 'latents_vea'; did you mean vae"):
        parse_args(["--config", str(_toml(tmp_path, "latents_vea = [2]\n"))])
    with pytest.raises(AttributeError, match="no attribute 'latent_vae'"):
        _ = make_config("demo").latent_vae


def _toml(tmp_path, text: str):
    f = tmp_path / "t.toml"
    f.write_text(text)
    return f


def test_every_field_has_a_flag_and_help():
    text = build_parser().format_help()
    for f in dataclasses.fields(RunConfig):
        flag = "--" + f.name.replace("_", "-")
        assert flag in text, flag
        assert f.metadata["help"]


def test_list_flags_and_booleans():
    cfg = parse_args(["--models", "pca", "vae", "--latents-vae", "2,5", "10", "--drugs", "d1", "d2",
                      "--no-progress", "--include-test-singletons", "--job-extra=--qos=a",
                      "--job-extra=--mem=1G", "--splits-per-task", "3", "--workers", "2"])
    assert cfg.models == ("pca", "vae")
    assert cfg.latents_vae == (2, 5, 10)
    assert cfg.drugs == ("d1", "d2")
    assert cfg.progress is False and cfg.include_test_singletons is True
    assert cfg.job_extra == ("--qos=a", "--mem=1G")
    assert cfg.resolved_splits_per_task() == 3
    assert cfg.resolved_workers() == 2
    assert cfg.fit_kwargs()["hidden"] == cfg.hidden


def test_a_repeated_plugin_flag_adds_its_plugins(tmp_path):
    """`--method A --method B` (as pip's and docker's repeated flags go) runs both: argparse's last-wins
    kept B alone, and the run reported A nowhere. The flags still replace a TOML file's list."""
    cfg = parse_args(["--models", "baselines", "response_baselines", "--method", "a.m:A", "--method", "b.m:B",
                      "c.m:C", "--response-method", "r.m:R", "--response-method", "s.m:S"])
    assert cfg.method == ("a.m:A", "b.m:B", "c.m:C") and cfg.response_method == ("r.m:R", "s.m:S")
    toml = tmp_path / "c.toml"
    toml.write_text('method = ["t.m:T"]\n')
    assert parse_args(["--config", str(toml)]).method == ("t.m:T",)
    assert parse_args(["--config", str(toml), "--method", "a.m:A"]).method == ("a.m:A",)


def test_splits_per_task_default_depends_on_gpu():
    cfg = make_config("paper", n_repeats=2, n_folds=3)
    assert cfg.resolved_splits_per_task(cuda=False) == 1
    assert cfg.resolved_splits_per_task(cuda=True) == 6
    gpu_jobs = make_config("paper", n_repeats=2, n_folds=3, gpus_per_job=1)
    assert gpu_jobs.resolved_splits_per_task(cuda=False) == 6
    assert make_config("demo").resolved_splits_per_task(cuda=False) == 10   # the demo batches a drug's splits


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--models", "pertvae", "bogus"], "models"),
        (["--n-folds", "1"], "n_folds"),
        (["--val-fraction", "1.5"], "val_fraction"),
        (["--lr", "abc"], "--lr"),
        (["--max-epochs", "2.5"], "--max-epochs"),
        (["--cluster", "k8s"], "cluster"),
        (["--latents-vae", "0"], "latents_vae"),
        (["--hidden", "8"], "hidden"),
        (["--walltime", "soon"], "walltime"),
        (["--preset", "huge"], "preset"),
        (["--workers", "0"], "workers"),
    ],
)
def test_bad_values_name_the_field(argv, needle):
    with pytest.raises(ConfigError, match=needle):
        parse_args(argv)


def test_bad_toml_names_file_and_key(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("max_epochz = 3\n")
    with pytest.raises(ConfigError, match=r"bad\.toml.*max_epochz"):
        parse_args(["--config", str(f)])
    f.write_text("max_epochs = [\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_args(["--config", str(f)])
    f.write_text('max_epochs = "many"\n')
    with pytest.raises(ConfigError, match="max_epochs"):
        parse_args(["--config", str(f)])
    with pytest.raises(ConfigError, match="not found"):
        parse_args(["--config", str(tmp_path / "missing.toml")])
    with pytest.raises(ConfigError, match="is a directory; give a TOML file"):
        parse_args(["--config", str(tmp_path)])


def test_science_key_changes_only_with_results():
    base = make_config("demo")
    key = science_key(base)
    # execution settings do not change the key
    for change in ({"workers": 7}, {"cluster": "none"}, {"retries": 0}, {"progress": False},
                   {"out": "elsewhere"}, {"device": "cpu"}, {"splits_per_task": 4}, {"jobs": 9}):
        assert science_key(dataclasses.replace(base, **change)) == key, change
    # anything that changes results does
    for change in ({"lr": 0.1}, {"base_seed": 1}, {"n_repeats": 3}, {"latents": {"vae": (3,)}},
                   {"models": ("pca",)}, {"drugs": ("x",)}, {"data_seed": 5}, {"max_epochs": 2},
                   {"include_test_singletons": True}, {"hidden": (9, 9)}):
        assert science_key(dataclasses.replace(base, **change)) != key, change
    # latents of models that do not run are irrelevant
    only_pca = make_config("demo", models=["pca"])
    other = dataclasses.replace(only_pca, latents={**dict(only_pca.latents), "vae": (77,)})
    assert other.latents_vae == (77,) and science_key(other) == science_key(only_pca)
    # with a cube file the data seed is irrelevant (the cube fingerprint identifies the data)
    with_file = make_config("demo", data="cube.zarr")
    assert science_key(dataclasses.replace(with_file, data_seed=9)) == science_key(with_file)


def test_presets_only_use_known_fields():
    names = {f.name for f in dataclasses.fields(RunConfig)} | {f"latents_{m}" for m in REGISTRY}
    for preset, values in PRESETS.items():
        assert set(values) <= names, preset
        make_config(preset)


def test_walltime_seconds():
    assert walltime_seconds("01:00:00") == 3600
    assert walltime_seconds("1-00:30:00") == 86400 + 1800
    assert walltime_seconds("45") == 45 * 60
    assert walltime_seconds("10:30") == 630


def test_issue9_fit_settings_reach_fitconfig_and_science_key():
    """stop_on, val_samples and standardize are flags, reach FitConfig and change the science key; the paper
    preset sets a free-bits budget (nats per latent dimension), the demo keeps none."""
    from pertvae_core.config import FitConfig

    cfg = parse_args(["--stop-on", "nll", "--val-samples", "5", "--standardize", "pooled"])
    fc = FitConfig(latent=4, **cfg.fit_kwargs())
    assert (fc.stop_on, fc.val_samples, fc.standardize) == ("nll", 5, "pooled")
    default = parse_args([])
    assert (default.stop_on, default.val_samples, default.standardize) == ("mse", 3, "per_source")
    for k in ("stop_on", "val_samples", "standardize"):
        assert science_key(cfg)[k] != science_key(default)[k]
    assert make_config("paper").free_bits > 0 and make_config("demo").free_bits == 0
    text = build_parser().format_help()
    assert "nats per latent dimension" in " ".join(text.split())
    with pytest.raises(ConfigError, match="--stop-on"):
        parse_args(["--stop-on", "elbo"])
    with pytest.raises(ConfigError, match="standardize"):
        make_config("demo", standardize="global")
    with pytest.raises(ConfigError, match="val_samples"):
        make_config("demo", val_samples=0)


def test_unknown_flags_suggest_the_closest_and_prefixes_are_not_taken():
    """issue 11: ``--n-repeat 1`` was silently taken as --n-repeats."""
    with pytest.raises(ConfigError, match=r"^unknown flag --n-repeat; did you mean --n-repeats\?"):
        parse_args(["--n-repeat", "1"])
    with pytest.raises(ConfigError, match=r"unknown flag --max-epoch; did you mean --max-epochs\?"):
        parse_args(["--max-epoch=3"])
    with pytest.raises(ConfigError, match=r"unknown flag --zzzz \(see --help"):
        parse_args(["--zzzz"])
    with pytest.raises(ConfigError, match="unexpected argument 'olaparib'"):
        parse_args(["olaparib"])
    assert parse_args(["--n-repeats", "1"]).n_repeats == 1


@pytest.mark.parametrize("name", sorted(ENUMS))
def test_enumerated_flags_use_choices_and_suggest(name):
    options = tuple(REGISTRY) if name == "models" else ENUMS[name]   # the registered contenders
    flag = "--" + name.replace("_", "-")
    action = next(a for a in build_parser()._actions if flag in a.option_strings)
    assert list(action.choices) == list(options)
    typo = options[0][:-1] + "x"   # one letter off the first choice
    with pytest.raises(ConfigError, match=rf"argument {flag}: invalid choice '{typo}'; did you mean "
                                          rf"{options[0]}\? \(choose from {', '.join(options)}\)"):
        parse_args([flag, typo])
    value = ["--response-label-value", "0.5"] if name == "response_label" else []   # fixed needs a threshold
    assert getattr(parse_args([flag, options[-1], *value]), name) in (options[-1], (options[-1],))


def test_models_take_commas_and_spaces_and_are_checked_one_by_one():
    assert parse_args(["--models", "pca,vae", "pertvae"]).models == ("pca", "vae", "pertvae")
    with pytest.raises(ConfigError, match="invalid choice 'pcaa'; did you mean pca"):
        parse_args(["--models", "vae,pcaa"])


@pytest.mark.parametrize("toml,message", [
    ("max_epochz = 3\n", r"typo\.toml: unknown key 'max_epochz'; did you mean max_epochs\?"),
    ("[latents]\nvea = [2]\n", r"unknown key 'vea' in \[latents\]; did you mean vae\?"),
    ("[slurm]\npartiton = 'x'\n", r"unknown key 'partiton' in \[slurm\]; did you mean partition\?"),
    ("[slrum]\njobs = 2\n", r"unknown table \[slrum\]; did you mean slurm\?"),
    ('models = ["pertvae", "vea"]\n', "unknown model 'vea'; did you mean vae"),
])
def test_unknown_toml_keys_suggest_the_closest(tmp_path, toml: str, message: str):
    f = tmp_path / "typo.toml"
    f.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        parse_args(["--config", str(f)])


def test_dry_run_is_an_execution_setting():
    cfg = parse_args(["--dry-run"])
    assert cfg.dry_run is True and parse_args([]).dry_run is False
    assert science_key(cfg) == science_key(parse_args([]))


@pytest.mark.parametrize(("argv", "message"), [
    (["--worker-timeout", "-5"], r"'worker_timeout' = -5\.0 \(--worker-timeout\): must be a finite number of "
                                 r"seconds >= 0 \(0 waits forever\)"),
    (["--worker-timeout", "nan"], r"'worker_timeout' = nan \(--worker-timeout\): must be a finite number"),
    (["--worker-timeout", "inf"], r"'worker_timeout' = inf \(--worker-timeout\): must be a finite number"),
    (["--patience", "0"], r"'patience' = 0 \(--patience\): must be a positive int"),
    (["--walltime", "0"], r"'walltime' = '0' \(--walltime\): must be longer than 0"),
    (["--walltime", "0-00:00:00"], r"'walltime' = '0-00:00:00' \(--walltime\): must be longer than 0"),
    (["--memory", "lots"], r"'memory' = 'lots' \(--memory\): use a size such as 4GB"),
    (["--memory", "0GB"], r"'memory' = '0GB' \(--memory\): use a size"),
    (["--dashboard-address", "nope"], r"'dashboard_address' = 'nope' \(--dashboard-address\): use HOST:PORT"),
    (["--dashboard-address", ":99999"], r"'dashboard_address' = ':99999' \(--dashboard-address\): use HOST"),
])
def test_issue19_meaningless_numbers_are_refused_at_parse_time(argv, message):
    """issue 19: --worker-timeout -5 / nan was accepted (and meant "wait forever"); patience 0 failed inside
    every fit (FitConfig), walltime 0 retired workers every 30 s, --memory lots failed at cluster start."""
    with pytest.raises(ConfigError, match=message):
        parse_args(argv)


def test_issue19_worker_timeout_zero_still_waits_forever_and_the_cli_says_one_line(capsys):
    from harness.run import main

    assert parse_args(["--worker-timeout", "0"]).worker_timeout == 0.0
    assert parse_args(["--memory", "16GiB", "--walltime", "00:10:00"]).memory == "16GiB"
    assert parse_args(["--dashboard-address", "127.0.0.1:0"]).dashboard_address == "127.0.0.1:0"
    assert main(["--worker-timeout", "-5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: field 'worker_timeout' = -5.0") and err.count("\n") == 1


def test_issue19_every_fit_value_the_config_accepts_fitconfig_accepts():
    """The run refuses at parse time what FitConfig would refuse inside every fit: the lowest value each
    numeric fit field may take is accepted by both."""
    from pertvae_core.config import FitConfig

    checked = []
    for f in dataclasses.fields(RunConfig):
        if f.metadata.get("group") != "fit" or f.type not in ("int", "float"):
            continue
        low = next(v for v in ((-1, 0, 1) if f.type == "int" else (-1.0, 0.0, 1e-9))
                   if _accepted(**{f.name: v}))
        FitConfig(latent=2, **make_config("demo", device="cpu", **{f.name: low}).fit_kwargs())
        checked.append(f.name)
    assert {"patience", "lr", "min_epochs", "iaf_steps", "batch_singletons", "free_bits"} <= set(checked)


def _accepted(**change) -> bool:
    try:
        make_config("demo", **change)
    except ConfigError:
        return False
    return True


@pytest.mark.parametrize("argv", [["--latents-pca", "99999999999999999999"], ["--context", str(2**63)],
                                  ["--hidden", "5", str(2**64)], ["--n-repeats", str(2**70)]])
def test_an_integer_beyond_int64_is_one_clear_error(argv):
    """--latents-pca 99999999999999999999 crashed the store's creation (OverflowError traceback: its latent
    coordinate is int64), --context 2**63 failed every fit, --n-repeats 2**70 planned splits forever."""
    name = argv[0][2:].replace("-", "_")
    with pytest.raises(ConfigError, match=rf"^field '{name}' = .* \(--{argv[0][2:]}\): too large: must be "
                                          r"below 2\*\*63$"):
        parse_args(argv)
    assert parse_args([argv[0], *["3"] * (len(argv) - 1)])   # an ordinary value is taken


@pytest.mark.parametrize("toml, message", [
    ("[slurm]\nmax_epochs = 5\n", r"key 'max_epochs' is not a setting of \[slurm\]; give it in \[fit\] or at "
                                  r"the top level$"),
    ("[fit]\nworkers = 3\n", r"key 'workers' is not a setting of \[fit\]; give it in \[cluster\]"),
    ("n_repeats = 2\n[cv]\nn_repeats = 3\n",
     r"'n_repeats' is given twice \(at the top level and in \[cv\]\); keep one$"),
    ("latents_vae = [2]\n[latents]\nvae = [5]\n", r"'latents_vae' is given twice \(at the top level and in "
                                                  r"\[latents\]\)"),
])
def test_a_toml_key_in_the_wrong_table_or_given_twice_is_refused(tmp_path, toml: str, message: str):
    """[slurm] max_epochs = 5 ran 5 epochs and [fit] workers = 3 three workers without a word, and a key at
    the top level and again in its table silently took the table's value: each is now one error naming it."""
    with pytest.raises(ConfigError, match=message):
        parse_args(["--config", str(_toml(tmp_path, toml))])


def test_every_setting_is_taken_in_its_own_table(tmp_path):
    cfg = parse_args(["--config", str(_toml(tmp_path, "[fit]\nmax_epochs = 7\n[slurm]\njobs = 2\n[cluster]\n"
                                                      "workers = 1\n[cv]\nn_folds = 3\n[run]\nlatents_vae = "
                                                      "[3]\n[latents]\npca = [4]\n"))])
    assert (cfg.max_epochs, cfg.jobs, cfg.workers, cfg.n_folds) == (7, 2, 1, 3)
    assert (cfg.latents_vae, cfg.latents_pca) == ((3,), (4,))


def test_drugs_none_on_the_command_line_selects_every_drug():
    """--drugs none was taken as a drug named 'none' (the flag's values arrive as a list; only TOML's
    string "none" meant unset), so no flag undid a preset's drugs (drvae-demo's four): the help's
    'default: all drugs in the cube' could not be asked for, nor the 'To resume it, give --drugs none' of a
    refused resume."""
    assert parse_args(["--preset", "drvae-demo", "--drugs", "none"]).drugs is None
    assert parse_args(["--drugs", "a", "b"]).drugs == ("a", "b")
    assert parse_args(["--drugs", "a"]).drugs == ("a",)


@pytest.mark.parametrize("flag", ["--data", "--out", "--performance-report"])
def test_an_empty_path_is_refused_not_taken_as_unset(flag, tmp_path):
    """`--data "$CUBE"` with CUBE unset ran the whole study on the preset's synthetic cube, exit 0: an
    empty value of an optional setting meant unset. For a path it means a mistake; none still unsets."""
    name = flag[2:].replace("-", "_")
    with pytest.raises(ConfigError, match=rf"^{flag}: field '{name}' is an empty path \(an unset shell "):
        parse_args([flag, " "])
    toml = tmp_path / "c.toml"
    toml.write_text(f'{name} = ""\n')
    with pytest.raises(ConfigError, match=rf"field '{name}' is an empty path"):
        parse_args(["--config", str(toml)])
    assert getattr(parse_args([flag, "none"]), name) is None


def test_several_cores_per_slurm_job_without_gpus_is_refused():
    """A CPU job of N cores ran N worker processes; whenever fewer tasks than workers were left, Dask's
    adaptive scaling retired one, and dask-jobqueue cancelled its whole job, busy workers and their tasks
    too (real Slurm: 14 jobs submitted for 3 tasks; a 12 s task unfinished after 120 s). Refused, with the
    jobs that give as many cores; a GPU job has one worker and keeps its cores."""
    with pytest.raises(ConfigError, match=r"cores_per_job.*not supported.*--jobs 6 --cores-per-job 1 "):
        parse_args(["--cluster", "slurm", "--jobs", "3", "--cores-per-job", "2"])
    gpu = parse_args(["--cluster", "slurm", "--cores-per-job", "4", "--gpus-per-job", "1"])
    assert gpu.cores_per_job == 4
    assert parse_args(["--cluster", "local", "--cores-per-job", "2"]).cores_per_job == 2


def test_save_predictions_on_a_drug_response_run_alone_is_refused():
    """--save-predictions writes the predicted x2 of the perturbation models' fits: a drug-response run
    (drvae-demo, its five models) with it wrote nothing, said nothing and exited 0, so the predictions a user
    asked for to check response.md did not exist. Refused; beside a perturbation model it still runs."""
    with pytest.raises(ConfigError, match=r"save_predictions.*drug-response models.*not saved"):
        parse_args(["--preset", "drvae-demo", "--save-predictions"])
    both = parse_args(["--preset", "drvae-demo", "--models", "drvae", "pertvae", "--save-predictions"])
    assert both.save_predictions


def test_include_test_singletons_on_a_drug_response_run_alone_is_refused():
    """The response models never train on a test cell line (harness.contenders.response_splits reads no such
    setting): drvae-demo with --include-test-singletons ran the same fits as without it, said nothing, and
    its science key made it a different run. Refused; beside a perturbation model it still runs."""
    with pytest.raises(ConfigError, match=r"include_test_singletons.*drug-response models"):
        parse_args(["--preset", "drvae-demo", "--include-test-singletons"])
    both = parse_args(["--preset", "drvae-demo", "--models", "drvae", "pertvae", "--include-test-singletons"])
    assert both.include_test_singletons


def test_gpus_per_job_with_device_cpu_is_refused():
    """--device cpu trains every fit on the CPU, so GPUs asked of Slurm would sit idle, while the rest of the
    run took it for a GPU run: the dry run said "the workers would train on a GPU", the cost model estimated
    GPU-hours and a task batched all of a drug's splits. Refused, saying which flag to drop."""
    with pytest.raises(ConfigError, match=r"gpus_per_job.* = 1 .*never use.*--gpus-per-job 0.*--device auto"):
        parse_args(["--cluster", "slurm", "--gpus-per-job", "1", "--device", "cpu"])
    assert parse_args(["--cluster", "slurm", "--gpus-per-job", "1"]).device == "auto"
    assert parse_args(["--cluster", "slurm", "--device", "cpu"]).gpus_per_job == 0
