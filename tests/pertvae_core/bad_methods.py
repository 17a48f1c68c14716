"""Plug-in methods that misbehave, each in one way a real user's method can (issue 19): loaded by import
path in the tests, like a user's ``--method pkg.module:Class``. None of them may change another method's
scores or stop the run."""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from pertvae_core.data import SplitData


class _Shift:
    """x2_hat = x1 + the mean training change (mean_shift), the honest core the bad methods wrap."""

    def fit(self, split: SplitData):
        self.delta_ = np.mean(np.asarray(split.x2_train, np.float64) - split.x1_train, axis=0)
        return self

    def predict(self, x1: np.ndarray) -> np.ndarray:
        return np.asarray(x1, np.float64) + self.delta_


class InPlace(_Shift):
    """Centers its input in place inside predict (``x1 -= x1.mean(0)``): the issue's first case."""

    name = "in_place"

    def predict(self, x1: np.ndarray) -> np.ndarray:
        x1 -= x1.mean(0)
        return x1 + self.delta_


class EditsSplit(_Shift):
    """Overwrites the split's test targets during fit (a data-leak-shaped bug)."""

    name = "edits_split"

    def fit(self, split: SplitData):
        split.x2_test[:] = 0.0
        return super().fit(split)


class NanPredict(_Shift):
    """Predicts NaN everywhere (the issue's second case)."""

    name = "nan_predict"

    def predict(self, x1: np.ndarray) -> np.ndarray:
        return np.full(np.shape(x1), np.nan)


class GpuOom(_Shift):
    """fit raises torch's GPU out-of-memory error (a RuntimeError)."""

    name = "gpu_oom"

    def fit(self, split: SplitData):
        raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")


class KeyErr(_Shift):
    name = "key_err"

    def fit(self, split: SplitData):
        return {}["missing"]


class FitNone(_Shift):
    """fit forgets ``return self``."""

    name = "fit_none"

    def fit(self, split: SplitData):
        super().fit(split)


class Exits(_Shift):
    """predict calls sys.exit(3)."""

    name = "exits"

    def predict(self, x1: np.ndarray) -> np.ndarray:
        sys.exit(3)


class HardExit(_Shift):
    """fit ends its process at once (os._exit), as a crashing C extension would."""

    name = "hard_exit"

    def fit(self, split: SplitData):
        os._exit(7)


class Sleeps(_Shift):
    """fit never returns."""

    name = "sleeps"

    def fit(self, split: SplitData):
        while True:
            time.sleep(60)


class SlowPredict(_Shift):
    """predict never returns (fit is fine)."""

    name = "slow_predict"

    def predict(self, x1: np.ndarray) -> np.ndarray:
        time.sleep(3600)
        return super().predict(x1)


class ReturnsList(_Shift):
    """predict returns a list of lists (numbers, the right shape): accepted, scored as mean_shift."""

    name = "returns_list"

    def predict(self, x1: np.ndarray) -> np.ndarray:
        return super().predict(x1).tolist()


class WrongRows(_Shift):
    """predict drops the last row."""

    name = "wrong_rows"

    def predict(self, x1: np.ndarray) -> np.ndarray:
        return super().predict(x1)[:-1]


class Strings(_Shift):
    """predict returns text."""

    name = "strings"

    def predict(self, x1: np.ndarray) -> np.ndarray:
        return super().predict(x1).astype(str)


class Complex(_Shift):
    """predict returns complex numbers (numpy would silently drop the imaginary part)."""

    name = "complex_values"

    def predict(self, x1: np.ndarray) -> np.ndarray:
        return super().predict(x1) + 1j


class ReturnsInput:
    """predict returns its input object itself: a legitimate identity, scored exactly as ``identity``."""

    name = "returns_input"

    def fit(self, split: SplitData):
        return self

    def predict(self, x1: np.ndarray) -> np.ndarray:
        return x1


class Stateful:
    """Keeps state across splits in a class attribute: its k-th fit in one process predicts x1 + (k - 1).
    Each fit in a fresh process sees k = 1, so it predicts x1 (``identity``) whichever worker runs it."""

    name = "stateful"
    fits = 0

    def fit(self, split: SplitData):
        type(self).fits += 1
        return self

    def predict(self, x1: np.ndarray) -> np.ndarray:
        return np.asarray(x1, np.float64) + (type(self).fits - 1)


class SetsGlobals(_Shift):
    """Changes process-wide numpy settings (errors raise, a fixed global seed) during fit."""

    name = "sets_globals"

    def fit(self, split: SplitData):
        np.seterr(all="raise")
        np.random.seed(0)
        return super().fit(split)


class Prints(_Shift):
    """Writes to stdout and stderr while fitting (must not disturb the result's transport)."""

    name = "prints"

    def fit(self, split: SplitData):
        print("hello from fit " * 1000)
        sys.stdout.write("\x80not a pickle")
        print("and stderr", file=sys.stderr)
        return super().fit(split)


class SleepsAndTells(_Shift):
    """Writes its process id to the file named by $BAD_METHODS_PID_FILE, then never returns from fit."""

    name = "sleeps_and_tells"

    def fit(self, split: SplitData):
        with open(os.environ["BAD_METHODS_PID_FILE"], "w") as f:
            f.write(str(os.getpid()))
        while True:
            time.sleep(60)


class ImportBomb:
    """Stands for a method whose module cannot be imported where it runs (see the sandbox tests)."""

    name = "import_bomb"


returns_input_instance = type("Factory", (), {"__call__": lambda self: ReturnsInput()})()
"""A callable object (not a class or function) that makes the method: it has no qualified name."""


class FitReturnsDict(_Shift):
    """fit returns its parameters instead of the fitted method."""

    name = "fit_returns_dict"

    def fit(self, split: SplitData):
        super().fit(split)
        return {"delta": self.delta_}


class BadInit(_Shift):
    """Its constructor raises (e.g. a missing optional dependency)."""

    name = "bad_init"

    def __init__(self) -> None:
        raise ImportError("No module named 'fancy_dependency'")


class Boom(BaseException):
    """An exception a method's code derives from BaseException (not from Exception)."""


class RaisesBase(_Shift):
    name = "raises_base"

    def fit(self, split: SplitData):
        raise Boom("custom BaseException")


class RaisesKeyboardInterrupt(_Shift):
    """Raises KeyboardInterrupt itself (no Ctrl-C was pressed)."""

    name = "raises_kbd"

    def fit(self, split: SplitData):
        raise KeyboardInterrupt


class LeavesAProcess(_Shift):
    """Starts a long process in fit and returns without waiting for it; writes its pid where the
    PERTVAE_TEST_PID_FILE environment variable says."""

    name = "leaves_a_process"

    def fit(self, split: SplitData):
        import os
        import subprocess

        p = subprocess.Popen(["sleep", "300"])
        with open(os.environ["PERTVAE_TEST_PID_FILE"], "w") as f:
            f.write(str(p.pid))
        return super().fit(split)


class ReadsJobFile(_Shift):
    """Reads the file its sandbox process was started with (``sys.argv[1]``, harness.sandbox's job) and
    predicts the test pairs' x2 it finds there (the answers it is scored against), where they are finite."""

    name = "reads_job_file"

    def fit(self, split: SplitData):
        import pickle

        with open(sys.argv[1], "rb") as f:
            job = pickle.load(f)
        self.x1_ = np.asarray(job["split"].x1_test, np.float64)
        self.x2_ = np.asarray(job["split"].x2_test, np.float64)
        return super().fit(split)

    def predict(self, x1: np.ndarray) -> np.ndarray:
        if np.isfinite(self.x2_).all() and np.shape(x1) == self.x1_.shape:
            return self.x2_
        return super().predict(x1)


class ReusesBuffer(_Shift):
    """predict fills one preallocated buffer and returns a view of it, so its next predict overwrites
    what it returned before (an ``out=`` style optimisation): each prediction is its own until then."""

    name = "reuses_buffer"

    def predict(self, x1: np.ndarray) -> np.ndarray:
        if not hasattr(self, "buf_"):
            self.buf_ = np.zeros((1000, np.shape(x1)[1]))
        self.buf_[:] = 0.0
        self.buf_[: len(x1)] = super().predict(x1)
        return self.buf_[: len(x1)]


class Diverged(_Shift):
    """A diverged gene: predicts 1e308 (finite) for it, whose squares overflow every metric to NaN."""

    name = "diverged"

    def predict(self, x1: np.ndarray) -> np.ndarray:
        out = super().predict(x1)
        out[:, 0] = 1e308
        return out


class HasFitPredict(_Shift):
    """mean_shift with a convenience ``fit_predict`` of its own (as scikit-learn's clusterers have): still a
    method to fit and predict in its failure boundary, not a factory that runs its method elsewhere."""

    name = "has_fit_predict"

    def fit_predict(self, split: SplitData, x1: np.ndarray | None = None) -> np.ndarray:
        return self.fit(split).predict(split.x1_test if x1 is None else x1)


class Floods(_Shift):
    """Prints 5 MB to stderr while fitting (a debug print in a loop), starting with ``FLOOD-START`` and ending
    with ``FLOOD-END``."""

    name = "floods"
    LINE = "y" * 99 + "\n"
    LINES = 50_000

    def fit(self, split: SplitData):
        sys.stderr.write("FLOOD-START\n")
        for _ in range(self.LINES):
            sys.stderr.write(self.LINE)
        sys.stderr.write("FLOOD-END\n")
        return super().fit(split)


class LeavesFiles(_Shift):
    """Writes a scratch file into its working directory and fails if one is already there (an earlier fit's,
    as with a checkpoint named the same in every fit)."""

    name = "leaves_files"

    def fit(self, split: SplitData):
        if os.path.exists("scratch.npy"):
            raise RuntimeError(f"scratch.npy is already in {os.getcwd()}")
        np.save("scratch.npy", np.zeros(3))
        return super().fit(split)
