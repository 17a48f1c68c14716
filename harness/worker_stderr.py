"""Worker preload of a local run (harness.cluster.worker_preloads): imported by each Dask worker process as
it is created, it points the process's stderr at the run's log file (``HARNESS_RUN_LOG``), so that nothing
a worker prints before the RunLog plugin reaches it (startup warnings, other preloads' output) lands in the
driver's terminal."""

from __future__ import annotations

import os

from harness.cluster import RUN_LOG_ENV, stderr_to

if os.environ.get(RUN_LOG_ENV):
    stderr_to(os.environ[RUN_LOG_ENV])
