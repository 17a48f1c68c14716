"""harness.hugepages: glibc's huge-page tunable added once, the user's own setting kept, the command line
re-executing itself with it (same pid, no loop), and the console script doing so before anything else."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from harness import entry, hugepages

ON = "glibc.malloc.hugetlb=1"


@pytest.mark.parametrize(("current", "expected"), [
    (None, ON),
    ("", ON),
    ("glibc.malloc.check=0", f"glibc.malloc.check=0:{ON}"),
    ("glibc.malloc.hugetlb=0", "glibc.malloc.hugetlb=0"),           # the user's choice wins
    (f"glibc.malloc.check=0:{ON}", f"glibc.malloc.check=0:{ON}"),   # already there: unchanged
    ("glibc.malloc.hugetlb=2:", "glibc.malloc.hugetlb=2"),
])
def test_tunables_adds_the_tunable_once_and_keeps_the_users(current, expected):
    assert hugepages.tunables(current) == expected
    assert hugepages.with_tunable({"A": "1", **({} if current is None else {"GLIBC_TUNABLES": current})}) == {
        "A": "1", "GLIBC_TUNABLES": expected}


@pytest.mark.parametrize(("system", "libc", "thp", "ok"), [
    ("Linux", ("glibc", "2.36"), "always [madvise] never", True),
    ("Linux", ("glibc", "2.35"), "[always] madvise never", True),
    ("Linux", ("glibc", "2.36"), "always madvise [never]", False),   # the kernel hands out no huge pages
    ("Linux", ("glibc", "2.31"), "always [madvise] never", False),   # no such tunable before 2.35
    ("Linux", ("", ""), "always [madvise] never", False),            # musl and others
    ("Darwin", ("", ""), "", False),
])
def test_supported_needs_linux_glibc_2_35_and_thp(system, libc, thp, ok):
    assert hugepages.supported(system, libc, thp) is ok


def _run(env_tunables: str | None) -> list[str]:
    """A child Python that calls reexec() and prints its pid before and after, and its GLIBC_TUNABLES."""
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    if env_tunables is not None:
        env["GLIBC_TUNABLES"] = env_tunables
    code = ("import os, sys; print(os.getpid(), flush=True); from harness import hugepages; "
            "hugepages.reexec(); print(os.getpid(), os.environ.get('GLIBC_TUNABLES'), sys.argv[1:])")
    out = subprocess.run([sys.executable, "-c", code, "a", "--b"], env=env, capture_output=True, text=True,
                         check=True, timeout=120)
    return out.stdout.split("\n")


def test_reexec_restarts_the_same_process_with_the_tunable_once():
    lines = _run(None)
    pid = lines[0]
    if hugepages.supported():
        # printed once before the exec (same pid), once after: the arguments are kept, and no loop
        assert lines[1] == pid and lines[2] == f"{pid} {ON} ['a', '--b']", lines
    else:
        assert lines[1] == f"{pid} None ['a', '--b']", lines
    # a user's own setting: no exec, unchanged
    lines = _run("glibc.malloc.hugetlb=0")
    assert lines[1] == f"{lines[0]} glibc.malloc.hugetlb=0 ['a', '--b']", lines


def test_the_console_script_reexecs_before_dispatching(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(hugepages, "reexec", lambda: calls.append(list(sys.argv)))
    monkeypatch.setattr(sys, "argv", ["pertvae-bench", "--version"])
    assert entry.main() == 0 and calls == [["pertvae-bench", "--version"]]
    assert capsys.readouterr().out.startswith("pertvae-bench ")


def test_the_console_script_reexecs_before_importing_torch():
    """harness.entry loads nothing heavy before its re-exec (which would throw it away)."""
    code = "import sys, harness.entry; print('torch' in sys.modules, 'harness.cli' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         timeout=120)
    assert out.stdout.split() == ["False", "False"]
