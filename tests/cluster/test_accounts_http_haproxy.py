"""The accounts processors in HAProxy mode (the shipped ingress, ``start_processors(haproxy=
True)``) on the session cluster: HAProxy answers on the port, payments and a refusal go
through it, and concurrent payments and deductions are coalesced into fewer transactions
than operations, each with its own correct answer and every balance the sum of its
acknowledged operations. The routes and the refusal table run through Serve's default proxy
in ``test_accounts_http.py``; Serve is started here after that module shut its instance
down (HAProxy mode is chosen when Serve starts)."""

from __future__ import annotations

import threading

import pytest

from tests.accounts_helpers import wait_for
from tests.accounts_http import call, haproxy_processors

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def service(ray_cluster):
    with haproxy_processors() as service:
        yield service


def test_haproxy_answers_on_the_port(service):
    from services.haproxy import listener

    assert listener(service[1]) == "haproxy"


def test_payments_and_a_refusal_through_haproxy(service):
    url, _, _, _ = service
    assert call(url, "POST", "/accounts/31", {})[0] == 200
    status, paid = call(url, "POST", "/accounts/31/payments", {"amount_fen": 400, "key": "x1"})
    assert (status, paid["key"], paid["balance_fen"], paid["replayed"]) == (200, "x1", 400,
                                                                            False)
    status, again = call(url, "POST", "/accounts/31/payments", {"amount_fen": 400, "key": "x1"})
    assert (status, again["balance_fen"], again["replayed"]) == (200, 400, True)
    status, refused = call(url, "POST", "/accounts/31/deductions",
                           {"amount_fen": 401, "key": "x2"})
    assert (status, refused["error"]) == (422, "Overdraft")
    assert "below the account's floor" in refused["message"]
    status, missing = call(url, "POST", "/accounts/404/payments", {"amount_fen": 1, "key": "x3"})
    assert (status, missing["error"]) == (404, "UnknownAccount")
    status, account = call(url, "GET", "/accounts/31")
    assert (status, account["balance_fen"], account["version"]) == (200, 400, 1)


def test_concurrent_operations_are_coalesced_each_with_its_own_answer(service):
    from gridfare.store.operations import Outcome

    url, _, store, client = service
    accounts = [41, 42, 43]
    for account in accounts:
        client.open(account)
    client.payment(43, 100, key="seed-43")
    # per account: payments, deductions (on 43, more than its balance, so some are refused
    # at the floor), one key sent twice at once, and an account that does not exist
    requests = []
    for i in range(60):
        account = accounts[i % 3]
        kind = "deductions" if account == 43 else "payments"
        requests.append((account, kind, {"amount_fen": 30 if account == 43 else i + 1,
                                         "key": f"burst-{i}"}))
    requests.append((41, "payments", {"amount_fen": 1, "key": "burst-0"}))  # a replay
    requests.append((404, "payments", {"amount_fen": 1, "key": "burst-missing"}))
    gate = threading.Barrier(len(requests))
    answers: dict[int, tuple[int, dict]] = {}

    def send(i: int) -> None:
        account, kind, body = requests[i]
        gate.wait()
        answers[i] = call(url, "POST", f"/accounts/{account}/{kind}", body)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(answers) == len(requests)

    # each answer is its own request's: its key, its account, its amount
    for i, (status, answer) in answers.items():
        account, kind, body = requests[i]
        if account == 404:
            assert (status, answer["error"]) == (404, "UnknownAccount")
        elif status == 422:
            assert (account, answer["error"]) == (43, "Overdraft")
            assert body["key"] in answer["message"]
        else:
            assert status == 200, answer
            assert (answer["key"], answer["account_id"], answer["amount_fen"]) == (
                body["key"], account, body["amount_fen"])
    replays = [a for s, a in answers.values() if s == 200 and a["replayed"]]
    assert [a["key"] for a in replays] == ["burst-0"]  # one of the two was first

    # the store holds every acknowledged operation once; each balance is their sum
    for account in accounts:
        recorded = {r.key: r for r in client.operations(account)}
        acked = {a["key"]: a for s, a in answers.values()
                 if s == 200 and a["account_id"] == account}
        refused = {a["message"].split("deduction ")[1].split(" ")[0]
                   for s, a in answers.values() if s == 422 and account == 43}
        burst = {k for k in recorded if k.startswith("burst-")}
        assert burst == set(acked) | refused
        applied = [r for r in recorded.values() if r.outcome is Outcome.APPLIED]
        assert client.get(account).balance_fen == sum(
            -r.amount_fen if r.kind.value == "deduction" else r.amount_fen for r in applied)
        # versions step by one: no operation applied on a stale balance
        assert sorted(r.version for r in applied) == list(range(1, len(applied) + 1))
        for key, answer in acked.items():
            assert (answer["balance_fen"], answer["version"]) == (
                recorded[key].balance_fen, recorded[key].version)
    assert len(refused) == 20 - 3  # 100 fen covers three deductions of 30 on account 43

    # coalesced: fewer transactions than operations, seen by the database itself (rows
    # written by one transaction share its xmin) and by the replicas' own counts
    db = client._db()
    with db.conn.transaction():
        rows, transactions = db.conn.execute(
            "SELECT count(*), count(DISTINCT xmin::text) FROM account_operations "
            "WHERE key LIKE 'burst-%'").fetchone()
    assert rows == 60  # the replay and the missing account recorded nothing new
    assert transactions < rows

    def coalesced():
        from services.accounts import processor_stats

        # a replica writes its counts when it answers, at most once a second
        call(url, "GET", "/accounts/41")
        stats = processor_stats(store)
        return sum(s.get("coalesced", 0) for s in stats) >= 62 and stats

    stats = wait_for(coalesced, timeout_s=10, what="the replicas' coalescing counts")
    assert sum(s["batches"] for s in stats) < sum(s["coalesced"] for s in stats)


def test_an_operation_that_fails_its_batch_fails_alone(service):
    """A reused key naming another request fails the whole ``apply_batch``; the batch is then
    answered one operation at a time, so only that operation is refused."""
    from gridfare.errors import IdempotencyConflict, Overdraft, UnknownAccount
    from gridfare.store.operations import Operation

    _, _, _, client = service
    client.open(51)
    client.payment(51, 10, key="each-0")
    ops = [Operation.make(51, "payment", 5, "each-1"),
           Operation.make(51, "payment", 99, "each-0"),  # the key names a payment of 10
           Operation.make(51, "deduction", 1_000, "each-2"),
           Operation.make(52, "payment", 1, "each-3"),
           Operation.make(51, "deduction", 15, "each-4")]
    answers = client.apply_each(ops)
    assert answers[0].balance_fen == 15
    assert isinstance(answers[1], IdempotencyConflict)
    assert isinstance(answers[2], Overdraft)
    assert isinstance(answers[3], UnknownAccount)
    assert (answers[4].balance_fen, answers[4].version) == (0, 3)
    assert client.get(51).balance_fen == 0
    again = client.apply_each([ops[0], ops[4]])  # a retry answers the first answers
    assert [a.replayed for a in again] == [True, True]
