"""``--performance-report`` with ``--cluster none`` (review 48): no Dask runs, so no report can be written;
the run wrote none and said nothing. It says so now, and ``run --help`` says where the flag applies."""

from __future__ import annotations

import pytest

from tests.e2e import tiny_args, tiny_cube

pytestmark = pytest.mark.timeout(300)


def test_an_in_process_run_says_it_writes_no_performance_report(tmp_path_factory, tmp_path, capsys):
    import harness.run as run_mod
    from harness.config import build_parser

    report = tmp_path / "perf.html"
    args = tiny_args(tiny_cube(tmp_path_factory), tmp_path / "run", "--models", "pca", "baselines",
                     "--n-repeats", "1", "--performance-report", str(report), cluster="none")
    assert run_mod.main(args) == 0
    assert not report.exists()
    assert (f"note: --performance-report {report} is not written: --cluster none runs the fits in this "
            "process, without Dask") in capsys.readouterr().out
    flag = next(a for a in build_parser()._actions if "--performance-report" in a.option_strings)
    assert "none with --cluster none" in " ".join(flag.help.split())
