"""The seats HTTP edge without Serve: a bare ASGI app (``JsonApp``), the body read, the
error table, the JSON answer.

Kept apart from the deployment (``services.seats_http``) so that its rules are tested on
ASGI messages in microseconds, with no Ray.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

from gridfare.errors import (
    ConfigError,
    GridfareError,
    InvalidInput,
    MigrationConflict,
    MigrationError,
    RequestTooLarge,
    SeatUnavailable,
    StaleVersion,
    TrainFrozen,
    UnknownMigration,
    UnknownOrder,
    UnknownTrain,
)

__all__ = ["BODY_TIMEOUT_S", "FAST_PATH", "HTTP_STATUS", "INGRESS_ENV", "MAX_BODY", "FastPath",
           "JsonApp", "OrdersFastPath", "ReadDeadlines", "error_answer", "json_body",
           "middlewares", "read_json", "send_json", "status_of"]

logger = logging.getLogger("ray.serve")

MAX_BODY = 64 * 1024  # the largest train-date definition is ~4 KB
BODY_TIMEOUT_S = 5.0  # a body that does not arrive whole by then is refused (400)

# One table, by class (the most specific class listed wins); a GridfareError not under any
# of these is a fault of ours (500), like any other exception.
HTTP_STATUS: dict[type[GridfareError], int] = {
    RequestTooLarge: 413,
    InvalidInput: 400,
    ConfigError: 400,
    UnknownTrain: 404,
    UnknownOrder: 404,
    UnknownMigration: 404,
    MigrationConflict: 409,
    MigrationError: 409,
    StaleVersion: 409,
    TrainFrozen: 503,
    SeatUnavailable: 503,
}


def status_of(exc: BaseException) -> int:
    for kind in type(exc).__mro__:
        if kind in HTTP_STATUS:
            return HTTP_STATUS[kind]
    return 500


def error_answer(exc: BaseException) -> tuple[int, dict]:
    """The status and body for a failed request; a 500's traceback goes to the log under
    the ``error_id`` the client is given."""
    status = status_of(exc)
    if status != 500:
        text = " ".join(str(exc).split())  # one line
        return status, {"error": type(exc).__name__, "message": text[:1000]}
    error_id = uuid.uuid4().hex[:16]
    logger.error("seats HTTP: internal error %s", error_id, exc_info=exc)
    return 500, {
        "error": "InternalError",
        "error_id": error_id,
        "message": f"internal error {error_id} (logged by the seats HTTP replica)",
    }


class ReadDeadlines:
    """The bound on body reads (``timeout_s``), kept without a timer per request: each read
    notes its task and deadline, and one sweep every ``timeout_s / 4`` (scheduled only
    while reads are noted) cancels a read past its deadline, which ``read_json`` then
    refuses (400). So a read is refused between ``timeout_s`` and 1.25 x ``timeout_s``.
    ``asyncio.timeout`` per read (a timer set and cancelled per order) was ~3 % of the
    seats replica's samples at a held 1,000 orders/s (py-spy)."""

    def __init__(self, timeout_s: float = BODY_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self._reading: dict[asyncio.Task, float] = {}
        self._expired: set[asyncio.Task] = set()
        self._sweep: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the sweep's

    def enter(self) -> asyncio.Task:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        self._reading[task] = loop.time() + self.timeout_s
        if self._sweep is None or self._loop is not loop:
            self._loop = loop
            self._sweep = loop.call_later(self.timeout_s / 4, self._check)
        return task

    def leave(self, task: asyncio.Task) -> None:
        self._reading.pop(task, None)

    def expired(self, task: asyncio.Task) -> bool:
        """Whether the sweep cancelled ``task`` (then it is no longer cancelled)."""
        if task in self._expired:
            self._expired.discard(task)
            task.uncancel()
            return True
        return False

    def _check(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        late = [task for task, deadline in self._reading.items() if deadline <= now]
        for task in late:
            del self._reading[task]
            self._expired.add(task)
            task.cancel()
        self._sweep = (loop.call_later(self.timeout_s / 4, self._check) if self._reading
                       else None)


_DEADLINES = ReadDeadlines()  # the reads that name no deadlines of their own


def _content_length(scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return value
    return None


async def read_json(scope, receive, max_body: int = MAX_BODY,
                    deadlines: ReadDeadlines | None = None):
    """The body of the ASGI request ``scope`` (read from ``receive``) as a JSON object: at
    most ``max_body`` bytes (413), whole within ``deadlines.timeout_s`` (a body shorter
    than its Content-Length would otherwise be waited for as long as the client keeps the
    connection), nested no deeper than JSON allows here."""
    raw_length = _content_length(scope)
    declared = None
    if raw_length is not None:
        declared = raw_length.decode("latin-1")
        if not declared.isascii() or not declared.isdigit():
            raise InvalidInput(f"Content-Length {declared!r:.40} is not a number")
        if int(declared) > max_body:
            raise RequestTooLarge(f"body of {declared} bytes; at most {max_body}")
    deadlines = deadlines or _DEADLINES
    chunks: list[bytes] = []
    size = 0
    task = deadlines.enter()
    try:
        while True:
            message = await receive()
            if message["type"] != "http.request":  # http.disconnect: the client went away
                raise InvalidInput(f"client went away after {size} bytes of the body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > max_body:
                raise RequestTooLarge(f"body over {max_body} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
    except asyncio.CancelledError:
        if deadlines.expired(task):
            raise InvalidInput(
                f"body incomplete after {deadlines.timeout_s:g} s ({size} of "
                f"{declared or '?'} bytes)") from None
        raise
    finally:
        deadlines.leave(task)
    raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if declared is not None and len(raw) != int(declared):
        raise InvalidInput(f"body of {len(raw)} bytes; Content-Length said {declared}")
    try:
        body = json.loads(raw or b"{}")
    except RecursionError:
        raise RequestTooLarge("body nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, too many digits
        raise InvalidInput(f"malformed JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object")
    return body


def json_body(body: object) -> bytes:
    # ensure_ascii: a lone surrogate echoed in a message is escaped, never an encoding error
    return json.dumps(body).encode()


async def send_json(send, status: int, body: object) -> None:
    """Answer with ``body`` as JSON: the two ASGI messages themselves (the headers
    starlette's ``Response`` sent: content-type and content-length)."""
    raw = json_body(body)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", b"%d" % len(raw))]})
    await send({"type": "http.response.body", "body": raw})


class JsonApp:
    """A bare ASGI app around ``route(scope, receive) -> (status, body)``: every answer
    JSON, every exception answered by its class (``error_answer``); the lifespan protocol
    acknowledged. No starlette ``Request`` or ``Response`` per request (Serve calls an
    ASGI app with the request's own ``scope, receive, send``)."""

    def __init__(self, route, answered=None) -> None:
        self._route = route
        self._answered = answered  # called with each answer's status

    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind == "http":
            try:
                status, body = await self._route(scope, receive)
            except Exception as exc:  # every fault is answered, by its class
                status, body = error_answer(exc)
            if self._answered is not None:
                self._answered(status)
            await send_json(send, status, body)
        elif kind == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1008})


class FastPath:
    """This process's ``POST /orders`` fast path: the seats app its replica serves
    (``serve``), taken by ``OrdersFastPath`` in the replica's own HTTP server, and the
    orders it is answering (``in_flight``, which the replica waits for when it stops)."""

    def __init__(self) -> None:
        self.app = None
        self.in_flight = 0

    def serve(self, app) -> None:
        self.app = app

    def stop(self) -> None:
        self.app = None


FAST_PATH = FastPath()


class OrdersFastPath:
    """An ASGI middleware of the seats replicas' HTTP servers (HAProxy mode) that hands
    ``POST /orders`` to the replica's ``JsonApp`` itself, ahead of Serve's per-request
    work: the request-id middleware, the request metadata (two request ids), the header
    scans, the ongoing-request accounting and the request metrics (py-spy at a held 1,000
    orders/s: ~28 % of the replica's busy samples, on its one event loop that every order
    and every centre call shares). Every other route goes the Serve way. An order answered
    here is counted by the app's own ``gridfare_seats_http_answers``, not by Serve's
    request metrics, and carries no ``x-request-id``; the replica waits for the orders in
    flight here before it stops (``SeatsHTTP.__del__``)."""

    def __init__(self, app, fast: FastPath = FAST_PATH) -> None:
        self._app = app
        self._fast = fast

    async def __call__(self, scope, receive, send) -> None:
        fast = self._fast
        if (fast.app is not None and scope["type"] == "http" and scope["path"] == "/orders"
                and scope["method"] == "POST"):
            fast.in_flight += 1
            try:
                await fast.app(scope, receive, send)
            finally:
                fast.in_flight -= 1
            return
        await self._app(scope, receive, send)


# read by the seats replicas' HTTP servers when they start (the deployment's runtime_env)
INGRESS_ENV = {"RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH": "services.seats_edge:middlewares"}


def middlewares():
    """The seats replicas' HTTP callback: Serve's disconnect watch off
    (``services.ingress``) and the orders fast path outside it."""
    from starlette.middleware import Middleware

    from services.ingress import NoDisconnectWatch

    return [Middleware(NoDisconnectWatch), Middleware(OrdersFastPath)]
