"""A plug-in module that changes process-wide state when imported, and records which process imported it
(the file named by PERTVAE_TEST_IMPORT_LOG, one line per import: the process's main script)."""

import os
import sys
import tempfile

import numpy as np
import torch

torch.set_default_dtype(torch.float64)
os.chdir(tempfile.gettempdir())
if os.environ.get("PERTVAE_TEST_IMPORT_LOG"):
    with open(os.environ["PERTVAE_TEST_IMPORT_LOG"], "a") as f:
        f.write(f"{sys.argv[0]}\n")


class Shift:
    name = "side_effects"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, split):
        self.d = np.asarray(split.x2_train - split.x1_train).mean(0)
        return self

    def predict(self, x1):
        return np.asarray(x1) + self.d
