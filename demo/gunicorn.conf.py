"""gunicorn's settings for the demo, read from the folder gunicorn starts in: with PROMETHEUS_MULTIPROC_DIR
set (e.g. `--env PROMETHEUS_MULTIPROC_DIR=/run/demo-metrics`), the folder is emptied before the workers
start, so counters begin at zero with the service, and a worker that exits is marked dead."""

import os
import shutil
from pathlib import Path


def on_starting(server) -> None:
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        Path(folder).mkdir(parents=True)


def child_exit(server, worker) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
