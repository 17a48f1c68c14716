"""The report's numbers and words against the store they come from (review 50): an absent value must not
read as a positive one, a listed file must be the current report's, and a sentence must say why a
comparison is missing. Each test builds a real result store (harness.store) and renders the report."""

from __future__ import annotations

import json
from pathlib import Path

import zarr

from harness.report import render_report
from tests.harness.test_review47_report import _store


def _drop_signal_z(out: Path) -> None:
    """Rewrite the store's ceiling as a store written before the reliability z existed."""
    g = zarr.open_group(str(out / "results.zarr"), mode="r+")
    ceiling = json.loads(g.attrs["ceiling"])
    for v in ceiling.values():
        v.pop("signal_z", None)
    g.attrs["ceiling"] = json.dumps(ceiling)


def test_a_store_without_signal_z_does_not_say_yes(tmp_path: Path) -> None:
    """A store written before the ceiling's reliability z: both drugs' 'measured change' read 'yes' (and
    the headline counted them among 'the drugs whose replicates measure a change') with no measure behind
    it; they are counted as before (not known to be null) but read 'not recorded'."""
    out = _store(tmp_path, ["pertvae", "baselines"])
    _drop_signal_z(out)
    render_report(out, with_figures=False)
    bench = (out / "benchmark.md").read_text()
    assert "| dA | not recorded |" in bench and "| dB | not recorded |" in bench
    assert "| yes |" not in bench
    summary = (out / "summary.txt").read_text()
    assert ("on the 2 drug(s) whose replicates measure a change or whose store does not record it (dA and "
            "dB: written before the measure):") in summary


def _info(out: Path) -> str:
    from harness.info import describe_run

    return describe_run(out)


def test_an_interrupted_render_leaves_no_report_passing_for_current(tmp_path: Path, monkeypatch) -> None:
    """Ctrl-C while a re-render wrote its files: table1.* were the new report's, benchmark.md and the rest
    the earlier one's, yet summary.txt (the earlier report's) stayed and info listed every file as the
    report's. Now the summary is gone and info says the last report did not finish."""
    from harness import verdicts

    out = _store(tmp_path, ["pertvae", "baselines"])
    render_report(out, with_figures=False)
    assert "\nreport rendered: " in _info(out)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(verdicts, "benchmark_markdown", interrupted)
    try:
        render_report(out, with_figures=False)
    except KeyboardInterrupt:
        pass
    assert not (out / "summary.txt").exists()
    assert "report files: none current: the last report, started " in _info(out)
    assert "did not finish; present, from it or an earlier report" in _info(out)
    monkeypatch.undo()
    render_report(out, with_figures=False)
    assert "\nreport rendered: " in _info(out) and (out / "summary.txt").exists()


def test_info_tells_the_last_reports_files_from_older_ones(tmp_path: Path) -> None:
    """A figure an earlier report drew (kept by --no-figures) was listed with the current report's files;
    and after a run that stopped before its report (run.json rewritten without one) every file was."""
    out = _store(tmp_path, ["pertvae", "baselines"])
    (out / "forest.png").write_bytes(b"an earlier report's figure")
    render_report(out, with_figures=False)
    text = _info(out)
    current = next(line for line in text.splitlines() if line.startswith("report files: "))
    assert "forest.png" not in current and "table1.md" in current and "summary.txt" in current
    assert ("left from an earlier report, not rewritten by the last one (perhaps of fewer results): "
            "forest.png") in text
    run = json.loads((out / "run.json").read_text())
    del run["report"]
    (out / "run.json").write_text(json.dumps(run))
    assert "report files: none current: run.json records no finished report" in _info(out)


def _wide_two_latents() -> object:
    """The response scores of a run with Dr.VAE at latent 8 and the response baselines at 4 (as
    harness.response_report._wide gives them): 10 splits of one drug, AUROC and its chance."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    rows = []
    for latent, methods in ((4, ("logreg_x1", "rf_x1", "prior")), (8, ("drvae", "drvae_identity"))):
        for split in range(10):
            for m in methods:
                value = 0.5 if m == "prior" else float(rng.normal(0.8, 0.05))
                rows += [("dA", latent, split // 5, split % 5, "auroc", m, value),
                         ("dA", latent, split // 5, split % 5, "auroc_chance", m, 0.5)]
    df = pd.DataFrame(rows, columns=["drug", "latent", "repeat", "fold", "metric", "method", "value"])
    return df.pivot_table(index=["drug", "latent", "repeat", "fold"], columns=["metric", "method"],
                          values="value", aggfunc="first")


def test_dr_vae_at_another_latent_size_is_said_and_not_counted(monkeypatch) -> None:
    """Dr.VAE at --latents-drvae 8, the baselines at --latents-response-baselines 4: the latent-4 line read
    'no Dr.VAE comparison (AUROC). Above chance: ... (all but ... Dr.VAE ...)', as if Dr.VAE had been tested
    there, and response.md listed Dr.VAE's empty rows and 'Dr.VAE has no AUROC or AUPR'. Now the methods
    without a score at a latent size have no rows there, and the line says why there is no comparison."""
    from harness import response_report as rr

    monkeypatch.setattr(rr, "_wide", lambda ds: _wide_two_latents())
    monkeypatch.setattr(rr, "has_response", lambda ds: True)

    import xarray as xr

    ds = xr.Dataset(coords={"method": ["drvae"]}, attrs={"n_folds": 5})
    table = rr.response_table(ds)
    assert set(table.loc[table["latent"] == 4, "method"]) == {"logreg_x1", "rf_x1", "prior"}
    assert set(table.loc[table["latent"] == 8, "method"]) == {"drvae", "drvae_identity"}
    monkeypatch.setattr(rr, "response_table", lambda ds: table)
    line = next(x for x in rr.summary_lines(ds) if x.startswith("  dA (latent 4)"))
    assert ("no Dr.VAE comparison (AUROC): Dr.VAE ran at latent size 8 only, these methods at 4, and a "
            "comparison pairs fits of one latent size") in line
    assert "Dr.VAE;" not in line and "of 3 methods" not in line
    md = rr.response_markdown(table)
    assert "has no AUROC" not in md


def test_a_null_drugs_verdict_is_not_read_as_a_tie_of_skill(tmp_path: Path) -> None:
    """dB's replicates measure no change (signal_z 0.3): its row read 'PertVAE not distinguishable from
    pertvae_rec, identity, ...' like a tie of skill, though there every method should sit at chance; the
    row now says so. dA (a measured change) keeps its verdict alone."""
    from harness.verdicts import NULL_WORDS

    out = _store(tmp_path, ["pertvae", "baselines"])
    render_report(out, with_figures=False)
    rows: dict[str, str] = {}
    for line in (out / "benchmark.md").read_text().splitlines():   # the first table: delta_pearson's
        if line.startswith(("| dA |", "| dB |")):
            rows.setdefault(line.split(" | ")[0], line)
    assert "PertVAE not distinguishable from" in rows["| dB"] and NULL_WORDS.strip() in rows["| dB"]
    assert NULL_WORDS.strip() not in rows["| dA"]


def _keep_one_split(out: Path, method: str) -> None:
    """Blank ``method``'s scores on every split but the first (as a method that failed on the others)."""
    import numpy as np

    g = zarr.open_group(str(out / "results.zarr"), mode="r+")
    a = g["score"]
    dims = list(a.metadata.dimension_names)
    methods = [str(m) for m in g["method"][:]]
    vals = a[...]
    index: list[object] = [slice(None)] * vals.ndim
    index[dims.index("method")] = methods.index(method)
    index[dims.index("split")] = slice(1, None)
    vals[tuple(index)] = np.nan
    a[...] = vals


def _first_rows(out: Path, drug: str) -> list[str]:
    """benchmark.md's rows of ``drug``, table by table."""
    text = (out / "benchmark.md").read_text()
    return [line for line in text.splitlines() if line.startswith(f"| {drug} |")]


def test_a_method_on_one_split_is_not_called_indistinguishable(tmp_path: Path) -> None:
    """A method scored on 1 of 5 splits (the others failed) has no paired test (p needs two splits), yet
    the verdict read 'not distinguishable from ... ridge_delta (5 splits; 1 for ridge_delta)'."""
    out = _store(tmp_path, ["pertvae", "baselines"])
    _keep_one_split(out, "ridge_delta")
    render_report(out, with_figures=False)
    verdict = _first_rows(out, "dA")[0].split(" | ")[-1]
    assert "not tested (too few paired splits) against ridge_delta (5 splits; 1 for ridge_delta)" in verdict
    assert "ridge_delta;" not in verdict and "and ridge_delta" not in verdict


def test_the_other_metrics_tables_give_a_means_splits_where_fewer(tmp_path: Path) -> None:
    """The mse_z table (and any _metric_table) printed a method's mean over 1 of 10 splits (a plug-in that
    failed on the others: demo once_only 1.284 beside PertVAE's 0.681 over 10) with nothing to say so,
    where the delta_pearson table says '(1 of 10 splits)'."""
    from harness import verdicts
    from harness.benchmark import method_order
    from harness.report import load, open_results

    out = _store(tmp_path, ["pertvae", "baselines"])
    _keep_one_split(out, "ridge_delta")
    res = load(out)
    methods = method_order(res.scores["method"].unique())
    table = verdicts._metric_table(open_results(out), res.scores, res.comparisons, 10, "rho_pred_pert",
                                   methods)
    row = next(line for line in table if line.startswith("| dA |")).split(" | ")
    assert row[methods.index("ridge_delta") + 1].removesuffix(" |").endswith(" (1 of 5 splits)")
    assert "splits" not in row[methods.index("identity") + 1]


def _fail_one_method(out: Path, model: str, method: str, drug: str) -> None:
    """Mark ``model``'s fits of ``drug`` on folds 1-4 failed in ``method`` alone (the others done), as a
    --method plug-in that failed beside the built-in baselines (only that region is rewritten)."""
    import numpy as np

    g = zarr.open_group(str(out / "results.zarr"), mode="r+")
    models, drugs = [str(m) for m in g["model"][:]], [str(d) for d in g["drug"][:]]
    methods = [str(m) for m in g["method"][:]]
    for name in ("status", "method_status"):
        a = g[name]
        dims = list(a.metadata.dimension_names)
        index: list[object] = [slice(None)] * len(dims)
        index[dims.index("model")] = slice(models.index(model), models.index(model) + 1)
        index[dims.index("drug")] = slice(drugs.index(drug), drugs.index(drug) + 1)
        index[dims.index("split")] = slice(1, 5)
        region = np.asarray(a[tuple(index)]).astype(object)
        if name == "status":
            region[...] = "failed"
        else:
            region[...] = "done"
            at: list[object] = [slice(None)] * len(dims)
            at[dims.index("method")] = methods.index(method)
            region[tuple(at)] = "failed"
        a[tuple(index)] = region.astype(str)


def test_info_says_a_models_fits_failed_in_one_method_only(tmp_path: Path) -> None:
    """Four baselines fits of dA failed in ridge_delta alone (their other methods scored): info's per-drug
    line read 'baselines 1/5 (4 failed)', as if the baselines had lost those scores; the first line said
    'all in some methods only', the drug's line now says it too."""
    out = _store(tmp_path, ["pertvae", "baselines"])
    _fail_one_method(out, "baselines", "ridge_delta", "dA")
    text = _info(out)
    assert "4 failed (all in some methods only" in text.splitlines()[0]
    assert ("  dA: pertvae 5/5, baselines 1/5 (4 failed, all in some methods only, their other methods "
            "scored)") in text
    assert "  dB: pertvae 5/5, baselines 5/5" in text


def test_response_md_gives_a_means_splits_where_fewer(monkeypatch) -> None:
    """A --response-method that failed on 6 of 10 splits (drvae-demo selumetinib) showed Pearson '0.811
    [0.661, 0.962]', its mean over the other 4, beside the others' over 10 with nothing in its row to say
    so (the section read '10 splits'); the row now says '(4 of 10 splits)'."""
    import numpy as np
    import xarray as xr

    from harness import response_report as rr

    wide = _wide_two_latents()
    wide.loc[("dA", 4, 0, slice(None)), ("auroc", "rf_x1")] = np.nan    # 5 of its 10 splits
    wide.loc[("dA", 4, 1, 0), ("auroc", "rf_x1")] = np.nan
    monkeypatch.setattr(rr, "_wide", lambda ds: wide)
    monkeypatch.setattr(rr, "has_response", lambda ds: True)
    md = rr.response_markdown(rr.response_table(xr.Dataset(coords={"method": ["drvae"]},
                                                           attrs={"n_folds": 5})))
    rf = [line for line in md.splitlines() if line.startswith("| random forest | x1 |")]
    assert len(rf) == 1 and "] (4 of 10 splits) |" in rf[0]
    assert not any("splits) |" in line for line in md.splitlines() if line.startswith("| logistic L2 | x1 |"))


def test_the_legend_says_how_the_means_are_taken(tmp_path: Path) -> None:
    """benchmark.md said its numbers were 'means over the test cell lines of all splits'; they are means
    over the splits of each split's mean (demo selumetinib mean_shift: 0.3631 so, 0.3624 pooled over the
    splits' 2-4 test cell lines: the table printed 0.363, not the 0.362 the words describe)."""
    out = _store(tmp_path, ["pertvae", "baselines"])
    render_report(out, with_figures=False)
    text = (out / "benchmark.md").read_text()
    assert "means over the test cell lines of all splits" not in text
    assert "means over the splits of each split's mean over its test cell lines" in text
