"""The default local workers and the cores the estimate places them on are the CPUs this process may use
(harness.cpus), not the host's: inside ``taskset`` or a Slurm cpuset the host count overstates them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from harness.cpus import usable_cpus

ONE_CPU = """
from harness.cluster import open_cluster
from harness.config import make_config
from harness.cost import local_cores, side_by_side, worker_slots
cfg = make_config("demo", device="cpu")
with open_cluster(cfg) as h:
    running = len(h.client.scheduler_info()["workers"])
print(cfg.resolved_workers(), running, local_cores(cfg, "cpu"), side_by_side(cfg, 2, "cpu"))
print(worker_slots(make_config("demo", device="cpu", workers=2))[3])
"""


def test_usable_cpus_is_the_affinity_mask_at_most():
    assert 1 <= usable_cpus() <= (os.cpu_count() or 1)
    if hasattr(os, "sched_getaffinity"):
        assert usable_cpus() <= len(os.sched_getaffinity(0))


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs an affinity mask of 2 or more CPUs to narrow")
def test_one_cpu_of_the_host_gets_one_worker(tmp_path):
    one = min(os.sched_getaffinity(0))
    out = subprocess.run([sys.executable, "-c", ONE_CPU], capture_output=True, text=True, timeout=600,
                         cwd=tmp_path, preexec_fn=lambda: os.sched_setaffinity(0, {one}))
    assert out.returncode == 0, out.stderr[-3000:]
    counts, slots = out.stdout.strip().splitlines()[-2:]
    assert counts.split() == ["1", "1", "1", "0"]   # default workers, started, cores shared, beside each
    assert slots == "2 local worker(s), 1 thread each, sharing 1 CPU(s) (wall time as for 1 worker(s))"
