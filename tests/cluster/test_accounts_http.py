"""The accounts processors on Ray Serve (N + B replicas) in the session cluster: HTTP
answers and 4xx, a live resize, and processors killed under load with no failed request."""

from __future__ import annotations

import os
import signal

import pytest

from tests.accounts_helpers import remove_dir, start_store, stop_store, store_dir, wait_for
from tests.accounts_http import HttpPaymentLoad, call, free_port

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def service(ray_cluster):
    from ray import serve

    from services.accounts import start_processors

    root = store_dir()
    store = root / "store"
    try:
        client = start_store(store)
        url = start_processors(str(store), processors=2, spares=1, port=free_port())
        yield url, str(store), client
        client.close()
    finally:
        serve.shutdown()
        stop_store(store)
        remove_dir(root)


def test_http_operations_and_clear_refusals(service):
    url, _, _ = service
    assert call(url, "POST", "/accounts/11", {})[0] == 200
    status, paid = call(url, "POST", "/accounts/11/payments", {"amount_fen": 500, "key": "h1"})
    assert (status, paid["balance_fen"], paid["replayed"]) == (200, 500, False)
    status, again = call(url, "POST", "/accounts/11/payments", {"amount_fen": 500, "key": "h1"})
    assert (status, again["balance_fen"], again["replayed"]) == (200, 500, True)
    status, fee = call(url, "POST", "/accounts/11/deductions", {"amount_fen": 200, "key": "f1"})
    assert (status, fee["balance_fen"]) == (200, 300)
    status, refund = call(url, "POST", "/accounts/11/refunds",
                          {"amount_fen": 50, "key": "r1", "refund_of": "f1"})
    assert (status, refund["balance_fen"]) == (200, 350)
    status, refused = call(url, "POST", "/accounts/11/deductions",
                           {"amount_fen": 351, "key": "f2"})
    assert (status, refused["error"]) == (422, "Overdraft")
    assert "below the account's floor" in refused["message"]
    status, account = call(url, "GET", "/accounts/11")
    assert (status, account["balance_fen"], account["version"]) == (200, 350, 3)
    status, ops = call(url, "GET", "/accounts/11/operations")
    assert [o["key"] for o in ops] == ["h1", "f1", "r1", "f2"]
    for method, path, body, raw, code, error in [
        ("POST", "/accounts/11/payments", None, b"{not json", 400, "InvalidInput"),
        ("POST", "/accounts/11/payments", {"amount_fen": -1, "key": "x"}, None, 400,
         "InvalidInput"),
        ("POST", "/accounts/11/payments", {"amount_fen": 1.5, "key": "x"}, None, 400,
         "InvalidInput"),
        ("POST", "/accounts/11/payments", {"amount_fen": 1}, None, 400, "InvalidInput"),
        ("POST", "/accounts/11/payments", {"amount_fen": 9, "key": "h1"}, None, 409,
         "IdempotencyConflict"),
        ("POST", "/accounts/404/payments", {"amount_fen": 1, "key": "y"}, None, 404,
         "UnknownAccount"),
        ("GET", "/accounts/abc", None, None, 400, "InvalidInput"),
        ("POST", "/accounts/11/gifts", {"amount_fen": 1, "key": "z"}, None, 400,
         "InvalidInput"),
    ]:
        status, answer = call(url, method, path, body, raw)
        assert (status, answer["error"]) == (code, error), (path, body, raw)


def test_processors_killed_under_load_fail_no_request_and_the_pool_resizes_live(service):
    from services.accounts import processor_stats, scale

    url, store, client = service
    accounts = [21, 22, 23, 24]
    for account in accounts:
        client.open(account)
    with HttpPaymentLoad(url, accounts) as load:
        wait_for(lambda: load.count() > 40, what="HTTP load")
        # B = 1: kill one processor's process outright
        victim = max(processor_stats(store), key=lambda s: s["requests"])
        os.kill(victim["pid"], signal.SIGKILL)
        before = load.count()
        wait_for(lambda: load.count() > before + 60, what="requests after the kill")
        resized = scale(store, 1, 1)  # live, under load
        assert resized["after"]["processors"] == 1
        before = load.count()
        wait_for(lambda: load.count() > before + 40, what="requests after the resize")
    assert load.failed == []
    for account in accounts:
        keys = [r.key for r in client.operations(account)]
        assert sorted(keys) == sorted(load.acked[account])
        assert client.get(account).balance_fen == len(load.acked[account])
