"""An ASGI middleware for the replicas' own HTTP servers (HAProxy mode) that turns off
Serve's per-request client-disconnect watch, through Serve's documented HTTP callback
(``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH``), without patching Ray.

In HAProxy mode each ingress replica runs its own uvicorn server, and Ray 2.60's
``ReplicaActor._direct_ingress_asgi`` starts, for every request, a task that reads the
connection until the client goes away, runs the handler in a second task and
``asyncio.wait``s for the first of the two, unless the request carries
``x-request-disconnect-disabled: ?1`` and no request timeout is set (the default; then it
awaits the handler directly). The replica's server wraps that entry point in the
middlewares the callback returns (``http_util.start_asgi_http_server``), so a middleware
that adds the header to the request's scope makes Serve take the direct path for every
request of the replicas whose environment names the callback
(``DISCONNECT_WATCH_OFF_ENV``, in the deployment's ``runtime_env``: only that app).

What it changes: a request whose client went away is finished instead of cancelled.
A service whose requests are idempotent by key (the accounts processors) loses nothing by
that: the client's retry gets the first answer. Cost measured in ``docs/benchmarks.md``.
"""

from __future__ import annotations

from starlette.middleware import Middleware

__all__ = ["DISCONNECT_WATCH_OFF_ENV", "NoDisconnectWatch", "middlewares"]

HEADER = (b"x-request-disconnect-disabled", b"?1")
# read by the replica's process when it starts its HTTP server
DISCONNECT_WATCH_OFF_ENV = {
    "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH": "services.ingress:middlewares"}


class NoDisconnectWatch:
    """Adds ``x-request-disconnect-disabled: ?1`` to each HTTP request's headers (Serve
    reads them into a dict, so the last value counts: a client cannot turn it back on)."""

    def __init__(self, app) -> None:
        self._app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            scope["headers"].append(HEADER)  # uvicorn's list, made for this request
        await self._app(scope, receive, send)


def middlewares() -> list[Middleware]:
    """The callback Serve calls in the replica (by import path) for its HTTP server."""
    return [Middleware(NoDisconnectWatch)]
