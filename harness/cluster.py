"""Where tasks run: a Dask LocalCluster (CPU or one worker per GPU), a Slurm cluster, or in-process.

    with open_cluster(cfg) as handle:        # cfg: harness.config.RunConfig
        handle.client.submit(f, ..., resources=handle.resources)

``local``: ``--workers`` processes with 1 thread each (torch threads set to match in every worker); with
CUDA present one worker per GPU, each with its own CUDA_VISIBLE_DEVICES, advertising the resource
``GPU=1`` (``handle.resources == {"GPU": 1}``). ``slurm``: dask_jobqueue.SLURMCluster, ``adapt()`` between 0
and ``--jobs`` jobs, worker lifetime below the walltime so jobs are replaced before Slurm kills them.
``none``: no client, the caller runs tasks in-process.

Worker processes start with glibc's trim threshold at 1 GiB and mmap threshold at 32 MiB instead of Dask's
default ``MALLOC_TRIM_THRESHOLD_=65536`` (:func:`worker_spawn_environ`): that default also pins the mmap
threshold at 128 KiB, so every tensor of a training step above that size is mmap'ed and unmapped again; a
PertVAE fit ran 1.7x slower in a Dask worker than in a plain process because of it (17.4 s vs 10.4 s for
one demo drug's 10 splits, 1 thread each; 9.3 s with these settings).
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
# Environment variable naming the network interface Slurm workers use to reach the scheduler ("lo" on a
# single-node test cluster, e.g. "ib0" on a real one); RunConfig has no field for it.
SLURM_INTERFACE_ENV = "HARNESS_SLURM_INTERFACE"


class ClusterError(ValueError):
    """A cluster that cannot be opened with the given settings; the message names the field and value."""


@dataclass
class ClusterHandle:
    """An open cluster: the client (None for ``none``), dashboard link, task resources and kind."""

    client: Any | None
    dashboard_link: str | None
    resources: dict | None
    kind: str = "local"
    cluster: Any | None = None
    n_workers: int = 0
    info: dict = field(default_factory=dict)


def set_torch_threads(n: int) -> None:
    """Set torch's intra-op threads (and the BLAS env knobs) to ``n``; run inside each worker at start."""
    if n < 1:
        raise ClusterError(f"set_torch_threads: n must be >= 1, got {n!r}")
    for k in THREAD_ENV:
        os.environ[k] = str(n)
    import torch

    torch.set_num_threads(n)


def torch_threads() -> int:
    """torch's intra-op thread count in this process (for checks from the driver via client.run)."""
    import torch

    return torch.get_num_threads()


class TorchThreads(WorkerPlugin):
    """Worker plugin: at worker start, set torch threads to the worker's thread count."""

    name = "harness-torch-threads"

    def setup(self, worker: Any) -> None:
        set_torch_threads(max(1, int(worker.state.nthreads)))


MALLOC_ENV = {"MALLOC_TRIM_THRESHOLD_": str(1 << 30), "MALLOC_MMAP_THRESHOLD_": str(1 << 25)}


def worker_spawn_environ() -> dict[str, str]:
    """Dask's ``distributed.nanny.pre-spawn-environ`` with :data:`MALLOC_ENV` (module docstring)."""
    import dask

    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {})
    return {str(k): str(v) for k, v in {**env, **MALLOC_ENV}.items()}


def cuda_device_count() -> int:
    """GPUs torch sees in this process (0 without CUDA)."""
    try:
        import torch

        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    except Exception:  # pragma: no cover - torch is a dependency
        return 0


def _port_free(address: str) -> bool:
    host, _, port = address.rpartition(":")
    if not port.isdigit() or int(port) == 0:
        return True
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host or "", int(port)))
        except OSError:
            return False
    return True


def dashboard_address(cfg: Any) -> str:
    """``cfg.dashboard_address`` (default ``:8787``), or ``:0`` (a free port) when that port is taken."""
    addr = getattr(cfg, "dashboard_address", None) or ":8787"
    if ":" not in addr:
        raise ClusterError(f"field 'dashboard_address' = {addr!r}: use HOST:PORT or :PORT")
    return addr if _port_free(addr) else f"{addr.rpartition(':')[0]}:0"


def _local(cfg: Any, gpus: int | None) -> ClusterHandle:
    from distributed import Client, LocalCluster, Nanny, Scheduler, SpecCluster

    n_gpu = cuda_device_count() if gpus is None else gpus
    if n_gpu < 0:
        raise ClusterError(f"gpus must be >= 0, got {n_gpu!r}")
    env = {k: "1" for k in THREAD_ENV}
    dash = dashboard_address(cfg)
    if n_gpu > 0:
        # One worker per GPU, pinned to its device, advertising GPU=1 so tasks submitted with
        # resources={"GPU": 1} run one at a time per GPU.
        workers = {
            f"gpu-{i}": {"cls": Nanny, "options": {
                "nthreads": 1, "resources": {"GPU": 1},
                "env": {**env, "CUDA_VISIBLE_DEVICES": str(i)}}}
            for i in range(n_gpu)
        }
        scheduler = {"cls": Scheduler, "options": {"dashboard_address": dash}}
        cluster: Any = SpecCluster(workers=workers, scheduler=scheduler, name="harness-gpu")
        resources: dict | None = {"GPU": 1}
        n = n_gpu
    else:
        n = cfg.workers if getattr(cfg, "workers", None) is not None else (os.cpu_count() or 1)
        if n < 1:
            raise ClusterError(f"field 'workers' = {n!r}: must be >= 1")
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=dash,
                               env=env)
        resources = None
    try:
        client = Client(cluster)
        client.register_plugin(TorchThreads())
        client.wait_for_workers(n, timeout=120)
    except BaseException:
        cluster.close()
        raise
    return ClusterHandle(client, client.dashboard_link, resources, "local", cluster, n,
                         {"gpus": n_gpu})


def worker_lifetime(walltime_s: int) -> tuple[int, int]:
    """(lifetime, stagger) seconds for a Slurm worker: it retires a margin before the walltime ends."""
    margin = min(max(60, walltime_s // 10), 600)
    lifetime = max(30, walltime_s - margin)
    stagger = max(1, min(margin // 4, lifetime // 10))
    return lifetime, stagger


def slurm_kwargs(cfg: Any) -> dict[str, Any]:
    """Keyword arguments of dask_jobqueue.SLURMCluster for ``cfg`` (separate for testing)."""
    from harness.config import walltime_seconds

    gpus = int(getattr(cfg, "gpus_per_job", 0) or 0)
    cores = int(cfg.cores_per_job)
    lifetime, stagger = worker_lifetime(walltime_seconds(cfg.walltime))
    extra_args = ["--lifetime", f"{lifetime}s", "--lifetime-stagger", f"{stagger}s", "--lifetime-restart"]
    directives = list(getattr(cfg, "job_extra", ()) or ())
    if gpus > 0:
        # One worker process per job owning the job's GPUs; tasks ask for GPU=1 each.
        directives.append(f"--gres=gpu:{gpus}")
        extra_args += ["--resources", f"GPU={gpus}"]
        processes = 1
    else:
        processes = cores   # one 1-thread worker process per core
    threads = max(1, cores // processes)
    kw: dict[str, Any] = {
        "queue": cfg.partition,
        "account": cfg.account,
        "walltime": cfg.walltime,
        "memory": cfg.memory,
        "cores": cores,
        "processes": processes,
        "job_extra_directives": directives,
        "worker_extra_args": extra_args,
        "job_script_prologue": [f"export {k}={threads}" for k in THREAD_ENV]
        + [f"export DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON=\"{worker_spawn_environ()!r}\""],
        "scheduler_options": {"dashboard_address": dashboard_address(cfg)},
        "python": sys.executable,
        "name": "harness-worker",
    }
    iface = getattr(cfg, "slurm_interface", None) or os.environ.get(SLURM_INTERFACE_ENV)
    if iface:
        kw["interface"] = iface
    out = getattr(cfg, "out_dir", None)
    if out is not None:
        kw["log_directory"] = str(out / "slurm-logs")
    return kw


def _slurm(cfg: Any) -> ClusterHandle:
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError as e:  # pragma: no cover - dependency
        raise ClusterError(f"field 'cluster' = 'slurm' needs dask-jobqueue: {e}") from None
    from distributed import Client

    if int(cfg.jobs) < 1:
        raise ClusterError(f"field 'jobs' = {cfg.jobs!r}: must be >= 1")
    cluster = SLURMCluster(**slurm_kwargs(cfg))
    try:
        cluster.adapt(minimum_jobs=0, maximum_jobs=int(cfg.jobs))
        client = Client(cluster)
        client.register_plugin(TorchThreads())
    except BaseException:
        cluster.close()
        raise
    gpus = int(getattr(cfg, "gpus_per_job", 0) or 0)
    return ClusterHandle(client, client.dashboard_link, {"GPU": 1} if gpus > 0 else None, "slurm", cluster,
                         0, {"job_script": cluster.job_script()})


@contextmanager
def open_cluster(cfg: Any, gpus: int | None = None) -> Iterator[ClusterHandle]:
    """Open the cluster ``cfg.cluster`` names (local | slurm | none); close it on exit.

    ``gpus`` overrides the local GPU count (default: torch.cuda.device_count()); ``gpus=2`` on a CPU
    machine builds the GPU layout (2 workers advertising GPU=1) so resource routing can be tested.
    """
    kind = getattr(cfg, "cluster", None)
    if kind == "none":
        yield ClusterHandle(None, None, None, "none")
        return
    if kind == "local":
        import dask

        with dask.config.set({"distributed.nanny.pre-spawn-environ": worker_spawn_environ()}):
            handle = _local(cfg, gpus)
    elif kind == "slurm":
        handle = _slurm(cfg)
    else:
        raise ClusterError(f"field 'cluster' = {kind!r}: must be one of local, slurm, none")
    try:
        yield handle
    finally:
        try:
            handle.client.close()
        finally:
            handle.cluster.close()
