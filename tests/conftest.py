"""Session settings for the test suite: one torch thread in the test process (tiny in-process fits run
several times faster without intra-op threads on a 2-core machine; Dask workers set their own)."""

from __future__ import annotations


def pytest_configure(config) -> None:
    import torch

    torch.set_num_threads(1)
