"""The worker process: `python -m bridge.worker` (the Procfile's worker line).

It builds the same app as the web process, so it runs the same named tasks with the same
settings, then consumes the queue until stopped.
"""

from __future__ import annotations

import logging

from huey import Huey

from bridge import create_app
from bridge.infra import metrics, queue
from bridge.runtime import Runtime
from bridge.web.context import service_of

log = logging.getLogger(__name__)


def main() -> None:
    app = create_app()
    huey, runtime = service_of(app, Huey), service_of(app, Runtime)
    metrics.enable_multiprocess(runtime.settings.metrics_path)  # summed with the web's figures
    queue.beat(runtime.sessions, "worker")
    log.info("worker.start backend=%s", type(huey.storage).__name__)
    queue.run_consumer(huey, runtime.settings.worker_threads)


if __name__ == "__main__":
    main()
