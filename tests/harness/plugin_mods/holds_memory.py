"""A method that holds 600 MiB while it fits: run.json's peak memory must show its process's."""

import numpy as np

MIB = 600


class HoldsMemory:
    name = "holds_memory"

    def fit(self, split):
        held = np.ones(MIB * 2**20 // 8)   # every page touched
        self.d = np.asarray(split.x2_train - split.x1_train, np.float64).mean(0) * held[0]
        return self

    def predict(self, x1):
        return np.asarray(x1, np.float64) + self.d
