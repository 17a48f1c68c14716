"""Review 51 of harness/benchmark.py and harness/figures.py: each test reproduces a problem found there."""

from __future__ import annotations

import pandas as pd

from harness.benchmark import metric_agreement


def _scores(values: dict[tuple[str, str], list[float]], drug: str = "dA", latent: int = 3) -> pd.DataFrame:
    """Tidy scores: (method, metric) -> one value per split (fold 0, 1, ...)."""
    return pd.DataFrame([{"drug": drug, "latent": latent, "repeat": 0, "fold": f, "method": m, "metric": k,
                          "value": v} for (m, k), vs in values.items() for f, v in enumerate(vs)])


def test_metric_agreement_names_no_best_scored_on_fewer_splits() -> None:
    """A method whose fits failed on 4 of 5 splits, scored 0.9 on the one left, was the delta_pearson best
    by the agreement (mean 0.9 against PertVAE's 0.5), which then said mse_z 'names another best method'
    on dA; the report's best column chooses among the methods scored on the most splits (PertVAE)."""
    five = {("pertvae", "delta_pearson"): [0.5] * 5, ("identity", "delta_pearson"): [0.1] * 5,
            ("mean_shift", "delta_pearson"): [0.3] * 5, ("pertvae", "mse_z"): [1.0] * 5,
            ("identity", "mse_z"): [3.0] * 5, ("mean_shift", "mse_z"): [2.0] * 5}
    one = {("ridge_delta", "delta_pearson"): [0.9], ("ridge_delta", "mse_z"): [1.5]}
    agree = metric_agreement(_scores({**five, **one}))
    row = agree[agree["metric"] == "mse_z"].iloc[0]
    assert row["drugs_with_another_best"] == "" and row["kendall_tau"] == 1.0


def test_metric_agreement_counts_a_tie_at_the_top_as_the_same_best() -> None:
    """de_sign_top50 of 0.5 for every method but one (a tie) named 'another best' where the primary's best
    was among those tied (idxmax takes the first in name order)."""
    vals = {("pertvae", "delta_pearson"): [0.5] * 2, ("identity", "delta_pearson"): [0.1] * 2,
            ("mean_shift", "delta_pearson"): [0.3] * 2, ("pertvae", "de_sign_top50"): [0.6] * 2,
            ("identity", "de_sign_top50"): [0.6] * 2, ("mean_shift", "de_sign_top50"): [0.4] * 2}
    agree = metric_agreement(_scores(vals))
    assert agree.iloc[0]["drugs_with_another_best"] == ""


def test_a_constant_observed_change_scores_no_method() -> None:
    """delta_pearson_centered of a split with one independent test cell line: its centred observed change is
    0 for every gene, undefined for every method (NaN), yet mean_shift's constant prediction scored 0.0
    there: the demo's doxorubicin had mean_shift on 9 splits, every other method on 3, so the metrics'
    agreement ranked mean_shift alone and skipped the drug. Such a row is now NaN for every prediction."""
    import numpy as np

    from pertvae_core.metrics import change_pearson_rows

    obs = np.zeros((1, 20))
    assert np.isnan(change_pearson_rows(np.zeros((1, 20)), obs)).all()                 # mean_shift, centred
    assert np.isnan(change_pearson_rows(np.linspace(-1, 1, 20)[None], obs)).all()      # any other method
    assert change_pearson_rows(np.zeros((1, 20)), np.linspace(-1, 1, 20)[None])[0] == 0.0   # still chance


def test_drugs_png_draws_the_splits_beyond_the_whiskers() -> None:
    """drugs.png's boxes hid the splits beyond their whiskers (showfliers=False): the demo's doxorubicin
    train_mean box spanned 0.45-0.79 while 2 of its 9 splits scored 0.10 and 0.12; selumetinib's linear
    (PCA) box sat at 0.76 with 2 splits at 0.59 and 0.61 drawn nowhere. They are now drawn."""
    import numpy as np

    from harness.figures import _colors, _drug_panel, _pyplot

    vals = [0.45, 0.47, 0.5, 0.6, 0.7, 0.79, 0.48, 0.1, 0.12]
    prim = pd.DataFrame({"drug": "dA", "latent": 3, "method": "train_mean", "value": vals})
    comp = pd.DataFrame(columns=["drug", "latent", "metric", "kind", "method", "q_bh", "q_bh_worse"])
    fig, ax = _pyplot().subplots()
    _drug_panel(ax, prim, comp, {}, "dA", 3, ["train_mean"], _colors(["train_mean"]))
    drawn = np.concatenate([np.asarray(line.get_ydata(), float) for line in ax.get_lines()])
    _pyplot().close(fig)
    assert {0.1, 0.12} <= set(np.round(drawn, 6).tolist())


def test_forest_marks_a_difference_without_an_interval() -> None:
    """forest.png drew a comparison on one split (ci NaN: a partial run, a drug with few cell lines) as a bare
    dot, exactly as a difference with an interval too narrow to see: PertVAE minus identity +0.30 on 1 split
    looked like a precise +0.30. It is now a hollow dot, and the axis label says how many there are."""
    import numpy as np
    import xarray as xr

    from harness.figures import _pyplot, plot_forest

    comp = pd.DataFrame([{"drug": "dA", "latent": 3, "metric": "delta_pearson", "kind": "versus",
                          "reference": "pertvae", "method": "identity", "mean_diff": 0.3, "ci_low": np.nan,
                          "ci_high": np.nan, "q_bh": np.nan, "q_bh_worse": np.nan, "n_splits": 1}])
    ds = xr.Dataset(coords={"drug": ["dA"]})
    fig = plot_forest(ds, comp, partial=True)
    ax = fig.axes[0]
    faces = [line.get_markerfacecolor() for line in ax.get_lines() if line.get_marker() == "o"]
    label = fig.get_supxlabel()
    _pyplot().close(fig)
    assert faces == ["none"] and "hollow: 1 difference(s) on one split, no interval" in label


def test_figure2_draws_its_sd_at_a_single_latent_size(tmp_path, monkeypatch) -> None:
    """Figure 2 of a run with one VAE/PCA latent size (--latents-vae 2 --latents-pca 2) drew its '+/- 1 s.d.
    over fits' as a band between two identical x: no width, nothing seen (the demo's VAE: 0.855 +/- 0.030,
    drawn as a dot). The s.d. is now also drawn as error bars."""
    import matplotlib.pyplot as plt
    import numpy as np

    from harness.report import _figure2
    from harness.store import paper_into_score
    from tests.harness.test_report import make_store

    ds = paper_into_score(make_store(tmp_path).load())
    ds = ds.assign_coords(planned=ds["planned"] & (ds["latent"] == 2))
    kept = []
    monkeypatch.setattr(plt, "close", kept.append)
    _figure2(ds, tmp_path, partial=False)
    ax = kept[0].axes[0]
    spans = [np.ptp(seg[:, 1]) for coll in ax.collections if hasattr(coll, "get_segments")
             for seg in map(np.asarray, coll.get_segments())]
    plt.close(kept[0])
    assert len(spans) >= 2 and min(spans) > 0.005   # one bar per model, 2 s.d. tall
