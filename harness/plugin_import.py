"""A user's plug-ins (``--method``, ``--response-method``) are imported in a child process, never in the
run's own processes.

Importing a module runs its code: a plug-in module that sets ``torch.set_default_dtype(torch.float64)``,
changes the working directory, calls ``sys.exit`` or hangs would, imported in the run's process or in a
worker, change the scores of PertVAE and every other model trained there (measured: PertVAE's
delta_pearson moved by up to 0.068 and its verdict flipped), move the run's outputs, end the run without a
word, or hang it. So the run learns what it needs of each plug-in (its name, the constructor keywords it
takes, a response method's heads, an import path another process can load) from a child that imports them
(:func:`probe`), under :data:`harness.sandbox.STARTUP_SECONDS`. The workers get these records
(:class:`KnownPlugins`) and import nothing: each fit imports its plug-in in its own process
(harness.sandbox), where an import that fails on a worker node fails that plug-in's fits alone.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from pertvae_core.isolation import exception_text
from pertvae_core.methods import MethodLoadError

METHOD, RESPONSE = "method", "response method"
NOTICE_SECONDS = 15.0   # an import still running after this is said on stderr (it may hang)


@dataclass(frozen=True)
class Plugin:
    """What the run needs of one plug-in, learnt in a child process."""

    kind: str                  # METHOD or RESPONSE
    spec: str                  # as given on the command line
    name: str                  # its name in results
    target: str                # ``module:qualname`` (or the spec) that harness.sandbox imports
    accepts: tuple[str, ...]   # which of latent, seed its constructor takes
    heads: tuple[str, ...] = ()   # a response method's heads
    file: str = ""             # the file of the module that defines it ("" without one)
    digest: str = ""           # sha256 of that file when it was imported: a resume reruns its fits on change

    def kwargs(self, latent: int, seed: int) -> dict[str, int]:
        """The grid's latent size and the fit's seed, where the constructor names them. The seed is taken
        below 2**32 (the grid's have 63 bits, harness.grid.fit_seed): np.random.seed, RandomState and
        scikit-learn's random_state take no larger one, and a method seeded that way failed every fit."""
        return {k: v for k, v in (("latent", latent), ("seed", int(seed) % 2**32)) if k in self.accepts}


_KNOWN: dict[tuple[str, str], Plugin] = {}


def remember(found: Iterable[Plugin]) -> None:
    """Keep ``found`` for :func:`plugin` in this process."""
    _KNOWN.update({(p.kind, p.spec): p for p in found})


def known() -> list[Plugin]:
    return list(_KNOWN.values())


def plugin(kind: str, spec: str) -> Plugin:
    """The record of ``spec``: remembered (the run's, or sent to this worker), else probed now;
    MethodLoadError when it does not load."""
    if (kind, spec) not in _KNOWN:
        (got,) = probe([(kind, spec)])
        if isinstance(got, str):
            raise MethodLoadError(got)
        remember([got])
    return _KNOWN[(kind, spec)]


class KnownPlugins(WorkerPlugin):
    """Sends the run's plug-in records to every worker, those that join later included."""

    name = "pertvae-known-plugins"

    def __init__(self, found: Sequence[Plugin]) -> None:
        self.found = list(found)

    def setup(self, worker: Any) -> None:
        remember(self.found)


def probe(jobs: Sequence[tuple[str, str]]) -> list[Plugin | str]:
    """For each (kind, spec), its :class:`Plugin`, or why it does not load (one line naming the spec),
    imported in one child process. The child records each plug-in as it is imported, so an import that
    ends or hangs the process is said of that plug-in alone; those after it are imported in a new child."""
    from harness.capped_output import CappedPipes
    from harness.sandbox import STARTUP_SECONDS, death_reason, kill_group

    if not jobs:
        return []
    with tempfile.TemporaryDirectory(prefix="pertvae-plugins-") as tmp:
        job, result = Path(tmp) / "job.pkl", Path(tmp) / "result.pkl"
        with job.open("wb") as f:
            pickle.dump({"jobs": list(jobs), "sys_path": list(sys.path)}, f)
        output = CappedPipes(", ".join(spec for _, spec in jobs))   # a module may print as it is imported
        try:
            proc = subprocess.Popen([sys.executable, "-m", "harness.plugin_import", str(job), str(result)],
                                    start_new_session=True, stdin=subprocess.DEVNULL, **output.popen)
        except BaseException:
            output.started(ok=False)
            raise
        output.started()
        hung = False
        try:
            _wait(proc, jobs, STARTUP_SECONDS)
        except subprocess.TimeoutExpired:
            hung = True
        finally:
            kill_group(proc)
            output.close()
        found: list[Plugin | str] = []
        if result.exists():
            with result.open("rb") as f:
                found = pickle.load(f)
    if len(found) == len(jobs):
        return found
    kind, spec = jobs[len(found)]   # the one being imported when its process ended or was stopped
    if hung:
        why = f"importing it did not finish in {STARTUP_SECONDS:g} s (does importing it hang?)"
    else:
        why = death_reason(proc.returncode, "while importing it")
    return [*found, f"{kind} {spec!r}: {why}", *probe(jobs[len(found) + 1:])]


def _wait(proc: subprocess.Popen, jobs: Sequence[tuple[str, str]], limit: float) -> None:
    """Wait up to ``limit`` s for the import; after NOTICE_SECONDS say on stderr what the run waits for
    (a module that hangs on import would otherwise leave the run silent for minutes)."""
    try:
        proc.wait(timeout=min(NOTICE_SECONDS, limit))
        return
    except subprocess.TimeoutExpired:
        if NOTICE_SECONDS >= limit:
            raise
    names = ", ".join(spec for _, spec in jobs)
    print(f"importing {names}: still importing after {NOTICE_SECONDS:g} s; waiting up to {limit:g} s in all",
          file=sys.stderr, flush=True)
    proc.wait(timeout=limit - NOTICE_SECONDS)


def _load(kind: str, spec: str) -> Plugin:
    from harness.sandbox import target_path

    if kind == METHOD:
        from pertvae_core.methods import load_method as load
    else:   # imports torch (1.8 s of CPU): only where a response method is given
        from pertvae_core.response_methods import load_response_method as load
    f = load(spec)
    # plain str: a str of the plug-in's own type (a str Enum's member) would be pickled by reference to its
    # module, and unpickling the record would import the plug-in in the run's process
    return Plugin(kind, str.__str__(f.spec), str.__str__(f.name), target_path(f.target, f.spec),
                  tuple(map(str.__str__, f.accepts)), tuple(map(str.__str__, getattr(f, "heads", ()))),
                  *module_source(f.target))


def module_source(target: Any) -> tuple[str, str]:
    """(file, sha256 of its bytes) of the module that defines ``target``, ("", "") where there is none
    (a built-in module, a class made at run time): what a resume compares to know the plug-in's code
    changed since its fits were stored."""
    module = sys.modules.get(str(getattr(target, "__module__", "") or ""))
    path = getattr(module, "__file__", None)
    if not isinstance(path, str):
        return "", ""
    try:
        return str(Path(path).resolve()), hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return "", ""


def _loaded(kind: str, spec: str) -> Plugin | str:
    """:func:`_load`, or why not: whatever the import does (SystemExit included) is the plug-in's failure."""
    try:
        return _load(kind, spec)
    except MethodLoadError as e:
        return str(e)
    except SystemExit as e:
        return f"{kind} {spec!r}: importing it called sys.exit({e.code!r})"
    except BaseException as e:  # noqa: BLE001 - a KeyboardInterrupt of its own included
        last = traceback.extract_tb(e.__traceback__)[-1:]
        where = f" at {Path(last[0].filename).name}:{last[0].lineno}" if last else ""
        return f"{kind} {spec!r}: importing it failed: {exception_text(e)}{where}"


def child(job_path: str, result_path: str) -> None:
    with open(job_path, "rb") as f:
        job = pickle.load(f)
    sys.path[:] = job["sys_path"]
    found: list[Plugin | str] = []
    for kind, spec in job["jobs"]:   # each recorded as soon as it is known (probe: which one ended us)
        found.append(_loaded(kind, spec))
        tmp = Path(result_path + ".tmp")
        with tmp.open("wb") as f:
            pickle.dump(found, f)
        os.replace(tmp, result_path)


if __name__ == "__main__":
    from harness.plugin_import import child as imported_child  # records pickled as harness.plugin_import's

    imported_child(sys.argv[1], sys.argv[2])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # threads a plug-in left running must not keep this process alive
