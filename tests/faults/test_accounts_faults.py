"""Faults of the accounts store, each under a steady payment load: the primary killed, a
standby lost (under both replication rules), the old primary coming back after a
promotion, the coordinator killed mid-failover. Every acknowledged payment is present
exactly once and each balance is the sum of its acknowledged payments."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.accounts_helpers import (
    PaymentLoad,
    remove_dir,
    start_store,
    stop_store,
    store_dir,
    wait_for,
)

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(300)]

ACCOUNTS = [1, 2, 3]


@pytest.fixture
def store(ray_cluster):
    clients = []
    root = store_dir()

    def start(**config):
        client = start_store(root / "store", retry_s=30.0, **config)
        clients.append(client)
        for account in ACCOUNTS:
            client.open(account)
        return client

    yield start
    for client in clients:
        client.close()
    stop_store(root / "store")
    remove_dir(root)


def _replica(client, name):
    import ray

    return ray.get(client._coordinator.replica.remote(name))


def _roles(client) -> dict[str, tuple[bool, bool, str | None]]:
    return {n: (s["running"], s["in_recovery"], s["following"])
            for n, s in client.describe()["replicas"].items()}


def _signal(client, name, sig, which=("actor", "server")):
    import ray

    pids = ray.get(_replica(client, name).pids.remote()) if sig == signal.SIGSTOP else \
        client._paused[name]
    for kind in which:
        for pid in pids[kind]:
            os.kill(pid, sig)
    client._paused = {**getattr(client, "_paused", {}), name: pids}


def _check_exactly_once(client, load: PaymentLoad, extra: dict | None = None) -> None:
    """Every acknowledged payment once, nothing else; ``extra``: {account: {key: fen}}
    acknowledged outside the load."""
    assert load.errors == []
    for account in ACCOUNTS:
        more = (extra or {}).get(account, {})
        keys = [r.key for r in client.operations(account)]
        assert sorted(keys) == sorted(load.acked[account] + list(more)), f"account {account}"
        assert len(keys) == len(set(keys))
        assert client.get(account).balance_fen == \
            len(load.acked[account]) * load.amount_fen + sum(more.values())


def _record(client):
    return client.describe()["record"]


def test_primary_killed_a_standby_is_promoted_and_nothing_is_lost_or_doubled(store):
    import ray

    client = store()
    with PaymentLoad(client, ACCOUNTS) as load:
        wait_for(lambda: load.count() > 50, what="load")
        killed = time.monotonic()
        ray.get(_replica(client, "pg0").kill_server.remote())
        before = load.count()
        wait_for(lambda: _record(client)["epoch"] == 2, what="promotion")
        wait_for(lambda: load.count() > before + 50, what="writes on the new primary")
        print(f"failover: writes resumed {time.monotonic() - killed:.1f} s after the kill")
    assert _record(client)["primary"] == "pg1"
    _check_exactly_once(client, load)
    # the old primary is rewound into a standby of the new one
    wait_for(lambda: _roles(client)["pg0"] == (True, True, "pg1"), what="pg0 rejoins")


@pytest.mark.parametrize("rule", ["refuse", "accept"])
def test_standby_lost_writes_follow_the_rule_then_it_rejoins_and_catches_up(store, rule):
    import ray

    from actors.accounts_client import AccountsClient
    from gridfare.errors import NotReplicated

    client = store(replication=rule)
    impatient = AccountsClient(client._coordinator, retry_s=0)
    with PaymentLoad(client, ACCOUNTS) as load:
        wait_for(lambda: load.count() > 30, what="load")
        # the standby's server dies and its replica cannot restart it (paused) for now
        _signal(client, "pg1", signal.SIGSTOP, which=("actor",))
        for pid in client._paused["pg1"]["server"]:
            os.kill(pid, signal.SIGKILL)
        time.sleep(1.0)
        if rule == "refuse":
            with pytest.raises(NotReplicated, match="not replicated"):
                impatient.payment(1, 1, key="while-alone")
        else:
            assert impatient.payment(1, 1, key="while-alone").replicated is False
        _signal(client, "pg1", signal.SIGCONT, which=("actor",))
        wait_for(lambda: _roles(client)["pg1"] == (True, True, "pg0"), what="pg1 rejoins")
        before = load.count()
        wait_for(lambda: load.count() > before + 30, what="writes after the rejoin")
    assert impatient.payment(1, 1, key="after").replicated is True
    assert load.errors == []
    keys = [r.key for r in client.operations(1)]
    assert ("while-alone" in keys) == (rule == "accept")
    # caught up: the standby has applied every acknowledged payment
    from backends.postgres import ServerAddress, connect

    host, port = ray.get(_replica(client, "pg1").address.remote())
    with connect(ServerAddress(host, port).dsn("test"), autocommit=True) as conn:
        rows = conn.execute("SELECT key FROM account_operations").fetchall()
    on_standby = {r[0] for r in rows}
    assert {k for keys in load.acked.values() for k in keys} <= on_standby
    impatient.close()


def test_old_primary_that_returns_acknowledges_no_write(store):
    """Fencing: the primary (its server and its replica actor) hangs, a standby is
    promoted, then the old primary comes back with a client still connected to it under
    the old epoch: that client's write is refused, never acknowledged, and is not on the
    new primary; the old primary is then rewound into a standby."""
    import ray

    from backends.accounts_sql import AccountsDB
    from backends.postgres import ServerAddress, connect
    from gridfare.errors import StoreError
    from gridfare.store.operations import Operation

    client = store()
    host, port = ray.get(_replica(client, "pg0").address.remote())
    stale = AccountsDB(connect(ServerAddress(host, port).dsn("stale"), autocommit=True),
                       epoch=1, commit_timeout_s=2.0)
    stale.apply(Operation.make(1, "payment", 7, "stale-before"))
    with PaymentLoad(client, ACCOUNTS) as load:
        wait_for(lambda: load.count() > 30, what="load")
        _signal(client, "pg0", signal.SIGSTOP)
        wait_for(lambda: _record(client)["epoch"] == 2, timeout_s=90, what="promotion")
        _signal(client, "pg0", signal.SIGCONT)
        with pytest.raises(StoreError):
            stale.apply(Operation.make(1, "payment", 7, "stale-after"))
        before = load.count()
        wait_for(lambda: load.count() > before + 30, what="writes on the new primary")
    assert _record(client)["primary"] == "pg1"
    keys = [r.key for r in client.operations(1)]
    assert "stale-before" in keys and "stale-after" not in keys
    wait_for(lambda: _roles(client)["pg0"] == (True, True, "pg1"), timeout_s=90,
             what="the old primary rewound into a standby")
    host, port = ray.get(_replica(client, "pg0").address.remote())
    with connect(ServerAddress(host, port).dsn("test"), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM account_operations WHERE key = "
                            "'stale-after'").fetchone()[0] == 0
    _check_exactly_once(client, load, extra={1: {"stale-before": 7}})


def test_coordinator_killed_mid_failover_resumes_with_one_primary(store):
    import json

    import ray

    client = store()
    ray.kill(client._coordinator, no_restart=True)
    # the same store, its coordinator now holding each failover step for 3 s
    from actors.accounts_client import AccountsClient

    client = AccountsClient.start(client.root, retry_s=60.0,
                                  runtime_env={"env_vars": {"GRIDFARE_STORE_PAUSE_S": "3"}})
    record_file = Path(client.root) / "coordinator.json"
    with PaymentLoad(client, ACCOUNTS) as load:
        wait_for(lambda: load.count() > 30, what="load")
        ray.get(_replica(client, "pg0").kill_server.remote())
        wait_for(lambda: json.loads(record_file.read_text())["phase"] == "promoting",
                 what="the promotion to begin")
        ray.kill(client._coordinator, no_restart=False)  # Ray restarts it
        wait_for(lambda: _record(client)["phase"] == "steady", timeout_s=90,
                 what="the restarted coordinator to finish")
        before = load.count()
        wait_for(lambda: load.count() > before + 30, what="writes after the failover")
    record = _record(client)
    assert (record["epoch"], record["primary"]) == (2, "pg1")
    wait_for(lambda: _roles(client)["pg0"] == (True, True, "pg1"), what="pg0 rejoins")
    primaries = [n for n, (running, recovery, _) in _roles(client).items()
                 if running and not recovery]
    assert primaries == ["pg1"]
    _check_exactly_once(client, load)


def test_writes_go_on_while_the_coordinator_is_lost(store):
    """The coordinator is only asked where the primary is: a client (a processor is one)
    that knows the primary keeps writing while the coordinator is gone for good, and a new
    coordinator for the store takes over from its record. While it is gone nothing can
    fail over and a new processor cannot start (both need it)."""
    import ray

    from actors import NAMESPACE
    from actors.accounts_client import AccountsClient, get_coordinator
    from actors.store_coordinator import coordinator_name
    from backends.store_root import StoreRoot

    client = store()
    root = client.root
    with PaymentLoad(client, ACCOUNTS) as load:
        wait_for(lambda: load.count() > 30, what="load")
        ray.kill(client._coordinator, no_restart=True)

        def gone() -> bool:  # dead, not restarting
            try:
                ray.get_actor(coordinator_name(StoreRoot(root)), namespace=NAMESPACE)
            except ValueError:
                return True
            return False

        wait_for(gone, what="the coordinator to be gone")
        before = load.count()
        wait_for(lambda: load.count() > before + 100, what="writes without a coordinator")
        assert load.errors == []
        get_coordinator(root)  # a new one, from coordinator.json
        fresh = AccountsClient.start(root)
        assert fresh.describe()["record"]["epoch"] == 1
        before = load.count()
        wait_for(lambda: load.count() > before + 30, what="writes after it came back")
    _check_exactly_once(client, load)
    fresh.close()
