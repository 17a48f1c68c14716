"""The notebook estimator pertvae_core.PertVAE: labels in and out, save/load, errors, api's numbers."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest
import torch

from pertvae_core import PertVAE
from pertvae_core.api import PertVAEMethod, predict
from pertvae_core.config import FitConfig
from pertvae_core.data import SplitData
from pertvae_core.methods import Method
from pertvae_core.train import fit

SMALL = dict(latent=3, hidden=(16, 8), context=8, iaf_steps=1, iaf_hidden=8, batch_pairs=8,
             batch_singletons=8, max_epochs=6, patience=2, mc_samples=4)
GENES = [f"g{i}" for i in range(10)]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tiny models: one thread is as fast, and two oversubscribe a loaded 2-core machine (10x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _frames(seed: int, n: int, cells: str = "abcdef") -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=(n, len(GENES))) + 5
    x2 = x1 + 0.5 * np.sin(x1) + 0.1 * rng.normal(size=x1.shape)
    index = pd.Index([cells[i % len(cells)] for i in range(n)], name="cell_line")
    return (pd.DataFrame(x1, index=index, columns=GENES, dtype=np.float32),
            pd.DataFrame(x2, index=index, columns=GENES, dtype=np.float32))


@pytest.fixture(scope="module")
def fitted() -> tuple[PertVAE, dict]:
    x1, x2 = _frames(0, 24)
    v1, v2 = _frames(1, 6, "gh")
    xs, _ = _frames(2, 10, "s")
    t1, _ = _frames(3, 5, "tuvwx")
    est = PertVAE(**SMALL).fit(x1, x2, singletons=xs, validation=(v1, v2), seed=7)
    return est, dict(x1=x1, x2=x2, v1=v1, v2=v2, xs=xs, t1=t1)


def test_fit_predict_keep_labels_and_gene_order(fitted: tuple[PertVAE, dict]) -> None:
    est, d = fitted
    t1 = d["t1"]
    got = est.predict(t1)
    assert isinstance(got, pd.DataFrame) and list(got.columns) == GENES and got.index.equals(t1.index)
    assert np.isfinite(got.to_numpy()).all() and got.dtypes.eq(np.float64).all()
    np.testing.assert_array_equal(est.predict(t1), got)  # draws start over each call
    shuffled = t1[GENES[::-1]].assign(extra=1.0)          # columns matched by name, extra ones dropped
    pd.testing.assert_frame_equal(est.predict(shuffled), got)
    plain = est.predict(t1.to_numpy())
    assert isinstance(plain, np.ndarray) and np.array_equal(plain, got.to_numpy())
    rec = est.reconstruct(t1)
    assert rec.shape == t1.shape and list(rec.columns) == GENES and not np.allclose(rec, got)
    assert 1 <= est.best_epoch_ <= est.epochs_ <= SMALL["max_epochs"] and len(est.history_) == est.epochs_
    assert est.genes_ == GENES and est.n_genes_ == len(GENES) and est.seed_ == 7


def test_embed_is_the_posterior_mean_of_z1(fitted: tuple[PertVAE, dict]) -> None:
    est, d = fitted
    z1 = est.embed(d["t1"])
    assert list(z1.columns) == ["z1_0", "z1_1", "z1_2"] and z1.index.equals(d["t1"].index)
    np.testing.assert_array_equal(est.embed(d["t1"].to_numpy()), z1.to_numpy())
    # the Monte Carlo mean of z1 ~ q(z1|x1): with 500 draws (training does not depend on mc_samples) it
    # matches an independent 4000-draw mean of the same fitted encoder
    est500 = PertVAE(**{**SMALL, "mc_samples": 500}).fit(d["x1"], d["x2"], singletons=d["xs"],
                                                         validation=(d["v1"], d["v2"]), seed=7)
    x = d["t1"].to_numpy()
    state, gen = est500.state_, torch.Generator().manual_seed(123)
    X1, _ = state.std.forward([x])
    K = 4000
    with torch.no_grad():
        z = state.model.encode(X1.repeat(1, K, 1), torch.randn(1, K * len(x), 3, generator=gen))[0]
    draws = z[0].reshape(K, len(x), 3)
    assert draws.std(0).min() > 0.05  # a real posterior spread, not a point
    np.testing.assert_allclose(est500.embed(x), draws.mean(0).numpy(), atol=0.15)


def test_same_numbers_as_train_fit_and_api_predict(fitted: tuple[PertVAE, dict]) -> None:
    est, d = fitted
    a = {k: v.to_numpy() for k, v in d.items()}
    split = SplitData(a["x1"], a["x2"], a["v1"], a["v2"], a["t1"], a["t1"], a["xs"])
    state = fit([split], FitConfig(**SMALL), [7], pairs=True)
    want = predict(state, [a["t1"]], SMALL["mc_samples"])
    np.testing.assert_allclose(est.predict(a["t1"]), want["pred"][0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(est.reconstruct(a["t1"]), want["rec"][0], rtol=1e-5, atol=1e-5)
    # fit(split) makes the estimator a Method, with PertVAEMethod's numbers
    m = PertVAE(**SMALL).fit(split, seed=7)
    assert isinstance(m, Method)
    np.testing.assert_allclose(m.predict(a["t1"]), PertVAEMethod(FitConfig(**SMALL), seed=7).fit(split)
                               .predict(a["t1"]), rtol=1e-5, atol=1e-5)


def test_save_load_round_trip_is_identical(fitted: tuple[PertVAE, dict], tmp_path: Path) -> None:
    est, d = fitted
    path = est.save(tmp_path / "model.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]
    back = PertVAE.load(path)
    assert back.settings == est.settings and back.genes_ == GENES and back.seed_ == 7
    assert (back.epochs_, back.best_epoch_, back.history_) == (est.epochs_, est.best_epoch_, est.history_)
    for f in ("predict", "reconstruct", "embed"):
        pd.testing.assert_frame_equal(getattr(back, f)(d["t1"]), getattr(est, f)(d["t1"]))
    est.save(path)  # overwriting works too
    pd.testing.assert_frame_equal(PertVAE.load(path).predict(d["t1"]), est.predict(d["t1"]))


def test_anndata_in_anndata_out(fitted: tuple[PertVAE, dict]) -> None:
    est, d = fitted
    t1 = d["t1"]
    obs = pd.DataFrame({"cell_line": list(t1.index), "dose": 1.0}, index=[f"s{i}" for i in range(len(t1))])
    var = pd.DataFrame({"gene_symbol": [g.upper() for g in GENES]}, index=GENES)
    ad = anndata.AnnData(X=t1.to_numpy(), obs=obs, var=var)
    for call in (est.predict, est.reconstruct):
        got = call(ad)
        assert isinstance(got, anndata.AnnData) and got.shape == ad.shape
        pd.testing.assert_frame_equal(got.obs, ad.obs)       # the input's obs, rows in order
        pd.testing.assert_frame_equal(got.var, ad.var)       # the model's genes, with the input's symbols
        np.testing.assert_allclose(got.X, call(t1).to_numpy(), rtol=1e-6)
    z = est.embed(ad)
    assert list(z.var_names) == [f"z1_{i}" for i in range(SMALL["latent"])] and z.obs.equals(ad.obs)


def test_sklearn_clone_and_params(fitted: tuple[PertVAE, dict]) -> None:
    from sklearn.base import clone

    est, _ = fitted
    params = est.get_params()
    assert params["latent"] == SMALL["latent"] and set(params) == set(est.settings)
    copy = clone(est)
    assert copy.get_params() == params and not hasattr(copy, "state_")   # unfitted, same settings
    assert copy.set_params(latent=5, lr=1e-4) is copy and copy.config.latent == 5 and copy.config.lr == 1e-4
    with pytest.raises(ValueError, match="unknown setting 'laten'"):
        copy.set_params(laten=5)
    with pytest.raises(ValueError, match="lr"):
        copy.set_params(lr=float("inf"))
    assert copy.config.latent == 5   # a refused change leaves the settings as they were


def test_fit_says_how_it_goes_and_warns_when_unconverged(capsys: pytest.CaptureFixture[str]) -> None:
    from sklearn.exceptions import ConvergenceWarning

    x1, x2 = _frames(0, 24)
    v1, v2 = _frames(1, 6, "gh")
    with pytest.warns(ConvergenceWarning, match="max_epochs=2 with the validation loss still improving"):
        PertVAE(**{**SMALL, "max_epochs": 2, "patience": 5, "lr": 1e-3}).fit(x1, x2, validation=(v1, v2))
    assert "PertVAE.fit: done after 2 epochs" in capsys.readouterr().err
    PertVAE(**{**SMALL, "max_epochs": 2}).fit(x1, x2, validation=(v1, v2), verbose=False)
    assert capsys.readouterr().err == ""


def test_unknown_and_bad_settings() -> None:
    with pytest.raises(ValueError, match="unknown setting 'laten'; did you mean 'latent'"):
        PertVAE(laten=3)
    with pytest.raises(ValueError, match="unknown setting 'zzz'; valid settings: latent, hidden"):
        PertVAE(zzz=1)
    with pytest.raises(ValueError, match="FitConfig.latent = 0: must be a positive int"):
        PertVAE(latent=0)
    assert repr(PertVAE(latent=4, lr=0.01)) == "PertVAE(latent=4, lr=0.01)"


def test_gene_mismatch_and_bad_input(fitted: tuple[PertVAE, dict], tmp_path: Path) -> None:
    est, d = fitted
    t1 = d["t1"]
    with pytest.raises(ValueError, match="x1 lacks 2 of the model's 10 genes: g3, g7"):
        est.predict(t1.drop(columns=["g3", "g7"]))
    with pytest.raises(ValueError, match="x1 has 9 genes \\(columns\\), the model has 10"):
        est.embed(t1.to_numpy()[:, :9])
    with pytest.raises(ValueError, match=r"x1: NaN or inf in 1 row\(s\), e.g. \['v'\]"):
        est.predict(t1.mask((t1.index == "v")[:, None] & (t1.columns == "g4")[None, :]))
    with pytest.raises(ValueError, match=r"x1: column\(s\) \['cell'\] are not numeric"):
        est.predict(t1.assign(cell="a"))
    x1, x2 = d["x1"], d["x2"]
    with pytest.raises(ValueError, match="x2 lacks 1 of the model's 10 genes: g9"):
        PertVAE(**SMALL).fit(x1, x2.drop(columns="g9"))
    with pytest.raises(ValueError, match="x1 has 24 rows but x2 has 23"):
        PertVAE(**SMALL).fit(x1, x2.iloc[1:])
    with pytest.raises(ValueError, match="validation must be a \\(x1_val, x2_val\\) pair"):
        PertVAE(**SMALL).fit(x1, x2, validation=x1)
    with pytest.raises(RuntimeError, match="not fitted"):
        PertVAE().predict(t1)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="junk.pt: not a saved PertVAE estimator") as e:
        PertVAE.load(junk)
    # one line, and not torch's advice to load with weights_only=False (which runs the file's code)
    assert "\n" not in str(e.value) and "weights_only" not in str(e.value)
    assert str(e.value).endswith("(torch.load cannot read it: UnpicklingError: not a file torch.save wrote, "
                                 "or a damaged one); give a file PertVAE.save wrote")
    torch.save({"format": "other"}, junk)
    with pytest.raises(ValueError, match="format 'other', expected 'pertvae-estimator/1'"):
        PertVAE.load(junk)


def _edited(path: Path, out: Path, **change) -> Path:
    p = torch.load(path, weights_only=True)
    for k, v in change.items():
        if v is None:
            del p[k]
        else:
            p[k] = v(p[k]) if callable(v) else v
    torch.save(p, out)
    return out


def test_issue19_load_of_a_damaged_file_is_a_value_error_naming_it(fitted: tuple[PertVAE, dict],
                                                                   tmp_path: Path) -> None:
    """The right format tag with a missing entry was a KeyError; another gene count or latent size than the
    settings say was torch's size-mismatch RuntimeError; settings that are not a dict a TypeError."""
    est, _ = fitted
    good = est.save(tmp_path / "m.pt")
    cases = {
        "no_model": (dict(model=None), r"no_model\.pt: saved PertVAE estimator lacks model \(damaged"),
        "no_std": (dict(standardizer=None, seed=None), r"no_std\.pt: .* lacks seed, standardizer"),
        "genes": (dict(n_genes=11), r"genes\.pt: 10 gene names for n_genes = 11"),
        "latent": (dict(settings=lambda s: {**s, "latent": 4}),
                   r"latent\.pt: its weights do not fit its settings \(n_genes 10, latent 4, hidden "
                   r"\(16, 8\)\): .* has shape .*, expected"),
        "weights": (dict(model=lambda m: {k: v[..., :-1] if v.ndim > 1 else v for k, v in m.items()}),
                    r"weights\.pt: its weights do not fit its settings"),
        "key": (dict(model=lambda m: {("x" + k if i == 0 else k): v for i, (k, v) in enumerate(m.items())}),
                r"key\.pt: its weights do not fit .*missing; unexpected x"),
        "settings": (dict(settings="latent=3"), r"settings\.pt: entry 'settings' is a str, expected dict"),
        "bad_setting": (dict(settings=lambda s: {**s, "lr": float("inf")}),
                        r"bad_setting\.pt: the saved settings are invalid .*lr = inf"),
    }
    for name, (change, message) in cases.items():
        with pytest.raises(ValueError, match=message):
            PertVAE.load(_edited(good, tmp_path / f"{name}.pt", **change))
    no_genes = _edited(good, tmp_path / "ng.pt", genes=None)
    with pytest.raises(ValueError, match="lacks genes"):
        PertVAE.load(no_genes)
    with pytest.raises(FileNotFoundError):
        PertVAE.load(tmp_path / "absent.pt")
    with pytest.raises(FileNotFoundError, match=r"nope/m\.pt: directory .*nope does not exist"):
        est.save(tmp_path / "nope" / "m.pt")  # was torch's RuntimeError


@pytest.mark.parametrize(("setting", "message"), [
    (dict(lr=float("inf")), r"lr = inf: must be a finite number > 0"),
    (dict(lr=float("nan")), r"lr = nan: must be a finite number > 0"),
    (dict(lr=-1e-3), r"lr = -0\.001: must be a finite number > 0"),
    (dict(lr="1e-3"), r"lr = '1e-3': must be a finite number"),
    (dict(lr=True), r"lr = True: must be a finite number"),
    (dict(free_bits=float("inf")), r"free_bits = inf: must be a finite number >= 0"),
    (dict(l2_drug=float("inf")), r"l2_drug = inf: must be a finite number >= 0"),
    (dict(l2_drug=-1.0), r"l2_drug = -1\.0: must be a finite number >= 0"),
    (dict(compile="yes"), r"compile = 'yes': must be True or False"),
    (dict(min_epochs=9, max_epochs=5), r"min_epochs = 9: must be <= max_epochs \(5\)"),
    (dict(device="cuda:x"), r"device = 'cuda:x': must be 'cpu', 'cuda', 'cuda:N' or 'mps'"),
    (dict(patience=0), r"patience = 0: must be a positive int"),
    (dict(hidden=(8,)), r"hidden = \(8,\): must be two positive ints"),
])
def test_issue19_bad_settings_are_refused_at_construction(setting: dict, message: str) -> None:
    """PertVAE(lr=inf) was accepted and failed in the first epochs as a non-finite loss ("try a smaller lr",
    also for free_bits=inf); lr='1e-3' was a TypeError, compile='yes' and min_epochs > max_epochs passed."""
    with pytest.raises(ValueError, match=r"^PertVAE: FitConfig\." + message):
        PertVAE(**setting)


def test_issue19_numbers_of_any_real_type_are_kept_as_floats(fitted: tuple[PertVAE, dict]) -> None:
    cfg = PertVAE(lr=np.float32(0.5), l2_drug=0, free_bits=np.float64(0.25)).config
    assert (cfg.lr, cfg.l2_drug, cfg.free_bits) == (0.5, 0.0, 0.25)
    assert all(type(v) is float for v in (cfg.lr, cfg.l2_drug, cfg.free_bits))
    x1, x2 = fitted[1]["x1"], fitted[1]["x2"]
    for seed in (1.5, "0", True):
        with pytest.raises(ValueError, match=rf"PertVAE.fit: seed must be an int, got {seed!r}"):
            PertVAE(**SMALL).fit(x1, x2, seed=seed)


def test_review47_int_gene_columns_come_back_as_ints() -> None:
    """A DataFrame with int Entrez ids as columns got str columns back ('0', '1', ...), so x2_hat - x2 was
    NaN throughout; now the output's columns are the input's own labels, in the model's gene order."""
    x1, x2 = _frames(0, 12)
    x1.columns = x2.columns = range(len(GENES))
    est = PertVAE(**SMALL).fit(x1, x2, seed=0, verbose=False)
    for out in (est.predict(x1), est.reconstruct(x1), est.predict(x1[x1.columns[::-1]])):
        assert list(out.columns) == list(range(len(GENES)))
        assert not (out - x2).isna().any().any()


def test_review47_fit_errors_name_fits_own_arguments() -> None:
    """Empty pairs, too few genes and unequal validation rows were SplitData's errors naming x1_train and
    x1_val, fields the caller of fit(x1, x2, validation=...) never wrote; now they name x1, x2, validation."""
    x1, x2 = _frames(0, 12)
    cases = [((x1.iloc[:0], x2.iloc[:0]), {}, r"^PertVAE\.fit: x1 and x2 have no rows"),
             ((x1[["g0"]], x2[["g0"]]), {}, r"^PertVAE\.fit: x1 has 1 gene\(s\) \(columns\); .* at least 2"),
             ((x1, x2), dict(validation=(x1.iloc[:3], x2.iloc[:2])),
              r"^PertVAE\.fit: validation x1 has 3 rows but validation x2 has 2")]
    for args, kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            PertVAE(**SMALL).fit(*args, **kwargs, verbose=False)


def test_review47_pairs_whose_row_labels_are_in_another_order_are_refused() -> None:
    """x2 with x1's cell lines in another order (e.g. sorted) trained on pairs of different cell lines
    without a word, since pairs align by position; now it is an error naming the first row that differs."""
    x1, x2 = _frames(0, 12)
    shuffled = x2.sort_index(kind="stable")
    with pytest.raises(ValueError, match=r"^PertVAE\.fit: x1 and x2 have the same row labels in another "
                                         r"order \(row 1: 'b' vs 'a'\)"):
        PertVAE(**SMALL).fit(x1, shuffled, verbose=False)
    with pytest.raises(ValueError, match=r"validation x1 and validation x2 have the same row labels"):
        PertVAE(**SMALL).fit(x1, x2, validation=(x1, shuffled), verbose=False)
    x2_by_sample = x2.set_axis([f"t{i}" for i in range(len(x2))])   # other labels: nothing to misorder
    PertVAE(**{**SMALL, "max_epochs": 1}).fit(x1, x2_by_sample, verbose=False)


def test_review47_another_versions_file_says_what_to_do(fitted: tuple[PertVAE, dict], tmp_path: Path) -> None:
    """A file of another estimator format version was 'not a saved PertVAE estimator (format
    'pertvae-estimator/2', ...)': untrue, and no word of what to do; now it names both versions and the way
    out."""
    good = fitted[0].save(tmp_path / "m.pt")
    newer = _edited(good, tmp_path / "v2.pt", format="pertvae-estimator/2")
    with pytest.raises(ValueError, match=r"v2\.pt: saved by another version of pertvae-bench \(format "
                                         r"'pertvae-estimator/2'; this one reads 'pertvae-estimator/1'\): "
                                         r"load it with the version that saved it, or fit and save"):
        PertVAE.load(newer)


def test_review47_fit_on_a_read_only_split_does_not_warn(fitted: tuple[PertVAE, dict]) -> None:
    """As a Method, the estimator gets pertvae_core.isolation's read-only split; its fit(split) handed the
    arrays to torch as they were, and torch warned 'The given NumPy array is not writable ... undefined
    behavior' (PertVAEMethod copied them, the estimator did not)."""
    from pertvae_core.isolation import readonly_split

    d = fitted[1]
    split = SplitData(*(d[k].to_numpy() for k in ("x1", "x2", "v1", "v2", "x1", "x2", "xs")))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*not writable")
        est = PertVAE(**{**SMALL, "max_epochs": 1}).fit(readonly_split(split), verbose=False)
    assert est.predict(d["t1"].to_numpy()).shape == d["t1"].shape


def test_api51_set_params_after_fit_changes_only_the_next_fit(fitted: tuple[PertVAE, dict],
                                                              tmp_path: Path) -> None:
    """set_params(latent=5) after fit made embed fail inside torch ('The size of tensor a (3) must match the
    size of tensor b (5)'), save write latent 5 beside latent-3 weights (load: 'its weights do not fit its
    settings ... damaged or edited file?'), and mc_samples changed predictions without a refit. A fitted
    model now predicts, embeds and saves with the settings it was fitted with, as scikit-learn's do."""
    est, d = fitted
    t1 = d["t1"]
    before = est.predict(t1), est.embed(t1)
    changed = copy.deepcopy(est).set_params(latent=5, mc_samples=1)
    assert changed.predict(t1).equals(before[0]) and changed.embed(t1).equals(before[1])
    assert changed.config.latent == 5 and changed.config_.latent == SMALL["latent"]
    loaded = PertVAE.load(changed.save(tmp_path / "changed.pt"))
    assert loaded.settings == est.settings and loaded.predict(t1).equals(before[0])


def test_api51_complex_text_and_out_of_range_input_is_refused(fitted: tuple[PertVAE, dict]) -> None:
    """A complex x1 (array or DataFrame) was predicted from its real part with only numpy's ComplexWarning;
    float64 values beyond float32's range were called 'NaN or inf'."""
    est, d = fitted
    t1 = d["t1"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for x in (t1 + 1j, t1.to_numpy() + 1j):
            with pytest.raises(ValueError, match=r"x1: expected real numbers \[rows, genes\] \(complex"):
                est.predict(x)
        with pytest.raises(ValueError, match=r"x1: 50 value\(s\) beyond float32's range"):
            est.predict(t1.astype(np.float64) * 1e39)
        with pytest.raises(ValueError, match="x1: expected real numbers .*could not convert string"):
            est.predict(np.array([["a"] * len(GENES)]))


def test_api51_numpy_int_settings_are_kept_as_ints_and_unordered_layers_refused(tmp_path: Path) -> None:
    """set_params(latent=np.int64(3)), as scikit-learn's GridSearchCV does with a grid of np.arange values,
    was refused ('FitConfig.latent = np.int64(3): must be a positive int'); hidden={16, 8} (a set) was taken
    in whatever order hashing gave."""
    est = PertVAE(**SMALL).set_params(latent=np.int64(2), hidden=np.array([16, 8]), max_epochs=np.int32(2))
    cfg = est.config
    assert (cfg.latent, cfg.hidden, cfg.max_epochs) == (2, (16, 8), 2)
    assert type(cfg.latent) is int and type(cfg.max_epochs) is int and all(type(h) is int for h in cfg.hidden)
    x1, x2 = _frames(0, 12)
    est.fit(x1, x2, verbose=False).save(tmp_path / "np.pt")   # saved settings load with weights_only
    assert PertVAE.load(tmp_path / "np.pt").settings == est.settings
    for bad in ({16, 8}, {16: 1, 8: 2}, (16.0, 8), (np.True_, 8)):
        with pytest.raises(ValueError, match="hidden = .*must be two positive ints in order, a tuple or"):
            PertVAE(hidden=bad)


def test_api51_scikit_learn_tools_take_the_estimator(fitted: tuple[PertVAE, dict]) -> None:
    """With scikit-learn 1.6+, check_is_fitted, GridSearchCV and cross_val_score (all through
    sklearn.utils.get_tags) raised "'PertVAE' object has no attribute '__sklearn_tags__' ... Make sure to
    inherit from `BaseEstimator`"; predict before fit raised a RuntimeError, not the NotFittedError that
    scikit-learn's tools expect."""
    from sklearn.exceptions import NotFittedError
    from sklearn.model_selection import GridSearchCV
    from sklearn.utils.validation import check_is_fitted

    est, d = fitted
    check_is_fitted(est)
    with pytest.raises(NotFittedError, match="not fitted"):
        check_is_fitted(PertVAE(**SMALL))
    for call in (PertVAE().predict, PertVAE().embed, PertVAE().save):
        with pytest.raises(NotFittedError, match="PertVAE is not fitted") as e:
            call(d["t1"])
        assert isinstance(e.value, RuntimeError)   # what it raised before
    assert "PertVAE" in PertVAE(**SMALL)._repr_html_()   # a notebook's display
    x1, x2 = _frames(0, 12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # ConvergenceWarning of 2-epoch fits
        grid = GridSearchCV(PertVAE(**{**SMALL, "max_epochs": 2}), {"latent": np.arange(2, 4)}, cv=2,
                            scoring="neg_mean_squared_error").fit(x1, x2, verbose=False)
    assert grid.best_params_["latent"] in (2, 3) and grid.best_estimator_.config_.latent in (2, 3)


def test_api51_a_scipy_sparse_matrix_is_taken_as_anndata_sparse_x_is(fitted: tuple[PertVAE, dict]) -> None:
    """fit or predict of a scipy.sparse matrix said 'x1: expected real numbers [rows, genes] (setting an
    array element with a sequence.)', though a sparse AnnData X was taken."""
    import scipy.sparse

    est, d = fitted
    t1 = d["t1"].to_numpy()
    np.testing.assert_array_equal(est.predict(scipy.sparse.csr_matrix(t1)), est.predict(t1))
    x1, x2 = _frames(0, 12)
    dense = PertVAE(**{**SMALL, "max_epochs": 1}).fit(x1.to_numpy(), x2.to_numpy(), verbose=False)
    sparse = PertVAE(**{**SMALL, "max_epochs": 1}).fit(scipy.sparse.csr_array(x1.to_numpy()),
                                                      scipy.sparse.coo_matrix(x2.to_numpy()), verbose=False)
    np.testing.assert_array_equal(sparse.predict(t1), dense.predict(t1))


def test_api51_labelled_genes_that_cannot_be_matched_by_name_are_said_to_be_taken_by_position() -> None:
    """A model fitted on numpy arrays took a DataFrame's columns by position without a word: the same
    DataFrame with its genes in another order gave other predictions, labelled with its own column names
    (and fit(numpy x1, DataFrame x2 in another order) trained on misaligned genes). Both now warn, as
    scikit-learn does for feature names; labelled tables on both sides match by name, silently."""
    x1, x2 = _frames(0, 12)
    with pytest.warns(UserWarning, match=r"PertVAE.fit: x2 has gene names \(columns\) but x1 has none: its "
                      "genes are taken by position"):
        est = PertVAE(**{**SMALL, "max_epochs": 1}).fit(x1.to_numpy(), x2[GENES[::-1]], verbose=False)
    with pytest.warns(UserWarning, match=r"x1 has gene names \(columns\) but PertVAE was fitted without"):
        est.predict(x1[GENES[::-1]])
    with pytest.warns(UserWarning, match="fitted without them") as got:
        est.embed(x1)
    assert got[0].filename == __file__   # points at the caller's line
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        named = PertVAE(**{**SMALL, "max_epochs": 1}).fit(x1, x2[GENES[::-1]], verbose=False)
        named.predict(x1[GENES[::-1]]), est.predict(x1.to_numpy())


def test_api51_a_seed_outside_what_seeds_distinct_fits_is_refused() -> None:
    """seed=-1 was taken modulo 2**128 (pertvae_core.train.seed_streams): the same fit and predictions as
    seed=2**128 - 1, two different seeds with identical numbers."""
    x1, x2 = _frames(0, 12)
    for seed in (-1, 2**128):
        with pytest.raises(ValueError, match=rf"seed must be an int in \[0, 2\*\*128\), got {seed}"):
            PertVAE(**SMALL).fit(x1, x2, seed=seed)
    PertVAE(**{**SMALL, "max_epochs": 1}).fit(x1, x2, seed=np.uint64(2**64 - 1), verbose=False)
