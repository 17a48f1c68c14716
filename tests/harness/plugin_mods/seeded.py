"""A method seeded the usual way: numpy's RandomState (as scikit-learn's ``random_state=seed`` is), which
takes seeds below 2**32 only."""

import numpy as np


class Seeded:
    name = "seeded"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, split):
        self.rng = np.random.RandomState(self.seed)
        self.d = np.asarray(split.x2_train - split.x1_train, np.float64).mean(0)
        return self

    def predict(self, x1):
        return np.asarray(x1, np.float64) + self.d + 1e-6 * self.rng.normal(size=np.shape(x1))
