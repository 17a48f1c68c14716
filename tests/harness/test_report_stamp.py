"""A resume that ran nothing keeps the report of an unchanged store (harness.report_stamp, issue 23), and
renders it again when anything it was made from changed: the store, a report file, the code."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from harness import report_stamp
from harness.report import main as report_main
from harness.run import main
from tests.e2e import tiny_args, tiny_cube

pytestmark = pytest.mark.timeout(300)

KEPT = "report: the store is unchanged since its report was rendered"


def _args(cube: Path, out: Path) -> list[str]:
    return tiny_args(cube, out, "--models", "pca", "baselines", "--n-repeats", "1", cluster="none")


def _mtimes(out: Path) -> dict[str, int | None]:
    names = json.loads((out / "run.json").read_text())["report"]["files"]
    return {n: os.stat(out / n).st_mtime_ns if (out / n).exists() else None for n in names}


def _resume(cube: Path, out: Path, capsys: pytest.CaptureFixture) -> bool:
    """Resume the finished run; whether it kept the report (and then: that it left every file as it was
    and put the report's section back into run.json)."""
    before, report = _mtimes(out), json.loads((out / "run.json").read_text())["report"]
    capsys.readouterr()
    assert main(_args(cube, out)) == 0
    text = capsys.readouterr().out
    assert "Result:" in text and "0 to run" in text   # the summary is printed either way
    kept = KEPT in text
    info = json.loads((out / "run.json").read_text())
    assert info["timings"]["fits_run"] == 0 and info["partial"] is False
    if kept:
        assert _mtimes(out) == before and info["report"] == report
    else:
        changed = [n for n, t in _mtimes(out).items() if t != before.get(n)]
        assert "benchmark.md" in changed and info["report"]["rendered"] != report["rendered"]
    return kept


def test_a_noop_resume_keeps_the_report_until_something_changes(tmp_path_factory, tmp_path, capsys):
    cube = tiny_cube(tmp_path_factory)
    out = tmp_path / "run"
    assert main(_args(cube, out)) == 0
    assert (out / report_stamp.STAMP).is_file()
    assert _resume(cube, out, capsys)            # nothing changed: kept
    assert _resume(cube, out, capsys)

    (out / "figure2.svg").unlink()              # a report file missing: rendered again
    assert not _resume(cube, out, capsys) and (out / "figure2.svg").is_file()
    assert _resume(cube, out, capsys)

    (out / "benchmark.md").write_text("edited\n")  # a report file changed
    assert not _resume(cube, out, capsys)
    assert "edited" not in (out / "benchmark.md").read_text()

    chunk = next(p for p in sorted((out / "results.zarr").rglob("c/*")) if p.is_file())
    shutil.copy(chunk, tmp_path / "copy")       # a store file replaced (same bytes, another file)
    os.replace(tmp_path / "copy", chunk)
    assert not _resume(cube, out, capsys)
    assert _resume(cube, out, capsys)

    (out / report_stamp.STAMP).write_text("{not json")   # an unreadable stamp
    assert not _resume(cube, out, capsys)
    (out / report_stamp.STAMP).unlink()                   # none
    assert not _resume(cube, out, capsys)


def test_changed_code_renders_again_and_the_report_command_always_renders(tmp_path_factory, tmp_path,
                                                                          capsys, monkeypatch):
    cube = tiny_cube(tmp_path_factory)
    out = tmp_path / "run"
    assert main(_args(cube, out)) == 0
    real = report_stamp.code_state
    monkeypatch.setattr(report_stamp, "code_state", lambda: real() + "-edited")
    assert not _resume(cube, out, capsys)       # its stamp was made by other code
    assert _resume(cube, out, capsys)           # ...and is now this code's
    before = _mtimes(out)
    assert report_main([str(out), "--quiet"]) == 0
    assert all(t != before[n] for n, t in _mtimes(out).items())
    assert _resume(cube, out, capsys)           # the command's report is stamped too
    assert report_main([str(out), "--quiet", "--no-figures"]) == 0
    assert not (out / report_stamp.STAMP).exists()   # a report without figures is not stamped
    assert not _resume(cube, out, capsys)


def test_the_source_digest_names_the_code_by_its_contents(tmp_path):
    """run.json's and the store's versions name the code by a digest of its files' contents (the version
    string is 0.1.0 at every commit): two copies of a tree give one digest whatever their files' times; an
    edited or added source file gives another."""
    from harness.report_stamp import PACKAGES, source_digest, tree_digest
    from harness.store import SOURCE_KEY, versions

    roots = {p: Path(__file__).resolve().parents[2] / p for p in PACKAGES}
    a, b = tmp_path / "a", tmp_path / "b"
    for top in (a, b):
        for p, root in roots.items():
            shutil.copytree(root, top / p, ignore=shutil.ignore_patterns("__pycache__"))
    for f in (b / "harness").glob("*.py"):
        os.utime(f, ns=(1, 1))
    digest = tree_digest({p: a / p for p in PACKAGES})
    assert digest == tree_digest({p: b / p for p in PACKAGES}) == tree_digest(roots) == source_digest()
    with open(b / "pertvae_core" / "elbo.py", "a") as f:
        f.write("\n")
    assert tree_digest({p: b / p for p in PACKAGES}) != digest
    (a / "datasets" / "extra.py").write_text("")
    assert tree_digest({p: a / p for p in PACKAGES}) != digest
    assert versions()[SOURCE_KEY] == digest
