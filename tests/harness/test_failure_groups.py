"""Review 57: ``run --preset demo --drugs selumetinib vorinostat --lr 10`` ended with 60 lines "1 x best
validation loss 1.95e+18 (epoch 70) is over 10 times the untrained model's 150: the fit diverged; ..." (one
per fit: each reason embeds its fit's numbers). Reasons alike but for their numbers are now one line with
each number's range; failures.csv keeps every fit's own reason."""

from __future__ import annotations

from pathlib import Path

from harness.run import _failure_summary


def _row(model: str, fold: int, reason: str) -> dict:
    return {"model": model, "drug": "selumetinib", "latent": 10, "repeat": 0, "fold": fold, "method": "",
            "reason": reason, "traceback": ""}


def _diverged(loss: str, epoch: int, init: str) -> str:
    return (f"best validation loss {loss} (epoch {epoch}) is over 10 times the untrained model's {init}: the "
            "fit diverged; try a smaller learning rate (lr), the same settings diverge again")


def test_failures_alike_but_for_their_numbers_are_one_line_with_ranges(capsys) -> None:
    rows = [_row("pertvae", 0, _diverged("1.95e+18", 70, "150")),
            _row("vae", 1, _diverged("6.34e+13", 3, "95.6")),
            _row("vae", 2, _diverged("1.2e+21", 150, "178")),
            _row("pca", 3, "MemoryError: worker lr10 out of memory"),
            _row("pca", 4, "MemoryError: worker lr10 out of memory")]
    _failure_summary(rows, Path("out"), 0)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "5 fit(s) failed; reasons:"
    assert lines[1] == ("  3 x best validation loss 6.34e+13 to 1.2e+21 (epoch 3 to 150) is over 10 "
                        "times the untrained model's 95.6 to 178: the fit diverged; try a smaller learning "
                        "rate (lr), the same settings diverge again (ranges over 3 fits: 1 pertvae, 2 vae; "
                        "e.g. pertvae selumetinib latent 10 repeat 0 fold 0)")
    assert lines[2] == ("  2 x MemoryError: worker lr10 out of memory (2 fits: 2 pca; e.g. pca selumetinib "
                        "latent 10 repeat 0 fold 3)")
    assert len(lines) == 4 and "the 3 that diverged diverge again" in lines[3]


def test_fits_failed_only_in_a_plugin_are_not_counted_as_failed_fits(capsys) -> None:
    """Review r57: a run whose --method plug-in raised in 5 of its 10 baselines fits (the baselines' own
    methods scored in all) ended with '5 fit(s) failed (5 failed method fit(s) in them)'; one pca fit
    failed here beside them."""
    rows = [dict(_row("baselines", f, "RuntimeError: flaky (in fit())"), method="flaky") for f in range(5)]
    rows.append(_row("pca", 0, "MemoryError: worker out of memory"))
    _failure_summary(rows, Path("out"), 5)
    first = capsys.readouterr().err.splitlines()[0]
    assert first == ("1 fit(s) failed, and 5 fit(s) failed in some methods only (their other methods are "
                     "scored): 5 failed method fit(s) in them; reasons:")
