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

``OnePacketPerResponse`` (``ONE_PACKET_ENV``, which adds it to the same callback) sends each
answer as one TCP segment: uvicorn writes a response's status line and headers and then its
body in two transport writes, and on loopback each write is a segment that the kernel
delivers to HAProxy there and then, and that HAProxy wakes up for.
"""

from __future__ import annotations

import contextlib
import socket

from starlette.middleware import Middleware

__all__ = ["DISCONNECT_WATCH_OFF_ENV", "ONE_PACKET_ENV", "NoDisconnectWatch",
           "OnePacketPerResponse", "middlewares", "one_packet_middlewares"]

HEADER = (b"x-request-disconnect-disabled", b"?1")
# read by the replica's process when it starts its HTTP server
DISCONNECT_WATCH_OFF_ENV = {
    "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH": "services.ingress:middlewares"}
ONE_PACKET_ENV = {
    "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH": "services.ingress:one_packet_middlewares"}


class NoDisconnectWatch:
    """Adds ``x-request-disconnect-disabled: ?1`` to each HTTP request's headers (Serve
    reads them into a dict, so the last value counts: a client cannot turn it back on)."""

    def __init__(self, app) -> None:
        self._app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            scope["headers"].append(HEADER)  # uvicorn's list, made for this request
        await self._app(scope, receive, send)


class OnePacketPerResponse:
    """Corks the connection's socket (``TCP_CORK``) from a response's start to its last body
    message, so that its head and body leave in one segment. It must be the outermost
    middleware (uvicorn's ``send`` is then its transport's owner); where the socket cannot
    be found it passes the request through unchanged."""

    def __init__(self, app) -> None:
        self._app = app

    async def __call__(self, scope, receive, send) -> None:
        transport = getattr(getattr(send, "__self__", None), "transport", None)
        sock = None if scope["type"] != "http" or transport is None else \
            transport.get_extra_info("socket")
        if sock is None:
            await self._app(scope, receive, send)
            return
        corked = False

        async def send_corked(message) -> None:
            nonlocal corked
            kind = message["type"]
            if kind == "http.response.start":
                corked = _cork(sock, 1)
            await send(message)
            if corked and kind == "http.response.body" and not message.get("more_body"):
                corked = not _cork(sock, 0)  # the kernel sends what it holds now

        try:
            await self._app(scope, receive, send_corked)
        finally:
            if corked:
                _cork(sock, 0)


def _cork(sock, on: int) -> bool:
    with contextlib.suppress(OSError):  # the connection is gone: nothing to hold or send
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, on)
        return True
    return False


def middlewares() -> list[Middleware]:
    """The callback Serve calls in the replica (by import path) for its HTTP server."""
    return [Middleware(NoDisconnectWatch)]


def one_packet_middlewares() -> list[Middleware]:
    """``middlewares`` and, outermost, ``OnePacketPerResponse``."""
    return [Middleware(NoDisconnectWatch), Middleware(OnePacketPerResponse)]
