"""harness.cluster on real LocalClusters: 1-thread workers with torch threads to match, GPU resource routing
(forced GPU layout on CPU), the in-process kind, Slurm keyword arguments."""

from __future__ import annotations

import os
import time
from types import SimpleNamespace

import pytest

from harness.cluster import (
    ClusterError,
    ClusterHandle,
    dashboard_address,
    gpu_compile_threads,
    open_cluster,
    set_torch_threads,
    slurm_kwargs,
    torch_threads,
    worker_lifetime,
)
from harness.config import make_config

pytestmark = pytest.mark.timeout(180)


def _env() -> dict:
    return {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES",
                                           "TORCHINDUCTOR_COMPILE_THREADS")}


def _whoami(_i: int) -> str:
    from distributed import get_worker

    return get_worker().address


def test_local_two_workers_one_thread_each_torch_threads_one():
    cfg = make_config("demo", cluster="local", workers=2, dashboard_address=":0")
    with open_cluster(cfg, gpus=0) as h:
        assert h.kind == "local" and h.resources is None
        info = h.client.scheduler_info()["workers"]
        assert len(info) == 2
        assert sorted(w["nthreads"] for w in info.values()) == [1, 1]
        threads = h.client.run(torch_threads)
        assert sorted(threads.values()) == [1, 1]
        envs = h.client.run(_env)
        assert all(e["OMP_NUM_THREADS"] == e["MKL_NUM_THREADS"] == e["TORCHINDUCTOR_COMPILE_THREADS"] == "1"
                   for e in envs.values())
        assert h.dashboard_link and h.dashboard_link.startswith("http")
        # work runs on both workers' processes, not in the driver
        pids = set(h.client.run(os.getpid).values())
        assert len(pids) == 2 and os.getpid() not in pids


def test_gpu_layout_routes_gpu_tasks_to_gpu_workers_only():
    from distributed import Nanny

    cfg = make_config("demo", cluster="local", workers=3, dashboard_address=":0")
    with open_cluster(cfg, gpus=2) as h:
        assert h.resources == {"GPU": 1}
        info = h.client.scheduler_info()["workers"]
        assert len(info) == 2   # one per GPU, not cfg.workers
        assert all(w["resources"] == {"GPU": 1} and w["nthreads"] == 1 for w in info.values())
        envs = h.client.run(_env).values()
        assert sorted(e["CUDA_VISIBLE_DEVICES"] for e in envs) == ["0", "1"]
        assert {e["TORCHINDUCTOR_COMPILE_THREADS"] for e in envs} == {str(gpu_compile_threads(2))}
        assert {e["OMP_NUM_THREADS"] for e in envs} == {"1"}
        gpu_workers = set(info)

        async def _cpu_worker():
            return await Nanny(h.client.scheduler.address, nthreads=1)

        cpu = h.client.sync(_cpu_worker)
        try:
            h.client.wait_for_workers(3, timeout=60)
            cpu_addr = (set(h.client.scheduler_info()["workers"]) - gpu_workers).pop()
            futs = h.client.map(_whoami, range(12), resources=h.resources, pure=False)
            ran = set(h.client.gather(futs))
            assert ran <= gpu_workers and cpu_addr not in ran
            # without a resource request the CPU worker takes work too
            plain = h.client.submit(_whoami, 0, workers=[cpu_addr], pure=False).result()
            assert plain == cpu_addr
            # nobody advertises GPU=2: such a task never starts
            stuck = h.client.submit(_whoami, 0, resources={"GPU": 2}, pure=False)
            with pytest.raises(TimeoutError):
                stuck.result(timeout=2)
            assert stuck.status == "pending"
            stuck.cancel()
        finally:
            h.client.sync(cpu.close)


def test_none_kind_has_no_client():
    cfg = make_config("demo", cluster="none")
    with open_cluster(cfg) as h:
        assert h.client is None and h.kind == "none" and h.dashboard_link is None and h.resources is None


def test_bad_kind_names_the_field():
    class Cfg:
        cluster = "kubernetes"

    with pytest.raises(ClusterError, match="'cluster' = 'kubernetes'"):
        with open_cluster(Cfg()):
            pass


def test_set_torch_threads_in_process():
    import torch

    before = torch.get_num_threads()
    try:
        set_torch_threads(1)
        assert torch.get_num_threads() == 1 and os.environ["OMP_NUM_THREADS"] == "1"
        with pytest.raises(ClusterError, match="n must be >= 1"):
            set_torch_threads(0)
    finally:
        torch.set_num_threads(before)


def test_dashboard_address_falls_back_to_free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        cfg = make_config("demo", dashboard_address=f"127.0.0.1:{port}")
        assert dashboard_address(cfg) == "127.0.0.1:0"
    assert dashboard_address(make_config("demo", dashboard_address=":0")) == ":0"


def test_slurm_kwargs_gpus_lifetime_and_directives(tmp_path):
    cfg = make_config("demo", cluster="slurm", jobs=3, partition="gpu", account="lab", walltime="02:00:00",
                      memory="16GB", cores_per_job=4, gpus_per_job=2, job_extra=("--qos=short",),
                      out=str(tmp_path))
    kw = slurm_kwargs(cfg)
    assert kw["queue"] == "gpu" and kw["account"] == "lab" and kw["memory"] == "16GB"
    assert kw["cores"] == 4 and kw["processes"] == 1
    assert kw["job_extra_directives"] == ["--qos=short", "--gres=gpu:2"]
    args = kw["worker_extra_args"]
    assert args[args.index("--resources") + 1] == "GPU=2"
    lifetime = int(args[args.index("--lifetime") + 1].rstrip("s"))
    assert 0 < lifetime < 7200 and "--lifetime-restart" not in args   # the job ends with its worker
    cpu = slurm_kwargs(make_config("demo", cluster="slurm", walltime="00:10:00"))
    assert cpu["processes"] == 1 and "--resources" not in cpu["worker_extra_args"]
    assert "--gres" not in " ".join(cpu["job_extra_directives"])
    assert worker_lifetime(600)[0] == 540 and worker_lifetime(86400)[0] == 86400 - 600


def _malloc_env() -> dict:
    from harness.cluster import MALLOC_ENV

    return {k: os.environ.get(k) for k in (*MALLOC_ENV, "GLIBC_TUNABLES")}


def test_local_workers_get_the_malloc_settings(monkeypatch):
    """Workers start with MALLOC_ENV, not Dask's 64 KiB trim threshold (which slowed training 1.7x), and with
    the heap in huge pages (harness.hugepages), a GLIBC_TUNABLES of the user's kept."""
    from harness.cluster import MALLOC_ENV

    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.check=0")
    with open_cluster(make_config("demo", cluster="local", workers=1, dashboard_address=":0"), gpus=0) as h:
        got = h.client.run(_malloc_env)
    tunables = "glibc.malloc.check=0:glibc.malloc.hugetlb=1"
    assert list(got.values()) == [{**MALLOC_ENV, "GLIBC_TUNABLES": tunables}], got
    assert os.environ["GLIBC_TUNABLES"] == "glibc.malloc.check=0"   # this process's own, restored


def test_slurm_job_script_exports_the_malloc_settings():
    import ast

    from harness.cluster import MALLOC_ENV

    kw = slurm_kwargs(make_config("demo", cluster="slurm", walltime="00:10:00"))
    lines = [x for x in kw["job_script_prologue"] if "DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON=" in x]
    assert len(lines) == 1
    value = ast.literal_eval(ast.literal_eval(lines[0].split("=", 1)[1]))
    assert {k: value[k] for k in MALLOC_ENV} == MALLOC_ENV
    assert "glibc.malloc.hugetlb=1" in value["GLIBC_TUNABLES"].split(":")


def test_a_slurm_cluster_leaves_ctrl_c_to_the_run(tmp_path):
    """Importing dask_jobqueue sets this process's SIGINT handler to sys.exit(): a Ctrl-C of a Slurm run ended
    it with exit 0, no 'interrupted:' line and no run.json. A fresh interpreter (this one may have imported
    dask_jobqueue already); no sbatch on PATH, so the cluster is made and then refused."""
    import subprocess
    import sys

    from tests.e2e import ROOT

    code = ("import signal\n"
            "signal.signal(signal.SIGINT, signal.default_int_handler)\n"   # as in a terminal, not nohup
            "from harness.cluster import ClusterError, open_cluster\n"
            "from harness.config import make_config\n"
            "try:\n"
            "    with open_cluster(make_config('demo', cluster='slurm', dashboard_address=':0')):\n"
            "        pass\n"
            "except ClusterError as e:\n"
            "    print(e)\n"
            "print('Ctrl-C raises:', signal.getsignal(signal.SIGINT) is signal.default_int_handler)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ, PATH=str(tmp_path)),
                       capture_output=True, text=True, timeout=120)
    assert "sbatch is not on PATH" in r.stdout, r.stdout + r.stderr
    assert "Ctrl-C raises: True" in r.stdout, r.stdout + r.stderr


class _NoWorkers:
    """A cluster stand-in that never gets a worker (no LocalCluster, no Slurm)."""

    scheduler_info: dict = {"workers": {}}
    workers: dict = {}


def test_check_stops_after_worker_timeout_with_no_worker():
    import time

    from harness.cluster import ClusterHandle

    h = ClusterHandle(None, None, None, "local", _NoWorkers(), worker_timeout=0.2)
    h.check()   # starts the clock
    time.sleep(0.3)
    with pytest.raises(ClusterError, match=r"no Dask worker joined in 0.2 s \(--worker-timeout"):
        h.check()
    never = ClusterHandle(None, None, None, "local", _NoWorkers(), worker_timeout=0)
    never.check()
    time.sleep(0.05)
    never.check()   # 0 waits forever


def test_check_reports_a_rejected_slurm_submission():
    from harness.cluster import ClusterHandle, _command_error

    # the message dask_jobqueue raises when sbatch fails
    raised = ("Command exited with non-zero exit code.\nExit code: 1\nCommand:\nsbatch /tmp/x.sh\nstdout:\n\n"
              "stderr:\nsbatch: error: invalid partition specified: nosuch\n"
              "sbatch: error: Batch job submission failed: Invalid partition name specified\n\n")
    why = _command_error(raised)
    assert why == ("sbatch: error: invalid partition specified: nosuch; sbatch: error: Batch job submission "
                   "failed: Invalid partition name specified")
    h = ClusterHandle(None, None, None, "slurm", _NoWorkers(), worker_timeout=60, failures=[why])
    with pytest.raises(ClusterError, match="Slurm rejected a worker job: sbatch: error: invalid partition"):
        h.check()


def test_worker_timeout_must_be_finite_and_not_negative():
    class Cfg:
        cluster = "none"
        worker_timeout = -1.0

    with pytest.raises(ClusterError, match="'worker_timeout' = -1.0"):
        with open_cluster(Cfg()):
            pass


def test_run_log_takes_library_logs_and_warnings_with_timestamps(tmp_path, capfd):
    import logging
    import re
    import warnings

    from harness.cluster import run_log

    dist = logging.getLogger("distributed.sizeof")
    before = list(logging.getLogger("distributed").handlers)
    with run_log(tmp_path / "run.log"):
        dist.warning("sizeof noise")
        warnings.warn("library warning", UserWarning, stacklevel=1)
    assert logging.getLogger("distributed").handlers == before   # restored
    err = capfd.readouterr().err
    assert "sizeof noise" not in err and "library warning" not in err
    text = (tmp_path / "run.log").read_text()
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} UTC \d+ distributed.sizeof WARNING: "
                     r"sizeof noise$", text, re.M), text
    assert "UserWarning: library warning" in text


def test_run_log_times_are_utc_and_say_so(tmp_path, monkeypatch):
    """run.json's times are UTC: run.log's, in a host's local time unmarked, put a line logged at the run's
    start 5 h away from it (TZ=EST+5)."""
    import logging
    import time

    from harness.cluster import run_log

    monkeypatch.setenv("TZ", "EST+5")
    time.tzset()
    try:
        lg = logging.getLogger("distributed.sizeof")
        with run_log(tmp_path / "run.log"):
            record = lg.makeRecord(lg.name, logging.WARNING, __file__, 0, "at the epoch", (), None)
            record.created, record.msecs = 0.0, 0.0
            lg.handle(record)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert "\n1970-01-01 00:00:00,000 UTC " in (tmp_path / "run.log").read_text()


def test_run_log_takes_loggers_that_distributed_gave_their_own_stderr_handler(tmp_path, capfd):
    """distributed's logging config gives tornado.application its own stderr handler (propagate off):
    tornado's "Uncaught exception" tracebacks of a dashboard client must still land in run.log only; a
    record of the root logger too (not logging's last-resort stderr handler)."""
    import logging
    import sys

    from harness.cluster import run_log

    app = logging.getLogger("tornado.application")
    saved = list(app.handlers), app.propagate
    app.addHandler(logging.StreamHandler(sys.stderr))   # what distributed.config does at import
    app.propagate = False
    before = list(app.handlers)
    with run_log(tmp_path / "run.log"):
        try:
            raise AssertionError("websocket gone")
        except AssertionError:
            app.exception("Uncaught exception GET /status/ws")
        logging.getLogger("some.other.library").warning("stray warning")
    assert app.handlers == before and not app.propagate   # restored
    app.handlers, app.propagate = saved
    err = capfd.readouterr().err
    assert "Uncaught exception" not in err and "stray warning" not in err, err
    text = (tmp_path / "run.log").read_text()
    assert "tornado.application ERROR: Uncaught exception GET /status/ws" in text
    assert "AssertionError: websocket gone" in text and "stray warning" in text


def test_device_cpu_on_a_cuda_machine_runs_the_cpu_layout_the_dry_run_estimates(tmp_path, monkeypatch):
    """--device cpu where CUDA is: the run started one worker per GPU (not --workers) and batched all of a
    drug's splits per task (the GPU default), while the dry run (harness.cost) estimated --workers CPU
    workers and 1 split per task. Now the run's layout is the one the dry run estimates."""
    import torch

    from harness import cost, run
    from harness.grid import store_drugs
    from harness.store import ResultStore

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    cfg = make_config("paper", cluster="local", workers=2, device="cpu", n_repeats=1, n_folds=3,
                      drugs=("selumetinib",), dashboard_address=":0", out=str(tmp_path))
    slots, _, device, _ = cost.worker_slots(cfg)
    assert (slots, device) == (2, "cpu")
    store = ResultStore.open(tmp_path, cfg, "fp", drugs=store_drugs(cfg, ["selumetinib"]))
    tasks, _ = run._plan(cfg, ["selumetinib"], store, tmp_path)
    trained = {len(t.splits) for t in tasks if t.model in ("pertvae", "vae")}   # PCA, baselines: one task
    assert trained == {cfg.resolved_splits_per_task(cuda=device == "cuda")} == {1}
    with open_cluster(cfg) as h:
        assert h.resources is None and len(h.client.scheduler_info()["workers"]) == slots


def _other_poll(dask_scheduler) -> int:
    return 1


def test_run_log_leaves_out_the_watchdogs_polls(tmp_path):
    """The fit-timeout watchdog polls the scheduler every 5 s (harness.cluster._executing); distributed logs
    each poll at INFO, ~0.7 MB of run.log over a 10 h run. Those lines are dropped, other ones are kept."""
    from distributed import Client, LocalCluster

    from harness.cluster import _executing, run_log

    with run_log(tmp_path / "run.log"):
        with LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            client.run_on_scheduler(_executing)
            client.run_on_scheduler(_other_poll)
    text = (tmp_path / "run.log").read_text()
    assert "Run out-of-band function '_other_poll'" in text, text
    assert "'_executing'" not in text, text


def test_the_workers_run_the_tasks_in_the_drivers_order(tmp_path, monkeypatch):
    """harness.run submits one task of each model first (timed_first), so that the ETA, which waits until
    the models left are timed, can start early; but Dask ran the tasks, submitted together, in an order of
    its own (here a VAE task third, where PCA's first belongs): in a demo run of 2 drugs on 2 workers, PCA's
    one task, submitted third, ended eighth of 9 in each of 3 runs, and the progress line said "estimating"
    until 80-96% of the run. Each task now carries its place as its Dask priority, and each model's first
    runs first (Dask may still start a cheap task of a small group early: harmless to the ETA)."""
    from distributed import Client, LocalCluster

    from harness import run
    from harness.grid import build_grid

    def fake_task(task, cube_path, cfg, model, store_path):
        return [(time.perf_counter(), task.key)]

    monkeypatch.setattr(run, "run_and_store", fake_task)
    monkeypatch.setattr(run, "_write", lambda *a: None)
    cfg = make_config("demo", drugs=("d1", "d2"), figure2_scope="per-drug")
    tasks = build_grid(cfg, ["d1", "d2"], splits_per_task=10)
    ran: list[tuple[float, str]] = []   # (when each task ran, its key) on one worker thread
    prog = SimpleNamespace(update=ran.extend)
    one = LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0")
    with one as cluster, Client(cluster) as client:
        run._run_on_cluster(tasks, SimpleNamespace(path=tmp_path / "c.zarr"), cfg,
                            SimpleNamespace(path=tmp_path / "results.zarr"), prog,
                            ClusterHandle(client, None, None, "local", cluster))
    first = [t.key for t in run.timed_first(tasks)][:4]   # each model's first
    assert [key for _, key in sorted(ran)][:4] == first, sorted(ran)
