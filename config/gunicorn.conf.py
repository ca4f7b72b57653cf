"""gunicorn settings for the web app in production: `gunicorn -c config/gunicorn.conf.py`.

The web workers only serve requests. The scheduler runs as its own process
(`digest scheduler`) and senders as `digest worker`, never inside these workers.
"""

import multiprocessing
import os

wsgi_app = "digest:create_app()"
bind = os.environ.get("DIGEST_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("DIGEST_WEB_WORKERS", multiprocessing.cpu_count() * 2 + 1))
threads = 4
timeout = 30
forwarded_allow_ips = os.environ.get("DIGEST_FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = "-"
