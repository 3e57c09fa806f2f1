"""The seats HTTP edge on real starlette requests (no Ray): bounded body reads, the error
table by class, one-line answers, and a fault of ours as a 500 whose id is logged."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from starlette.requests import Request

from gridfare import errors
from gridfare.errors import InvalidInput, RequestTooLarge
from services.seats_edge import HTTP_STATUS, error_answer, json_response, read_json, status_of


def _request(chunks: list[bytes], content_length: int | None, more: bool = False) -> Request:
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
    return Request(scope, receive)


def _read(request, **kwargs):
    return asyncio.run(read_json(request, **kwargs))


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
        asyncio.run(read_json(Request(scope, None)))


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
    response = json_response(400, {"message": "request_id '\ud800' holds a lone surrogate"})
    assert response.body.isascii()
    assert json.loads(response.body)["message"].startswith("request_id '\ud800'")
