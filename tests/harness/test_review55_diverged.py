"""Review 55: a fit whose loss diverged failed with "non-finite training loss in epoch 1" and the run ended
with "run the same command again to retry them", though fits are seeded and a rerun diverges the same way
(lr 1e3 on the demo preset: 6 of 9 fits failed twice alike). The reason now says what to change."""

from __future__ import annotations

from harness.run import main
from pertvae_core.early_stopping import SplitStopping
from tests.e2e import tiny_args, tiny_cube


def test_a_diverged_split_says_what_to_change() -> None:
    rec = SplitStopping(n_val=4, patience=5, min_epochs=0, max_epochs=50)
    rec.update(float("inf"), 1.0)
    assert rec.reason == ("non-finite training loss in epoch 1: the fit diverged; try a smaller learning "
                          "rate (lr), the same settings diverge again")


def test_a_run_with_diverged_fits_does_not_promise_a_rerun_fixes_them(tmp_path_factory, tmp_path, capsys):
    cube = tiny_cube(tmp_path_factory)
    args = tiny_args(cube, tmp_path / "run", "--models", "pertvae", "pca", "--lr", "1e6", "--n-repeats", "1",
                     "--drugs", "drugA", workers=1, cluster="none")
    assert main(args) == 3
    err = capsys.readouterr().err
    assert "the fit diverged; try a smaller learning rate (lr)" in err
    assert "retry them" not in err
    assert "the 3 that diverged diverge again with the same settings (change them as their reason" in err
