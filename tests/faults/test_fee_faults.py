"""Faults during prepaid fee control on a real local Ray cluster, a real NATS JetStream and
the real accounts store (PostgreSQL primary + synchronous standby).

One city and one store for the module; each test decides the next collection date with its
fault and then checks the issue's three promises over everything run so far: every command
sent exactly once, no account disconnected on audited-out data, balances equal to the
accounts service's.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field

import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import ray

from actors.fee_accounts import AccountsSpec
from datasets.collector import Collector, CollectorRates, opening_balances
from datasets.datacentre import DataCentre
from datasets.feed import CollectionFeed, FeeControlStore
from datasets.generator import generate_city
from datasets.schemas import COLLECTED
from gridfare.store.operations import Operation
from rayjobs import fee_control
from tests.fee_helpers import manual_queue, stream_messages

pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.timeout(300)]
START = dt.date(2026, 11, 1)
FLOOR_FEN = -10**9  # the store's floor far below the strategy's: refusals are unit-tested


@dataclass
class World:
    root: str
    client: object
    setup: fee_control.RunSetup
    collector: Collector
    opening: dict[int, int]
    dates: list[dt.date] = field(default_factory=list)

    @property
    def centre(self) -> DataCentre:
        return DataCentre(self.root)

    def next_date(self, extra: list[dict] | None = None) -> dt.date:
        date = START + dt.timedelta(days=len(self.dates))
        feed = CollectionFeed(self.centre)
        batches = self.collector.collect(date)
        if extra:
            number = int(batches[-1]["batch"][0].as_py())
            rows = [{**row, "batch": number} for row in extra]
            batches[-1] = pa.concat_tables([batches[-1],
                                            pa.Table.from_pylist(rows, schema=COLLECTED)])
        for batch in batches:
            feed.append(date, int(batch["batch"][0].as_py()), batch)
        self.dates.append(date)
        return date

    def check(self) -> None:
        store = FeeControlStore(self.centre)
        commands = pa.concat_tables([store.read("commands", d) for d in self.dates])
        keys = commands["idempotency_key"].to_pylist()
        assert len(keys) == len(set(keys)), "a command was made twice"
        # Exactly once: each is stored once in JetStream and applied once by a terminal
        # (or, never answered, is on the manual-work queue).
        stored = [m["idempotency_key"] for m in stream_messages(self.setup.nats_url)]
        assert sorted(stored) == sorted(keys)
        applied: dict[str, dict] = {}
        for terminal in self.setup.terminals:
            for key, command in ray.get(terminal.applied.remote()).items():
                assert key not in applied
                applied[key] = command
        manual = {m["idempotency_key"] for m in manual_queue(self.setup.nats_url)}
        assert set(applied) | manual == set(keys)
        # No disconnect on audited-out data.
        for date in self.dates:
            held = set(store.read("holds", date)["account_id"].to_pylist())
            cut = store.read("commands", date).filter(pc.field("action") == "disconnect")
            assert not held & set(cut["account_id"].to_pylist())
        # Balances: the service's = opening + payments applied - deductions decided.
        deducted: dict[int, int] = {}
        for date in self.dates:
            decisions = store.read("decisions", date)
            for account, fen in zip(decisions["account_id"].to_pylist(),
                                    decisions["deduction_fen"].to_pylist(), strict=True):
                deducted[account] = deducted.get(account, 0) + fen
        paid: dict[int, int] = {}
        seen: set[str] = set()
        for date in self.dates:
            feed = CollectionFeed(self.centre).read(date).filter(pc.field("kind") == "payment")
            for row in feed.to_pylist():
                if row["record_id"] in seen or row["account_id"] not in self.opening or \
                        not row["amount_fen"] or row["amount_fen"] <= 0:
                    continue
                seen.add(row["record_id"])
                paid[row["account_id"]] = paid.get(row["account_id"], 0) + row["amount_fen"]
        for account, opening in self.opening.items():
            expected = opening + paid.get(account, 0) - deducted.get(account, 0)
            assert self.client.get(account).balance_fen == expected, account


@pytest.fixture(scope="module")
def world(ray_cluster, tmp_path_factory):
    from actors.accounts_client import AccountsClient, remove_store

    root = str(tmp_path_factory.mktemp("fee-city"))
    centre = DataCentre(root, create=True)
    generate_city(centre, accounts=160, sections=2, period="2026-10", seed=8)
    accounts = centre.dataset("accounts").to_table()
    active = accounts.filter(pc.field("active"))
    ids = active["account_id"].to_numpy()
    balances = opening_balances(ids, active["customer_kind"].to_numpy(zero_copy_only=False), 8)
    # Outside pytest's 0700 temp tree: PostgreSQL runs as an unprivileged user.
    store_root = tempfile.mkdtemp(prefix="gridfare-fee-store-")
    client = AccountsClient.start(store_root)
    # Set-up, not under test: the accounts and their opening balances, a batch each.
    client.open_batch(ids.tolist(), FLOOR_FEN)
    client.apply_batch([Operation.make(a, "payment" if fen > 0 else "deduction", abs(fen),
                                       f"open-{a}")
                        for a, fen in zip(ids.tolist(), balances.tolist(), strict=True) if fen])
    setup = fee_control.setup(root, AccountsSpec("store", str(store_root)),
                              command_timeout_s=1.0)
    rates = CollectorRates(duplicate=0.05, late=0.05, gap=0.02, payment=0.05)
    collector = Collector(accounts, 8, START, rates)
    world = World(root, client, setup, collector, dict(zip(ids.tolist(), balances.tolist(),
                                                           strict=True)))
    world.setup_date = world.next_date()
    fee_control.run_batch(setup, world.setup_date, shards=2)
    yield world
    ray.kill(setup.executor)
    for terminal in setup.terminals:
        ray.kill(terminal)
    setup.close()
    client.close()
    remove_store(store_root)
    shutil.rmtree(store_root, ignore_errors=True)


def _in_background(target, *args, **kwargs) -> tuple[threading.Thread, list]:
    result: list = []
    thread = threading.Thread(target=lambda: result.append(target(*args, **kwargs)))
    thread.start()
    return thread, result


def _shard_workers() -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if "ray::run_fee_shard" in " ".join(process.info["cmdline"] or []):
                found.append(process)
        except psutil.Error:
            continue
    return found


def test_duplicated_and_out_of_order_readings(world):
    date = world.next_date()
    run = fee_control.run_batch(world.setup, date, shards=2)
    assert run.counts["resends"] > 0
    world.check()
    # Energy is settled once: each account's settled register moved by what it deducted for.
    state = FeeControlStore(world.centre).read("state", date)
    assert pc.all(pc.greater_equal(state["month_kwh"], 0)).as_py()


def test_a_stage_worker_killed_mid_batch(world):
    date = world.next_date()
    thread, result = _in_background(fee_control.run_batch, world.setup, date, shards=2)
    deadline = time.monotonic() + 60
    killed = 0
    while not killed and time.monotonic() < deadline and thread.is_alive():
        for process in _shard_workers():
            os.kill(process.pid, signal.SIGKILL)
            killed += 1
            break
        time.sleep(0.01)
    thread.join(120)
    assert killed == 1 and result, "the run did not finish after its worker was killed"
    world.check()


def test_the_nats_server_restarts_mid_run(world):
    date = world.next_date()
    thread, result = _in_background(fee_control.run_batch, world.setup, date, shards=2)
    time.sleep(0.5)
    world.setup.embedded.restart()  # a crash and a restart, on the same port and store
    thread.join(120)
    assert result
    world.check()


def test_a_terminal_that_times_out(world):
    # Some accounts' terminals answer late once; one never answers (manual-work queue).
    state = FeeControlStore(world.centre).read("state", world.dates[-1])
    ids = state["account_id"].to_numpy()
    late = {int(a): 1 for a in ids[:40]}
    for terminal in world.setup.terminals:
        ray.get(terminal.inject.remote(delays=late))
    retries = ray.get(world.setup.executor.stats.remote())["retries"]
    date = world.next_date()
    run = fee_control.run_batch(world.setup, date, shards=2)
    sent = set(FeeControlStore(world.centre).read("commands", date)["account_id"].to_pylist())
    assert sent & set(late), "no command went to a late terminal"
    assert ray.get(world.setup.executor.stats.remote())["retries"] > retries
    assert run.seconds["deliver"] > 0
    world.check()


def test_a_price_change_mid_run(world):
    from gridfare.feecontrol.cache import Kind
    from gridfare.tariffs import load_tariff_book

    registry = world.setup.registry
    before = ray.get(registry.versions.remote())["prices"]
    date = world.next_date()
    thread, _ = _in_background(fee_control.run_batch, world.setup, date, shards=2)
    deadline = time.monotonic() + 60
    while not _shard_workers() and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.01)
    ray.get(registry.publish.remote(Kind.PRICES.value, dict(load_tariff_book())))
    thread.join(120)
    decisions = FeeControlStore(world.centre).read("decisions", date)
    assert set(decisions["price_version"].to_pylist()) == {before}  # no mix
    after = world.next_date()
    fee_control.run_batch(world.setup, after, shards=2)
    decisions = FeeControlStore(world.centre).read("decisions", after)
    assert set(decisions["price_version"].to_pylist()) == {before + 1}
    world.check()


def _drive_to_pending(world, key: str, skip: int = 0):
    """Drive one residential account deep under its disconnect level and decide dates
    until it is ``disconnect_pending`` (after its day of grace, a notice); (account, a
    function giving its state on a date)."""
    store = FeeControlStore(world.centre)
    state = store.read("state", world.dates[-1])
    kinds = world.centre.dataset("accounts").to_table(columns=["account_id", "customer_kind"])
    residential = set(kinds.filter(pc.field("customer_kind") == "residential")[
        "account_id"].to_pylist())
    decided = set(store.read("decisions", world.dates[-1])["account_id"].to_pylist())
    normal = state.filter(pc.field("state") == "normal")["account_id"].to_pylist()
    account = [a for a in normal if a in residential and a in decided][skip]
    world.client.deduction(account, 10**7, key=f"{key}-{account}")
    world.opening[account] -= 10**7

    def state_of(date: dt.date) -> str:
        rows = store.read("state", date).filter(pc.field("account_id") == account)
        return rows["state"][0].as_py()

    seen = []
    for _ in range(4):
        fee_control.run_batch(world.setup, world.next_date(), shards=2)
        seen.append(state_of(world.dates[-1]))
        if seen[-1] == "disconnect_pending":
            break
    assert seen[-1] == "disconnect_pending", f"account {account}: {seen}"
    return account, state_of


def test_a_payment_while_a_disconnect_is_pending(world):
    store = FeeControlStore(world.centre)
    account, state_of = _drive_to_pending(world, "test-drain")
    # It pays before the notice has run out: the pending disconnect ends, none goes out.
    at = dt.datetime.combine(world.dates[-1] + dt.timedelta(days=1), dt.time(6))
    pay = {"record_id": f"P-test-{account}", "account_id": account, "kind": "payment",
           "measured_at": at, "received_at": at, "amount_fen": 2 * 10**7}
    paid = world.next_date([pay])
    fee_control.run_batch(world.setup, paid, shards=2)
    assert state_of(paid) in ("normal", "warned", "reminded")
    cut = store.read("commands", paid).filter(pc.field("account_id") == account)
    assert "disconnect" not in cut["action"].to_pylist()
    world.check()


def test_continuous_mode_keeps_its_place_in_the_feed(world):
    from backends.nats import FEED

    date = START + dt.timedelta(days=len(world.dates))
    batches = world.collector.collect(date)
    world.dates.append(date)
    feed = CollectionFeed(world.centre)
    numbers = [int(b["batch"][0].as_py()) for b in batches]
    for number, batch in zip(numbers, batches, strict=True):
        feed.append(date, number, batch)

    def announce(chosen: list[int]) -> None:
        for number in chosen:
            asyncio.run(fee_control.announce(world.setup.nats_url, date, number))

    announce(numbers[:2])
    lags = fee_control.run_continuous(world.setup, shards=2, idle_exit_s=2.0)
    assert len(lags) == 2
    # Stopped and started again: it resumes after the last batch it acknowledged, and a
    # notice announced twice is stored once.
    announce(numbers[1:])
    lags = fee_control.run_continuous(world.setup, shards=2, idle_exit_s=2.0)
    assert len(lags) == len(numbers) - 2
    assert len(stream_messages(world.setup.nats_url, FEED)) == len(numbers)
    asyncio.run(fee_control.wait_drained_for(world.setup))
    world.check()


def test_a_timer_tick_sends_a_pending_disconnect_without_waiting_for_the_feed(world):
    store = FeeControlStore(world.centre)
    account, state_of = _drive_to_pending(world, "test-tick", skip=1)
    date = world.dates[-1]
    # Its notice went out at the batch's 09:00; 12 notice hours later, before the night
    # window, the tick disconnects it: no feed batch arrives meanwhile.
    at = dt.datetime.combine(date, dt.time(21, 30), dt.UTC).timestamp()
    lags = fee_control.run_continuous(world.setup, shards=2, idle_exit_s=4.0, tick_s=1.0,
                                      clock=lambda: at)
    assert lags == []  # no feed batch was decided
    assert state_of(date) == "disconnected"
    cut = store.read("commands", date).filter(pc.field("account_id") == account)
    assert cut["action"].to_pylist().count("disconnect") == 1
    # Ticks at the same instant (a tick cut short and decided again) send nothing more.
    fee_control.run_continuous(world.setup, shards=2, idle_exit_s=3.0, tick_s=1.0,
                               clock=lambda: at)
    cut = store.read("commands", date).filter(pc.field("account_id") == account)
    assert cut["action"].to_pylist().count("disconnect") == 1
    asyncio.run(fee_control.wait_drained_for(world.setup))
    world.check()


class _Crash(Exception):
    """The continuous job stopped between a batch's state and its acknowledgement."""


def _consumer(url: str, durable: str, create: bool) -> object:
    """Create (or read) a feed consumer that starts at the notices published from now on
    and redelivers an unacknowledged one after 2 s; its info."""
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    from backends.nats import FEED, connect, ensure_streams

    async def go():
        nc = await connect(url)
        try:
            js = nc.jetstream()
            await ensure_streams(js)
            if create:
                await js.add_consumer(FEED, ConsumerConfig(
                    durable_name=durable, name=durable, ack_policy=AckPolicy.EXPLICIT,
                    ack_wait=2, deliver_policy=DeliverPolicy.NEW,
                    filter_subject="feecontrol.feed.>"))
            return await js.consumer_info(FEED, durable)
        finally:
            await nc.close()

    return asyncio.run(go())


def test_a_crash_between_a_batchs_state_and_its_ack_loses_and_doubles_nothing(world):
    # Last in the module: this date's notices are left on the default consumer's stream.
    durable = "crash-between-state-and-ack"
    _consumer(world.setup.nats_url, durable, create=True)
    date = START + dt.timedelta(days=len(world.dates))
    batches = world.collector.collect(date)
    world.dates.append(date)
    feed, store = CollectionFeed(world.centre), FeeControlStore(world.centre)
    numbers = [int(b["batch"][0].as_py()) for b in batches]
    for number, batch in zip(numbers, batches, strict=True):
        feed.append(date, number, batch)
        asyncio.run(fee_control.announce(world.setup.nats_url, date, number))
    before = store.state_before(date)

    def crash(notice: dict) -> None:
        raise _Crash(notice)

    with pytest.raises(_Crash):
        fee_control.run_continuous(world.setup, shards=2, idle_exit_s=2.0, durable=durable,
                                   after_commit=crash)
    first = f"batch-{numbers[0]:06d}"
    files = store.state_files(date)
    assert [notice for _, notice in files.deltas] == [first]  # written, not acknowledged
    decided_once = store.read("decisions", date)
    # Started again: the rest are decided, and the first, redelivered after its ack wait,
    # is acknowledged without being decided a second time.
    lags = fee_control.run_continuous(world.setup, shards=2, idle_exit_s=5.0,
                                      durable=durable)
    assert len(lags) >= len(numbers)
    files = store.state_files(date)
    assert sorted(notice for _, notice in files.deltas) == sorted(
        f"batch-{n:06d}" for n in numbers)  # each batch's state written once
    info = _consumer(world.setup.nats_url, durable, create=False)
    assert info.num_ack_pending == 0 and info.num_pending == 0
    # The first batch's decisions are as it first wrote them (not decided again on its own
    # state, which would settle nothing and write deductions of 0).
    part = pq.read_table(f"{world.root}/feecontrol/decisions/date={date}/{first}.parquet")
    assert part.cast(decided_once.schema).equals(decided_once)
    assert pc.sum(decided_once["deduction_fen"]).as_py() > 0
    # The date's state is the day before's with every batch's delta laid over it.
    state = store.read("state", date)
    assert set(before["account_id"].to_pylist()) <= set(state["account_id"].to_pylist())
    asyncio.run(fee_control.wait_drained_for(world.setup))
    world.check()
