"""The seats HTTP API on Ray Serve in the session cluster: answers and 4xx, never 500."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import pytest

from tests.seats_helpers import start_seats, stop_seats

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def http(ray_cluster, tmp_path_factory):
    from ray import serve

    from services.seats_http import start_serve

    client = start_seats(tmp_path_factory.mktemp("seats-http") / "seats")
    url = start_serve(str(client.aio.root.path), port=_free_port())
    yield url
    serve.shutdown()
    stop_seats(client)


def call(url, method, path, body=None, raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(
        url + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


ORDER = {
    "train_no": "G1",
    "date": "2026-10-01",
    "from": "Beijing",
    "to": "Jinan",
    "class": "second",
    "count": 2,
    "request_id": "h1",
}


def test_sell_remaining_refund_and_migrate_over_http(http):
    status, sale = call(http, "POST", "/orders", ORDER)
    assert status == 200 and sale["status"] == "sold" and len(sale["seats"]) == 2
    status, left = call(
        http, "GET", "/remaining?train_no=G1&date=2026-10-01&from=Beijing&to=Tianjin"
    )
    assert status == 200 and left["classes"]["second"] == 58
    status, owner = call(http, "GET", "/trains/G1/2026-10-01")
    assert status == 200 and owner["version"] == 1
    target = next(c for c in ("A", "B", "C") if c != owner["centre"])
    status, m = call(
        http,
        "POST",
        "/migrations",
        {"selector": "G1 dates=2026-10-01", "target": target, "auto": False},
    )
    assert status == 202 and m["state"] == "running"
    status, paused = call(http, "POST", f"/migrations/{m['id']}/pause")
    assert status == 200 and paused["state"] == "paused"
    status, resumed = call(http, "POST", f"/migrations/{m['id']}/resume")
    assert resumed["state"] == "running"
    while call(http, "GET", f"/migrations/{m['id']}")[1]["state"] == "running":
        call(http, "POST", f"/migrations/{m['id']}/step")
    assert call(http, "GET", "/trains/G1/2026-10-01")[1]["centre"] == target
    status, again = call(http, "POST", "/orders", ORDER)  # follows the move
    assert status == 200 and again["repeat"] and again["seats"] == sale["seats"]
    status, refund = call(
        http, "POST", "/orders/refund", {"train_no": "G1", "date": "2026-10-01", "request_id": "h1"}
    )
    assert status == 200 and refund["status"] == "refunded"
    status, centres = call(http, "GET", "/centres")
    assert status == 200 and {c["centre_id"] for c in centres} == {"A", "B", "C"}
    status, created = call(
        http,
        "POST",
        "/trains",
        {"train_no": "K5", "date": "2026-10-03", "stations": ["X", "Y"], "classes": {"second": 10}},
    )
    assert status == 201 and created["version"] == 1
    status, listed = call(http, "GET", "/migrations")
    assert status == 200 and [x["id"] for x in listed] == [m["id"]]


@pytest.mark.parametrize(
    "method, path, body, code, words",
    [
        ("POST", "/orders", {**ORDER, "train_no": "G404"}, 404, "G404"),
        ("POST", "/orders", {**ORDER, "from": "Jinan", "to": "Beijing"}, 400, "before"),
        ("POST", "/orders", {**ORDER, "count": 0}, 400, "count"),
        ("POST", "/orders", {**ORDER, "count": 10**9}, 400, "count"),
        ("POST", "/orders", {**ORDER, "count": 6}, 400, "count"),
        ("POST", "/orders", {**ORDER, "count": "2"}, 400, "integer"),
        (
            "POST",
            "/orders",
            {k: v for k, v in ORDER.items() if k != "request_id"},
            400,
            "request_id",
        ),
        ("POST", "/orders", {**ORDER, "date": "2026-13-01"}, 400, "YYYY-MM-DD"),
        ("POST", "/orders", {**ORDER, "class": "royal"}, 400, "royal"),
        ("POST", "/orders", b"{not json", 400, "malformed JSON"),
        ("POST", "/orders", b"[1, 2]", 400, "object"),
        (
            "POST",
            "/orders/refund",
            {"train_no": "G1", "date": "2026-10-01", "request_id": "never"},
            404,
            "never",
        ),
        ("GET", "/remaining?train_no=G1&date=2026-10-01&from=Beijing", None, 400, "to"),
        ("GET", "/trains/G404/2026-10-01", None, 404, "G404"),
        ("POST", "/trains", {"train_no": "bad"}, 400, "train"),
        ("POST", "/migrations", {"selector": "G1", "target": "Z"}, 400, "Z"),
        ("POST", "/migrations", {"selector": "X%", "target": "A"}, 400, "matches no"),
        (
            "POST",
            "/migrations",
            {"selector": "dates=2026-10-05..2026-10-01", "target": "A"},
            400,
            "ends before",
        ),
        ("GET", "/migrations/nope", None, 404, "nope"),
        ("POST", "/migrations/nope/pause", None, 404, "nope"),
        ("DELETE", "/orders", None, 404, "no route"),
    ],
)
def test_bad_requests_get_a_4xx_with_a_message(http, method, path, body, code, words):
    raw = body if isinstance(body, bytes) else None
    status, answer = call(http, method, path, None if raw else body, raw=raw)
    assert status == code, answer
    assert words in answer["message"]
