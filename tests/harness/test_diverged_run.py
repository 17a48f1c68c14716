"""Review 56: ``run --lr 10`` finished with exit 0 and every PertVAE fit scored (the demo preset: mse_z ~1e18
in benchmark.md), its losses large but finite. Those fits now fail as diverged: exit 3, the reason in the
summary and failures.csv, NaN scores."""

from __future__ import annotations

import csv

import numpy as np

from harness.report import failures_words
from harness.run import main
from tests.e2e import load, tiny_args, tiny_cube

UNTRAINED = "is over 10 times the untrained model's"
AGAIN = "the {} that diverged diverge again with the same settings: change them as their reason says"


def test_a_run_whose_fits_diverged_to_finite_losses_reports_them_failed(tmp_path_factory, tmp_path, capsys):
    cube = tiny_cube(tmp_path_factory)
    out = tmp_path / "run"
    args = tiny_args(cube, out, "--models", "pertvae", "--lr", "10", "--n-repeats", "1", "--drugs", "drugA",
                     workers=1, cluster="none")
    assert main(args) == 3
    err = capsys.readouterr().err
    assert UNTRAINED in err and "the 3 that diverged diverge again with the same settings" in err
    rows = list(csv.DictReader((out / "failures.csv").open()))
    assert len(rows) == 3 and all(UNTRAINED in r["reason"] for r in rows)
    pv = load(out).sel(model="pertvae", drug="drugA", latent=3)
    assert (pv.status.values == "failed").all() and np.isnan(pv.test_loss.values).all()
    # summary.txt listed failures.csv "(a rerun retries them)" though the last line says they diverge again
    summary = (out / "summary.txt").read_text().splitlines()
    line = next(s for s in summary if s.lstrip().startswith("failures.csv"))
    assert "rerun retries" not in line and AGAIN.format(3) in line
    ds = load(out)
    ds["reason"][{"split": 0}] = "worker lost"   # a failure of another cause: a rerun retries it
    assert failures_words(ds).endswith(f"(a rerun retries those that did not diverge; {AGAIN.format(2)})")
