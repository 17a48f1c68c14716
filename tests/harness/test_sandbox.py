"""A --method plug-in's fit runs in a fresh process under a time limit (harness.sandbox, issue 19): a hang,
sys.exit, os._exit or a crash fails that fit with its reason, the process (group) is gone afterwards, and
no state survives from one fit to the next."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from harness.sandbox import IsolatedMethod, target_path
from pertvae_core.api import evaluate_methods
from pertvae_core.baselines import BASELINES
from pertvae_core.isolation import MethodFailed
from pertvae_core.methods import load_method
from tests.e2e import ROOT
from tests.pertvae_core import bad_methods as bad
from tests.pertvae_core.test_evaluation import _cell_split

pytestmark = pytest.mark.timeout(300)


def isolated(cls: type, timeout: float = 0.0) -> IsolatedMethod:
    return IsolatedMethod.of(load_method(target_path(cls)), timeout, latent=3, seed=1)


def gone(pid: int, within: float = 30.0) -> bool:
    end = time.monotonic() + within
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@pytest.fixture(scope="module")
def split():
    return _cell_split(seed=4)


def test_a_plugin_is_scored_as_in_process(split):
    """The same numbers through the process boundary as in process (KnnShift: the documented example)."""
    from tests.pertvae_core.my_method import KnnShift

    here = evaluate_methods([split], {"knn_shift": KnnShift})[0]
    there = evaluate_methods([split], {"knn_shift": isolated(KnnShift)})[0]
    assert there["method_status"] == {"knn_shift": "done"}
    assert there["scores"] == here["scores"]


def test_hang_is_a_timed_out_fit_and_its_process_is_killed(split, tmp_path, monkeypatch):
    pid_file = tmp_path / "pid"
    monkeypatch.setenv("BAD_METHODS_PID_FILE", str(pid_file))
    t0 = time.monotonic()
    row = evaluate_methods([split], {"sleeps_and_tells": isolated(bad.SleepsAndTells, timeout=2),
                                     **{n: (lambda f=f: f(3)) for n, f in BASELINES.items()}})[0]
    assert time.monotonic() - t0 < 120  # generous: the limit is 2 s, the point is that it returns
    assert row["method_status"]["sleeps_and_tells"] == "failed"
    assert row["method_reason"]["sleeps_and_tells"].startswith("timed out after 2 s (--fit-timeout")
    assert set(row["scores"]) == set(BASELINES)
    assert gone(int(pid_file.read_text()))


@pytest.mark.parametrize("cls, words", [
    (bad.Exits, "predict() called sys.exit(3)"),
    (bad.HardExit, "exited with status 7 before returning a result"),
    (bad.SlowPredict, "timed out after 2 s"),
    (bad.NanPredict, "non-finite"),
])
def test_a_plugin_that_ends_or_hangs_its_process_fails_alone(cls, words, split):
    row = evaluate_methods([split], {cls.name: isolated(cls, timeout=2),
                                     "identity": lambda: BASELINES["identity"](3)})[0]
    assert row["method_status"] == {cls.name: "failed", "identity": "done"}
    assert words in row["method_reason"][cls.name], row["method_reason"][cls.name]


def test_a_crash_names_the_signal(split, tmp_path, monkeypatch):
    """SIGKILL from outside (what the out-of-memory killer sends) while it fits."""
    pid_file = tmp_path / "pid"
    monkeypatch.setenv("BAD_METHODS_PID_FILE", str(pid_file))

    def kill_when_told() -> None:
        while not pid_file.exists() or not pid_file.read_text():
            time.sleep(0.05)
        os.kill(int(pid_file.read_text()), signal.SIGKILL)

    import threading

    threading.Thread(target=kill_when_told, daemon=True).start()
    with pytest.raises(MethodFailed, match="killed by SIGKILL"):
        isolated(bad.SleepsAndTells).fit_predict(split, [split.x1_test])


def test_state_does_not_carry_from_one_fit_to_the_next(split):
    """Stateful counts its fits in a class attribute: in one process its second fit predicts x1 + 1."""
    method = isolated(bad.Stateful)
    before = bad.Stateful.fits
    for _ in range(3):
        got = method.fit_predict(split, [split.x1_test])[0]
        np.testing.assert_array_equal(got, split.x1_test)
    assert bad.Stateful.fits == before  # not fitted in this process


def test_the_job_file_holds_no_test_answers(split):
    """The sandbox process reads its split from a file named on its command line, which the method can read
    too: the test pairs there are hidden as in the copy it is fitted on, so it predicts from the training
    pairs (mean_shift), not the x2 it is scored against."""
    got = isolated(bad.ReadsJobFile).fit_predict(split, [split.x1_test])[0]
    assert not np.allclose(got, split.x2_test)
    np.testing.assert_allclose(got, bad.ReadsJobFile.__mro__[1]().fit(split).predict(split.x1_test))


def test_prints_do_not_disturb_the_result(split, capfd):
    got = isolated(bad.Prints).fit_predict(split, [split.x1_test])[0]
    want = bad.Prints().fit(split).predict(split.x1_test)
    np.testing.assert_array_equal(got, want)
    assert "hello from fit" in capfd.readouterr().out


def test_an_import_that_fails_in_its_process_is_its_reason(split):
    method = IsolatedMethod("tests.pertvae_core.no_such_module:Nope", {}, 0)
    with pytest.raises(MethodFailed, match="importing tests.pertvae_core.no_such_module:Nope failed: "
                                           "ModuleNotFoundError"):
        method.fit_predict(split, [split.x1_test])


def test_its_process_ends_when_the_worker_dies(tmp_path):
    """A worker SIGKILLed while its plug-in fits: the plug-in's process (in its own session) follows, and
    removes the job's files, which the dead worker cannot."""
    pid_file, tmp = tmp_path / "pid", tmp_path / "tmp"
    tmp.mkdir()
    code = ("import sys; from tests.harness.test_sandbox import isolated; "
            "from tests.pertvae_core.test_evaluation import _cell_split; "
            "from tests.pertvae_core import bad_methods as bad; sp = _cell_split(); "
            "isolated(bad.SleepsAndTells).fit_predict(sp, [sp.x1_test])")
    worker = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT,
                              env=dict(os.environ, BAD_METHODS_PID_FILE=str(pid_file), TMPDIR=str(tmp)))
    try:
        end = time.monotonic() + 120
        while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < end:
            time.sleep(0.1)
        child = int(pid_file.read_text())
        worker.kill()
        worker.wait()
        assert gone(child), "the plug-in's process outlived its worker"
        assert list(tmp.iterdir()) == [], "the killed worker's job files were left behind"
    finally:
        if worker.poll() is None:
            worker.kill()


def test_no_job_files_are_left_behind(split, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    with pytest.raises(MethodFailed):
        isolated(bad.HardExit).fit_predict(split, [split.x1_test])
    assert list(Path(tmp_path).iterdir()) == []


def test_a_method_registered_by_entry_point_name_or_as_an_object_runs_too(split):
    """target_path falls back to the spec for what has no importable qualified name."""
    from harness.sandbox import target_path

    class Local:
        pass

    assert target_path(bad.Stateful) == "tests.pertvae_core.bad_methods:Stateful"
    assert target_path(Local, "spec:x") == "spec:x" and target_path(object(), "name") == "name"
    got = IsolatedMethod("tests.pertvae_core.bad_methods:returns_input_instance", {}, 0).fit_predict(
        split, [split.x1_test])[0]
    np.testing.assert_array_equal(got, split.x1_test)


def test_an_entry_point_name_is_resolved_in_its_process(split, tmp_path, monkeypatch):
    from tests.pertvae_core.test_methods import _install

    _install(tmp_path, "objmethods", {"ri_obj": "tests.pertvae_core.bad_methods:returns_input_instance"})
    monkeypatch.syspath_prepend(str(tmp_path))
    method = IsolatedMethod.of(load_method("ri_obj"), 0.0, latent=3, seed=1)
    assert method.target == "ri_obj"
    np.testing.assert_array_equal(method.fit_predict(split, [split.x1_test])[0], split.x1_test)


@pytest.mark.parametrize("cls, why", [(bad.RaisesKeyboardInterrupt, "KeyboardInterrupt (in fit())"),
                                      (bad.RaisesBase, "Boom: custom BaseException (in fit())")])
def test_what_a_method_raises_in_its_own_process_is_its_reason(cls, why):
    # not "killed by SIGINT" or "exited with status 1 (os._exit, or a crash?)": no Ctrl-C reaches its process
    with pytest.raises(MethodFailed) as e:
        isolated(cls).fit_predict(_cell_split(), [np.zeros((2, 40), np.float32)])
    assert str(e.value) == why


def test_what_a_fit_started_and_left_running_ends_with_it(tmp_path, monkeypatch):
    pid_file = tmp_path / "pid"
    monkeypatch.setenv("PERTVAE_TEST_PID_FILE", str(pid_file))
    isolated(bad.LeavesAProcess).fit_predict(_cell_split(), [np.zeros((2, 40), np.float32)])
    assert gone(int(pid_file.read_text()))


def test_a_plugin_that_prints_in_a_loop_is_capped_with_a_note(split, capfd):
    """A plug-in's stderr went to the worker's (OUT/run.log) uncapped: 20 MB a fit printed in a loop made a
    60 MB run.log in 3 fits. Its first and last KEEP bytes are kept, with a note of how many were dropped."""
    from harness.capped_output import KEEP

    capfd.readouterr()
    got = isolated(bad.Floods).fit_predict(split, [split.x1_test])[0]
    np.testing.assert_array_equal(got, bad.Floods().fit(split).predict(split.x1_test))
    capfd.readouterr()   # the in-process fit's own flood, above
    isolated(bad.Floods).fit_predict(split, [split.x1_test])
    err = capfd.readouterr().err
    total = len("FLOOD-START\n") + bad.Floods.LINES * len(bad.Floods.LINE) + len("FLOOD-END\n")
    note = (f"\n[harness: {total - 2 * KEEP} bytes of {target_path(bad.Floods)}'s stderr dropped here: only "
            f"the first and the last {KEEP} bytes of a fit are kept]\n")
    assert len(err) == 2 * KEEP + len(note)
    assert err.startswith("FLOOD-START\n") and err.endswith("FLOOD-END\n") and note in err


def test_each_fit_has_a_working_directory_of_its_own_removed_after(split, tmp_path, monkeypatch):
    """Plug-in fits ran in the worker's working directory: a fit saw the files an earlier one left there
    (and left them in the user's directory)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    import tempfile

    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", None)
    method = isolated(bad.LeavesFiles)
    for _ in range(2):
        method.fit_predict(split, [split.x1_test])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"]
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_plugin_found_through_the_working_directory_on_sys_path_still_imports(split, tmp_path,
                                                                                  monkeypatch):
    """sys.path's '' (the working directory) is this process's, not the fit's own directory."""
    (tmp_path / "cwd_plugin_mod.py").write_text("from tests.pertvae_core.bad_methods import _Shift as Shift")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", ["", *sys.path])
    got = IsolatedMethod("cwd_plugin_mod:Shift", {}, 0).fit_predict(split, [split.x1_test])[0]
    np.testing.assert_array_equal(got, bad._Shift().fit(split).predict(split.x1_test))


def test_a_job_directory_left_by_a_killed_worker_is_removed_by_the_next_fit(split, tmp_path, monkeypatch):
    """A worker killed as its plug-in's fit returned (the plug-in's process already gone, so nothing watched
    for the worker's death) left its job directory, a copy of the split, in the temporary directory for good
    (seen in a demo run: job.pkl, result.pkl and the fit's files). The next fit on the host removes those of
    dead processes; a live process's is kept."""
    import socket
    import tempfile

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    host = "".join(c if c.isalnum() or c in "-." else "_" for c in socket.gethostname())
    left = tmp_path / f"pertvae-method-{host}-{int(dead.stdout)}-x1y2"
    live = tmp_path / f"pertvae-method-{host}-{os.getpid()}-z3w4"
    for d in (left, live):
        (d / "work").mkdir(parents=True)
        (d / "job.pkl").write_bytes(b"a split")
    isolated(bad.Prints).fit_predict(split, [split.x1_test])
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name]
