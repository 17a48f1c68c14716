"""A results.zarr damaged beyond repair, met by ``info`` or ``report``: the way on was "run the same
command again to recompute every fit", which for ``pertvae-bench info OUT`` is info again, recomputing
nothing; it now names the run, as the store's other damage messages do."""

from __future__ import annotations

import subprocess

import pytest

from harness import info, report
from tests.harness.test_report import make_store


@pytest.mark.parametrize("main", [info.main, report.main], ids=["info", "report"])
def test_a_store_beyond_repair_names_the_run_that_recomputes_it(tmp_path, capsys, main):
    out = tmp_path / "run"
    make_store(out)
    (out / "results.zarr" / "zarr.json").write_text('{"zarr_fo')
    assert main([str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {out / 'results.zarr'} cannot be read (JSONDecodeError: "), err
    assert err.endswith(f"; move it aside (mv {out / 'results.zarr'} {out / 'results.zarr'}.damaged) and run "
                        f"pertvae-bench run again with the same settings and --out {out} to recompute every "
                        f"fit, or restore it from a backup\n"), err


def test_report_into_a_read_only_out_says_make_it_writable(tmp_path, capsys):
    """A read-only OUT (immutable: root writes anywhere else) was told to "free some space (or make it
    writable)": the disk had space; only its permission was wrong."""
    out = tmp_path / "run"
    make_store(out)
    if subprocess.run(["chattr", "+i", str(out)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        assert report.main([str(out), "--no-figures"]) == 2
    finally:
        subprocess.run(["chattr", "-i", str(out)], check=True)
    assert capsys.readouterr().err == (f"error: permission denied writing the report into {out}: make it "
                                       f"writable and run the same command again; a report does not change "
                                       f"results.zarr\n")


def test_report_over_a_directory_in_the_way_is_one_error_line(tmp_path, capsys):
    """A directory where a report file goes (benchmark.md): ``pertvae-bench report`` ended with the
    IsADirectoryError's traceback and exit 1, where ``run`` said it in one line (the report failed: 1)."""
    out = tmp_path / "run"
    make_store(out)
    (out / "benchmark.md").mkdir()
    assert report.main([str(out), "--no-figures"]) == 1
    err = capsys.readouterr().err
    assert err == (f"error: the report failed: IsADirectoryError: Is a directory: {out / 'benchmark.md'} "
                   f"(results.zarr is unchanged: fix that and run the same command again)\n"), err
    assert not [p.name for p in out.iterdir() if ".tmp-" in p.name]
