"""datasets.synthetic's drug response: the expression of existing seeds unchanged, each kind's ground truth,
each drug's own random stream, the kinds' definitions against numpy, and the known answer: a ``baseline``
response is predicted from the untreated profile well above chance by logistic regression on training cell
lines, a ``none`` response is not (scikit-learn, held-out cell lines)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from datasets.cube import CONDITION_BASELINE, CONDITION_CONTROL, RESPONSE, RESPONSE_DIRECTION, CubeError
from datasets.pairs import drug_data
from datasets.response import drug_response
from datasets.synthetic import RESPONSE_KINDS, RESPONSES, generate, main, synthetic_response

# The expression of generate("demo", seed=0) and generate("paper", seed=0, n_genes=16, n_baseline=300,
# max_replicates=3) before the response existed: measured values, their sum and sum of squares (float64),
# the first and last measured value.
BEFORE = {"demo": (211200, 1329882.0192111519, 10185657.379228175, 8.80325698852539, 8.560796737670898),
          "paper": (25808, 158546.8813335565, 1167861.3884960248, 3.9935996532440186, 14.94357967376709)}
PAPER_SMALL = dict(n_genes=16, n_baseline=300, max_replicates=3)


@pytest.fixture(scope="module")
def demo():
    return generate("demo", seed=0)


def stats(ds) -> tuple:
    e = np.asarray(ds["expression"].values, dtype=np.float64)
    m = ~np.isnan(e)
    return int(m.sum()), float(np.nansum(e)), float(np.nansum(e ** 2)), float(e[m][0]), float(e[m][-1])


def test_expression_of_existing_seeds_unchanged(demo) -> None:
    paper = generate("paper", seed=0, **PAPER_SMALL)
    for ds, key in ((demo, "demo"), (paper, "paper")):
        n, *rest = stats(ds)
        assert n == BEFORE[key][0]
        np.testing.assert_allclose(rest, BEFORE[key][1:], rtol=1e-6)
    bare = generate("demo", seed=0, responses=None)
    assert RESPONSE not in bare.data_vars
    assert "response" not in json.loads(bare.attrs["ground_truth"])["SN-38"]
    assert bare["expression"].values.tobytes() == demo["expression"].values.tobytes()
    assert (bare["plate"].values == demo["plate"].values).all()


def test_every_drug_has_a_response_of_its_kind(demo) -> None:
    truth = json.loads(demo.attrs["ground_truth"])
    kinds = {d: t["response"]["kind"] for d, t in truth.items()}
    assert kinds == {d: RESPONSES.get(d, "none") for d in truth}
    assert {k: list(kinds.values()).count(k) for k in RESPONSE_KINDS} == {"perturbation": 4, "baseline": 5,
                                                                          "none": 10}
    assert all(truth[d]["kind"] in ("latent_linear", "latent_nonlinear") for d, k in kinds.items()
               if k == "perturbation")
    for t in truth.values():
        r = t["response"]
        assert r["noise_sd"] == 0.5
        if r["kind"] == "none":
            assert r["direction"] is None and r["moved"] is None
        else:
            assert np.linalg.norm(r["direction"]) == pytest.approx(1, abs=1e-5)
    assert 0 < truth["doxorubicin"]["response"]["moved"] < 0.5  # latent_linear: moved, least along v
    assert truth["temsirolimus"]["response"]["moved"] == 0  # gene_additive: no latent change at all
    a = demo[RESPONSE].attrs
    assert a["direction"] == RESPONSE_DIRECTION and a["measure"] == "synthetic sensitivity"
    r = demo[RESPONSE]
    assert np.isnan(r.sel(condition=[CONDITION_CONTROL, CONDITION_BASELINE]).values).all()
    missing = np.isnan(r.sel(condition=list(truth)).values).mean()
    assert 0.06 < missing < 0.14  # response_missing 0.1
    # responses for paired cell lines and for baseline-only ones (singletons without L1000 profiles)
    sn = drug_response(demo, "SN-38")
    assert sn.paired.sum() >= 15 and (sn.singleton & ~sn.paired).sum() >= 150


def test_each_drug_has_its_own_stream(demo) -> None:
    other = generate("demo", seed=0, responses={**RESPONSES, "olaparib": "none", "gefitinib": "baseline"})
    a, b = demo[RESPONSE], other[RESPONSE]
    changed = [d for d in json.loads(demo.attrs["ground_truth"])
               if not np.array_equal(a.sel(condition=d).values, b.sel(condition=d).values, equal_nan=True)]
    assert changed == ["olaparib", "gefitinib"]
    assert other["expression"].values.tobytes() == demo["expression"].values.tobytes()
    again = generate("demo", seed=0)
    np.testing.assert_array_equal(again[RESPONSE].values, a.values)
    assert not np.array_equal(generate("demo", seed=1)[RESPONSE].values, a.values, equal_nan=True)


def test_kinds_follow_their_definitions() -> None:
    rng = np.random.default_rng(5)
    n, d = 4000, 6
    z = rng.normal(size=(n, d))
    a = rng.normal(size=(d, d)) / np.sqrt(d)
    dz = z @ a.T + 0.3  # a latent linear effect: z2 - z1 = A z1 + b
    y, t = synthetic_response("perturbation", z, dz, np.random.default_rng(1), noise=0.5, missing=0.0)
    evals, evecs = np.linalg.eigh(np.cov(dz, rowvar=False))
    w = evecs[:, -1]  # the direction in which the change varies most over the cell lines
    assert abs(np.dot(t["direction"], w)) == pytest.approx(1, abs=1e-5)
    assert np.corrcoef(y, dz @ w)[0, 1] ** 2 == pytest.approx(1 / 1.25, abs=0.02)  # signal var 1, noise 0.25
    y, t = synthetic_response("baseline", z, dz, np.random.default_rng(1), noise=0.5, missing=0.2)
    evals, evecs = np.linalg.eigh(dz.T @ dz / n)
    v = evecs[:, 0]  # the direction the drug moves least
    ok = ~np.isnan(y)
    assert abs(np.dot(t["direction"], v)) == pytest.approx(1, abs=1e-5)
    assert t["moved"] == pytest.approx(np.sqrt(evals[0] / (evals.sum() / d)), abs=1e-5)
    assert np.corrcoef(y[ok], (z @ v)[ok])[0, 1] ** 2 == pytest.approx(0.8, abs=0.03)
    assert (~ok).mean() == pytest.approx(0.2, abs=0.03)
    y, t = synthetic_response("none", z, dz, np.random.default_rng(1), noise=0.5, missing=0.0)
    assert y.var() == pytest.approx(1.25, rel=0.08)
    assert np.abs(np.corrcoef(np.c_[y, z].T)[0, 1:]).max() < 0.06


def held_out_auroc(ds, drug: str, seed: int = 0) -> float:
    """Logistic regression on the baseline singletons (x1) of 70% of the cell lines, label: response above
    the training median; AUROC on the other 30%."""
    dd = drug_data(ds, drug)
    y = drug_response(ds, drug).lookup(dd.singleton_cell_line)
    keep = ~np.isnan(y)
    x, y = dd.xs[keep], y[keep]
    order = np.random.default_rng(seed).permutation(len(y))  # one singleton per cell line: cell-line split
    train, test = order[: int(0.7 * len(y))], order[int(0.7 * len(y)):]
    label = (y > np.median(y[train])).astype(int)  # threshold from training cell lines only
    scale = StandardScaler().fit(x[train])
    fit = LogisticRegression(C=0.1, max_iter=5000).fit(scale.transform(x[train]), label[train])
    return float(roc_auc_score(label[test], fit.decision_function(scale.transform(x[test]))))


def test_known_answer_baseline_predictable_none_not(demo) -> None:
    truth = json.loads(demo.attrs["ground_truth"])
    kinds = {d: t["response"]["kind"] for d, t in truth.items()}
    baseline = {d: held_out_auroc(demo, d) for d, k in kinds.items() if k == "baseline"}
    none = {d: held_out_auroc(demo, d) for d, k in kinds.items() if k == "none"}
    assert min(baseline.values()) > 0.75, baseline
    assert abs(np.mean(list(none.values())) - 0.5) < 0.08, none
    assert max(none.values()) < 0.7, none


def test_bad_response_settings_refused() -> None:
    with pytest.raises(CubeError, match=r"responses\['olaparib'\] = 'strong': expected a drug of TABLE1"):
        generate("demo", responses={"olaparib": "strong"})
    with pytest.raises(CubeError, match=r"responses\['tipifarnib'\] = 'perturbation' needs a latent effect"):
        generate("demo", n_genes=8, n_baseline=5, responses={"tipifarnib": "perturbation"})
    with pytest.raises(CubeError, match=r"response_noise must be >= 0 and response_missing in \[0, 1\)"):
        generate("demo", response_missing=1.0)
    # a preset's perturbation drug made effect-free by an override gets a baseline response
    ds = generate("demo", n_genes=8, n_baseline=5, effects={"vorinostat": "none"})
    assert json.loads(ds.attrs["ground_truth"])["vorinostat"]["response"]["kind"] == "baseline"


def test_synth_cli_names_the_response_kinds(tmp_path: Path, capsys) -> None:
    assert main(["--out", str(tmp_path / "c.zarr"), "--preset", "demo"]) == 0
    assert "drug responses: 4 perturbation, 5 baseline, 10 none" in capsys.readouterr().out
