"""A dashboard client that goes away mid-run leaves the terminal clean (issue 24 #3): during a real
``python -m harness.run`` (subprocess, 2-worker LocalCluster, dashboard on) the test fetches /status, opens
the status page's Bokeh websocket as a browser does, reads its updates and drops the connection without a
close frame (a tab closed), then opens one without Bokeh's subprotocol (bokeh raises inside tornado, which
logs "Uncaught exception" with a traceback). The CLI's stdout and stderr hold no traceback and no library
log line; OUT/run.log holds tornado's traceback. The progress, piped, is a line at the start, at most one per
30 s and one at the end, each naming its unit and the task count the dashboard shows."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.request
from urllib.parse import urlparse

import pytest

from tests.e2e import PYTHON, ROOT, tiny_args, tiny_cube

pytestmark = pytest.mark.timeout(300)

URL = re.compile(r"Dask dashboard: (http\S+)")
TOKEN = re.compile(r'"token"\s*:\s*"([^"]+)"')
# a traceback, a library's name, a Python warning or exception line, a line in distributed's log format
LIBRARY_LINE = re.compile(r"Traceback|tornado|bokeh|distributed\.|asyncio|\w+(Error|Warning|Exception): "
                          r"| - (DEBUG|INFO|WARNING|ERROR|CRITICAL) - ")


async def _browser_tab(host: str, port: int, token: str, seconds: float) -> int:
    """Open /status/ws as bokeh's JS client does, read updates for ``seconds``, then reset the TCP
    connection (no websocket close frame). Returns the number of frames received."""
    import tornado.websocket

    conn = await tornado.websocket.websocket_connect(f"ws://{host}:{port}/status/ws",
                                                     subprotocols=["bokeh", token])
    await conn.read_message()   # ACK
    for part in ('{"msgid":"t1","msgtype":"PULL-DOC-REQ"}', "{}", "{}"):
        await conn.write_message(part)
    frames, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            if await asyncio.wait_for(conn.read_message(), 0.5) is not None:
                frames += 1
        except TimeoutError:
            pass
    conn.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.stream.close()
    return frames


async def _no_subprotocol(host: str, port: int) -> None:
    import tornado.websocket

    conn = await tornado.websocket.websocket_connect(f"ws://{host}:{port}/status/ws")
    conn.close()


def _pump(stream, sink: list[str], url: list[str], found: threading.Event) -> None:
    for line in stream:
        sink.append(line)
        m = URL.search(line)
        if m and not url:
            url.append(m.group(1))
            found.set()
    found.set()


def test_closing_a_dashboard_client_mid_run_keeps_the_terminal_clean(tmp_path_factory, tmp_path):
    cube = tiny_cube(tmp_path_factory)
    out = tmp_path / "run"
    args = tiny_args(cube, out, "--max-epochs", "30", "--patience", "30", "--progress", workers=2)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    started = time.monotonic()
    proc = subprocess.Popen([PYTHON, "-m", "harness.run", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    stdout: list[str] = []
    stderr: list[str] = []
    url: list[str] = []
    found = threading.Event()
    pumps = [threading.Thread(target=_pump, args=(proc.stdout, stdout, url, found), daemon=True),
             threading.Thread(target=_pump, args=(proc.stderr, stderr, [], threading.Event()), daemon=True)]
    for t in pumps:
        t.start()
    try:
        assert found.wait(240) and url, "no dashboard URL:\n" + "".join(stdout + stderr)
        assert proc.poll() is None, "run ended before the dashboard was used:\n" + "".join(stdout)
        with urllib.request.urlopen(url[0], timeout=30) as r:   # /status
            html = r.read().decode("utf-8", "replace")
        u = urlparse(url[0])
        frames = asyncio.run(_browser_tab(u.hostname, u.port, TOKEN.search(html).group(1), 2.0))
        asyncio.run(_no_subprotocol(u.hostname, u.port))
        assert proc.poll() is None, "the run ended while the clients were open; make it longer"
        assert proc.wait(timeout=240) == 0, "".join(stdout + stderr)
        seconds = time.monotonic() - started
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for t in pumps:
            t.join(timeout=5)
    assert frames > 0   # the tab did receive the status page's document and updates
    assert any("(it counts Dask tasks; the progress line counts fits weighted" in x for x in stdout), stdout
    progress = [x for x in stderr if x.startswith("progress (fits, weighted by expected time): ")]
    assert 2 <= len(progress) <= 2 + seconds / 30 + 1, stderr
    assert re.search(r"100% \| \d+/\d+ fits, 0 failed; tasks (\d+)/\1 \|", progress[-1]), progress[-1]
    terminal = "".join(stdout + stderr)
    noise = [x for x in terminal.splitlines() if LIBRARY_LINE.search(x)]
    assert not noise, terminal
    assert "done:" in terminal
    log = (out / "run.log").read_text()
    assert "Uncaught exception GET /status/ws" in log and "Traceback" in log, log[-3000:]
