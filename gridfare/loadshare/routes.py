"""The routes of the manager's HTTP face (``services/loadshare_http.py``), pure: a request's
method, last path part and body -> the manager method to call and its arguments."""

from __future__ import annotations

import json

from gridfare.errors import InvalidInput

__all__ = ["MAX_EVENT", "route"]

MAX_EVENT = 200


def route(method: str, action: str, raw: bytes) -> tuple[str, tuple] | None:
    """``(manager method, args)``, None for no such route; a bad body is InvalidInput."""
    if method == "GET" and action == "status":
        return "ensure", ()
    if method != "POST":
        return None
    if action in ("start", "stop"):
        return "command", (action,)
    if action != "signal":
        return None
    try:
        body = json.loads(raw or b"{}")
    except ValueError as exc:
        raise InvalidInput(f"malformed JSON: {exc}") from None
    event = body.get("event") if isinstance(body, dict) else None
    if not isinstance(event, str) or not 0 < len(event) <= MAX_EVENT:
        raise InvalidInput(f"field 'event' must be a string of 1..{MAX_EVENT} characters")
    end = body.get("end", False)
    if not isinstance(end, bool):
        raise InvalidInput("field 'end' must be true or false")
    return "signal", (event, end)
