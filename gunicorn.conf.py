"""Gunicorn settings for the web process (read by `gunicorn -c gunicorn.conf.py`).

Threaded workers: most of a request's time is spent waiting on ZappWay, so threads (not
processes) carry the concurrency. This file reads PORT / WEB_CONCURRENCY / WEB_THREADS
because gunicorn starts before the app; everything else is read by `bridge.config`.
"""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "32"))
timeout = 120  # above the action deadline, below the ~100 s upstream edge plus margin
graceful_timeout = 30
keepalive = 5
accesslog = "-"
errorlog = "-"
# Path and status only: no headers (tokens travel in headers), no query strings with cursors.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
