"""Seconds per epoch of a Dr.VAE fit next to a PertVAE fit of the same sizes and data, by process CPU time.

Both fit S splits of the same random profiles (n_P pairs, n_S singletons, no validation rows, so every fit
runs ``EPOCHS`` epochs) with the same encoder/decoder sizes and batch sizes; Dr.VAE adds the response
classifier, q(z3|z1,y), p(z1|z3,y) (twice: y = 0 and 1), and a decoder pass for the perturbation term. The
variants alternate, ``ROUNDS`` times, and the medians of ``time.process_time`` per epoch are reported with
the load average (``os.getloadavg``) at the start and the end. extra_info: ``drvae_s_per_epoch``,
``pertvae_s_per_epoch`` and ``drvae_over_pertvae`` (their ratio). Nothing here asserts a time.
--benchmark-disable runs the small size only; enabled, also the authors' sizes (978 genes, latent 50, hidden
200) with 100 pairs and 300 singletons per split.
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np
import pytest
import torch

from pertvae_core.config import FitConfig
from pertvae_core.data import SplitData
from pertvae_core.drvae import DrVAEConfig
from pertvae_core.drvae_train import fit_drvae
from pertvae_core.response_data import ResponseSplit
from pertvae_core.response_labels import LabelRule
from pertvae_core.train import fit

EPOCHS, ROUNDS = 3, 3
SMALL = {"genes": 50, "pairs": 40, "singles": 120, "splits": 3,
         "cfg": DrVAEConfig(latent=8, latent_z3=8, hidden=(32, 16), context=8, iaf_hidden=16, hidden_z3=(16,),
                            hidden_z1=(16,), batch_pairs=16, batch_singletons=32)}
AUTHORS = {"genes": 978, "pairs": 100, "singles": 300, "splits": 3, "cfg": DrVAEConfig()}


def _data(genes: int, pairs: int, singles: int, splits: int) -> list[ResponseSplit]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(splits):
        x = rng.normal(size=(2 * pairs + singles + 20, genes)).astype(np.float32)
        r = rng.normal(size=pairs + singles + 20)
        r[rng.random(r.size) < 0.2] = np.nan
        r[-20:] = rng.normal(size=20)
        out.append(ResponseSplit(x[:pairs], x[pairs:2 * pairs], r[:pairs], x[2 * pairs:-20], r[pairs:-20],
                                 x[:0], r[:0], x[-20:], r[-20:], rule=LabelRule("quantile", 0.5)))
    return out


def _pertvae_cfg(cfg: DrVAEConfig) -> FitConfig:
    return FitConfig(latent=cfg.latent, hidden=cfg.hidden, context=cfg.context, iaf_steps=cfg.iaf_steps,
                     iaf_hidden=cfg.iaf_hidden, batch_pairs=cfg.batch_pairs,
                     batch_singletons=cfg.batch_singletons, max_epochs=EPOCHS, patience=EPOCHS)


def _runners(size: dict) -> dict:
    data = _data(size["genes"], size["pairs"], size["singles"], size["splits"])
    cfg = DrVAEConfig(**{**size["cfg"].__dict__, "max_epochs": EPOCHS, "patience": EPOCHS})
    pv = [SplitData(sp.x1_pairs, sp.x2_pairs, sp.x_val, sp.x_val, sp.x_test, sp.x_test, sp.xs_train)
          for sp in data]
    seeds = list(range(len(data)))
    return {"drvae": lambda: fit_drvae(data, cfg, seeds).epochs,
            "pertvae": lambda: fit(pv, _pertvae_cfg(cfg), seeds).epochs}


@pytest.mark.parametrize("size", ["small", "authors"])
def test_drvae_seconds_per_epoch(benchmark, request, size: str) -> None:
    if size == "authors" and request.config.getoption("benchmark_disable"):
        pytest.skip("the authors' sizes run with the benchmark enabled")
    sz = SMALL if size == "small" else AUTHORS
    runners = _runners(sz)
    load0 = os.getloadavg()
    per_epoch: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(ROUNDS):
        for name, run in runners.items():  # alternating variants
            t0 = time.process_time()
            epochs = run()
            per_epoch[name].append((time.process_time() - t0) / max(epochs))
    benchmark.pedantic(runners["drvae"], rounds=1, iterations=1)
    med = {k: statistics.median(v) for k, v in per_epoch.items()}
    benchmark.extra_info.update({
        "genes": sz["genes"], "latent": sz["cfg"].latent, "pairs": sz["pairs"], "singletons": sz["singles"],
        "splits": sz["splits"], "threads": torch.get_num_threads(),
        "drvae_s_per_epoch": med["drvae"], "pertvae_s_per_epoch": med["pertvae"],
        "drvae_over_pertvae": med["drvae"] / med["pertvae"],
        "load_start": load0[0], "load_end": os.getloadavg()[0]})
