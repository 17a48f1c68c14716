"""A run's inputs, checked before any work: the output paths, the cube (given, or the preset's synthetic one
generated once into OUT), the drugs and the methods. Used by the run (harness.run) and the dry run
(harness.cost), so neither imports the other.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from datasets.argparsing import closest
from datasets.splits import MIN_CELL_LINES
from harness.config import RunConfig
from harness.contenders import REGISTRY, RESPONSE_MODELS, built_in_methods
from harness.grid import POOLED
from harness.plugin_import import METHOD, RESPONSE, Plugin, plugin, probe, remember
from harness.presets import synthetic_preset

# The preset's synthetic cube, generated into OUT once (and reused on resume), and the record of how.
GENERATED_CUBE = "data.zarr"
GENERATED_MARKER = "data.json"


class RunError(ValueError):
    """Bad input found while preparing the run (message says what to do)."""


def _existing_file_at_or_above(path: Path) -> Path | None:
    """The first existing path from ``path`` upwards, if it is not a directory."""
    for p in (path, *path.parents):
        if p.exists() or p.is_symlink():
            return None if p.is_dir() else p
    return None


def _dangling_link(path: Path) -> Path | None:
    """The first symbolic link from ``path`` upwards whose target does not exist, if any."""
    for p in (path, *path.parents):
        if p.is_symlink() and not p.exists():
            return p
        if p.exists():
            return None
    return None


def _cube_at_or_above(path: Path) -> Path | None:
    """The cube store (datasets.cube.is_cube_store) at ``path`` or above it, if any."""
    from datasets.cube import is_cube_store

    return next((p for p in (path, *path.parents) if is_cube_store(p)), None)


def _result_store_at_or_above(path: Path) -> Path | None:
    """A run's result store (a ``results.zarr`` zarr group) at ``path`` or above it, if any."""
    from harness.store import STORE_NAME

    return next((p for p in (path, *path.parents) if p.name == STORE_NAME and (p / "zarr.json").is_file()),
                None)


def check_device(cfg: RunConfig) -> None:
    """RunError when the run asks for CUDA (``--device cuda``) and its workers run on this machine (a local
    cluster, or in process), which has no CUDA GPU: every fit would fall back to the CPU
    (pertvae_core.train.resolve_device, a warning in run.log) under a record of device "cuda", with the
    GPU's default batching. Checked before any work."""
    if cfg.device != "cuda" or cfg.cluster not in ("local", "none"):
        return
    import torch

    if torch.cuda.is_available():
        return
    cuda = torch.version.cuda
    built = f"built for CUDA {cuda}, none visible" if cuda else "built without CUDA"
    raise RunError(f"--device cuda: this machine has no CUDA GPU (torch {torch.__version__}, {built}) and "
                   f"the run's workers run here ('--cluster {cfg.cluster}'): they would train on the CPU; "
                   f"give --device cpu (or auto: cuda where there is a GPU), or run where the GPU is")


def check_paths(cfg: RunConfig) -> None:
    """RunError unless ``--out`` can be a directory and ``--performance-report`` a file (checked before any
    work, so that a typo does not cost a cluster start or a finished grid)."""
    out = cfg.out_dir
    for flag, path in (("--out", out), ("--performance-report", cfg.performance_report)):
        link = _dangling_link(Path(path)) if path else None
        if link is not None:
            raise RunError(f"{flag} {path}: {link} is a symbolic link to {os.readlink(link)}, which does not "
                           f"exist; create it, fix the link or give another {flag}")
    blocker = _existing_file_at_or_above(out)
    if blocker == out:
        raise RunError(f"--out {out}: is a file, not a directory; give a directory (created if absent)")
    if blocker is not None:
        raise RunError(f"--out {out}: {blocker} is a file, so no directory can be created under it; "
                       f"give another --out")
    # a run's files in a cube make it no cube to info (a run there) nor to build/synth --overwrite (refused)
    cube = _cube_at_or_above(Path(out).absolute())
    if cube is not None:
        where = "is" if cube == Path(out).absolute() else "is inside"
        raise RunError(f"--out {out}: {where} the cube {cube}; a run's files would mix with the cube's: give "
                       f"a directory outside it")
    # a run's cube, store, tables and lock among a store's variables (run --out OUT/results.zarr)
    store = _result_store_at_or_above(Path(out).absolute())
    if store is not None:
        where = "is" if store == Path(out).absolute() else "is inside"
        raise RunError(f"--out {out}: {where} the result store {store}; a run's files would mix with its "
                       f"results: give its run's directory {store.parent} to resume that run, or another "
                       f"directory")
    if cfg.performance_report:
        rep = Path(cfg.performance_report)
        if rep.is_dir():
            raise RunError(f"--performance-report {rep}: is a directory; give an HTML file name")
        blocker = _existing_file_at_or_above(rep.parent)
        if blocker is not None:
            raise RunError(f"--performance-report {rep}: {blocker} is a file, so the report cannot be "
                           f"written under it; give another path")


def synthetic_spec(cfg: RunConfig) -> dict[str, Any]:
    """How the run's synthetic cube is generated (recorded in OUT/data.json beside it)."""
    return {"generator": "datasets.synthetic.generate", "preset": cfg.preset, "seed": cfg.data_seed}


def generated_spec(out: Path) -> dict[str, Any] | None:
    """How OUT's generated cube was made (OUT/data.json), None without a record."""
    marker = out / GENERATED_MARKER
    return json.loads(marker.read_text()) if marker.exists() else None


def given_cube(cfg: RunConfig) -> Path:
    """``--data`` as a path; RunError when there is no such cube."""
    p = Path(str(cfg.data))
    if not p.exists():
        raise RunError(f"--data {p}: no such cube (build one with pertvae-bench build, or leave "
                       f"--data unset to use the embedded synthetic cube)")
    return p


def prepare_cube(cfg: RunConfig, out: Path) -> Path:
    """The cube path: ``cfg.data``, or the preset's synthetic cube generated once into OUT/data.zarr."""
    if cfg.data:
        return given_cube(cfg)
    from datasets.cube import write_cube
    from datasets.synthetic import generate

    path = out / GENERATED_CUBE
    want = synthetic_spec(cfg)
    if path.exists():
        have = generated_spec(out)
        if have is not None and have != want:
            raise RunError(f"{path} was generated with {have}, this run asks for {want}; use another --out "
                           f"or delete {path}")
        return path
    # The datasets.synthetic preset, not the run's: drvae-demo borrows 'demo' (pertvae-bench synth --preset X
    # makes the same cube; there is no synthetic 'drvae-demo').
    name = synthetic_preset(cfg.preset)
    whose = "" if name == cfg.preset else f", for the {cfg.preset} preset"
    print(f"generating the synthetic '{name}' cube (seed {cfg.data_seed}{whose}) into {path}", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    write_cube(generate(preset=name, seed=cfg.data_seed), path)
    (out / GENERATED_MARKER).write_text(json.dumps(want))
    return path


def select_drugs(cfg: RunConfig, available: Sequence[str], cube_path: Path) -> list[str]:
    """``cfg.drugs`` resolved against the cube's drug names (in the given order; a value that is no cube
    drug's name is split at its commas; case, punctuation and the synonyms of datasets.studies are accepted,
    and each non-exact match is reported), or all of the cube's drugs."""
    if POOLED in available and cfg.figure2_scope == "pooled":
        raise RunError(f"cube {cube_path} has a drug named {POOLED!r}, the name of Figure 2's pooled fits; "
                       f"rename it in the cube or run with --figure2-scope per-drug")
    if cfg.drugs is None:
        return list(available)
    from datasets.studies import StudyError, resolve_drugs, split_drug_values

    requested = split_drug_values(cfg.drugs, available)
    if len(set(requested)) != len(requested):
        twice = sorted({d for d in requested if requested.count(d) > 1})
        raise RunError(f"--drugs: {', '.join(map(repr, twice))} given twice; give each drug once")
    try:
        matches = resolve_drugs(requested, available)
    except StudyError as e:
        raise RunError(f"--drugs: {e}") from None
    unknown = [m.requested for m in matches if m.via == "not resolved"]
    if unknown:
        raise RunError(f"--drugs: {', '.join(unknown)} not in cube {cube_path}{_closest(unknown, available)} "
                       f"(it has: {', '.join(available)})")
    for m in matches:
        if m.via != "pert_iname":
            via = m.via.replace("pert_iname", "name")
            print(f"--drugs: {m.requested!r} is the cube's {m.pert_iname!r} ({via})", flush=True)
    return [m.pert_iname for m in matches]


def _closest(unknown: Sequence[str], available: Sequence[str]) -> str:
    """``"; did you mean X?"`` naming the cube's closest drug to each of ``unknown`` (difflib, ignoring case;
    ``X (for Y)`` when several are unknown), or ``""`` when none is close."""
    named = [(u, c) for u in unknown if (c := closest(u, available, ignore_case=True))]
    if not named:
        return ""
    if len(unknown) == 1:
        return f"; did you mean {named[0][1]}?"
    return "; did you mean " + ", ".join(f"{a} (for {u})" for u, a in named) + "?"


def unsplittable(bad: Sequence[tuple[str, str, int]], where: str = "") -> str:
    """One error line for the drugs (name, datasets.splits' reason, paired cell lines) that cannot be split
    for the run's folds: the first's reason (without its own "drug 'X': "), the others by name, and what
    splits them all, so that one rerun can: a --n-folds that fits them (their fewest cell lines, when that
    is MIN_CELL_LINES or more: then every drug keeps one cell line to test and two to train and validate),
    else dropping them (advice to lower --n-folds for a drug of 2 cell lines sent the user to a fold count
    that does not exist)."""
    first, why, _ = bad[0]
    why = why.removeprefix(f"drug {first!r}: ")
    others = ", ".join(d for d, _, _ in bad[1:])
    more = f"; {len(bad) - 1} more cannot be split either: {others}" if others else ""
    them = "them" if others else "it"
    fewest = min(n for _, _, n in bad)
    if fewest >= MIN_CELL_LINES:
        return f"drug {first!r}{where}: {why}{more} (drop {them} with --drugs or set --n-folds to {fewest})"
    lack = f", which {', '.join(d for d, _, n in bad if n < MIN_CELL_LINES)} lack" if others else ""
    return (f"drug {first!r}{where}: {why}{more} (drop {them} with --drugs: cross-validation grouped by cell "
            f"line needs {MIN_CELL_LINES} or more cell lines with pairs, one to test and two to train and "
            f"validate, whatever --n-folds{lack})")


PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+()-]{0,63}")
# the report's table columns and scores.csv's / comparisons.csv's: a method of such a name gave a table two
# columns of one name (benchmark.md: drug, ceiling, best; the tidy tables: method, metric, value, ...)
RESERVED_NAMES = frozenset({"drug", "latent", "best", "ceiling", "verdict", "splits", "method", "metric",
                            "value", "model", "split", "repeat", "fold", "reference", "kind"})


def resolve_methods(cfg: RunConfig) -> list[str]:
    """The store's methods: those of the run's models in registry (= report) order, then the run's own
    (``--method``, then ``--response-method``), each imported once here, in a child process
    (harness.plugin_import), so that a bad spec or a clashing name is a RunError before any work. A run
    without a perturbation model (e.g. the drug-response study alone) so carries no perturbation method in
    its store, and a run without Dr.VAE none of the response methods."""
    jobs = [(METHOD, s) for s in cfg.method] + [(RESPONSE, s) for s in cfg.response_method]
    found = probe(jobs)
    for got, (kind, spec) in zip(found, jobs, strict=True):
        if isinstance(got, str):
            raise RunError(f"--{kind.replace(' ', '-')} {spec}: {got}")
    remember(f for f in found if not isinstance(f, str))
    names = [m for name, c in REGISTRY.items() if name in cfg.models for m in c.methods]
    built_in = set(built_in_methods())
    for spec in cfg.method:
        f = plugin(METHOD, spec)
        _check_name("--method", f)
        if f.name in names or f.name in built_in:
            raise RunError(f"--method {spec}: its name {f.name!r} is already taken by "
                           f"{'a built-in method' if f.name in built_in else 'another --method'}; give the "
                           f"class a distinct `name` attribute")
        names.append(f.name)
    return names + _response_plugins(cfg, names, built_in)


def _check_name(flag: str, f: Plugin) -> None:
    """A plug-in's name names its files (--save-predictions) and table columns: RunError unless it is a
    plain name (else ``my/m`` and ``my_m`` shared one predictions file, ``..`` wrote outside it, and ``|``
    split benchmark.md's tables)."""
    if not PLAIN_NAME.fullmatch(f.name):
        raise RunError(f"{flag} {f.spec}: its name {f.name!r} is not a plain name (a letter or digit, then "
                       f"letters, digits and _ . + - ( ), at most 64); give the class a `name` attribute "
                       f"such as 'my_method'")
    if f.name.lower() in RESERVED_NAMES:
        raise RunError(f"{flag} {f.spec}: its name {f.name!r} is a column of the report's tables; give the "
                       f"class another `name` attribute, such as 'my_{f.name.lower()}'")


def _response_plugins(cfg: RunConfig, taken: list[str], built_in: set[str]) -> list[str]:
    """The names of the run's ``--response-method`` plug-ins, each loaded once here; RunError for a spec that
    does not load, a name already taken, or a head no model of the run hosts."""
    hosts = {c.response_head: name for name, c in REGISTRY.items() if c.response_head}
    names: list[str] = []
    for spec in cfg.response_method:
        f = plugin(RESPONSE, spec)
        _check_name("--response-method", f)
        if f.name in taken or f.name in names or f.name in built_in:
            raise RunError(f"--response-method {spec}: its name {f.name!r} is already taken by "
                           f"{'a built-in method' if f.name in built_in else 'another method'}; give the "
                           f"class a distinct `name` attribute")
        missing = [hosts[h] for h in f.heads if hosts[h] not in cfg.models]
        if len(missing) == len(f.heads):
            raise RunError(f"--response-method {spec}: its {' and '.join(f.heads)} head is scored in the "
                           f"tasks of {' and '.join(missing)}; add {missing[0]} to --models")
        names.append(f.name)
    return names


def check_response(cfg: RunConfig, cube: Any, cube_path: Path) -> None:
    """RunError when the run's drug-response models need a response the cube does not have (every fit of
    theirs would fail on it)."""
    from datasets.cube import RESPONSE

    wanting = [m for m in cfg.models if m in RESPONSE_MODELS]
    if wanting and RESPONSE not in cube.data_vars:
        raise RunError(f"{cube_path}: the cube has no drug response (no {RESPONSE!r} variable), which the "
                       f"response model(s) {', '.join(wanting)} need; build it with --response FILE, or run "
                       f"without them (--models)")
