"""The seats HTTP edge on ASGI messages (no Ray): bounded body reads, the error table by
class, one-line answers, a fault of ours as a 500 whose id is logged, and the bare ASGI app
(its answers' messages, the lifespan protocol)."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from gridfare import errors
from gridfare.errors import InvalidInput, RequestTooLarge
from services.seats_edge import (
    HTTP_STATUS,
    JsonApp,
    ReadDeadlines,
    error_answer,
    json_body,
    read_json,
    status_of,
)


def _request(chunks: list[bytes], content_length: int | None, more: bool = False):
    """A request whose body arrives as ``chunks``; with ``more`` the client then sends
    nothing more (a short body under a long Content-Length) and never hangs up."""
    headers = [] if content_length is None else [(b"content-length", str(content_length).encode())]
    messages = [{"type": "http.request", "body": c, "more_body": True} for c in chunks]
    if not more:
        messages.append({"type": "http.request", "body": b"", "more_body": False})

    async def receive():
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()  # the client went quiet

    scope = {"type": "http", "method": "POST", "path": "/orders", "headers": headers,
             "query_string": b""}
    return scope, receive


def _read(request, timeout_s: float | None = None, **kwargs):
    deadlines = ReadDeadlines(timeout_s) if timeout_s is not None else None
    return asyncio.run(read_json(*request, deadlines=deadlines, **kwargs))


def test_a_whole_body_is_read():
    assert _read(_request([b'{"a"', b": 1}"], 8)) == {"a": 1}
    assert _read(_request([b"{}"], None)) == {}


def test_a_short_body_with_a_long_content_length_is_refused_in_bounded_time():
    with pytest.raises(InvalidInput, match=r"incomplete after 0\.2 s"):
        _read(_request([b'{"a": 1'], 4000, more=True), timeout_s=0.2)
    with pytest.raises(InvalidInput, match="Content-Length said 40"):
        _read(_request([b"{}"], 40))


def test_an_oversized_or_deeply_nested_body_is_413():
    with pytest.raises(RequestTooLarge, match="at most 100"):
        _read(_request([b"{}"], 10**9), max_body=100)
    with pytest.raises(RequestTooLarge, match="over 100"):
        _read(_request([b"[" * 60, b"]" * 60], None), max_body=100)  # no Content-Length
    with pytest.raises(RequestTooLarge, match="nested"):
        _read(_request([b"[" * 40_000 + b"]" * 40_000], None), max_body=100_000)
    assert status_of(RequestTooLarge("x")) == 413


@pytest.mark.parametrize("raw, words", [
    (b"{not json", "malformed JSON"), (b"[1, 2]", "object"), (b"\xff\xfe", "malformed"),
    (b'{"a": ' + b"9" * 5000 + b"}", "malformed JSON"), (b"", None),
])
def test_a_body_that_is_not_a_json_object_is_400(raw, words):
    request = _request([raw], len(raw))
    if words is None:
        assert _read(request) == {}
        return
    with pytest.raises(InvalidInput, match=words):
        _read(request)


def test_bad_content_length_is_400():
    scope = {"type": "http", "method": "POST", "path": "/", "headers": [
        (b"content-length", b"12abc")], "query_string": b""}
    with pytest.raises(InvalidInput, match="Content-Length"):
        asyncio.run(read_json(scope, None))


def test_every_seat_error_kind_has_its_status_by_class():
    expected = {"InvalidInput": 400, "InvalidName": 400, "ConfigError": 400,
                "UnknownTrain": 404, "UnknownOrder": 404, "UnknownMigration": 404,
                "MigrationError": 409, "MigrationConflict": 409, "StaleVersion": 409,
                "TrainFrozen": 503, "SeatUnavailable": 503, "RequestTooLarge": 413,
                "WalCorrupt": 500, "SeatError": 500, "GridfareError": 500}
    for name, status in expected.items():
        assert status_of(getattr(errors, name)("m")) == status, name
    assert status_of(KeyError("x")) == 500
    assert all(issubclass(kind, errors.GridfareError) for kind in HTTP_STATUS)


def test_a_refusal_is_one_line_and_a_fault_of_ours_is_a_logged_500(caplog):
    status, body = error_answer(InvalidInput("field 'x'\nbroke\ta rule"))
    assert (status, body) == (400, {"error": "InvalidInput", "message": "field 'x' broke a rule"})
    with caplog.at_level(logging.ERROR, logger="ray.serve"):
        try:
            {}["missing"]
        except KeyError as exc:
            status, body = error_answer(exc)
    assert status == 500 and body["error"] == "InternalError"
    assert body["error_id"] in caplog.text and "KeyError" in caplog.text  # with its traceback
    assert "missing" not in body["message"]  # the client is not shown our internals


def test_answers_are_ascii_json_even_when_they_echo_a_lone_surrogate():
    raw = json_body({"message": "request_id '\ud800' holds a lone surrogate"})
    assert raw.isascii()
    assert json.loads(raw)["message"].startswith("request_id '\ud800'")


def test_a_read_past_its_deadline_is_refused_and_its_task_goes_on():
    async def main():
        deadlines = ReadDeadlines(0.2)
        scope, receive = _request([b'{"a": 1'], 4000, more=True)
        with pytest.raises(InvalidInput, match=r"incomplete after 0\.2 s \(7 of 4000"):
            await read_json(scope, receive, deadlines=deadlines)
        await asyncio.sleep(0.01)  # the task is not left cancelled
        # a read that ends in time is not cancelled later, and the sweep stops when idle
        assert await read_json(*_request([b"{}"], 2), deadlines=deadlines) == {}
        await asyncio.sleep(0.3)
        return deadlines._sweep

    assert asyncio.run(main()) is None


def test_a_client_gone_before_its_body_is_a_refusal():
    async def receive():
        return {"type": "http.disconnect"}

    scope = {"type": "http", "method": "POST", "path": "/orders", "headers": [],
             "query_string": b""}
    with pytest.raises(InvalidInput, match="went away"):
        asyncio.run(read_json(scope, receive))


def _serve(app, scope, messages):
    sent = []

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def test_the_app_answers_json_with_its_length_and_errors_by_class():
    seen = []

    async def route(scope, receive):
        if scope["path"] == "/boom":
            raise InvalidInput("no\nsuch thing")
        return 200, {"path": scope["path"], "body": await read_json(scope, receive)}

    app = JsonApp(route, seen.append)
    scope, _ = _request([b'{"a": 1}'], 8)
    sent = _serve(app, scope, [{"type": "http.request", "body": b'{"a": 1}'}])
    start, body = sent
    assert start == {"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"application/json"), (b"content-length", b"%d" % len(body["body"]))]}
    assert json.loads(body["body"]) == {"path": "/orders", "body": {"a": 1}}
    assert body["type"] == "http.response.body" and not body.get("more_body")
    sent = _serve(app, {**scope, "path": "/boom"}, [])
    assert sent[0]["status"] == 400
    assert json.loads(sent[1]["body"]) == {"error": "InvalidInput", "message": "no such thing"}
    assert seen == [200, 400]


def test_the_app_acknowledges_the_lifespan_protocol():
    sent = _serve(JsonApp(None), {"type": "lifespan"},
                  [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    assert sent == [{"type": "lifespan.startup.complete"},
                    {"type": "lifespan.shutdown.complete"}]
