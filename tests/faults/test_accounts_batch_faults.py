"""The accounts store's primary killed while batches of payments and deductions are in
flight: every acknowledged answer is stored exactly once, a batch that was cut short is
applied whole or not at all (its retry answers), and each balance is its answers' sum."""

from __future__ import annotations

import random
import time

import pytest

from tests.accounts_helpers import (
    LoadThreads,
    remove_dir,
    start_store,
    stop_store,
    store_dir,
    wait_for,
)
from tests.cluster.test_accounts_batch import check_chain, op

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(300)]

ACCOUNTS = list(range(1, 41))


class BatchLoad(LoadThreads):
    """Writers posting batches (unique keys) on shared accounts until stopped; each keeps
    the answers of the batches acknowledged, and the errors it saw."""

    join_s = 90.0

    def __init__(self, client, writers: int = 3, size: int = 400) -> None:
        self.client, self.size = client, size
        self.answers: list = []
        self.batches = 0
        self.errors: list[str] = []
        self._threads_for(range(writers))

    def _run(self, worker: int) -> None:
        rng = random.Random(worker)
        n = 0
        while not self._stop.is_set():
            batch = [op(rng.choice(["payment", "deduction"]), rng.randint(1, 300),
                        f"w{worker}-{n}-{i}", rng.choice(ACCOUNTS)) for i in range(self.size)]
            try:
                self.answers.extend(self.client.apply_batch(batch))
                self.batches += 1
            except Exception as exc:
                self.errors.append(f"w{worker}-{n}: {type(exc).__name__}: {exc}")
            n += 1


def test_primary_killed_mid_batch_loses_or_doubles_nothing_acknowledged(ray_cluster):
    import ray

    root = store_dir()
    client = start_store(root / "store", retry_s=30.0)
    try:
        client.open_batch(ACCOUNTS, floor_fen=-5_000)
        with BatchLoad(client) as load:
            wait_for(lambda: load.batches >= 5, what="batches")
            replica = ray.get(client._coordinator.replica.remote("pg0"))
            killed = time.monotonic()
            ray.get(replica.kill_server.remote())
            before = load.batches
            wait_for(lambda: client.describe()["record"]["epoch"] == 2, what="promotion")
            wait_for(lambda: load.batches >= before + 5, what="batches on the new primary")
            print(f"failover: batches resumed {time.monotonic() - killed:.1f} s after the kill")
        assert load.errors == []
        assert client.describe()["record"]["primary"] == "pg1"
        keys = [r.key for r in load.answers]
        assert len(keys) == len(set(keys)) == load.batches * load.size
        for account in ACCOUNTS:
            stored = client.operations(account)
            assert sorted(r.key for r in stored) == sorted(
                r.key for r in load.answers if r.account_id == account), f"account {account}"
            # each stored answer is the one acknowledged (a retry across the failover
            # answered what the first attempt committed, or the first attempt left nothing)
            acked = {r.key: (r.outcome, r.balance_fen, r.version) for r in load.answers}
            assert all(acked[r.key] == (r.outcome, r.balance_fen, r.version) for r in stored)
            check_chain(client, account)
    finally:
        client.close()
        stop_store(root / "store")
        remove_dir(root)
