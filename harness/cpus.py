"""The CPUs this process may run on: the default number of local workers and the cores they share.

``os.cpu_count()`` counts the host's CPUs. Inside a Slurm allocation (``srun -c 4`` on a 64-core node, a
cpuset), under ``taskset`` or in a container with a CPU quota the process may use far fewer: 64 workers
on 4 CPUs run ~16x slower than the dry run would say, and each holds its own model and data.
:func:`dask.system.cpu_count` takes the least of the host's CPUs, the affinity mask and the cgroup quota
(what dask's own LocalCluster defaults to)."""

from __future__ import annotations


def usable_cpus() -> int:
    """The logical CPUs this process may use (>= 1): the host's, less an affinity mask or a cgroup quota."""
    from dask.system import cpu_count

    return max(1, cpu_count())
