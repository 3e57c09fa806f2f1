"""The seats HTTP API in HAProxy mode (the shipped ingress, ``start_serve(haproxy=True)``) on
the session cluster: HAProxy answers on the port, refusals are 4xx with their message through
it, and concurrent orders are coalesced into batched centre calls, each order with its own
answer and no seat sold twice (audit). The routes and the whole refusal table run through
Serve's default proxy in ``test_seats_http.py``; Serve is started here after that module
shut its instance down (HAProxy mode is chosen when Serve starts)."""

from __future__ import annotations

import pytest

from tests.cluster.test_seats_http import ORDER, _free_port, call
from tests.seats_helpers import start_seats, stop_seats

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def served(ray_cluster, tmp_path_factory):
    from services.haproxy import stop_serve
    from services.seats_http import start_serve

    client = start_seats(tmp_path_factory.mktemp("seats-haproxy") / "seats")
    port = _free_port()
    # HeadOnly: the session's three Ray nodes share 127.0.0.1, and each node's HAProxy would
    # bind the same port
    url = start_serve(str(client.aio.root.path), port=port, haproxy=True, haproxy_drain_s=1.0,
                      proxy_location="HeadOnly")
    yield url, port, client
    stop_serve(port)  # waits until Serve is gone, so the next module's serve.start is new
    stop_seats(client)


@pytest.mark.parametrize("body, code, words", [
    ({**ORDER, "train_no": "G404"}, 404, "G404"),  # unknown train-date
    ({**ORDER, "from": "Jinan", "to": "Beijing"}, 400, "before"),  # impossible trip
    ({**ORDER, "count": 6}, 400, "count"),  # more seats than one order may hold
    (b"{not json", 400, "malformed JSON"),
])
def test_refusals_through_haproxy_are_4xx_with_their_message(served, body, code, words):
    raw = body if isinstance(body, bytes) else None
    status, answer = call(served[0], "POST", "/orders", None if raw else body, raw=raw)
    assert status == code, answer
    assert words in answer["message"]


def test_haproxy_answers_on_the_port(served):
    from services.haproxy import listener

    _, port, _ = served
    assert listener(port) == "haproxy"


def test_concurrent_orders_are_coalesced_and_each_gets_its_own_answer(served):
    import threading

    from ray import serve

    from services.seats_http import app_name

    url, _, client = served
    app = serve.get_app_handle(app_name(str(client.aio.root.path)))

    def sell_calls():
        counts = app.coalescing.remote().result(timeout_s=30)
        return [sum(c[k] for name, c in counts.items() if name.endswith("sell_many"))
                for k in ("calls", "requests")]

    calls_before, orders_before = sell_calls()
    n = 48
    gate = threading.Barrier(n)
    answers: dict[str, tuple[int, dict]] = {}

    def buy(i: int) -> None:
        order = {"train_no": "G2" if i % 2 else "D3", "date": "2026-10-02", "from": "Beijing",
                 "to": "Shanghai", "class": "second", "count": 1, "request_id": f"burst-{i}"}
        gate.wait()
        answers[order["request_id"]] = call(url, "POST", "/orders", order)

    threads = [threading.Thread(target=buy, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    calls_after, orders_after = sell_calls()
    assert orders_after - orders_before == n
    assert calls_after - calls_before < n  # batched: fewer centre calls than orders
    assert len(answers) == n
    seats: dict[str, list[int]] = {}
    for rid, (status, answer) in answers.items():
        assert status == 200 and answer["status"] == "sold", answer
        assert answer["request_id"] == rid  # its own answer, not a neighbour's
        seats.setdefault(answer["key"], []).extend(answer["seats"])
    for taken in seats.values():  # Beijing -> Shanghai holds every leg: no seat twice
        assert len(taken) == len(set(taken)) == n // 2
    report = client.audit()
    assert report.ok, report.violations
