"""``pertvae-bench info`` showed none of what run.json records of how its run ran: the devices and splits
per task its fits used, its command, CPU seconds, load and peak memory, and the run's seeds. Each line is
checked against run.json and the store's config on disk."""

from __future__ import annotations

import json
from pathlib import Path

from harness.info import describe_run
from harness.run import main
from tests.e2e import tiny_args, tiny_cube


def _line(lines: list[str], start: str) -> str:
    [line] = [ln for ln in lines if ln.startswith(start)]
    return line


def test_info_shows_how_the_last_run_ran(tmp_path_factory, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = tiny_args(tiny_cube(tmp_path_factory), out, "--models", "pertvae", "pca", "--drugs", "drugA",
                     "--n-repeats", "1", "--base-seed", "7", cluster="none")
    assert main(args) == 0
    run = json.loads((out / "run.json").read_text())
    lines = describe_run(out).splitlines()
    assert "; base seed 7 (splits and fits); " in _line(lines, "config: ")
    assert "data seed" not in _line(lines, "config: ")   # a cube from --data: no generated cube's seed
    assert _line(lines, "last run's command: ") == (f"last run's command: {run['command']['line']} (in "
                                                    f"{run['command']['cwd']})")
    assert run["used"] == {"device": {"cpu": 3}, "splits_per_task": {"pertvae": 3, "pca": 3}}
    assert _line(lines, "last run used: ") == ("last run used: device cpu for 3 fit(s) of trained models; "
                                               "splits per task pca 3, pertvae 3")
    cpu, load = run["timings"]["cpu_seconds"], run["timings"]["load_average"]
    assert _line(lines, "last run's CPU seconds: ") == (
        f"last run's CPU seconds: {cpu['driver']} in its own process, {cpu['children']} in its ended child "
        f"processes, {cpu['fits']} in its fits (as their workers measured them); load average (1, 5, 15 min) "
        f"{', '.join(map(str, load['start']))} at its start, {', '.join(map(str, load['end']))} at its end")
    peak = run["peak_rss_mib"]
    kids = max(peak["worker_children"].values())   # this process's: an earlier test's plug-ins, compilers
    assert _line(lines, "last run's peak memory: ") == (
        f"last run's peak memory: {peak['driver']} MiB its own process, {peak['children']} MiB its largest "
        f"ended child process, up to {max(peak['workers'].values())} MiB in the 1 process that ran its fits"
        + (f", up to {kids} MiB in one of their ended child processes (their --method plug-ins, "
           f"torch.compile's compiler)" if kids else ""))
    assert not [ln for ln in lines if "runs recorded" in ln]

    assert main(args) == 0   # a resume: nothing to run, two runs recorded
    lines = describe_run(out).splitlines()
    assert _line(lines, "last run used: ") == ("last run used: device none (no trained model's fit ran); "
                                               "splits per task none (no task ran)")
    assert "2 runs recorded in run.json's runs, oldest first; the lines above describe the latest" in lines


def test_info_shows_a_synthetic_cubes_seed(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["--preset", "demo", "--data-seed", "3", "--out", str(out), "--cluster", "none", "--models",
                 "baselines", "--drugs", "selumetinib", "--n-repeats", "1", "--no-progress"]) == 0
    assert "; base seed 0 (splits and fits); data seed 3 (the synthetic cube); " in _line(
        describe_run(out).splitlines(), "config: ")


def test_info_says_when_no_child_process_ended() -> None:
    """A resume with nothing to run starts no cluster: run.json's children peak is 0 (getrusage of no child),
    which info printed as '0.0 MiB its largest ended child process'."""
    from harness.info import _how_it_ran

    lines = _how_it_ran({"peak_rss_mib": {"driver": 363.2, "children": 0.0, "workers": {}}}, "last run")
    assert lines == ["last run's peak memory: 363.2 MiB its own process, no child process ended"]
