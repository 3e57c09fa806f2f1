"""The replica-server middleware (``services.ingress``) through Serve's own code: the
callback named by the env var loads, passes Serve's check, and the request Serve's
replica entry point then sees asks for no disconnect watch (Serve's own parser)."""

from __future__ import annotations

import asyncio

from ray.serve._private.http_util import (
    _apply_middlewares,
    parse_disconnect_disabled_header,
    validate_http_proxy_callback_return,
)
from ray.serve._private.utils import call_function_from_import_path

from services.ingress import DISCONNECT_WATCH_OFF_ENV


def _serve(scope: dict) -> tuple[list, dict]:
    seen: dict = {}

    async def entry(scope, receive, send):  # stands where Serve's _direct_ingress_asgi is
        seen["headers"] = dict(scope["headers"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    path = DISCONNECT_WATCH_OFF_ENV["RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"]
    app = _apply_middlewares(
        entry, validate_http_proxy_callback_return(call_function_from_import_path(path)))
    sent: list = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent, seen


def _http(headers: list) -> dict:
    return {"type": "http", "method": "POST", "path": "/accounts/1/payments",
            "headers": headers}


def test_every_request_asks_serve_for_no_disconnect_watch():
    sent, seen = _serve(_http([(b"content-type", b"application/json")]))
    assert parse_disconnect_disabled_header(seen["headers"])
    assert seen["headers"][b"content-type"] == b"application/json"
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]


def test_a_client_cannot_turn_the_watch_back_on():
    _, seen = _serve(_http([(b"x-request-disconnect-disabled", b"?0")]))
    assert parse_disconnect_disabled_header(seen["headers"])


def test_a_request_without_the_middleware_is_watched():
    # the control: Serve's parser reads an ordinary request as watched
    assert not parse_disconnect_disabled_header(dict(_http([])["headers"]))


def test_other_scopes_pass_unchanged():
    seen: dict = {}

    async def inner(scope, receive, send):
        seen.update(scope)

    from services.ingress import NoDisconnectWatch

    scope = {"type": "lifespan", "headers": []}
    asyncio.run(NoDisconnectWatch(inner)(scope, None, None))
    assert seen["headers"] == []
