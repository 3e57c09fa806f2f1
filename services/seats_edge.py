"""The seats HTTP edge without Serve: the body read, the error table, the JSON answer.

Kept apart from the deployment (``services.seats_http``) so that its rules are tested on
real starlette requests in microseconds, with no Ray.
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

__all__ = ["BODY_TIMEOUT_S", "HTTP_STATUS", "MAX_BODY", "error_answer", "json_response",
           "read_json", "status_of"]

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


async def read_json(request, max_body: int = MAX_BODY, timeout_s: float = BODY_TIMEOUT_S):
    """The body as a JSON object: at most ``max_body`` bytes (413), whole within
    ``timeout_s`` (a body shorter than its Content-Length would otherwise be waited for as
    long as the client keeps the connection), nested no deeper than JSON allows here."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isascii() or not declared.isdigit():
            raise InvalidInput(f"Content-Length {declared!r:.40} is not a number")
        if int(declared) > max_body:
            raise RequestTooLarge(f"body of {declared} bytes; at most {max_body}")
    chunks: list[bytes] = []
    size = 0
    # asyncio.timeout, not wait_for: wait_for ran the read as a task of its own, one more
    # task (and loop round trip) per order
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_body:
                    raise RequestTooLarge(f"body over {max_body} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise InvalidInput(
            f"body incomplete after {timeout_s:g} s ({size} of {declared or '?'} bytes)"
        ) from None
    raw = b"".join(chunks)
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


def json_response(status: int, body: object):
    from starlette.responses import Response

    # ensure_ascii: a lone surrogate echoed in a message is escaped, never an encoding error
    return Response(json.dumps(body).encode(), status_code=status,
                    media_type="application/json")


