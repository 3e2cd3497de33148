"""``[core] hostname_callable`` for the system test's Celery workers.

Both workers run on this one machine, so Airflow's default (the FQDN) would give them the same
name. Each worker process gets ``INFOBIP_SYSTEM_WORKER_NAME`` and this callable, so a task instance's
``hostname`` says which worker ran it.
"""

from __future__ import annotations

import os
import socket


def worker_hostname() -> str:
    """The worker's own name, falling back to the machine's when the variable is unset."""
    return os.environ.get("INFOBIP_SYSTEM_WORKER_NAME") or socket.getfqdn()
