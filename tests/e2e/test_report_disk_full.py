"""A disk that fills while the run writes its report: the run's own disk-full line and exit status, as for
its fits (harness.run._report lets the error through to harness.run._run)."""

from __future__ import annotations

import errno

import pytest

from harness.run import main
from tests.e2e import n_status, tiny_args, tiny_cube

pytestmark = pytest.mark.timeout(300)


def test_disk_full_while_the_report_is_written_is_the_runs_disk_full_line(tmp_path_factory, tmp_path,
                                                                          monkeypatch, capsys):
    """Before: 'error: the report failed: OSError: [Errno 28] No space left on device (results are safe ...;
    retry with pertvae-bench report OUT)' and exit 1, naming no file and not what to free; after: exit 2 and
    the line a full disk gets while fits are written: what failed where, what to free, the fits kept."""
    import harness.report

    def full(out, *args, **kwargs):
        (out / "table1.csv").write_text("")
        raise OSError(errno.ENOSPC, "No space left on device")

    cube = tiny_cube(tmp_path_factory)
    out = tmp_path / "out"
    monkeypatch.setattr(harness.report, "render_report", full)
    args = tiny_args(cube, out, "--models", "pca", "--drugs", "drugA", "--n-repeats", "1", cluster="none")
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: no space left on device writing {out}: free some "
                                               f"space"), err
    assert "are kept: run the same command again to resume" in err[0], err
    assert n_status(out) == 6   # pca at latents 2 and 3, 3 folds
    monkeypatch.undo()
    assert main(args) == 0 and (out / "figure2.png").is_file()   # the rerun writes the report


def test_disk_full_while_run_json_is_written_keeps_the_previous_one_whole(tmp_path_factory, tmp_path,
                                                                          monkeypatch, capsys):
    """Before: run.json was written in place, so a disk that filled mid-write left half of the new one (the
    previous record lost, the file no JSON); after: the previous run.json stays whole, no temporary file."""
    from pathlib import Path

    cube = tiny_cube(tmp_path_factory)
    out = tmp_path / "out"
    args = tiny_args(cube, out, "--models", "pca", "--drugs", "drugA", "--n-repeats", "1", cluster="none")
    assert main(args) == 0
    before = (out / "run.json").read_text()
    real = Path.write_text

    def half_then_full(self, text, *a, **kw):
        if "run.json" in self.name:
            real(self, text[:len(text) // 2], *a, **kw)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, text, *a, **kw)

    monkeypatch.setattr(Path, "write_text", half_then_full)
    assert main(args) == 2
    assert "no space left on device" in capsys.readouterr().err
    assert (out / "run.json").read_text() == before
    assert not [p.name for p in out.iterdir() if ".tmp" in p.name]


def test_disk_full_while_pertvae_bench_report_writes_is_one_line_and_leaves_no_temporary_file(
        tmp_path_factory, tmp_path, monkeypatch, capsys):
    """Before: `pertvae-bench report OUT` on a full disk ended in a traceback and left .cell_lines.csv.tmp-PID
    in OUT; after: one error line, exit 2, the csv as it was and no temporary file."""
    import pandas as pd

    from harness.report import main as report_main

    cube = tiny_cube(tmp_path_factory)
    out = tmp_path / "out"
    args = tiny_args(cube, out, "--models", "pertvae", "baselines", "--drugs", "drugA", "--n-repeats", "1",
                     cluster="none")
    assert main(args) == 0
    capsys.readouterr()
    before = (out / "scores.csv").read_bytes()
    real = pd.DataFrame.to_csv

    def full(self, path, *a, **kw):
        real(self, path, *a, **kw)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    assert report_main([str(out), "--no-figures"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: no space left on device writing the report into {out}: free some space and run "
                   f"the same command again; a report does not change results.zarr"]
    assert not list(out.glob(".*.tmp-*")) and (out / "scores.csv").read_bytes() == before


def test_disk_full_while_a_figure_is_written_keeps_the_previous_one_whole(tmp_path_factory, tmp_path,
                                                                          monkeypatch, capsys):
    """Before: the figures were saved in place, so a disk that filled (or a kill) mid-write left a truncated
    figure2.png where the previous report's whole one had been; after: every figure is as it was, no
    temporary file."""
    from matplotlib.figure import Figure

    from harness.report import main as report_main

    cube = tiny_cube(tmp_path_factory)
    out = tmp_path / "out"
    args = tiny_args(cube, out, "--models", "pca", "--drugs", "drugA", "--n-repeats", "1", cluster="none")
    assert main(args) == 0
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in out.glob("*.png")}
    assert "figure2.png" in before

    def half_then_full(self, fname, *a, **kw):
        with open(fname, "wb") as f:
            f.write(b"\x89PNG half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", half_then_full)
    assert report_main([str(out)]) == 2
    assert "no space left on device" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.glob("*.png")} == before
    assert not list(out.glob(".*.tmp-*"))
