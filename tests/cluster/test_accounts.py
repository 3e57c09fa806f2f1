"""The accounts store on the session cluster: a primary and a synchronous standby started
by StateReplica actors, operations through the Python client, exactly once."""

from __future__ import annotations

import threading

import pytest

from tests.accounts_helpers import running_store

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def accounts(ray_cluster):
    with running_store() as client:
        yield client


def _standby_rows(client, sql, params=()):
    """Read from the standby itself: what it has applied (remote_apply)."""
    import ray

    from backends.postgres import ServerAddress, connect

    record = client.describe()["record"]
    (standby,) = [n for n in record["replicas"] if n != record["primary"]]
    coordinator = client._coordinator
    host, port = ray.get(ray.get(coordinator.replica.remote(standby)).address.remote())
    with connect(ServerAddress(host, port).dsn("test"), autocommit=True) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
        return conn.execute(sql, params).fetchall()


def test_replicas_run_on_distinct_nodes_as_primary_and_sync_standby(accounts):
    described = accounts.describe()
    assert described["record"]["epoch"] == 1
    statuses = described["replicas"]
    assert sorted((s["running"], s["in_recovery"]) for s in statuses.values()) == [
        (True, False), (True, True)]
    assert len({s["node_id"] for s in statuses.values()}) == 2  # STRICT_SPREAD


def test_payment_deduction_refund_exactly_once_and_on_the_standby(accounts):
    from gridfare.errors import IdempotencyConflict, Overdraft

    accounts.open(101)
    first = accounts.payment(101, 10_000, key="pay-101-1")
    again = accounts.payment(101, 10_000, key="pay-101-1")
    assert (first.balance_fen, first.replayed, again.balance_fen, again.replayed) == (
        10_000, False, 10_000, True)
    assert accounts.deduction(101, 2_500, key="fee-101-1").balance_fen == 7_500
    with pytest.raises(Overdraft, match="account 101: deduction fee-101-2 of 9000 fen"):
        accounts.deduction(101, 9_000, key="fee-101-2")
    with pytest.raises(Overdraft):  # the refusal is the key's first answer
        accounts.deduction(101, 9_000, key="fee-101-2")
    with pytest.raises(IdempotencyConflict):
        accounts.payment(101, 5, key="pay-101-1")
    assert accounts.refund(101, 500, key="ref-101-1", refund_of="fee-101-1").balance_fen \
        == 8_000
    account = accounts.get(101)
    assert (account.balance_fen, account.version) == (8_000, 3)
    # acknowledged means applied on the standby too
    assert _standby_rows(accounts, "SELECT balance_fen, version FROM accounts "
                                   "WHERE account_id = 101") == [(8_000, 3)]
    assert [r.key for r in accounts.operations(101)] == [
        "pay-101-1", "fee-101-1", "fee-101-2", "ref-101-1"]


def test_bad_requests_are_refused_before_anything_is_written(accounts):
    from gridfare.errors import InvalidInput, UnknownAccount

    with pytest.raises(UnknownAccount, match="account 999: no such account"):
        accounts.payment(999, 1, key="pay-999")
    with pytest.raises(InvalidInput, match="amount_fen"):
        accounts.payment(101, -1, key="neg")
    with pytest.raises(InvalidInput, match="refund of 99999 fen exceeds"):
        accounts.refund(101, 99_999, key="ref-big", refund_of="fee-101-1")
    assert "neg" not in [r.key for r in accounts.operations(101)]


def test_concurrent_writers_on_one_account_are_serialized_by_the_version(accounts):
    accounts.open(202)
    errors = []

    def pay(thread: int) -> None:
        try:
            for n in range(25):
                accounts.payment(202, 1 + thread, key=f"c-{thread}-{n}")
        except Exception as exc:  # pragma: no cover - the assertion below shows it
            errors.append(exc)

    threads = [threading.Thread(target=pay, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    account = accounts.get(202)
    assert account.balance_fen == 25 * (1 + 2 + 3 + 4)
    assert account.version == 100
    versions = sorted(r.version for r in accounts.operations(202))
    assert versions == list(range(1, 101))  # every version once: no lost update


def test_the_cli_pays_and_shows_through_the_same_store(accounts, capsys):
    import json

    from gridfare.cli import main

    store = ["--store", accounts.root]
    assert main(["accounts", "open", "303", *store]) == 0
    assert main(["accounts", "pay", "303", "1200", "--key", "cli-1", *store]) == 0
    assert main(["accounts", "pay", "303", "1200", "--key", "cli-1", *store]) == 0
    assert main(["accounts", "deduct", "303", "5000", "--key", "cli-2", *store]) == 2
    assert main(["accounts", "show", "303", *store]) == 0
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line.get("replayed") for line in lines[1:3]] == [False, True]
    assert lines[-1]["balance_fen"] == 1200
    assert err.strip().splitlines() == [
        "gridfare: error: account 303: deduction cli-2 of 5000 fen refused: the balance "
        "1200 fen would go below the account's floor"]


def test_the_python_api_face(accounts):
    from gridfare.api import accounts as open_accounts
    from gridfare.errors import StoreUnavailable

    client = open_accounts(accounts.root)
    assert client.get(101).account_id == 101
    with pytest.raises(StoreUnavailable, match="no accounts store runs for"):
        open_accounts(accounts.root + "-none")


def test_production_mode_a_multi_host_dsn_finds_the_writable_node(accounts):
    """The coordinator off: a libpq multi-host DSN (standby listed first) with
    target_session_attrs=read-write reaches the primary, as with a Patroni cluster."""
    import ray

    from actors.accounts_client import AccountsClient

    record = accounts.describe()["record"]
    order = sorted(record["replicas"], key=lambda n: n == record["primary"])  # standby 1st
    coordinator = accounts._coordinator
    addresses = [ray.get(ray.get(coordinator.replica.remote(n)).address.remote())
                 for n in order]
    dsn = (f"host={','.join(h for h, _ in addresses)} "
           f"port={','.join(str(p) for _, p in addresses)} user=gridfare dbname=postgres "
           "target_session_attrs=read-write connect_timeout=2")
    direct = AccountsClient.from_dsn(dsn)
    assert direct.describe()["record"]["epoch"] == 1
    direct.open(404)
    assert direct.payment(404, 77, key="dsn-1").balance_fen == 77
    assert direct.payment(404, 77, key="dsn-1").replayed
    assert accounts.get(404).balance_fen == 77  # the same database
    direct.close()
