"""pertvae-bench report's command line: --quiet keeps stdout empty, a file as OUT gets no false advice."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

from harness import report
from harness.report import main
from harness.store import LAYOUT
from tests.harness.test_report import MODELS, make_store


def _partial_store(out: Path) -> None:
    """A store of tests.harness.test_report with one VAE latent size not run."""
    ds = make_store(out)
    ds["status"].values[MODELS.index("vae"), :, 0, :] = ""
    ds[["status"]].to_zarr(str(out / "results.zarr"), mode="r+", consolidated=False)


def test_quiet_keeps_stdout_empty_and_the_partial_line_on_stderr(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    """review 43, item 6: --quiet's help says "print nothing on success", yet PARTIAL went to stdout."""
    _partial_store(tmp_path)
    assert main([str(tmp_path), "--quiet", "--no-figures"]) == 0
    got = capsys.readouterr()
    assert got.out == ""
    assert [s for s in got.err.splitlines() if s.startswith("PARTIAL: ")] == [
        "PARTIAL: 30 of 240 fits missing (0 failed, 30 not run); scores missing for vae (30 of 90 fits); "
        "every other method has all its scores"]
    assert main([str(tmp_path), "--no-figures"]) == 0
    got = capsys.readouterr()
    assert got.out.startswith("PARTIAL: 30 of 240") and "PARTIAL" not in got.err


def test_quiet_help_says_where_the_partial_line_goes(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "print nothing on success; a partial run's PARTIAL line goes to stderr" in text


def _listed(text: str) -> list[int]:
    """The exit statuses ("N = what") after the first "exit status" in ``text``."""
    after = re.split("exit status", text, maxsplit=1, flags=re.I)[1]
    return [int(n) for n in re.findall(r"\b(\d+) = ", after)]


def test_help_and_docs_list_every_exit_status_main_returns(capsys: pytest.CaptureFixture) -> None:
    """report's 0, 1 and 2 were in neither report --help nor docs/report.md (run --help lists run's)."""
    returned = {n.value.value for n in ast.walk(ast.parse(inspect.getsource(report.main)))
                if isinstance(n, ast.Return) and isinstance(n.value, ast.Constant)}
    assert returned == {0, 1, 2}
    with pytest.raises(SystemExit):
        main(["--help"])
    helped = _listed(" ".join(capsys.readouterr().out.split()))
    assert returned <= set(helped)
    doc = (Path(__file__).resolve().parents[2] / "docs" / "report.md").read_text()
    assert _listed(" ".join(doc.split())) == helped


def test_a_file_as_out_is_refused_without_advising_run_out_file(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture) -> None:
    """review 43, item 15: `report afile` advised `run --out afile`, which run refuses ("is a file")."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main([str(afile)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [f"error: {afile}: is a file, not a run's --out directory (the directory that "
                                f"holds results.zarr)"]
    for where in (tmp_path / "absent", tmp_path):   # absent, or a directory without a store: advised
        assert main([str(where)]) == 2
        assert f"(pertvae-bench run --out {where} creates one)" in capsys.readouterr().err


def test_a_folder_that_is_no_run_is_left_as_it_was(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """review 54: `report DIR` on a folder without a store left an empty DIR/.lock behind (the lock was
    taken before the store was looked for); a store set aside by a conversion a kill stopped still counts."""
    (tmp_path / "notes.txt").write_text("x")
    assert main([str(tmp_path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {tmp_path}: no results.zarr here; give the --out directory of a run (pertvae-bench run "
        f"--out {tmp_path} creates one)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    (tmp_path / "results.zarr").write_text("x")
    assert main([str(tmp_path)]) == 2
    assert "results.zarr: is a file" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "results.zarr"]
    (tmp_path / "results.zarr").unlink()
    run = tmp_path / "run"
    _partial_store(run)
    aside = run / f"results.zarr.before-layout-{LAYOUT}"
    (run / "results.zarr").rename(aside)
    assert main([str(run), "--quiet", "--no-figures"]) == 0
    assert (run / "results.zarr").is_dir() and not aside.exists()


def test_a_cube_as_out_is_refused_without_advising_run_out_cube(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture) -> None:
    """``report CUBE`` advised '(pertvae-bench run --out CUBE creates one)', which run refuses (its files
    would mix with the cube's)."""
    from datasets.cube import write_cube
    from datasets.synthetic import generate

    cube = write_cube(generate("demo", 0), tmp_path / "cube.zarr")
    assert main([str(cube)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {cube}: is a cube (pertvae-bench info {cube} describes it), not a run's --out directory; "
        f"give the --out directory of a run (pertvae-bench run --data {cube} --out DIR makes one)"]


def test_a_path_under_a_file_is_refused_without_advising_run_out_there(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    """``report afile/sub`` advised '(pertvae-bench run --out afile/sub creates one)', which run refuses
    ('afile is a file, so no directory can be created under it')."""
    (tmp_path / "afile").write_text("x")
    where = tmp_path / "afile" / "sub"
    assert main([str(where)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {where}: {tmp_path / 'afile'} is a file, so no run is here; give the --out directory of "
        f"a run"]


def test_a_run_without_scores_says_drugs_png_is_empty(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """No fit done (a run interrupted before its first): the summary gave drugs.png as "each method's score
    per drug over the splits, with the noise ceiling ...", a figure that says 'no scores in this run'."""
    ds = make_store(tmp_path)
    ds["status"].values[...] = ""
    ds[["status"]].to_zarr(str(tmp_path / "results.zarr"), mode="r+", consolidated=False)
    assert main([str(tmp_path)]) == 0
    drugs = [s for s in capsys.readouterr().out.splitlines() if s.lstrip().startswith("drugs.png")]
    assert drugs == ["  drugs.png     each method's score per drug: empty, no scores in this run"], drugs
