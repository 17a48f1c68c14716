"""A resume reruns the fits of a plug-in whose file changed since they were stored.

The result store keeps fits by (model, drug, latent, split) under the run's science key, which names a
plug-in by its spec alone: a plug-in's file edited between a run and its resume kept the old code's scores
under the method's name, and the report gave them as the new code's. ``OUT/plugins.json`` records, per
plug-in, the sha256 of the file of its module (harness.plugin_import.module_source) as the run that stored
its fits imported it; a resume that finds another resets the fits of the models whose tasks run it (the
baselines' for ``--method``; every method of those fits runs again, the built-in baselines in seconds)
before it plans, then records the new digest. A plug-in with no file, or a store from before this record,
has nothing to compare: its fits are kept.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

from datasets.disk import write_replacing
from harness.contenders import REGISTRY, user_method_host
from harness.plugin_import import METHOD, Plugin
from harness.predictions import path_for
from harness.store import ResultStore

FILE = "plugins.json"


def hosts(p: Plugin, models: Sequence[str]) -> list[str]:
    """The run's models whose tasks run ``p``."""
    if p.kind == METHOD:
        host = user_method_host()
        names = [host.name] if host is not None else []
    else:
        names = [name for name, c in REGISTRY.items() if c.response_head in p.heads]
    return [m for m in names if m in models]


def recorded(out: Path) -> dict[str, dict[str, str]]:
    """``"kind spec"`` -> {"file", "sha256"} as the last run on ``out`` imported each plug-in ({} without;
    an unreadable or damaged file records nothing, as a store from before it)."""
    try:
        raw = json.loads((out / FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): v for k, v in raw.items() if isinstance(v, dict)} if isinstance(raw, dict) else {}


def changed(out: Path, plugins: Sequence[Plugin]) -> list[Plugin]:
    """The plug-ins whose file changed since ``out`` recorded it (what a resume reruns; the dry run counts
    their hosts' fits as left to run)."""
    before = recorded(out)
    olds = [before.get(f"{p.kind} {p.spec}", {}).get("sha256", "") for p in plugins]
    return [p for p, old in zip(plugins, olds, strict=True) if old and p.digest and old != p.digest]


def rerun_words(p: Plugin, models: Sequence[str], fits: str = "the fits") -> str:
    """Why ``fits`` of ``p``'s hosts among ``models`` run again (the run's note and the dry run's)."""
    return (f"--{p.kind.replace(' ', '-')} {p.spec}: {p.file} changed since its fits were stored: {fits} of "
            f"{', '.join(hosts(p, models))} that ran it run again (with every method they run)")


def _drop_predictions(out: Path, p: Plugin) -> str:
    """Remove ``p``'s saved predictions (--save-predictions), the old code's: a rerun writes its own only
    with the flag and only where the new code succeeds, so they would stand beside the new scores. Words
    saying so, or ""."""
    folder = path_for(out, p.name, "-").parent
    if not folder.is_dir():
        return ""
    shutil.rmtree(folder)
    return f"; its saved predictions, the old code's, are removed ({folder}; --save-predictions saves anew)"


def rerun_changed(out: Path, store: ResultStore, plugins: Sequence[Plugin]) -> list[str]:
    """Reset the fits of the hosts of each plug-in whose file changed since ``out`` recorded it, then
    record every plug-in's file as now; a line for each plug-in whose fits run again. A host is reset once,
    and each of its plug-ins counts its fits: two plug-ins of the baselines' tasks run again in the same."""
    said, reset = [], {}
    for p in changed(out, plugins):
        models = hosts(p, store.models)
        for m in models:
            if m not in reset:
                reset[m] = store.reset_model(m)
        n = sum(reset[m] for m in models)
        said.append(rerun_words(p, store.models, f"{n} fit(s)") + _drop_predictions(out, p))
    now = {f"{p.kind} {p.spec}": {"file": p.file, "sha256": p.digest} for p in plugins}
    if now != recorded(out):
        text = json.dumps(now, indent=2, sort_keys=True)
        write_replacing(out / FILE, lambda tmp: tmp.write_text(text))
    return said
