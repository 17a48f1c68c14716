"""Run presets: named sets of RunConfig field values (overridden by a TOML file, then by CLI flags).

``paper`` is the study of the PertVAE paper: the 19 drugs of Table 1, 10 x randomized 5-fold CV grouped by
cell line, PertVAE at latent 100, VAE and PCA at latent 2..200 (Figure 2), with the paper's network sizes.
``demo`` is a small grid on the embedded synthetic cube that finishes in minutes on a 2-core CPU: a drug's
10 splits train as one batched model per task (on tiny models Python overhead per step dominates, and
batching cuts the VAE's per-fit cost by ~40% on a CPU), with enough epochs (150, patience 25) for the drug
effect to be learned, and fp32 products (bf16 does not pay at its sizes). ``paper`` takes ``--precision``'s
default, auto: bf16 products where the CPU or GPU has bfloat16 instructions, and torch.compile.
``drvae`` and ``drvae-demo``: drug response (harness.presets.drvae).
"""

from __future__ import annotations

from typing import Any

from harness.presets.drvae import DRVAE, DRVAE_DEMO, SYNTHETIC

PAPER: dict[str, Any] = {
    "models": ("pertvae", "vae", "pca", "baselines"),
    "latents_pertvae": (100,),
    "latents_vae": (2, 5, 10, 20, 50, 100, 200),
    "latents_pca": (2, 5, 10, 20, 50, 100, 200),
    "latents_baselines": (100,),
    "n_repeats": 10,
    "n_folds": 5,
    "hidden": (500, 300),
    "context": 200,
    "iaf_steps": 2,
    "iaf_hidden": 300,
    "lr": 1e-3,
    "batch_pairs": 64,
    "batch_singletons": 64,
    # Early stopping (patience 20) ends the fits; the cap is a safety net above where they stop. At 200 the
    # pooled Figure 2 VAE ran into it in most fits (4 of 5 latent sizes on one split in fp32; 3 of 7 on
    # another seed in bf16) while its validation loss still improved 0.3-3.5%; by patience alone the VAE
    # stopped after 56-264 epochs (latents 2..200, mean 165) and PertVAE after ~36, so the cap is 400.
    "max_epochs": 400,
    "patience": 20,
    "mc_samples": 10,
    # Free bits (the paper, Section 2, after Kingma et al. 2016; it gives no value): 0.02 nats per latent
    # dimension on KL(z1), i.e. 2 nats per example at latent 100, the budget of the authors' code (there
    # on the summed KL), spread per dimension as Kingma et al. do. KL(z2|z1) is exempt (pertvae_core.elbo):
    # it trains the drug effect W, b, and a floor there would stop learning a small effect.
    "free_bits": 0.02,
    # torch.compile: a paper-sized step 0.75-0.78x eager's in bf16 (one graph; pertvae_core.train), for ~30
    # CPU-s of compiling per worker and model shape (4-5 s from inductor's disk cache), paid back after 4-17
    # fits (benchmarks/test_compile.py); a worker runs 25-475 per shape. Without a C++ compiler: eager.
    "compile": True,
}

DEMO: dict[str, Any] = {
    "models": ("pertvae", "vae", "pca", "baselines"),
    "latents_pertvae": (10,),
    "latents_vae": (2, 5, 10, 20),
    "latents_pca": (2, 5, 10, 20),
    "latents_baselines": (10,),
    "n_repeats": 2,
    "n_folds": 5,
    "splits_per_task": 10,
    "hidden": (64, 32),
    "context": 32,
    "iaf_steps": 1,
    "iaf_hidden": 32,
    "lr": 3e-3,
    "batch_pairs": 64,
    "batch_singletons": 64,
    "max_epochs": 150,
    "patience": 25,
    "mc_samples": 5,
    "free_bits": 0.0,
    # bf16 products pay at the paper's sizes (a step ~0.65-0.75x fp32's), not at the demo's: its steps are
    # dominated by per-operation overhead, and bf16 measured 0.93-0.99x at 10 batched splits and 1.15-1.27x
    # at one (benchmarks/test_precision.py's step at demo sizes), so the demo keeps fp32 and its numbers.
    "precision": "fp32",
}

PRESETS: dict[str, dict[str, Any]] = {"demo": DEMO, "paper": PAPER, "drvae": DRVAE, "drvae-demo": DRVAE_DEMO}


def synthetic_preset(preset: str) -> str:
    """The datasets.synthetic preset whose cube the run preset ``preset`` generates (its own name, or the
    one a drug-response preset borrows: harness.presets.drvae.SYNTHETIC)."""
    return SYNTHETIC.get(preset, preset)
