"""The drug-response presets: Dr.VAE and its baselines on the response splits (harness.contenders.drvae).

``drvae`` is Dr.VAE's study as its authors ran it (../shared/paper/drvae.md, from their run_drvae.py and
submitVAE.sh): latent 50 (z1, z2, z3), hidden layers of 200, Adam lr 5e-4, up to 300 epochs, 5 folds x 20
seeds (100 runs per drug); PCA(x1) and a PertVAE at the latent size for the baselines' features; Dr.VAE's
continuous head and its baselines (ridge on x1, the drug mean) beside the binary head. Their
26-drug list is not in the public record, so it runs every drug of the cube. Its synthetic cube is the
paper preset's.
``drvae-demo`` is a small grid on the demo preset's synthetic cube that finishes in a few minutes on 2 cores:
four drugs, one of each response kind plus a second perturbation-driven one (selumetinib and vorinostat:
perturbation; olaparib: baseline; tipifarnib: none), 2 x 5 folds.
"""

from __future__ import annotations

from typing import Any

DRVAE: dict[str, Any] = {
    "models": ("drvae", "response_baselines", "response_pertvae", "drvae_continuous", "response_regression"),
    "latents_drvae": (50,),
    "latents_response_baselines": (50,),
    "latents_response_pertvae": (50,),
    "latents_drvae_continuous": (50,),
    "latents_response_regression": (50,),
    "n_repeats": 20,
    "n_folds": 5,
    "hidden": (200, 200),
    "context": 100,
    "iaf_steps": 2,
    "iaf_hidden": 200,
    "lr": 5e-4,
    "batch_pairs": 32,
    "batch_singletons": 64,
    "max_epochs": 300,
    "patience": 20,
    "mc_samples": 10,
}

DRVAE_DEMO: dict[str, Any] = {
    "models": ("drvae", "response_baselines", "response_pertvae", "drvae_continuous", "response_regression"),
    "drugs": ("selumetinib", "vorinostat", "olaparib", "tipifarnib"),
    "latents_drvae": (8,),
    "latents_response_baselines": (8,),
    "latents_response_pertvae": (8,),
    "latents_drvae_continuous": (8,),
    "latents_response_regression": (8,),
    "n_repeats": 2,
    "n_folds": 5,
    "splits_per_task": 10,
    "hidden": (64, 32),
    "context": 32,
    "iaf_steps": 1,
    "iaf_hidden": 32,
    "lr": 3e-3,
    "batch_pairs": 32,
    "batch_singletons": 64,
    "max_epochs": 80,
    "patience": 10,
    "mc_samples": 5,
    "precision": "fp32",
}

# The synthetic cube (datasets.synthetic.PRESETS) each preset generates without --data.
SYNTHETIC = {"drvae": "paper", "drvae-demo": "demo"}
