"""A user's plug-in method (``--method``) runs each fit in a fresh Python process, under a time limit.

One process per (method, split): the method is imported there, fitted on the split and asked for its
predictions (:func:`pertvae_core.isolation.fit_predict`, the same failure boundary and checks as in
process), which come back to the worker. So a plug-in cannot

- change the data or the process of any other method: it has its own copy of the split, its own numpy and
  torch settings, its own module globals (a class attribute that counts fits sees one fit, whichever worker
  runs which split, so its numbers do not depend on the layout of the run);
- end the run: ``sys.exit``, ``os._exit``, a crash or an out-of-memory kill end its process only, and fail
  its fit with the reason (the exit status or signal);
- hang the run: its fit and predict must finish within ``timeout`` seconds (``--fit-timeout``), else its
  process group is killed and the fit fails with "timed out after N s". Starting the process and importing
  the method are not counted (a torch import on a shared file system can take a minute on a busy node); they
  have their own limit, :data:`STARTUP_SECONDS`.

The child reads its job from a file (which the method can read too: the split there already has its test
answers hidden), says "ready" on a pipe once the method is imported, and writes its result to another file.
A method may print: its stdout and stderr go to the worker's (local: the run's stdout, OUT/run.log), capped at
the first and last 32 KiB of each a fit with a note of what was dropped (harness.capped_output). It runs in
an empty working directory of its own, removed with whatever it wrote there when the fit ends, so that no
fit sees another's files (the run's working directory is not the method's: give it absolute paths). It
exits when the process that started it dies.
Cost: about 0.2 s and the method's own imports per fit (0.1% of the paper's grid).

A user's response method (``--response-method``) runs the same way (:class:`IsolatedResponseMethod`): its
child fits it on the response split with the test responses hidden and returns its scores of the test
rows for each head (pertvae_core.response_isolation.fit_predict_response).
"""

from __future__ import annotations

import importlib
import os
import pickle
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.capped_output import CappedPipes
from pertvae_core.isolation import MethodFailed, exception_text, readonly_split

STARTUP_SECONDS = 300.0  # limit on starting the process and importing the method
READY = b"r"


def target_path(target: Any, spec: str = "") -> str:
    """``module:qualname`` of a method class or factory function, importable in another process; else
    (a callable object, a local class) ``spec``, the import path or entry point name it was loaded by."""
    module, qualname = getattr(target, "__module__", None), getattr(target, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str) and "<locals>" not in qualname:
        return f"{module}:{qualname}"
    return spec


class IsolatedMethod:
    """A factory whose method runs in its own process: ``fit_predict(split, inputs)`` returns the
    predictions at ``inputs`` of a new ``target(**kwargs)`` fitted on ``split`` (MethodFailed otherwise).

    ``target``: ``module:qualname`` of the class or function (or an entry point name); ``timeout``: seconds
    for its fit and predict (0 = no limit)."""

    def __init__(self, target: str, kwargs: dict[str, Any], timeout: float = 0.0) -> None:
        self.target, self.kwargs, self.timeout = target, dict(kwargs), float(timeout)

    @classmethod
    def of(cls, factory: Any, timeout: float, **given: Any) -> IsolatedMethod:
        """From a :class:`pertvae_core.methods.MethodFactory`: ``given`` (latent, seed) passed as it would."""
        kwargs = {k: given[k] for k in factory.accepts if given.get(k) is not None}
        return cls(target_path(factory.target, factory.spec), kwargs, timeout)

    def __repr__(self) -> str:
        return f"IsolatedMethod({self.target!r}, {self.kwargs!r}, timeout={self.timeout:g})"

    def fit_predict(self, split: Any, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        # the job file is the method's to read (its path is on its process's command line): it holds the
        # split with the test pairs already hidden, as in the copy the method is fitted on
        return self._job({"split": readonly_split(split), "inputs": [np.asarray(x) for x in inputs]})

    def _job(self, payload: dict[str, Any]) -> Any:
        """Run the child on ``payload`` (plus the target, its keywords and sys.path); its predictions."""
        remove_orphaned_jobs()
        with tempfile.TemporaryDirectory(prefix=job_prefix(), ignore_cleanup_errors=True) as tmp:
            job, result, work = Path(tmp) / "job.pkl", Path(tmp) / "result.pkl", Path(tmp) / "work"
            try:
                work.mkdir()
                with job.open("wb") as f:
                    pickle.dump({"target": self.target, "kwargs": self.kwargs, "sys_path": absolute(sys.path),
                                 **payload}, f, protocol=pickle.HIGHEST_PROTOCOL)
            except OSError as e:  # e.g. a full temporary directory: this method cannot run, the others can
                raise MethodFailed(f"cannot hand it its split: writing {job} failed: {e}") from None
            self._run(job, result, work)
            return _result(result)

    def _run(self, job: Path, result: Path, work: Path) -> None:
        """Start the child in ``work``, its output capped (harness.capped_output), and wait for it (killing
        its process group on timeout or interrupt)."""
        r, w = os.pipe()
        output = CappedPipes(self.target)   # to this process's own stdout and stderr, capped
        try:
            proc = subprocess.Popen([sys.executable, "-m", "harness.sandbox", str(job), str(result), str(w),
                                     str(os.getpid())],
                                    pass_fds=(w,), start_new_session=True, stdin=subprocess.DEVNULL,
                                    cwd=work, **output.popen)
        except BaseException:
            os.close(r)
            output.started(ok=False)
            raise
        finally:
            os.close(w)
        output.started()
        try:
            ready, _, _ = select.select([r], [], [], STARTUP_SECONDS)
            if not ready:
                raise MethodFailed(f"its process did not import {self.target} in {STARTUP_SECONDS:g} s "
                                   f"(does importing it hang?)")
            if os.read(r, 1) == READY:
                try:
                    proc.wait(timeout=self.timeout or None)
                except subprocess.TimeoutExpired:
                    raise MethodFailed(f"timed out after {self.timeout:g} s (--fit-timeout: the limit on one "
                                       f"fit and its predictions)") from None
            else:  # it ended before the method was imported: its result file says why, if anything
                proc.wait()
            if not result.exists():
                raise MethodFailed(death_reason(proc.returncode))
        finally:
            os.close(r)
            kill_group(proc)   # done or not: what the method started and left running goes with it
            output.close()


class IsolatedResponseMethod(IsolatedMethod):
    """A response method's factory whose fits run in their own process: ``fit_predict(split, heads)`` ->
    head -> the test rows' scores of a new ``target(**kwargs)`` fitted on ``split`` with its test responses
    hidden (MethodFailed otherwise)."""

    def fit_predict(self, split: Any, heads: Sequence[str]) -> dict[str, np.ndarray]:  # type: ignore[override]
        from pertvae_core.response_isolation import hidden_test

        return self._job({"split": hidden_test(split), "heads": tuple(heads)})  # no answers in the job file


def _host_prefix() -> str:
    host = "".join(c if c.isalnum() or c in "-." else "_" for c in socket.gethostname())
    return f"pertvae-method-{host}-"


def job_prefix() -> str:
    """How the name of a job directory of this process starts: its host and pid."""
    return f"{_host_prefix()}{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:   # exists, someone else's
        return True
    return True


def remove_orphaned_jobs() -> list[Path]:
    """Remove the job directories (a split's copy, the plug-in's result and files) that processes of this
    host left in the temporary directory when they were killed after their plug-in's process had ended
    (which removes them only when it outlives its parent): a worker killed as its plug-in's fit returned
    left its job directory behind for good. Those of processes still alive are kept; returns those
    removed."""
    prefix, removed = _host_prefix(), []
    for d in Path(tempfile.gettempdir()).glob(f"{prefix}*-*"):
        pid = d.name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)) and d.is_dir() and not d.is_symlink():
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


def absolute(path: Sequence[str]) -> list[str]:
    """``sys.path`` with its relative entries ('' = the working directory) made absolute: the child runs in a
    directory of its own and must import from where this process does."""
    return [os.path.abspath(p) if isinstance(p, str) and not os.path.isabs(p) else p for p in path]


def kill_group(proc: subprocess.Popen) -> None:
    """Kill the process group ``proc`` leads (started with ``start_new_session``): it and whatever it started
    that is still running (a process that started a session of its own escapes)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def death_reason(code: int | None, when: str = "before returning a result") -> str:
    """Why a child that left no result ended (``when``): its signal or exit status."""
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        return f"its process was killed by {name}{hint} {when}"
    return f"its process exited with status {code} {when} (os._exit, or a crash?)"


def _result(path: Path) -> Any:
    with path.open("rb") as f:
        res = pickle.load(f)
    if "failed" in res:
        raise MethodFailed(res["failed"], res.get("traceback", ""))
    return res["predictions"]


# -------------------------------------------------------------------------------------------------
# the child


def _write(path: Path, payload: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        pickle.dump(payload, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)


def _import(target: str, response: bool = False) -> Any:
    if ":" not in target and response:  # an entry point name (a callable object, harness.sandbox.target_path)
        from pertvae_core.response_methods import load_response_method

        return load_response_method(target).target
    if ":" not in target:
        from pertvae_core.methods import load_method

        return load_method(target).target
    module, _, qualname = target.partition(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _exit_with_parent(parent: int, job_dir: Path) -> None:
    """A daemon thread: end this process when the one that started it is gone (a killed worker), removing
    the job's directory, which that process can no longer remove (else every killed worker leaves its
    split's copy in the temporary directory)."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        shutil.rmtree(job_dir, ignore_errors=True)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def child(job_path: str, result_path: str, ready_fd: int, parent: int) -> int:
    """Run one job (see the module docstring); always leaves a result unless the method ends the process.
    ``parent``: the pid of the process that started it (it may be gone before this one looks)."""
    _exit_with_parent(parent, Path(job_path).parent)
    result = Path(result_path)
    with open(job_path, "rb") as f:
        job = pickle.load(f)
    sys.path[:] = job["sys_path"]
    try:
        target = _import(job["target"], "heads" in job)
    except BaseException as e:  # noqa: BLE001 - whatever the import does, it is the method's failure
        _write(result, {"failed": f"importing {job['target']} failed: {exception_text(e)}",
                        "traceback": traceback.format_exc()})
        return 0
    os.write(ready_fd, READY)
    os.close(ready_fd)
    from pertvae_core import isolation
    from pertvae_core.isolation import fit_predict
    from pertvae_core.response_isolation import fit_predict_response

    isolation.OWN_PROCESS = True   # its own session: no terminal's Ctrl-C reaches it

    def make() -> Any:
        return target(**job["kwargs"])

    try:
        if "heads" in job:
            preds = fit_predict_response(make, job["split"], job["heads"])
        else:
            preds = fit_predict(make, job["split"], job["inputs"])
    except MethodFailed as e:
        _write(result, {"failed": str(e), "traceback": e.traceback})
        return 0
    _write(result, {"predictions": preds})
    return 0


if __name__ == "__main__":
    code = child(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # now: threads the method left running must not keep its process alive
