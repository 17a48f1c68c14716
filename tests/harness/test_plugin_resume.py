"""A resume reruns a plug-in's fits when its file changed since they were stored, and only then
(harness.plugin_sources): the store names a plug-in by its spec alone, so an edited file used to keep the old
code's scores, reported under the method's name as the new code's."""

from __future__ import annotations

import numpy as np

from harness.config import parse_args
from harness.cost import dry_run, stored_done
from harness.prepare import resolve_methods
from harness.run import main
from tests.e2e import load, tiny_args, tiny_cube

SOURCE = '''import numpy as np


class Shift:
    name = "shift"

    def fit(self, split):
        self.d = SCALE * np.asarray(split.x2_train - split.x1_train, np.float64).mean(0)
        return self

    def predict(self, x1):
        return np.asarray(x1, np.float64) + self.d


SCALE = {scale}
'''


def _left_to_run(args: list[str]) -> int:
    """The baselines' fits the dry run counts as left to run (harness.cost.stored_done)."""
    cfg = parse_args(args)
    resolve_methods(cfg)   # the plug-ins imported as the dry run imports them
    return 3 - sum(k.model == "baselines" for k in stored_done(cfg))


def _run(args: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The run's exit status checked; the plug-in's delta_pearson and the baselines' fit times."""
    assert main(args) == 0
    ds = load(args[args.index("--out") + 1]).sel(model="baselines")
    return ds.score.sel({"method": "shift", "metric": "delta_pearson"}).values, ds.fit_seconds.values


def test_a_resume_reruns_a_plugin_whose_file_changed_and_only_then(tmp_path_factory, tmp_path, monkeypatch,
                                                                   capsys):
    cube = tiny_cube(tmp_path_factory)
    mine = tmp_path / "mine_shift.py"
    mine.write_text(SOURCE.format(scale="1.0"))
    monkeypatch.syspath_prepend(str(tmp_path))
    args = tiny_args(cube, tmp_path / "out", "--models", "baselines", "--drugs", "drugA", "--n-repeats", "1",
                     "--method", "mine_shift:Shift", workers=1, cluster="none")
    shifted, seconds = _run([*args, "--save-predictions"])
    saved = tmp_path / "out" / "predictions" / "shift"
    assert (saved / "drugA.h5ad").is_file()
    assert np.isfinite(shifted).any() and (shifted[np.isfinite(shifted)] != 0).any()
    again, seconds_again = _run(args)   # the same file: nothing is rerun
    np.testing.assert_array_equal(seconds_again, seconds)
    assert "changed since its fits were stored" not in capsys.readouterr().out and _left_to_run(args) == 0
    mine.write_text(SOURCE.format(scale="0.0  # now: no change"))
    assert _left_to_run(args) == 3   # the dry run says what the run will do, and why
    assert dry_run(parse_args([*args, "--dry-run"])) == 0
    assert (f"note: --method mine_shift:Shift: {mine} changed since its fits were stored: the fits of "
            f"baselines that ran it run again") in capsys.readouterr().err
    unchanged, seconds_now = _run(args)
    n = int(np.isfinite(seconds).sum())
    assert (f"note: --method mine_shift:Shift: {mine} changed since its fits were stored: {n} fit(s) of "
            f"baselines that ran it run again") in capsys.readouterr().out
    assert not np.array_equal(seconds_now, seconds)
    assert not saved.exists()   # the old code's predictions are not left beside the new code's scores
    np.testing.assert_array_equal(unchanged[np.isfinite(unchanged)], 0.0)   # 'no change' scores chance


def test_a_damaged_record_records_nothing(tmp_path):
    """OUT/plugins.json edited or damaged into other JSON is read as no record (the fits are kept, as for
    a store from before it), not a traceback."""
    from harness.plugin_import import METHOD, Plugin
    from harness.plugin_sources import FILE, changed

    mine = Plugin(METHOD, "m:M", "m", "m:M", (), (), "/x/m.py", "b" * 64)
    for text in ('{"method m:M": "abc"}', '[["method m:M", 1]]', "{"):
        (tmp_path / FILE).write_text(text)
        assert changed(tmp_path, [mine]) == []
    (tmp_path / FILE).write_text('{"method m:M": {"file": "/x/m.py", "sha256": "' + "a" * 64 + '"}}')
    assert changed(tmp_path, [mine]) == [mine]


def test_two_plugins_of_one_changed_file_each_say_the_fits_that_run_again(tmp_path_factory, tmp_path,
                                                                           monkeypatch, capsys):
    """Both plug-ins run in the baselines' fits: the first one's reset emptied them, and the second one's
    note said "0 fit(s) of baselines that ran it run again" while the same fits ran it again."""
    cube = tiny_cube(tmp_path_factory)
    mine = tmp_path / "mine_two.py"
    two = SOURCE + "\n\nclass Other(Shift):\n    name = 'other'\n"
    mine.write_text(two.format(scale="1.0"))
    monkeypatch.syspath_prepend(str(tmp_path))
    args = tiny_args(cube, tmp_path / "out", "--models", "baselines", "--drugs", "drugA", "--n-repeats", "1",
                     "--method", "mine_two:Shift", "mine_two:Other", workers=1, cluster="none")
    _, seconds = _run(args)
    mine.write_text(two.format(scale="0.5"))
    capsys.readouterr()
    _run(args)
    out = capsys.readouterr().out
    n = int(np.isfinite(seconds).sum())
    for spec in ("mine_two:Shift", "mine_two:Other"):
        assert (f"note: --method {spec}: {mine} changed since its fits were stored: {n} fit(s) of "
                f"baselines that ran it run again") in out
