"""One frozen RunConfig from a preset, an optional TOML file and CLI flags (later ones win).

    python -m harness.run --preset demo --config my.toml --latents-vae 2 5 10 --workers 2

A TOML file uses the field names below as flat keys (``max_epochs = 50``, ``latents_vae = [2, 5]``); the
tables of the ``--help`` groups, ``[run]``, ``[cv]``, ``[fit]``, ``[cluster]`` and ``[slurm]``, each with its
own settings, and ``[latents]`` (``pertvae = [100]``) are accepted as a convenience (a setting once).
Latent sizes are one field, ``latents`` = {model: sizes} over the registered models (harness.contenders);
``latents_<model>`` (preset key, TOML key, ``--latents-<model>`` flag, make_config keyword) sets one model's
sizes, and a model given none takes its contender's ``default_latents``.
``science_key(cfg)`` is the part of the config that changes results; the result store refuses to resume a
run whose science key (or data) differs.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import shlex
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from datasets.argparsing import did_you_mean
from harness.contenders import BUILT_IN, LOAD_ERRORS, REGISTRY, RESPONSE_MODELS, user_method_host
from harness.contenders.response_splits import label_rule
from harness.cpus import usable_cpus
from harness.presets import PRESETS
from pertvae_core.config import FitConfig, FitSettingError, OneOf, fit_settings
from pertvae_core.evaluation import SCORING
from pertvae_core.response_labels import RULES as LABEL_RULES

CLUSTERS = ("local", "slurm", "none")
DEVICES = ("auto", "cpu", "cuda")   # the run's --device (FitConfig's device: a worker's resolved one)
FIGURE2_SCOPES = ("pooled", "per-drug")


class ConfigError(ValueError):
    """A bad preset, config file, flag or value; the message names it (``setting``: the field, if one)."""

    def __init__(self, message: str, setting: str | None = None, value: Any = None, why: str = "") -> None:
        super().__init__(message)
        self.setting, self.value, self.why = setting, value, why

    @classmethod
    def bad_value(cls, setting: str, value: Any, why: str, source: str | None = None) -> ConfigError:
        """"field 'setting' = value (source): why"; ``source`` is the flag or file it came from, if known."""
        where = f" ({source})" if source else ""
        return cls(f"field '{setting}' = {value!r}{where}: {why}", setting, value, why)


def _f(default: Any, help: str, group: str, **kw: Any) -> Any:
    if isinstance(default, list | dict):
        raise TypeError("use tuples for defaults")
    return field(default=default, metadata={"help": help, "group": group, **kw})


# The harness's own defaults and help of two fit settings: "auto", resolved once per run (device: on each
# worker, cuda where it has a GPU; precision: when the config is made, recorded resolved).
_RUN_LEVEL: dict[str, tuple[Any, str]] = {
    "device": ("auto", "torch device inside the workers: auto | cpu | cuda (a worker without CUDA fails "
                       "cuda's trained fits)"),
    "precision": ("auto", "matrix products of the networks' layers: fp32 | bf16 (bfloat16 operands, float32 "
                  "weights, Adam state and elementwise work; 0.6-0.86x the step time where the hardware has "
                  "bfloat16 instructions, emulated and 9-11x slower where it has not) | auto (bf16 where "
                  "the run's device computes bfloat16 natively, else fp32; resolved once when the run's "
                  "config is made, and recorded resolved in the store and run.json)"),
}


def _with_fit_settings(cls: type) -> type:
    """Put FitConfig's settings in place of the class's ``FIT_SETTINGS`` marker, as fields of group "fit"
    with FitConfig's names, types, defaults and help (``latent`` excepted: ``latents`` holds it per model;
    :data:`_RUN_LEVEL` the harness's "auto"), so that RunConfig restates none of them."""
    annotations: dict[str, Any] = {}
    for name, kind in cls.__dict__["__annotations__"].items():
        if name != "FIT_SETTINGS":
            annotations[name] = kind
            continue
        for f in fit_settings():
            if f.name != "latent":
                default, help_ = _RUN_LEVEL.get(f.name, (f.default, f.metadata["help"]))
                annotations[f.name] = f.type
                setattr(cls, f.name, _f(default, help_, "fit", check=f.metadata["check"]))
    cls.__annotations__ = annotations
    return cls


@dataclass(frozen=True)
@_with_fit_settings
class RunConfig:
    """Everything one run needs. Field metadata drives the CLI (``--help``) and TOML parsing."""

    # --- what to run --------------------------------------------------------------------------------
    preset: str = _f("demo", "preset the other defaults come from: " + " | ".join(PRESETS), "run")
    data: str | None = _f(None, "cube path (zarr, from datasets.build); default: generate the embedded "
                          "synthetic cube for the preset into OUT/data.zarr (once, reused on resume)", "run")
    data_seed: int = _f(0, "seed of the generated synthetic cube (ignored with --data)", "run")
    out: str | None = _f(None, "output directory (results.zarr, tables, figures); default: runs/<preset>",
                         "run")
    models: tuple[str, ...] = _f(BUILT_IN, "models to run (harness.contenders): " + " ".join(BUILT_IN)
                                 + " (the perturbation study), "
                                 + " ".join(m for m in REGISTRY if m not in BUILT_IN)
                                 + " (drug response and registered contenders)", "run")
    drugs: tuple[str, ...] | None = _f(None, "drugs to run (default: all drugs in the cube)", "run")
    latents: tuple[tuple[str, tuple[int, ...]], ...] = _f(
        (), "latent sizes per model, set by --latents-MODEL (a model not given takes its default)", "run")
    method: tuple[str, ...] = _f((), "your own method(s), run beside the baselines (in their model's tasks) "
                                 "on the same splits with the same seeds, metrics and comparisons: an import "
                                 "path pkg.module:Class or a name registered under the "
                                 "'pertvae_bench.methods' entry point group (docs/python_api.md)", "run")
    response_method: tuple[str, ...] = _f((), "your own drug-response method(s), run beside the response "
                                          "baselines on the same response splits with the same seeds, "
                                          "metrics and comparisons with Dr.VAE: an import path "
                                          "pkg.module:Class (or a function returning one) or a name "
                                          "registered under the 'pertvae_bench.response_methods' entry "
                                          "point group; binary head in response_baselines' tasks, continuous "
                                          "in response_regression's (docs/drug_response.md)", "run")
    save_predictions: bool = _f(False, "write every perturbation fit's predicted x2 for its test pairs to "
                                "OUT/predictions/<method>/<drug>.h5ad (AnnData); the drug-response models' "
                                "predictions are not saved", "run")
    figure2_scope: str = _f("pooled", "Figure 2's VAE and PCA fits: pooled (one per split and latent size, "
                            "on every selected drug's pairs and the singletons, split by cell line; "
                            "harness.grid.POOLED) | per-drug (one per drug, split and latent size, each on "
                            "that drug's pairs alone: as many times the fits as there are drugs; --dry-run "
                            "estimates the cost)", "run")
    # --- cross-validation -----------------------------------------------------------------------------
    n_repeats: int = _f(10, "randomized CV repeats", "cv")
    n_folds: int = _f(5, "CV folds (grouped by cell line)", "cv")
    val_fraction: float = _f(0.2, "fraction of training cell lines held out for early stopping", "cv")
    base_seed: int = _f(0, "base seed: splits and every fit's seed derive from it", "cv")
    include_test_singletons: bool = _f(False, "train the perturbation models on unpaired singleton profiles "
                                       "of test cell lines too (transductive: the paper's singletons are "
                                       "profiles with no known post-treatment state, which a test cell line "
                                       "has); the drug-response models never train on a test cell line", "cv")
    response_label: str = _f("waterfall", "the drug-response models' binary labels, set per drug and split "
                             "from the training cell lines' responses only (pertvae_core.response_labels): "
                             "waterfall (CCLE's knee of the sorted responses) | quantile (sensitive from "
                             "--response-label-value, a level in (0, 1), of the training responses) | "
                             "fixed (sensitive from the threshold --response-label-value, in the "
                             "response's units)", "cv")
    response_label_value: float | None = _f(None, "the quantile level (quantile) or the threshold (fixed) of "
                                            "--response-label; none for waterfall", "cv")
    splits_per_task: int | None = _f(None, "splits trained together as one batched model per task "
                                     "(default: 1 on CPU, all of a drug's splits with CUDA or "
                                     "--gpus-per-job)", "cv")
    # --- fit settings: FitConfig's fields (but latent), declared once in pertvae_core.config -------------
    FIT_SETTINGS: ClassVar[None]
    # --- execution ------------------------------------------------------------------------------------
    cluster: str = _f("local", "where tasks run: local (LocalCluster) | slurm (dask-jobqueue) | none "
                      "(in-process)", "cluster")
    workers: int | None = _f(None, "local worker processes (default: the CPUs this process may use, less "
                             "an affinity mask or a cgroup quota; one per GPU with CUDA, but for "
                             "--device cpu)", "cluster")
    retries: int = _f(2, "Dask retries per task after an exception", "cluster")
    performance_report: str | None = _f(None, "save Dask's performance report to this HTML file (a local "
                                              "or Slurm cluster; none with --cluster none)", "cluster")
    progress: bool = _f(True, "show a progress bar", "cluster")
    dashboard_address: str = _f(":8787", "Dask dashboard address (a free port is used if taken)", "cluster")
    worker_timeout: float = _f(300.0, "seconds to wait for a Dask worker (the first, or a new one when none "
                               "is left, e.g. Slurm jobs still pending) before stopping with exit 2; 0 waits "
                               "forever", "cluster")
    fit_timeout: float = _f(3600.0, "seconds one fit may take: a --method or --response-method plug-in's fit "
                            "and predict on one split (in its own process, killed after that), and a task's "
                            "N fits on a cluster (N times it, the worker restarted, on Slurm its job ended); "
                            "the fit fails with "
                            "'timed out after ...'. 0 = no limit", "cluster")
    dry_run: bool = _f(False, "print the grid (tasks, fits per model and latent size) and an estimate of its "
                       "CPU-hours and wall time from a short calibration on this machine (harness.cost), "
                       "then exit without starting a cluster or writing results", "cluster")
    # --- slurm ----------------------------------------------------------------------------------------
    jobs: int = _f(1, "Slurm: maximum jobs (adapt() between 0 and this)", "slurm")
    partition: str | None = _f(None, "Slurm: partition", "slurm")
    account: str | None = _f(None, "Slurm: account", "slurm")
    walltime: str = _f("01:00:00", "Slurm: job walltime HH:MM:SS (worker lifetime is set below it)", "slurm")
    memory: str = _f("4GB", "Slurm: memory per job", "slurm")
    cores_per_job: int = _f(1, "Slurm: cores per job (above 1 only with --gpus-per-job: a CPU job has one "
                               "core, one worker)", "slurm")
    gpus_per_job: int = _f(0, "Slurm: GPUs per job (adds --gres=gpu:N and the GPU worker resource; a job's "
                              "worker trains on its first GPU only, the others stay idle)", "slurm")
    job_extra: tuple[str, ...] = _f((), "Slurm: extra #SBATCH directives, e.g. --job-extra=--qos=short "
                                    "(repeatable)", "slurm")

    # ------------------------------------------------------------------------------------------------
    def __post_init__(self) -> None:
        # ``precision`` changes results: "auto" is resolved here, on the machine that makes the config, so the
        # science key, the store and every worker (which receive this config) hold what actually runs.
        _check_fit_setting("precision", self.precision)
        if self.precision == "auto":
            object.__setattr__(self, "precision", _auto_precision(self))
        # {model: sizes} or (model, sizes) pairs, kept as sorted pairs: hashable, picklable, one spelling.
        pairs = self.latents.items() if isinstance(self.latents, dict) else self.latents
        object.__setattr__(self, "latents", tuple(sorted((str(m), tuple(v)) for m, v in pairs)))

    def latents_for(self, model: str) -> tuple[int, ...]:
        """Latent sizes of ``model`` in this run: given, or its contender's default (harness.contenders)."""
        given = dict(self.latents)
        if model in given:
            return given[model]
        return REGISTRY[model].default_latents if model in REGISTRY else ()

    def __getattr__(self, name: str) -> Any:
        # cfg.latents_<model>: one model's sizes, as the flag, the TOML key and the preset key spell it.
        if name.startswith("latents_"):
            return self.latents_for(name[len("latents_"):])
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def out_dir(self) -> Path:
        """The output directory (``out`` or ``runs/<preset>``)."""
        return Path(self.out) if self.out else Path("runs") / self.preset

    def resolved_splits_per_task(self, cuda: bool | None = None) -> int:
        """``splits_per_task``, or its default: 1 on CPU, all of a drug's splits with a GPU.

        On a CPU batching paper-sized fits does not pay: a batched step shares only the ~2 ms per-step
        overhead, while its arithmetic, Adam and weight passes grow with S and the shared part runs until
        the batch's slowest split stops. benchmarks/test_splits_per_task.py, real early-stopping fits with
        compaction, CPU time per fit against S = 1: PertVAE 0.98x, 0.99x and 1.00x at S = 2, 5, 10 (load
        5.5-6.2); the pooled VAE 0.91x and 0.89x at S = 2, 4, measured while the load fell from 9 to 2 (S = 1
        first), and 0.90-0.96x per split at a fixed number of steps (load 1.5): within the noise of this
        shared machine. Remeasured at load 0.7-1.2 with bf16 and torch.compile: PertVAE 1.02x, 1.07x and
        1.14x at S = 2, 5, 10, the pooled VAE 1.04x and 1.13x at S = 2, 4. So the default stays 1."""
        if self.splits_per_task is not None:
            return self.splits_per_task
        if cuda is None:
            cuda = _cuda_available()
        n = self.n_repeats * self.n_folds
        return n if (cuda or self.gpus_per_job > 0) else 1

    def resolved_workers(self) -> int:
        """``workers``, or the CPUs this process may use (harness.cpus)."""
        return self.workers if self.workers is not None else usable_cpus()

    def fit_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for pertvae_core.config.FitConfig (without ``latent``)."""
        kw = {f.name: getattr(self, f.name) for f in fields(self) if f.metadata.get("group") == "fit"}
        kw["hidden"] = tuple(kw["hidden"])
        if kw["device"] == "auto":
            kw["device"] = "cuda" if _cuda_available() else "cpu"
        return kw


def _check_fit_setting(name: str, value: Any) -> None:
    """ConfigError when FitConfig's declared check of setting ``name`` refuses ``value``."""
    check = _FIT_CHECKS[name]
    try:
        check(value)
    except ValueError as e:
        raise ConfigError.bad_value(name, value, _why_with_hint(check, value, str(e))) from None


def _why_with_hint(check: Any, value: Any, why: str) -> str:
    """``why``, with the closest choice suggested for a setting of a fixed set."""
    return why + did_you_mean(str(value), check.choices) if isinstance(check, OneOf) else why


def _auto_precision(cfg: RunConfig) -> str:
    """"bf16" where the run's device computes bfloat16 products natively, else "fp32"
    (pertvae_core.precision): a GPU run (``device`` cuda, or auto with CUDA here) asks this machine's GPU
    (fp32 when it has none, e.g. a Slurm GPU run started from a login node); a CPU run asks this CPU."""
    from pertvae_core.precision import native_bf16

    return "bf16" if native_bf16(run_device_kind(cfg)) else "fp32"


def run_device_kind(cfg: RunConfig) -> str:
    """"cuda" for a GPU run (``device`` cuda, a Slurm job with GPUs, or auto with CUDA here), else "cpu"."""
    gpu = cfg.device == "cuda" or cfg.gpus_per_job > 0 or (cfg.device == "auto" and _cuda_available())
    return "cuda" if gpu else "cpu"


def _cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # pragma: no cover - torch is a dependency
        return False


# ---------------------------------------------------------------------------------------------------
# science key

# Execution details that do not change results (device, compile and splits_per_task only change float
# round-off).
_NOT_SCIENCE = {"preset", "data", "out", "device", "compile", "splits_per_task", "save_predictions"}


def science_key(cfg: RunConfig) -> dict[str, Any]:
    """What changes results: models, drugs, latents, CV splits, fit settings, seeds, the data's origin.

    The cube's content is checked separately by its fingerprint; ``data_seed`` only counts for a generated
    cube, and only the latents of the models that run count, and the response label rule only where a
    response model runs (so stores of the perturbation study made before it existed still resume).
    ``scoring`` is the version of how fits are trained and scored (pertvae_core.evaluation.SCORING), so a
    store from older code is not resumed into.
    """
    key: dict[str, Any] = {}
    for f in fields(cfg):
        group = f.metadata.get("group")
        if f.name in _NOT_SCIENCE or group in ("cluster", "slurm"):
            continue
        if f.name == "latents":
            continue
        v = getattr(cfg, f.name)
        key[f.name] = list(v) if isinstance(v, tuple) else v
    key["latents"] = {m: list(cfg.latents_for(m)) for m in cfg.models}
    key["data_source"] = "file" if cfg.data else f"synthetic:{cfg.preset}"
    key["scoring"] = SCORING
    if cfg.data:
        key.pop("data_seed")
    if not set(cfg.models) & set(RESPONSE_MODELS):
        key.pop("response_label"), key.pop("response_label_value")
    if not cfg.response_method:   # stores made before --response-method existed still resume
        key.pop("response_method")
    return key


def resume_flags(stored: Mapping[str, Any], cfg: RunConfig) -> list[str] | None:
    """The flags that give ``cfg`` the stored science key ``stored`` where they differ (e.g. a preset's
    default changed since the store was made, or ``--precision auto`` resolved otherwise on this machine:
    settings the user never typed, so a bare 'max_epochs: 200 (stored) vs 400 (now)' left no way on); None
    when some difference no flag undoes (another scoring version, or a value no flag can spell)."""
    now = science_key(cfg)
    flags: list[str] = []
    for k in sorted(set(stored) | set(now)):
        old = stored.get(k, _UNSET)
        if old == now.get(k, _UNSET):
            continue
        if k == "latents" and isinstance(old, dict):
            new = now.get(k, {})
            flags += [f"{_flag('latents_' + m)} {_words(v)}" for m, v in old.items()
                      if v and new.get(m) != v]
            continue
        f = _FIELDS.get(k)
        if f is None or old is _UNSET:
            return None
        if isinstance(old, bool):
            flags.append(_flag(k) if old else _flag("no_" + k))
        elif old is None and "None" in str(f.type):
            flags.append(f"{_flag(k)} none")
        elif isinstance(old, list) and old:
            flags.append(f"{_flag(k)} {_words(old)}")
        elif isinstance(old, str | int | float) and not isinstance(old, list):
            flags.append(f"{_flag(k)} {_words([old])}")
        else:
            return None
    return flags


_UNSET = object()


def _words(values: Sequence[Any]) -> str:
    """``values`` as shell words (a drug name with a space quoted)."""
    return " ".join(shlex.quote(str(v)) for v in values)


def execution_settings(cfg: RunConfig) -> dict[str, Any]:
    """The settings that do not change results (cluster, slurm, device, paths)."""
    sk = set(science_key(cfg))
    out: dict[str, Any] = {}
    for f in fields(cfg):
        if f.name in sk or f.name == "latents":
            continue
        v = getattr(cfg, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


# ---------------------------------------------------------------------------------------------------
# parsing and validation

_FIELDS = {f.name: f for f in fields(RunConfig)}
_FIT_CHECKS = {f.name: f.metadata["check"] for f in fit_settings()}
_TABLES = {"fit", "slurm", "latents", "cluster", "cv", "run"}


def _base_type(f: dataclasses.Field) -> str:
    t = str(f.type)
    for name in ("tuple[str", "tuple[int", "bool", "int", "float", "str"):
        if t.startswith(name):
            return name
    raise TypeError(f"unsupported field type {t}")  # pragma: no cover


# Paths where an empty value means a mistake, not "unset": `--data "$CUBE"` with CUBE unset ran the whole
# study on the preset's synthetic cube, exit 0.
_PATHS = ("data", "out", "performance_report")


def _coerce(name: str, value: Any, source: str, kind: str | None = None) -> Any:
    """Convert a TOML/preset/CLI value to the field's type (or ``kind``); ConfigError naming source, field
    and value."""
    f = _FIELDS.get(name)
    kind = kind or _base_type(f)
    optional = f is not None and "None" in str(f.type)
    empty = ("none",) if kind.startswith("tuple") else ("none", "")  # an empty list is not "unset"
    if optional and isinstance(value, list | tuple) and len(value) == 1 and isinstance(value[0], str):
        value = value[0]   # `--drugs none` arrives as ["none"]: unset, as in TOML (drvae-demo's drugs: all)
    if name in _PATHS and isinstance(value, str) and not value.strip():
        raise ConfigError(f"{source}: field '{name}' is an empty path (an unset shell variable?); give a "
                          f"path, or leave it out (or none) for the default")
    if value is None or (optional and isinstance(value, str) and value.strip().lower() in empty):
        if optional:
            return None
        raise ConfigError(f"{source}: field '{name}' must not be empty")
    try:
        if kind.startswith("tuple"):
            items = [value] if isinstance(value, str | int | float) else list(value)
            flat: list[str] = []
            for it in items:
                if isinstance(it, str) and name == "drugs":   # split by harness.prepare.select_drugs, which
                    if it.replace(",", "").strip():             # knows the cube's names ('2,3-DCPE')
                        flat.append(it)
                elif isinstance(it, str) and name != "job_extra":
                    flat.extend(s for s in it.split(",") if s.strip() != "")
                else:
                    flat.append(it)
            if not flat and name != "job_extra":
                raise ConfigError(f"{source}: {value!r} names no {name}; give at least one, separated by "
                                  f"commas or spaces (e.g. a,b c)")
            if kind == "tuple[int":
                out = []
                for it in flat:
                    if isinstance(it, bool) or (isinstance(it, float) and not float(it).is_integer()):
                        raise ValueError(it)
                    out.append(int(it))
                return tuple(out)
            if name in ("job_extra", "drugs"):
                return tuple(str(it) for it in flat)
            return tuple(str(it).strip() for it in flat)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            s = str(value).strip().lower()
            if s in ("1", "true", "yes", "on"):
                return True
            if s in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        return str(value)
    except ConfigError:
        raise
    except (TypeError, ValueError):
        want = {"tuple[int": "a list of integers", "tuple[str": "a list of strings", "bool": "true/false",
                "int": "an integer", "float": "a number", "str": "a string"}[kind]
        raise ConfigError(f"{source}: field '{name}' must be {want}, got {value!r}") from None


def _latents_model(key: str, source: str) -> str:
    """The model of a ``latents_<model>`` key; ConfigError when no contender of that name is registered."""
    model = key[len("latents_"):]
    if model not in REGISTRY:
        why = f" ({LOAD_ERRORS[model]})" if model in LOAD_ERRORS else ""
        raise ConfigError(f"{source}: unknown model {model!r} in {key!r}{why}"
                          f"{did_you_mean(model, list(REGISTRY))} (known: {', '.join(REGISTRY)})")
    return model


def _is_key(key: str) -> bool:
    """Whether ``key`` names a setting: a field or ``latents_<model>``."""
    return key in _FIELDS or key.startswith("latents_")


def _set(values: dict[str, Any], key: str, value: Any, source: str) -> None:
    """``values[key]`` = ``value`` converted to the field's type; ``latents_<model>`` and ``latents``
    ({model: sizes}) replace those models' sizes in ``values["latents"]`` and keep the others'."""
    if key != "latents" and not key.startswith("latents_"):
        values[key] = _coerce(key, value, source)
        return
    if key == "latents" and not isinstance(value, dict):
        raise ConfigError(f"{source}: field 'latents' must be a table {{model = [sizes]}}, got {value!r}")
    given = value if key == "latents" else {key[len("latents_"):]: value}
    merged = dict(values.get("latents", {}))
    for model, sizes in given.items():
        name = f"latents_{model}"
        merged[_latents_model(name, source)] = _coerce(name, sizes, source, kind="tuple[int")
    values["latents"] = merged


def _table_of(name: str) -> str:
    """The TOML table a setting may be given in (besides the top level): its field's group
    (``latents_<model>``: [run], where ``latents`` is; [latents] takes the model's name alone)."""
    return "run" if name.startswith("latents") else _FIELDS[name].metadata["group"]


def _flatten_toml(data: dict[str, Any], path: str) -> dict[str, Any]:
    """{setting: value} of a parsed TOML file. A key in another setting's table (``[slurm] max_epochs``) or
    given twice (at the top level and in its table) is refused: either was taken silently, the second
    spelling winning, so that a file read as saying one thing ran another."""
    out: dict[str, Any] = {}
    where: dict[str, str] = {}
    for k, v in data.items():
        if isinstance(v, dict):
            if k not in _TABLES:
                raise ConfigError(f"{path}: unknown table [{k}]{did_you_mean(k, sorted(_TABLES))} "
                                  f"(known: {', '.join(sorted(_TABLES))})")
            items = [(f"latents_{k2}" if k == "latents" else k2, k2, v2) for k2, v2 in v.items()]
            place = f"in [{k}]"
        else:
            items, place = [(k, k, v)], "at the top level"
        for name, key, value in items:
            if not _is_key(name) or (k == "latents" and key not in REGISTRY):
                if place == "at the top level":
                    raise ConfigError(f"{path}: unknown key '{k}'{did_you_mean(k, list(_FIELDS))} "
                                      f"(keys are the flags' names with _, see pertvae-bench run --help)")
                known = list(REGISTRY) if k == "latents" else list(_FIELDS)
                raise ConfigError(f"{path}: unknown key '{key}' in [{k}]{did_you_mean(key, known)}")
            if place != "at the top level" and k != "latents" and _table_of(name) != k:
                raise ConfigError(f"{path}: key '{key}' is not a setting of [{k}]; give it in "
                                  f"[{_table_of(name)}] or at the top level")
            if name in out:
                raise ConfigError(f"{path}: '{name}' is given twice ({where[name]} and {place}); "
                                  f"keep one")
            out[name], where[name] = value, place
    return out


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file into {field: value}; ConfigError if missing, malformed or unknown key."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"--config {p}: is a directory; give a TOML file (e.g. {p / 'my.toml'})")
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        data = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from None
    return _flatten_toml(data, str(p))


def validate(cfg: RunConfig) -> RunConfig:
    """Check values; ConfigError naming the field and value."""
    def bad(name: str, why: str) -> ConfigError:
        return ConfigError.bad_value(name, getattr(cfg, name), why)

    for check in (_check_int64, _check_models, _check_cv_and_fit, _check_execution):
        check(cfg, bad)
    return cfg


def _check_int64(cfg: RunConfig, bad: Callable[[str, str], ConfigError]) -> None:
    """Every integer setting (and latent size) below 2**63: the store's coordinates and torch's sizes are
    int64, so a larger one (a typo such as --latents-pca 99999999999999999999) crashed the store's creation
    with an OverflowError traceback or failed every fit with one."""
    for f in fields(cfg):
        if f.name == "latents":
            named = [(f"latents_{m}", sizes) for m, sizes in cfg.latents]
        elif _base_type(f) in ("int", "tuple[int"):
            v = getattr(cfg, f.name)
            named = [(f.name, v if isinstance(v, tuple) else (v,))]
        else:
            continue
        for name, values in named:
            if any(isinstance(x, int) and x >= 2**63 for x in values):
                raise ConfigError.bad_value(name, getattr(cfg, name), "too large: must be below 2**63", None)


def _build(values: dict[str, Any], sources: dict[str, str]) -> RunConfig:
    """The validated RunConfig of ``values``; a refused setting's error names the flag or file it came from
    (``sources``: setting -> source)."""
    try:
        return validate(RunConfig(**values))
    except ConfigError as e:
        source = sources.get(e.setting or "")
        if source is None:
            raise
        raise ConfigError.bad_value(e.setting, e.value, e.why, source) from None


def _check_models(cfg: RunConfig, bad: Callable[[str, str], ConfigError]) -> None:
    """The preset, the models (registered contenders), their latent sizes and the run's own methods."""
    if cfg.preset not in PRESETS:
        raise bad("preset", f"unknown preset (known: {', '.join(PRESETS)})")
    if not cfg.models:
        raise bad("models", "give at least one model")
    known = list(REGISTRY)
    for m in cfg.models:
        if m not in REGISTRY:
            why = f" ({LOAD_ERRORS[m]})" if m in LOAD_ERRORS else ""
            raise bad("models", f"unknown model {m!r}{why}{did_you_mean(m, known)} "
                                f"(known: {', '.join(known)})")
    host = user_method_host()
    if cfg.method and (host is None or host.name not in cfg.models):
        where = (f"the {host.name!r} model's tasks; add {host.name} to --models" if host
                 else "no model's tasks")
        raise bad("method", f"your own methods run in {where}")
    if len(set(cfg.method)) != len(cfg.method):
        raise bad("method", "duplicate method")
    hosts = {c.name: c.response_head for c in REGISTRY.values() if c.response_head}
    if cfg.response_method and not set(hosts) & set(cfg.models):
        where = " or ".join(f"{name} ({head} head)" for name, head in hosts.items())
        raise bad("response_method", f"your own response methods run in the tasks of {where}; add the model "
                                     f"of its head to --models")
    if len(set(cfg.response_method)) != len(cfg.response_method):
        raise bad("response_method", "duplicate response method")
    if cfg.include_test_singletons and set(cfg.models) <= set(RESPONSE_MODELS):
        why = ("the drug-response models never train on a test cell line (their test set is those profiles), "
               "so it changes nothing here: leave it out or add a perturbation model to --models")
        raise bad("include_test_singletons", why)
    if cfg.save_predictions and set(cfg.models) <= set(RESPONSE_MODELS):
        raise bad("save_predictions", "it writes the perturbation models' predicted x2; the drug-response "
                                      "models' predictions are not saved (response.csv has their scores): "
                                      "leave it out or add a perturbation model to --models")
    if len(set(cfg.models)) != len(cfg.models):
        raise bad("models", "duplicate model")
    for m in cfg.models:
        lat = cfg.latents_for(m)
        if not lat:
            raise bad(f"latents_{m}", f"model {m} is selected but has no latent sizes")
        if any(x < 1 for x in lat):
            raise bad(f"latents_{m}", "latent sizes must be >= 1")
        if len(set(lat)) != len(lat):
            raise bad(f"latents_{m}", "duplicate latent size")


def _check_cv_and_fit(cfg: RunConfig, bad: Callable[[str, str], ConfigError]) -> None:
    """The drugs, the cross-validation, the fit settings and the numeric bounds checked beside them (seeds,
    retries, timeouts)."""
    if cfg.drugs is not None:
        if not cfg.drugs:
            raise bad("drugs", "give at least one drug (or leave unset for all)")
        if len(set(cfg.drugs)) != len(cfg.drugs):
            raise bad("drugs", "duplicate drug")
    if cfg.n_repeats < 1:
        raise bad("n_repeats", "must be >= 1")
    if cfg.n_folds < 2:
        raise bad("n_folds", "must be >= 2")
    if not 0.0 < cfg.val_fraction < 1.0:
        raise bad("val_fraction", "must be in (0, 1)")
    if cfg.splits_per_task is not None and cfg.splits_per_task < 1:
        raise bad("splits_per_task", "must be >= 1")
    if cfg.device not in DEVICES:
        raise bad("device", f"must be one of {', '.join(DEVICES)}")
    _check_fit(cfg, bad)
    for name in ("retries", "gpus_per_job", "data_seed"):
        if getattr(cfg, name) < 0:
            raise bad(name, "must be >= 0")
    if not math.isfinite(cfg.val_fraction):
        raise bad("val_fraction", "must be a finite number")
    if not (math.isfinite(cfg.worker_timeout) and cfg.worker_timeout >= 0):
        raise bad("worker_timeout", "must be a finite number of seconds >= 0 (0 waits forever)")
    if not (math.isfinite(cfg.fit_timeout) and cfg.fit_timeout >= 0):
        raise bad("fit_timeout", "must be a finite number of seconds >= 0 (0 = no limit)")
    for name in ("base_seed", "data_seed"):
        if not 0 <= getattr(cfg, name) < 2**63:
            raise bad(name, "must be in [0, 2**63)")
    if cfg.figure2_scope not in FIGURE2_SCOPES:
        raise bad("figure2_scope", f"must be one of {', '.join(FIGURE2_SCOPES)}")
    _check_label_rule(cfg, bad)


def _check_label_rule(cfg: RunConfig, bad: Callable[[str, str], ConfigError]) -> None:
    """The response label rule, by pertvae_core's LabelRule: a value only where the rule takes one."""
    if cfg.response_label not in LABEL_RULES:
        raise bad("response_label", f"must be one of {', '.join(LABEL_RULES)}")
    if cfg.response_label == "waterfall" and cfg.response_label_value is not None:
        raise bad("response_label_value", "the waterfall rule takes no value (give --response-label "
                                          "quantile or fixed)")
    try:
        label_rule(cfg)
    except ValueError as e:
        raise bad("response_label_value", str(e).split(": ", 1)[-1]) from None


def _check_fit(cfg: RunConfig, bad: Callable[[str, str], ConfigError]) -> None:
    """The fit settings, by FitConfig's own check: what a fit would refuse on the workers is refused here.
    The run's device "auto" becomes cpu or cuda on each worker, both valid devices."""
    settings = {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.metadata.get("group") == "fit"}
    if settings["device"] == "auto":
        settings["device"] = "cpu"
    try:
        FitConfig(latent=1, **settings)
    except FitSettingError as e:
        raise bad(e.setting, _why_with_hint(_FIT_CHECKS[e.setting], e.value, e.why)) from None


def _check_execution(cfg: RunConfig, bad: Callable[[str, str], ConfigError]) -> None:
    """Where and how the tasks run (cluster, Slurm, dashboard)."""
    if cfg.cluster not in CLUSTERS:
        raise bad("cluster", f"must be one of {', '.join(CLUSTERS)}")
    if cfg.workers is not None and cfg.workers < 1:
        raise bad("workers", "must be >= 1")
    if cfg.jobs < 1:
        raise bad("jobs", "must be >= 1")
    if cfg.cores_per_job < 1:
        raise bad("cores_per_job", "must be >= 1")
    if cfg.cluster == "slurm" and cfg.gpus_per_job == 0 and cfg.cores_per_job > 1:
        raise bad("cores_per_job", "more than 1 without GPUs is not supported: a job runs one worker per "
                  f"core, and dask-jobqueue cancels the whole job to retire one idle worker, its busy ones' "
                  f"tasks with it (14 jobs for 3 tasks; a 12 s task unfinished after 120 s); give --jobs "
                  f"{cfg.jobs * cfg.cores_per_job} --cores-per-job 1 for as many cores")
    if cfg.gpus_per_job > 0 and cfg.device == "cpu":   # run_device_kind and the cost model take it for GPUs
        raise bad("gpus_per_job", "the jobs would hold GPUs that their workers never use (--device cpu "
                  "trains every fit on the CPU); give --gpus-per-job 0 for a CPU run, or --device auto or "
                  "cuda")
    parts = cfg.walltime.split(":")
    if not (1 <= len(parts) <= 3 and all(p.isdigit() for p in parts)) and not _is_dhms(cfg.walltime):
        raise bad("walltime", "use HH:MM:SS (or D-HH:MM:SS)")
    if walltime_seconds(cfg.walltime) <= 0:  # workers would retire every 30 s (harness.cluster)
        raise bad("walltime", "must be longer than 0 (e.g. 01:00:00)")
    if _memory_bytes(cfg.memory) is None:
        raise bad("memory", "use a size such as 4GB, 500MB or 16GiB")
    _, colon, port = cfg.dashboard_address.rpartition(":")
    if not colon or not port.isdigit() or int(port) > 65535:  # was refused only when the cluster started
        raise bad("dashboard_address", "use HOST:PORT or :PORT (port 0 to 65535; 0 picks a free one)")

def _memory_bytes(memory: str) -> int | None:
    """Bytes of a Slurm ``--memory`` value as dask-jobqueue parses it, None when it cannot or it is not
    positive (dask-jobqueue would refuse it only when the cluster starts)."""
    from dask.utils import parse_bytes

    try:
        n = parse_bytes(memory)
    except (ValueError, TypeError):
        return None
    return n if n > 0 else None


def _is_dhms(s: str) -> bool:
    if "-" not in s:
        return False
    d, rest = s.split("-", 1)
    return d.isdigit() and all(p.isdigit() for p in rest.split(":")) and 1 <= len(rest.split(":")) <= 3


def walltime_seconds(walltime: str) -> int:
    """Seconds in a Slurm walltime string ([D-]HH:MM:SS, MM:SS or MM)."""
    days = 0
    if "-" in walltime:
        d, walltime = walltime.split("-", 1)
        days = int(d)
    parts = [int(p) for p in walltime.split(":")]
    if len(parts) == 1:
        h, m, s = 0, parts[0], 0
    elif len(parts) == 2:
        h, m, s = 0, parts[0], parts[1]
    else:
        h, m, s = parts
    return days * 86400 + h * 3600 + m * 60 + s


def make_config(preset: str = "demo", **overrides: Any) -> RunConfig:
    """Build a validated RunConfig from a preset and field overrides (for tests and scripts)."""
    if preset not in PRESETS:
        raise ConfigError(f"field 'preset' = {preset!r}: unknown preset (known: {', '.join(PRESETS)})")
    values: dict[str, Any] = {"preset": preset}
    for k, v in PRESETS[preset].items():
        _set(values, k, v, f"preset {preset}")
    for k, v in overrides.items():
        if not _is_key(k):
            raise ConfigError(f"unknown field '{k}'{did_you_mean(k, list(_FIELDS))}")
        _set(values, k, v, "override")
    return _build(values, {})


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


# Fields whose values come from a fixed set: argparse choices, each value checked with a suggestion. The
# models are the registered contenders when the parser is built (:func:`build_parser`).
# The fit settings' sets are FitConfig's declared choices.
ENUMS: dict[str, tuple[str, ...]] = {
    "preset": tuple(PRESETS), "models": BUILT_IN, "cluster": CLUSTERS, "figure2_scope": FIGURE2_SCOPES,
    "response_label": LABEL_RULES,
    **{name: check.choices for name, check in _FIT_CHECKS.items() if isinstance(check, OneOf)},
    "device": DEVICES}


class _Choices(tuple):
    """argparse choices that also accept a comma-separated list of them (``--models pca,vae``)."""

    def __contains__(self, value: object) -> bool:
        parts = [p.strip() for p in str(value).split(",") if p.strip()]
        return bool(parts) and all(tuple.__contains__(self, p) for p in parts)


def _choice(options: tuple[str, ...], why: dict[str, str] | None = None) -> Any:
    """argparse ``type`` for an enumerated flag: every (comma-separated) value is one of ``options``
    (``why``: value -> why it is not, e.g. a contender whose entry point failed to load)."""
    def check(value: str) -> str:
        for part in (p.strip() for p in value.split(",")):
            if part and part not in options:
                hint = f" ({why[part]})" if why and part in why else did_you_mean(part, options)
                raise argparse.ArgumentTypeError(
                    f"invalid choice {part!r}{hint} (choose from {', '.join(options)})")
        return value
    return check


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise ConfigError (one ``error:`` line, exit 2 in harness.run.main) and
    whose unknown flags get the closest known flag suggested."""

    def error(self, message: str) -> Any:
        raise ConfigError(message)

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]
        ns, extra = self.parse_known_args(args, namespace)
        if extra:
            flags = [s for a in self._actions for s in a.option_strings if s.startswith("--")]
            unknown = next((e for e in extra if e.startswith("-")), None)
            if unknown is None:
                raise ConfigError(f"unexpected argument {extra[0]!r} (every setting is a flag, e.g. "
                                  f"--drugs {extra[0]}; see --help)")
            name = unknown.split("=", 1)[0]
            raise ConfigError(f"unknown flag {name}{did_you_mean(name, flags)} (see --help for all flags)")
        return ns


def _show(v: Any) -> str:
    if isinstance(v, tuple):
        return " ".join(str(x) for x in v) if v else "(none)"
    return str(v)


def _default_text(name: str, default: Any, help_: str = "") -> str:
    """The flag's default for the help's brackets: each preset's that sets it, then what every other preset
    gets ("otherwise: ..."); a default of None that the help states in words ("default: ...") is not
    repeated as "None" ("" when no preset sets the field)."""
    if name == "preset":
        return "default: demo"
    in_words = default is None and "default:" in help_
    fallback = "as above" if in_words else _show(default)
    per = {preset: vals[name] for preset, vals in PRESETS.items() if name in vals}
    if not per:
        return "" if in_words else f"default: {fallback}"
    text = ", ".join(f"{preset}: {_show(v)}" for preset, v in per.items())
    return text if len(per) == len(PRESETS) else f"{text}, otherwise: {fallback}"


def _help(text: str, default: str) -> str:
    """``text`` and its ``[default]`` (if any), ``%`` escaped for argparse."""
    return (text + (f" [{default}]" if default else "")).replace("%", "%%")


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m harness.run`` argument parser; every RunConfig field is a flag."""
    p = _Parser(
        prog="pertvae-bench run",
        allow_abbrev=False,
        description="Run the PertVAE benchmark grid (model x drug x latent x CV split) on a local or Slurm "
                    "Dask cluster, stream results into OUT/results.zarr (resumable), then write Table 1 and "
                    "the figures. Precedence: preset < --config TOML < flags.",
        epilog="exit status: 0 = every fit done and the report written (with --dry-run: the estimate "
               "printed), 1 = report failed, 2 = bad input (one error: line), 3 = finished but some fits "
               "failed (rerun to retry them), 4 = --dry-run's calibration disturbed by a busy machine (no "
               "estimate printed; rerun it later), 130 = interrupted (Ctrl-C), 143 = terminated (SIGTERM); "
               "rerun the same command to resume.",
        argument_default=argparse.SUPPRESS,
    )
    p.add_argument("--config", metavar="FILE.toml", help="TOML file with field = value overrides")
    groups = {
        "run": p.add_argument_group("what to run"),
        "cv": p.add_argument_group("cross-validation"),
        "fit": p.add_argument_group("fit settings (pertvae_core FitConfig)"),
        "cluster": p.add_argument_group("execution"),
        "slurm": p.add_argument_group("slurm (--cluster slurm)"),
    }
    enums = {**ENUMS, "models": tuple(REGISTRY)}
    for f in fields(RunConfig):
        if f.name == "latents":
            for c in REGISTRY.values():
                default = _default_text(f"latents_{c.name}", c.default_latents)
                help_ = _help(f"latent sizes for {c.legend or c.name}", default)
                groups["run"].add_argument(_flag(f"latents_{c.name}"), dest=f"latents_{c.name}", nargs="+",
                                           metavar="X", help=help_)
            continue
        g = groups[f.metadata["group"]]
        kind = _base_type(f)
        help_ = _help(f.metadata["help"], _default_text(f.name, f.default, f.metadata["help"]))
        if kind == "bool":
            g.add_argument(_flag(f.name), dest=f.name, action=argparse.BooleanOptionalAction, help=help_)
        elif f.name == "job_extra":
            g.add_argument(_flag(f.name), dest=f.name, action="append", metavar="DIRECTIVE", help=help_)
        elif f.name in enums:
            options = enums[f.name]
            many = kind.startswith("tuple")
            why = LOAD_ERRORS if f.name == "models" else None
            g.add_argument(_flag(f.name), dest=f.name, nargs="+" if many else None, choices=_Choices(options),
                           type=_choice(options, why), metavar=f.name.upper().rstrip("S") if many else None,
                           help=help_)
        elif f.name in ("method", "response_method"):   # `--method A --method B` runs both, not B alone
            g.add_argument(_flag(f.name), dest=f.name, nargs="+", action="extend", metavar="X", help=help_)
        elif kind.startswith("tuple"):
            g.add_argument(_flag(f.name), dest=f.name, nargs="+", metavar="X", help=help_)
        else:
            g.add_argument(_flag(f.name), dest=f.name, metavar=f.name.upper(), help=help_)
    return p


def _preset(value: Any, source: str | None) -> str:
    """``value`` as a preset's name; ConfigError naming ``source`` (the flag or TOML file) if it is none."""
    preset = _coerce("preset", value, source or "preset")
    if preset not in PRESETS:
        why = f"unknown preset{did_you_mean(preset, list(PRESETS))} (known: {', '.join(PRESETS)})"
        raise ConfigError.bad_value("preset", preset, why, source)
    return preset


def parse_args(argv: Sequence[str] | None = None) -> RunConfig:
    """preset (``--preset`` / TOML ``preset`` / demo) < TOML file < CLI flags -> validated RunConfig."""
    ns = vars(build_parser().parse_args(argv))
    cfg_file = ns.pop("config", None)
    file_values = load_toml(cfg_file) if cfg_file else {}
    source = "--preset" if "preset" in ns else str(cfg_file) if "preset" in file_values else None
    preset = _preset(ns.get("preset", file_values.get("preset", "demo")), source)
    values: dict[str, Any] = {"preset": preset}
    for k, v in PRESETS[preset].items():
        _set(values, k, v, f"preset {preset}")
    sources: dict[str, str] = {}
    for k, v in file_values.items():
        _set(values, k, v, str(cfg_file))
        sources[k] = str(cfg_file)
    for k, v in ns.items():
        _set(values, k, v, _flag(k))
        sources[k] = _flag(k)
    values["preset"] = preset
    return _build(values, sources)
