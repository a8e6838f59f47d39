"""The worker process: `python -m bridge.worker` (the Procfile's worker line).

It builds the same app as the web process, so it runs the same named tasks with the same
settings, then consumes the queue until stopped. SIGTERM stops it gracefully within
`BRIDGE_WORKER_STOP_TIMEOUT` (see `bridge.infra.queue.GracefulConsumer`); a thread beats every
quarter of `BRIDGE_WORKER_GONE_AFTER` so `/readyz` knows it is alive. Once the consumer is done
the process ends at once: threads a task started (a hook batch's parallel POSTs, not daemons)
would otherwise hold it past the stop timeout, though their task was already handed back.
"""

from __future__ import annotations

import atexit
import logging
import os

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
    settings = runtime.settings
    beat = queue.BeatThread(runtime.sessions, "worker", settings.worker_gone_after_s / 4)
    beat.start()
    log.info("worker.start backend=%s", type(huey.storage).__name__)
    try:
        queue.run_consumer(huey, settings.worker_threads, settings.worker_stop_timeout_s)
    finally:
        beat.stop()
    log.info("worker.stopped")
    atexit._run_exitfuncs()  # what a normal exit runs (buffers flushed), without joining threads
    logging.shutdown()
    os._exit(0)


if __name__ == "__main__":
    main()
