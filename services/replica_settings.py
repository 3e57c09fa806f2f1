"""The Serve settings the HTTP replicas share (seats and accounts: both; the quote and
load-sharing services: the logging).

Profiled with py-spy under 64 connections (2 cores): the seats replica and the proxy each
burned ~57 % of a core at ~240 requests/s; in the replica about a third went to handing
each request to a second event-loop thread and back, and to per-request access logging.
Running the handler on the replica's main loop and logging only warnings removes that
work; a handler that uses these must be all ``await``s, so it never blocks that loop (the
blocking work runs in a pool). With the access log off, Serve still formatted and filtered
the access line per request (2.5 % of the accounts replica's GIL) unless the level is
WARNING.
"""

from __future__ import annotations

__all__ = ["REPLICA_ENV", "REPLICA_LOGGING"]

# read when the replica's process starts, so they travel in its runtime_env
REPLICA_ENV = {
    "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
    "RAY_SERVE_LOG_TO_STDERR": "0",
    "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE": "1000",
}
REPLICA_LOGGING = {"enable_access_log": False, "log_level": "WARNING"}
