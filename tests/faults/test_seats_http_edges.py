"""Bad input at the seats HTTP API, on the real Serve app in the session cluster: each class
of issue 13 caused on purpose, then property-based fuzzing (hypothesis) of bodies, paths
and headers. Every refusal is a 4xx with a one-line JSON error, never a 500 or a
traceback, and the seats root (logs, snapshots, directory, migration records) is
byte-for-byte unchanged after it."""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import socket
import string
import urllib.parse
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridfare.errors import SeatsAppConflict
from tests.seats_helpers import start_seats, stop_seats

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

ORDER = {"train_no": "G1", "date": "2026-10-01", "from": "Beijing", "to": "Jinan",
         "class": "second", "count": 1, "request_id": "ok-1"}
TRAIN = {"train_no": "K7", "date": "2026-10-05", "stations": ["Beijing", "Jinan"],
         "classes": {"second": 10}}
FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app(ray_cluster, tmp_path_factory):
    from ray import serve

    from services.seats_http import start_serve

    client = start_seats(tmp_path_factory.mktemp("seats-edges") / "seats")
    port = _free_port()
    url = start_serve(str(client.aio.root.path), port=port)
    yield client, url, port
    serve.shutdown()
    stop_seats(client)


def tree(root: Path) -> dict[str, str]:
    """Every file under the seats root with its content hash."""
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def send(port: int, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        raw = response.read()
        return response.status, json.loads(raw), response.getheader("content-type", "")
    finally:
        conn.close()


def refused(port: int, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None, root: Path | None = None) -> tuple[int, dict]:
    """Send a request that must be refused; check the refusal's shape and, with ``root``,
    that nothing under it changed."""
    before = tree(root) if root is not None else None
    status, answer, kind = send(port, method, path, body, headers)
    assert 400 <= status < 500, (status, answer, path, body)
    assert kind.startswith("application/json")
    assert set(answer) == {"error", "message"}, answer
    assert "\n" not in answer["message"] and "Traceback" not in answer["message"]
    if root is not None:
        assert tree(root) == before, (path, body)
    return status, answer


def dumps(body: object) -> bytes:
    return json.dumps(body).encode()  # escapes lone surrogates as \\udXXX, as a client may


# ---- each class, caused on purpose ---------------------------------------------------


def test_a_traversing_migration_id_is_refused_and_writes_nowhere(app):
    client, _, port = app
    root = client.aio.root.path
    outside = sorted(p.name for p in root.parent.parent.iterdir())
    for mid in ("../../escape", "a/b", "/tmp/x", "..", "m\x00", "m\u2215x", "x" * 300):
        status, answer = refused(port, "POST", "/migrations",
                                 dumps({"selector": "G1", "target": "B", "id": mid}), root=root)
        assert status == 400 and answer["error"] == "InvalidName"
        refused(port, "GET", "/migrations/" + urllib.parse.quote(mid, safe=""), root=root)
    assert sorted(p.name for p in root.parent.parent.iterdir()) == outside
    assert not any("escape" in str(p) for p in root.parent.parent.rglob("*"))


def test_a_lone_surrogate_is_refused_before_the_log_and_checkpoints_go_on(app):
    import ray

    client, _, port = app
    root = client.aio.root.path
    for field in ("request_id", "from", "to", "train_no"):
        status, answer = refused(port, "POST", "/orders", dumps({**ORDER, field: "\ud800"}),
                                 root=root)
        assert status == 400 and "'\\ud800'" in answer["message"], answer
    refused(port, "POST", "/orders/refund",
            dumps({"train_no": "G1", "date": "2026-10-01", "request_id": "a\udfff"}), root=root)
    status, answer = refused(port, "POST", "/trains",
                             dumps({**TRAIN, "stations": ["Beijing", "\ud800"]}), root=root)
    assert "surrogate" in answer["message"]
    # The centres are whole: they sell, and checkpoint (a surrogate once broke them for good).
    status, sale, _ = send(port, "POST", "/orders", dumps({**ORDER, "request_id": "after-sur"}))
    assert status == 200 and sale["status"] == "sold"
    for centre in client.aio.config.centres:
        ray.get(client.aio.centre(centre).checkpoint.remote(), timeout=60)
    assert client.audit().ok


def test_wrong_types_name_the_field(app):
    client, _, port = app
    root = client.aio.root.path
    for body, words in [
        ({**TRAIN, "stations": "ABC"}, "'stations' must be a list"),
        ({**TRAIN, "classes": {"second": "10"}}, "class second"),
        ({**TRAIN, "through": "no"}, "through"),
    ]:
        _, answer = refused(port, "POST", "/trains", dumps(body), root=root)
        assert words in answer["message"], answer
    _, answer = refused(port, "POST", "/orders", dumps({**ORDER, "count": [1]}), root=root)
    assert "'count' must be an integer" in answer["message"]


def test_oversized_deep_and_short_bodies(app):
    client, _, port = app
    root = client.aio.root.path
    deep = b"[" * 20_000 + b"]" * 20_000  # 40 KB, nested past any parser's recursion limit
    status, answer = refused(port, "POST", "/orders", deep, root=root)
    assert status == 413 and "nested" in answer["message"]
    status, _ = refused(port, "POST", "/orders", b"{" + b" " * 70_000 + b"}", root=root)
    assert status == 413
    # A short body under a long Content-Length: answered 400, not hung (the socket's
    # timeout is the guard; no timing is asserted).
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(b"POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 5000\r\n\r\n{\"train_no\": \"G1\"")
        response = http.client.HTTPResponse(s)
        response.begin()
        answer = json.loads(response.read())
    assert response.status == 400, answer
    assert "incomplete" in answer["message"]


def test_a_finished_migration_id_reused_for_another_selector_is_409(app):
    client, _, port = app
    owner = send(port, "GET", "/trains/G2/2026-10-01")[1]["centre"]
    target = next(c for c in client.aio.config.centres if c != owner)
    body = {"selector": "G2 dates=2026-10-01", "target": target, "id": "reuse-1"}
    status, _, _ = send(port, "POST", "/migrations", dumps(body))
    assert status == 202
    client.wait_migration("reuse-1", timeout_s=60)
    status, again, _ = send(port, "POST", "/migrations", dumps(body))  # a retried start
    assert status == 202 and again["id"] == "reuse-1" and again["state"] == "done"
    root = client.aio.root.path
    for other in ({**body, "selector": "G5"}, {**body, "target": owner}):
        status, answer = refused(port, "POST", "/migrations", dumps(other), root=root)
        assert status == 409 and answer["error"] == "MigrationConflict", answer
    status, answer = refused(port, "GET", "/migrations/never-made", root=root)
    assert status == 404 and answer["error"] == "UnknownMigration"


def test_a_second_seats_root_on_the_cluster_is_refused_not_swapped_in(app, tmp_path):
    from services.seats_http import start_serve

    client, url, port = app
    other = tmp_path / "other-seats"
    with pytest.raises(SeatsAppConflict, match=re.escape(str(client.aio.root.path))):
        start_serve(str(other), port=_free_port())
    with pytest.raises(SeatsAppConflict, match=f"--port {port}"):
        start_serve(str(client.aio.root.path), port=_free_port())
    assert start_serve(str(client.aio.root.path), port=port) == url  # the same one: no-op
    status, sale, _ = send(port, "POST", "/orders", dumps({**ORDER, "request_id": "still-1"}))
    assert status == 200 and sale["status"] == "sold"  # the first app still answers


# ---- property-based fuzzing ----------------------------------------------------------

SURROGATES = st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1,
                     max_size=3)
TRAVERSAL = st.sampled_from(["../x", "../../escape", "/", "/etc/passwd", "a/b", "..", "\x00",
                             "x\x00y", "\uff27\uff11", "G\u0031\u0338", "\u202eG1", "G1\n",
                             "x" * 5000, ""])
NOT_STRINGS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                        st.lists(st.integers(), max_size=3),
                        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
BAD_TEXT = st.one_of(SURROGATES, TRAVERSAL.filter(lambda s: s != "ok"), NOT_STRINGS,
                     st.text(st.characters(categories=["Cc", "Cf"]), min_size=1, max_size=5),
                     st.text(min_size=129, max_size=300))
BAD_COUNT = st.one_of(st.integers().filter(lambda n: not 1 <= n <= 5), st.text(max_size=5),
                      st.floats(), st.booleans(), st.none(), st.lists(st.integers(), max_size=2))
BAD_DATE = st.one_of(TRAVERSAL, SURROGATES, NOT_STRINGS,
                     st.sampled_from(["2026-02-30", "20261001", "2026-10-01T00:00", "1-1-1"]))
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
# Junk never holds a route's own field names, so it can never be a valid request.
FIELDS = {"train_no", "date", "from", "to", "class", "count", "request_id", "stations",
          "classes", "through", "service", "selector", "target", "id", "auto"}
JUNK = st.one_of(JSON.filter(lambda v: not isinstance(v, dict)),
                 st.dictionaries(st.text(max_size=8).filter(lambda k: k not in FIELDS), JSON,
                                 max_size=4))


def _broken(good: dict, bad_values: dict) -> st.SearchStrategy[dict]:
    """``good`` with one field replaced by a bad value, dropped, or an unknown one added."""
    field = st.sampled_from(sorted(bad_values))
    replaced = field.flatmap(lambda f: bad_values[f].map(lambda v, f=f: {**good, f: v}))
    dropped = st.sampled_from(sorted(good)).map(
        lambda f: {k: v for k, v in good.items() if k != f})
    added = st.text(min_size=1, max_size=8).filter(lambda k: k not in good).map(
        lambda k: {**good, k: 1})
    return st.one_of(replaced, dropped, added)


ORDERS = _broken(ORDER, {"train_no": BAD_TEXT, "date": BAD_DATE, "from": BAD_TEXT,
                         "to": BAD_TEXT, "class": BAD_TEXT, "count": BAD_COUNT,
                         "request_id": BAD_TEXT})
REFUNDS = _broken({"train_no": "G1", "date": "2026-10-01", "request_id": "ok-1"},
                  {"train_no": BAD_TEXT, "date": BAD_DATE, "request_id": BAD_TEXT})
TRAINS = _broken(TRAIN, {"train_no": BAD_TEXT, "date": BAD_DATE,
                         "stations": st.one_of(BAD_TEXT, st.lists(BAD_TEXT, min_size=1,
                                                                   max_size=3)),
                         "classes": st.one_of(NOT_STRINGS.filter(lambda v: v != {}),
                                              st.dictionaries(BAD_TEXT.filter(
                                                  lambda v: isinstance(v, str)), st.integers(),
                                                  min_size=1, max_size=2))})
MIGRATIONS = _broken({"selector": "G1 dates=2026-10-01", "target": "B", "id": "fz"},
                     {"selector": BAD_TEXT, "target": BAD_TEXT, "id": BAD_TEXT,
                      "auto": st.one_of(st.integers(), st.text(max_size=3), st.none())})


@FUZZ
@given(route=st.sampled_from(["/orders", "/orders/refund", "/trains", "/migrations"]),
       data=st.data())
def test_fuzzed_bodies_are_refused_cleanly(app, route, data):
    client, _, port = app
    strategy = {"/orders": ORDERS, "/orders/refund": REFUNDS, "/trains": TRAINS,
                "/migrations": MIGRATIONS}[route]
    body = data.draw(st.one_of(strategy, strategy, JUNK))
    if route == "/migrations" and isinstance(body, dict) and "id" not in body:
        body = {**body, "id": "fz"}  # a fuzzed start that slipped through stays one migration
    refused(port, "POST", route, dumps(body), root=client.aio.root.path)


SEGMENT = st.one_of(TRAVERSAL, SURROGATES, st.text(max_size=12))


@FUZZ
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
       parts=st.lists(st.one_of(st.sampled_from(["orders", "trains", "migrations", "remaining",
                                                 "centres", "pause", "step", "rollback"]),
                                SEGMENT), min_size=1, max_size=4),
       query=st.dictionaries(st.sampled_from(["train_no", "date", "from", "to", "x"]),
                             SEGMENT.filter(lambda s: isinstance(s, str)), max_size=4))
def test_fuzzed_paths_and_queries_are_refused_cleanly(app, method, parts, query):
    client, _, port = app
    path = "/" + "/".join(urllib.parse.quote(p.encode("utf-8", "surrogatepass"), safe="")
                          for p in parts)
    if query:
        path += "?" + urllib.parse.urlencode(
            {k: v.encode("utf-8", "surrogatepass") for k, v in query.items()})
    route = [x for p in parts for x in p.split("/") if x]  # as the server splits it
    if method == "GET" and route in (["centres"], ["migrations"], ["remaining"]):
        return  # reads that may well be valid
    refused(port, method, path, root=client.aio.root.path)


# RFC 9110 token characters: anything else is refused by the HTTP parser in front of the
# app (uvicorn's h11, or HAProxy) with its own plain-text 400, before gridfare sees it.
TOKEN = st.text(st.sampled_from(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"),
                min_size=1, max_size=12)
HOP = {"content-length", "transfer-encoding", "host", "connection", "expect", "upgrade", "te",
       "trailer", "keep-alive"}


@FUZZ
@given(body=st.one_of(ORDERS, JUNK),
       content_type=st.one_of(st.sampled_from(
           ["application/json", "text/plain", "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x", "", "application/json; charset=latin-1"]), TOKEN),
       extra=st.dictionaries(TOKEN.filter(lambda k: k.lower() not in HOP), TOKEN, max_size=3),
       encoding=st.sampled_from(["escaped", "utf-8", "utf-16"]))
def test_fuzzed_headers_and_encodings_are_refused_cleanly(app, body, content_type, extra,
                                                          encoding):
    client, _, port = app
    if encoding == "escaped":
        raw = json.dumps(body).encode()
    else:  # raw UTF-8 holds invalid bytes for a lone surrogate; UTF-16 is detected by json
        raw = json.dumps(body, ensure_ascii=False).encode(encoding, "surrogatepass")
    headers = {**extra, "Content-Type": content_type}
    refused(port, "POST", "/orders", raw, headers=headers, root=client.aio.root.path)
