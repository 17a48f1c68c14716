"""The report's words on unusual grids (review 47): a sentence written for the default run must stay true
for a run of some models only, baselines at other latent sizes, a drug whose replicates cannot measure its
noise, or a model whose every fit failed. Each test builds a real result store (harness.store) and renders
the report from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from harness.report import render_report

DRUGS = ("dA", "dB")
N_TT = (30.0, 8.0)
OWN = {"pertvae": ("pertvae", "pertvae_rec"),
       "baselines": ("identity", "train_mean", "mean_shift", "pca_latent_linear", "ridge_delta")}


def _store(out: Path, models: list[str], *, latents_pertvae: int = 10, latents_baselines: int = 10,
           signal_z: dict[str, float] | None = None, failed: tuple[str, ...] = ()) -> Path:
    """A real store of ``models`` (perturbation models, and Figure 2's vae and pca, pooled) on two drugs,
    one repeat of 5 folds; dA has a measured change (signal_z 40), dB none (0.3), unless ``signal_z`` says
    otherwise (NaN: the ceiling could not be measured); the models in ``failed`` failed every fit."""
    from harness.config import make_config
    from harness.grid import store_drugs
    from harness.store import ResultStore
    from pertvae_core.methods import METHODS as BUILT_IN

    cfg = make_config("demo", models=models, latents_pertvae=[latents_pertvae],
                      latents_baselines=[latents_baselines], latents_vae=[2], latents_pca=[2],
                      n_repeats=1, n_folds=5)
    z = signal_z or {"dA": 40.0, "dB": 0.3}
    ceiling = {d: ({"ceiling_delta_pearson": 0.9, "se": 0.01, "signal_z": z[d], "reason": ""}
                   if np.isfinite(z[d]) else
                   {"ceiling_delta_pearson": float("nan"), "se": float("nan"), "signal_z": float("nan"),
                    "reason": "no test cell line has >= 2 post-treatment replicates to measure their noise"})
               for d in DRUGS}
    st = ResultStore.open(out, cfg, "fp", drugs=store_drugs(cfg, list(DRUGS)),
                          n_train_test=dict.fromkeys(DRUGS, list(N_TT)), methods=BUILT_IN,
                          extra_attrs={"ceiling": ceiling}, cell_lines=["c1"], genes=["g1", "g2"])
    rng = np.random.default_rng(0)
    rows = []
    for model in models:
        latent = {"pertvae": latents_pertvae, "baselines": latents_baselines}.get(model, 2)
        for d in (DRUGS if model in OWN else ("(pooled)",)):
            for f in range(5):
                row = {"model": model, "drug": d, "latent": latent, "repeat": 0, "fold": f,
                       "status": "done", "fit_seconds": 1.0, "epochs": 3}
                if model in failed:
                    row.update(status="failed", reason="non-finite training loss in epoch 1", scores={})
                elif model in OWN:
                    row["scores"] = {m: {"delta_pearson": 0.0 if m == "identity" else
                                         float(rng.normal(0.5 if d == "dA" else 0.0, 0.05)),
                                         "rho_pred_pert": float(rng.normal(0.8, 0.02))}
                                     for m in OWN[model]}
                else:   # Figure 2's reconstruction
                    row["scores"] = {model: {"rho_rec": float(rng.normal(0.8, 0.02))}}
                rows.append(row)
    st.write(rows)
    return out


def _summary(out: Path) -> str:
    return (out / "summary.txt").read_text()


def test_baselines_at_other_latent_sizes_are_not_said_to_be_missing(tmp_path: Path) -> None:
    """--latents-baselines 2 beside --latents-pertvae 3: identity ran (at 2), so 'has no finished fits in
    this run: add --models baselines' was false advice; the sentence says it ran at another size."""
    _store(tmp_path, ["pertvae", "baselines"], latents_pertvae=3, latents_baselines=2)
    render_report(tmp_path, with_figures=False)
    text = _summary(tmp_path) + (tmp_path / "benchmark.md").read_text()
    assert "add --models baselines" not in text
    assert ("PertVAE was not compared with 'no change' (its baseline, identity, has finished fits only at "
            "latent size 2, not at PertVAE's 3") in _summary(tmp_path)


def test_without_the_baselines_the_advice_stays(tmp_path: Path) -> None:
    _store(tmp_path, ["pertvae"])
    render_report(tmp_path, with_figures=False)
    assert "has no finished fits in this run: add --models baselines" in _summary(tmp_path)


def _legend(out: Path) -> list[str]:
    """drugs.png's legend entries."""
    from harness import figures
    from harness.report import load, open_results

    res = load(out)
    fig = figures.plot_drugs(open_results(out), res.scores, res.comparisons, False)
    return [t.get_text() for t in fig.legends[0].get_texts()]


def test_a_drug_whose_replicates_cannot_tell_is_not_said_to_measure_a_change(tmp_path: Path) -> None:
    """One post-treatment replicate per cell line: no ceiling and no reliability z. The drug was shown as
    'measured change: yes' and counted among 'the drugs whose replicates measure a change' (a null drug
    too); its column says n/a, the headline names it, and drugs.png offers no ceiling band it lacks."""
    nan = float("nan")
    out = _store(tmp_path / "one", ["pertvae", "baselines"], signal_z={"dA": 40.0, "dB": nan})
    render_report(out, with_figures=False)
    bench = (out / "benchmark.md").read_text()
    assert "| dB | n/a | n/a |" in bench and "| dA | yes | 0.900 +/- 0.020 |" in bench
    assert ("on the 2 drug(s) whose replicates measure a change or are too few to tell (dB):"
            in _summary(out))
    assert "better than 'no change' on 1 of the 2 with a measured change or too few replicates to tell (dB)" \
        in _summary(out)
    assert any("noise ceiling" in t for t in _legend(out))   # dA has one
    out = _store(tmp_path / "none", ["pertvae", "baselines"], signal_z={"dA": nan, "dB": nan})
    assert not any("noise ceiling" in t for t in _legend(out))


def test_drugs_png_offers_no_pertvae_calls_without_pertvae(tmp_path: Path) -> None:
    """--models baselines (or every PertVAE fit failed): the legend offered 'PertVAE better than it' and
    'PertVAE worse than it' markers in a figure without PertVAE."""
    out = _store(tmp_path / "b", ["baselines"])
    assert not any("PertVAE" in t for t in _legend(out))
    out = _store(tmp_path / "f", ["pertvae", "baselines"], failed=("pertvae",))
    assert not any("PertVAE" in t for t in _legend(out))
    out = _store(tmp_path / "p", ["pertvae", "baselines"])
    assert "PertVAE better than it (q < 0.05)" in _legend(out)


def test_a_figure2_only_run_does_not_say_it_has_no_scores(tmp_path: Path) -> None:
    """--models vae pca: the summary read 'No scores in this run.' beside a Figure 2 of their scores."""
    out = _store(tmp_path, ["vae", "pca"])
    render_report(out)
    text = _summary(out)
    assert "No scores" not in text
    assert "Figure 2's reconstruction models alone" in text and "figure2.png is its report" in text
    assert (out / "figure2.png").exists() and not (out / "benchmark.md").exists()


def test_figure2_is_named_by_the_models_it_draws(tmp_path: Path) -> None:
    """The summary called figure2.png 'VAE vs PCA reconstruction' in a run without the VAE (--models pertvae
    pca) and in one whose every VAE fit failed (whose figure did not say so either)."""
    from harness.report import figure2_drawn, open_results

    out = _store(tmp_path / "pca", ["pertvae", "pca", "baselines"])
    render_report(out)
    assert "figure2.png   the paper's Figure 2: PCA reconstruction by latent size (also .svg)" \
        in _summary(out)
    out = _store(tmp_path / "failed", ["vae", "pca"], failed=("vae",))
    render_report(out)
    assert "the paper's Figure 2: PCA reconstruction by latent size; no finished VAE fit" in _summary(out)
    assert figure2_drawn(open_results(out)) == (["PCA"], ["VAE"])   # the figure's title line
    out = _store(tmp_path / "both", ["vae", "pca"])
    render_report(out)
    assert "the paper's Figure 2: VAE vs PCA reconstruction by latent size (also .svg)" in _summary(out)


def test_the_partial_line_names_failed_figure2_fits(tmp_path: Path) -> None:
    """Every VAE fit failed beside PertVAE's: the PARTIAL line named PertVAE's methods alone and ended
    'every other method has all its scores', as if PertVAE's fits were all the missing ones."""
    out = _store(tmp_path, ["pertvae", "vae", "pca", "baselines"], failed=("pertvae", "vae"))
    render_report(out, with_figures=False)
    line = _summary(out).splitlines()[0]
    assert line.startswith("PARTIAL: 15 of 30 fits missing (15 failed, 0 not run)"), line
    assert "vae (5 of 5 fits)" in line and "pertvae (10 of 10 fits)" in line, line
    assert "pca (" not in line, line


def test_table1_says_why_the_baseline_columns_are_empty(tmp_path: Path) -> None:
    """rho_identity, rho_meanshift and rho_pca_latent were '-' on every row ('not available') without a
    word of why: the baselines were not in the run, or ran at other latent sizes."""
    out = _store(tmp_path / "alone", ["pertvae"])
    render_report(out, with_figures=False)
    assert ("'-' on every row of rho_identity, rho_meanshift, rho_pca_latent: baselines is not in this run "
            "(--models baselines adds it).") in (out / "table1.md").read_text()
    out = _store(tmp_path / "other", ["pertvae", "baselines"], latents_pertvae=3, latents_baselines=2)
    render_report(out, with_figures=False)
    assert ("'-' on every row of rho_identity, rho_meanshift, rho_pca_latent: baselines ran at latent size 2 "
            "only, and Table 1 pairs fits of PertVAE's latent size.") in (out / "table1.md").read_text()
    out = _store(tmp_path / "both", ["pertvae", "baselines"])
    render_report(out, with_figures=False)
    assert "on every row" not in (out / "table1.md").read_text()


def test_the_metric_agreement_of_one_drug_is_singular(tmp_path: Path) -> None:
    """--drugs dA: 'Kendall tau ... 0.71 (over 1 drugs)'."""
    from harness.verdicts import _agreement

    scores = pd.DataFrame([{"drug": "dA", "latent": 3, "repeat": 0, "fold": 0, "method": m, "metric": k,
                            "value": v} for m, v in (("a", 0.1), ("b", 0.2), ("c", 0.3))
                           for k in ("delta_pearson", "mse_z")])
    rows = _agreement(scores, 3)
    assert any("(over 1 drug) |" in r for r in rows), rows


def test_table1_tex_caption_claims_fewer_splits_only_where_there_are(tmp_path: Path) -> None:
    """The caption always read 'fewer for some drugs: table1.md names them', also where no drug had fewer
    splits (table1.md then names none); it now says why a baseline column is empty, as table1.md does."""
    out = _store(tmp_path / "both", ["pertvae", "baselines"])
    render_report(out, with_figures=False)
    assert "fewer for some drugs" not in (out / "table1.tex").read_text()
    out = _store(tmp_path / "alone", ["pertvae"])
    render_report(out, with_figures=False)
    assert "baselines is not in this run (-{}-models baselines adds it)." in (out / "table1.tex").read_text()
