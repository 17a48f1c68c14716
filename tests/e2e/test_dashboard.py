"""During a real ``python -m harness.run`` (subprocess, 2-worker LocalCluster) the printed Dask dashboard URL
serves the dashboard's status page."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import urllib.request

import pytest

from tests.e2e import PYTHON, ROOT, tiny_args, tiny_cube

pytestmark = pytest.mark.timeout(300)

URL = re.compile(r"Dask dashboard: (http\S+)")


def test_dashboard_url_serves_status_page_during_run(tmp_path_factory, tmp_path):
    cube = tiny_cube(tmp_path_factory)
    args = tiny_args(cube, tmp_path / "run", workers=2)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([PYTHON, "-m", "harness.run", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    lines: list[str] = []
    found = threading.Event()
    url: list[str] = []

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            m = URL.search(line)
            if m and not url:
                url.append(m.group(1))
                found.set()
        found.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        assert found.wait(240), "no output from harness.run"
        assert url, "harness.run printed no dashboard URL:\n" + "".join(lines)
        # fetch while the run is still going (the cluster closes when the grid is done)
        assert proc.poll() is None, "run finished before the dashboard could be fetched:\n" + "".join(lines)
        with urllib.request.urlopen(url[0], timeout=30) as r:   # /status, or a redirect to it
            status, final, body = r.status, r.geturl(), r.read().decode("utf-8", "replace")
        assert status == 200
        assert final.rstrip("/").endswith("/status"), final
        assert "<html" in body.lower() and "dask" in body.lower()
        assert proc.wait(timeout=240) == 0, "".join(lines)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        t.join(timeout=5)
