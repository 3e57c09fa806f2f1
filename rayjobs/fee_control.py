"""Prepaid fee control on a Ray cluster: ``ray job submit -- python -m rayjobs.fee_control``.

Batch mode (``--date D``): the six stages over the feed of collection date D, sharded by
account across Ray tasks; the run's tables go to the data centre, its commands to the
terminals through NATS JetStream. Continuous mode (``--continuous``): a long-running job that
consumes the feed's batch notices (a durable JetStream consumer) and decides each batch as
it arrives, with a timer tick between batches for disconnects held pending.

What makes a run safe to repeat, in the order it is done: the tables but the state are
written (a rerun replaces them); the commands are published with their idempotency keys as
``Nats-Msg-Id`` (a rerun's are de-duplicated); the state is written last (the run's commit
point); in continuous mode the feed notice is acknowledged after that. A run that dies
anywhere before is run again from the same input and gives the same answers, and every
payment and deduction it posts carries its key, so none is applied twice.

Continuous mode keeps every account's state in memory (``StateTable``) for the life of the
job: a notice reads the rows of the accounts its records name (and those pending a
disconnect) and writes a delta of only the rows it decided, so its cost follows the batch,
not the number of accounts. The delta is the notice's commit point; a notice redelivered
after it (the job died before its ack) is acknowledged without being decided again. A base
(the whole state) is written in the background when a date starts and when the deltas since
the last base hold as many rows as the state, so a restart reads one base and the deltas
after it.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from actors.fee_accounts import AccountsSpec
from datasets.feed import CollectionFeed, FeeControlStore
from gridfare.errors import GridfareError

__all__ = ["FeeRun", "RunSetup", "main", "run_batch", "setup"]

DEFAULT_SHARDS = 4


@dataclass
class RunSetup:
    """What the runs of one data centre share: its registry, NATS, terminals, executor."""

    datacentre: str
    accounts: AccountsSpec
    nats_url: str
    registry: Any
    terminals: list
    executor: Any
    embedded: Any = None  # EmbeddedNats when the job started its own server

    def close(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()


@dataclass
class FeeRun:
    """What one run did."""

    run_date: dt.date
    versions: dict[str, int]
    counts: dict[str, int] = field(default_factory=dict)
    published: tuple[int, int] = (0, 0)  # (stored, de-duplicated)
    seconds: dict[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        c = self.counts
        actions = ", ".join(f"{c.get(f'command_{a}', 0)} {a}" for a in
                            ("warn", "remind", "notice", "disconnect", "reconnect"))
        hits, misses = c.get("cache_hits", 0), c.get("cache_misses", 0)
        rate = hits / (hits + misses) if hits + misses else 0.0
        return (f"fee control {self.run_date}: {c.get('records', 0):,} records "
                f"({c.get('resends', 0):,} resends, {c.get('rejected', 0):,} rejected), "
                f"{c.get('decided', 0):,} accounts decided, {c.get('held', 0):,} held, "
                f"{c.get('deductions_posted', 0):,} deductions; commands: {actions} "
                f"({self.published[0]:,} published, {self.published[1]:,} already sent); "
                f"price version {self.versions.get('prices')}; cache hit rate {rate:.0%}; "
                f"{sum(self.seconds.values()):.1f} s")


def _values(datacentre: str, tariffs_dir: str | None) -> dict[str, Any]:
    from datasets.datacentre import DataCentre
    from gridfare.feecontrol.cache import Kind
    from gridfare.feecontrol.config import (
        AuditRules,
        StrategyRules,
        SystemParams,
        default_thresholds,
    )
    from gridfare.tariffs import load_tariff_book

    accounts = DataCentre(datacentre).dataset("accounts").to_table(
        columns=["account_id", "customer_kind", "tariff_code", "active"])
    customers = accounts.filter(pc.field("active")).select(
        ["account_id", "customer_kind", "tariff_code"])
    customers = customers.take(pa.array(np.argsort(customers["account_id"].to_numpy(),
                                                   kind="stable")))
    return {Kind.CUSTOMERS.value: customers.combine_chunks(),
            Kind.PRICES.value: dict(load_tariff_book(tariffs_dir)),
            Kind.THRESHOLDS.value: dict(default_thresholds()),
            Kind.AUDIT.value: AuditRules(), Kind.STRATEGY.value: StrategyRules(),
            Kind.SYSTEM.value: SystemParams()}


def setup(datacentre: str, accounts: AccountsSpec, *, nats_url: str | None = None,
          tariffs_dir: str | None = None, terminals: int = 2,
          command_timeout_s: float = 2.0) -> RunSetup:
    """Registry (published once), NATS (embedded under the data root unless a URL is
    given), terminals and the command executor, all named so that reruns find them."""
    import ray

    from actors import named_detached
    from actors.fee_executor import CommandExecutor
    from actors.fee_registry import get_fee_registry, registry_name
    from actors.fee_terminals import Terminals
    from backends.nats import EmbeddedNats
    from datasets.datacentre import DataCentre
    from gridfare.feecontrol.config import SystemParams

    datacentre = DataCentre(datacentre).uri
    registry = get_fee_registry(datacentre)
    ray.get(registry.publish_missing.remote(_values(datacentre, tariffs_dir)))
    embedded = None
    if nats_url is None:
        embedded = EmbeddedNats.start(f"{datacentre}/feecontrol")
        nats_url = embedded.url
    suffix = registry_name(datacentre).rsplit("-", 1)[1]
    shells = [named_detached(Terminals, f"gridfare-fee-terminals-{suffix}-{i}").remote()
              for i in range(terminals)]
    system = SystemParams()
    executor = CommandExecutor.remote(nats_url, shells, attempts=system.command_attempts,
                                      backoff_s=system.command_backoff_s,
                                      timeout_s=command_timeout_s)
    ray.get(executor.start.remote())
    return RunSetup(datacentre, accounts, nats_url, registry, shells, executor, embedded)


def _shard(table: pa.Table, shards: int) -> list[pa.Table]:
    ids = table["account_id"].to_numpy()
    part = np.mod(ids, shards)
    return [table.filter(pa.array(part == i)) for i in range(shards)]


def decide(setup_: RunSetup, records: pa.Table, states: pa.Table, run_date: dt.date,
           decide_at: dt.datetime, *, shards: int = DEFAULT_SHARDS,
           versions: dict[str, int] | None = None, show_progress: bool = False
           ) -> tuple[dict[str, pa.Table], dict]:
    """The six stages over ``records`` in ``shards`` Ray tasks; the run's tables, counts."""
    import ray

    from actors.fee_stage import run_fee_shard

    versions = versions or ray.get(setup_.registry.versions.remote())
    refs = [run_fee_shard.remote(r, s, versions, setup_.registry, setup_.accounts, run_date,
                                 decide_at)
            for r, s in zip(_shard(records, shards), _shard(states, shards), strict=True)]
    results = _gather(refs, show_progress)
    tables = {name: pa.concat_tables([r["tables"][name] for r in results])
              for name in results[0]["tables"]}
    tables["state"] = tables["state"].take(pa.array(np.argsort(
        tables["state"]["account_id"].to_numpy(), kind="stable")))
    counts: dict[str, int] = {}
    for result in results:
        for name, value in result["counts"].items():
            counts[name] = counts.get(name, 0) + int(value)
    return tables, counts


def _gather(refs: list, show_progress: bool) -> list[dict]:
    """The shards' results in order, with a progress line as each finishes."""
    import ray

    index = {ref: i for i, ref in enumerate(refs)}
    results: list = [None] * len(refs)
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        for ref in done:
            results[index[ref]] = ray.get(ref)
        if show_progress:
            print(f"fee control: {len(refs) - len(pending)}/{len(refs)} shards decided",
                  flush=True)
    return results


async def _publish_commands(url: str, commands: pa.Table) -> tuple[int, int]:
    from backends.nats import connect, ensure_streams, publish

    nc = await connect(url)
    try:
        js = nc.jetstream()
        await ensure_streams(js)
        stored = duplicates = 0
        for action in sorted(set(commands["action"].to_pylist())):
            rows = commands.filter(pc.field("action") == action).to_pylist()
            for row in rows:
                row["run_date"] = row["run_date"].isoformat()
            s, d = await publish(js, f"feecontrol.cmd.{action}",
                                 [(row["idempotency_key"], row) for row in rows])
            stored, duplicates = stored + s, duplicates + d
        return stored, duplicates
    finally:
        await nc.close()


def commit(setup_: RunSetup, run_date: dt.date, tables: dict[str, pa.Table],
           part: str = "part-0", delta: int | None = None) -> tuple[int, int]:
    """Write the run's tables, publish its commands, write its state: in that order. The
    state is the whole state (``part-0``, batch mode) or, with ``delta``, that numbered
    delta of the date holding only the rows this notice decided (continuous mode)."""
    from datasets.datacentre import DataCentre

    store = FeeControlStore(DataCentre(setup_.datacentre))
    for name in ("decisions", "commands", "rejects", "holds"):
        store.write(name, run_date, tables[name], part)
    published = asyncio.run(_publish_commands(setup_.nats_url, tables["commands"]))
    if delta is None:
        store.write("state", run_date, tables["state"])
    else:
        store.write_state_delta(run_date, delta, part, tables["state"])
    return published


def run_batch(setup_: RunSetup, run_date: dt.date, *, shards: int = DEFAULT_SHARDS,
              drain_s: float | None = 120.0, show_progress: bool = False) -> FeeRun:
    """Decide collection date ``run_date`` as one batch (its whole feed)."""
    import ray

    from actors.fee_executor import wait_drained
    from datasets.datacentre import DataCentre
    from gridfare.feecontrol.config import SystemParams

    centre = DataCentre(setup_.datacentre)
    versions = ray.get(setup_.registry.versions.remote())  # pinned for the whole batch
    run = FeeRun(run_date, versions)
    started = time.perf_counter()
    records = CollectionFeed(centre).read(run_date)
    states = FeeControlStore(centre).state_before(run_date)
    run.seconds["read"] = time.perf_counter() - started
    system = ray.get(setup_.registry.get.remote("system", versions["system"]))
    assert isinstance(system, SystemParams)
    started = time.perf_counter()
    tables, run.counts = decide(setup_, records, states, run_date, system.decide_at(run_date),
                                shards=shards, versions=versions, show_progress=show_progress)
    run.seconds["decide"] = time.perf_counter() - started
    started = time.perf_counter()
    run.published = commit(setup_, run_date, tables)
    run.seconds["commit"] = time.perf_counter() - started
    if drain_s is not None:
        started = time.perf_counter()
        asyncio.run(wait_drained(setup_.executor, drain_s))
        run.seconds["deliver"] = time.perf_counter() - started
    return run


async def wait_drained_for(setup_: RunSetup, timeout_s: float = 120.0) -> None:
    """Until the terminals have taken every command published so far."""
    from actors.fee_executor import wait_drained

    await wait_drained(setup_.executor, timeout_s)


def run_continuous(setup_: RunSetup, *, shards: int = DEFAULT_SHARDS,
                   idle_exit_s: float | None = None, durable: str = "feecontrol",
                   tick_s: float | None = 60.0, clock=time.time,
                   after_commit: Callable[[dict], None] | None = None,
                   timings: list[dict[str, float]] | None = None) -> list[float]:
    """Consume the feed's batch notices and decide each batch as it comes, until idle for
    ``idle_exit_s`` (None: forever); the lag of each batch (its notice published to its
    state written, seconds).

    Between batches, every ``tick_s`` while an account is ``disconnect_pending``, a timer
    tick decides the pending accounts again at the tick's instant (no records), so a
    disconnect held by the night window or its notice goes out when they end, not with the
    next feed batch. A tick is a notice like a batch's (``tick_notice``), published with
    its instant as ``Nats-Msg-Id`` and acknowledged after its state is written: a tick cut
    short is decided again at the same instant and makes the same command keys.

    ``after_commit`` is called with each notice after its state is written and before it
    is acknowledged (a fault test stops the job there). ``timings``, if given, gets each
    decided notice's seconds by phase (read, states, decide, commit, apply; and, summed over
    the shards inside decide, each stage's, the store's and the whole shard's)."""
    from datasets.datacentre import DataCentre

    centre = DataCentre(setup_.datacentre)
    feed, store = CollectionFeed(centre), FeeControlStore(centre)
    live = LiveState(store)

    async def loop() -> list[float]:
        from nats.js.api import AckPolicy, ConsumerConfig

        from backends.nats import FEED, connect, ensure_streams, publish

        nc = await connect(setup_.nats_url, name="gridfare-fee-continuous")
        js = nc.jetstream()
        await ensure_streams(js)
        subscription = await js.pull_subscribe(
            "feecontrol.feed.>", durable=durable, stream=FEED,
            config=ConsumerConfig(durable_name=durable, ack_policy=AckPolicy.EXPLICIT,
                                  ack_wait=600))
        lags: list[float] = []
        idle_since = last_tick = time.monotonic()
        try:
            while idle_exit_s is None or time.monotonic() - idle_since < idle_exit_s:
                try:
                    messages = await subscription.fetch(1, timeout=1)
                except Exception:
                    messages = []
                if not messages and tick_s is not None and \
                        time.monotonic() - last_tick >= tick_s:
                    last_tick = time.monotonic()
                    if await asyncio.to_thread(live.any_pending):
                        notice = tick_notice(clock(), tick_s)
                        await publish(js, "feecontrol.feed.tick",
                                      [(f"tick:{notice['tick']}", notice)])
                for message in messages:
                    notice = json.loads(message.data)
                    spent = await asyncio.to_thread(_decide_notice, notice, feed, live,
                                                    setup_, shards)
                    if timings is not None and spent:
                        timings.append(spent)
                    if after_commit is not None:
                        after_commit(notice)
                    await message.ack()
                    if "tick" not in notice:  # a tick is no feed: it keeps the job idle
                        lags.append(time.time() - float(notice.get("announced_at",
                                                                   time.time())))
                        idle_since = time.monotonic()
                    await asyncio.to_thread(live.compact_if_due)
        finally:
            await nc.close()
            live.close()
        return lags

    return asyncio.run(loop())


def tick_notice(now: float, tick_s: float) -> dict:
    """The notice of the timer tick at ``now`` (epoch seconds, UTC), on a ``tick_s`` grid:
    two ticks within one step are one tick."""
    step = max(1, int(tick_s))
    instant = dt.datetime.fromtimestamp(int(now) // step * step, dt.UTC).replace(tzinfo=None)
    return {"tick": instant.isoformat(), "announced_at": now}


class LiveState:
    """The continuous mode's state of the newest date in memory, and its files.

    ``date`` is the newest run date decided (or, before the first notice, the newest with a
    state on disk); ``table`` its state as it stands. A notice of an earlier date is decided
    on that date's state read from disk and leaves the memory alone, as a batch rerun of an
    old date leaves the later dates alone."""

    def __init__(self, store: FeeControlStore) -> None:
        from datasets.fee_state import StateTable

        self.store = store
        dates = store.dates("state")
        self.date: dt.date | None = dates[-1] if dates else None
        self.table = store.state_at(self.date) if self.date else StateTable()
        files = store.state_files(self.date) if self.date else None
        self._last = files.last if files else 0
        self._decided = files.notices() if files else set()
        self._since_base = 0  # delta rows written since the last base
        self._writer: threading.Thread | None = None
        self._failed: BaseException | None = None

    def any_pending(self) -> bool:
        from gridfare.feecontrol.strategy import State

        return bool(len(self.table.ids_in_state(State.DISCONNECT_PENDING.value)))

    def tick_date(self) -> dt.date | None:
        return self.date

    def decided(self, run_date: dt.date, notice: str) -> bool:
        """Whether ``notice`` of ``run_date`` already wrote its delta (its commit point)."""
        if run_date == self.date:
            return notice in self._decided
        return notice in self.store.state_files(run_date).notices()

    def states_for(self, run_date: dt.date, records: pa.Table) -> tuple[pa.Table, bool]:
        """The last states a notice of ``run_date`` over ``records`` reads, and whether it is
        decided on the memory (else on the date's state read from disk)."""
        from gridfare.feecontrol.prepare import state_needed
        from gridfare.feecontrol.strategy import State

        if self.date is None or run_date >= self.date:
            if self.date is None or run_date > self.date:
                self._start_date(run_date)
            table, live = self.table, True
        else:
            self.join()  # the old date's files as the background writer leaves them
            table, live = self.store.state_at(run_date), False
        pending = table.ids_in_state(State.DISCONNECT_PENDING.value)
        return table.rows(state_needed(records["account_id"].to_numpy(), pending)), live

    def next_delta(self, run_date: dt.date, live: bool) -> int:
        return self._last + 1 if live else self.store.state_files(run_date).last + 1

    def committed(self, run_date: dt.date, live: bool, seq: int, notice: str,
                  delta: pa.Table) -> None:
        """The delta ``seq`` of ``notice`` is written: lay it over the memory."""
        if not live:
            return
        self.table.apply(delta)
        self._last, self._since_base = seq, self._since_base + delta.num_rows
        self._decided.add(notice)

    def compact_if_due(self) -> None:
        """Write a base in the background once the deltas since the last hold as many rows
        as the state (a restart then reads one base and at most that many rows more)."""
        if self.date is not None and self._since_base and \
                self._since_base >= max(len(self.table), 1):
            self._write_base(self.date, self._last)

    def join(self) -> None:
        if self._writer is not None:
            self._writer.join()
            self._writer = None
        if self._failed is not None:
            failed, self._failed = self._failed, None
            raise failed

    def close(self) -> None:
        self.join()

    def _start_date(self, run_date: dt.date) -> None:
        # A new date starts from the memory (the newest state there is); its base 0 makes
        # the date's files stand alone, whatever later happens to the dates before it.
        self.join()
        self.date = run_date
        files = self.store.state_files(run_date)
        self._last, self._decided = files.last, files.notices()
        if files.base is not None or files.deltas:  # decided in part before: read it
            self.table = self.store.state_at(run_date)
        else:
            self._write_base(run_date, 0)

    def _write_base(self, run_date: dt.date, seq: int) -> None:
        self.join()
        whole = self.table.to_table()  # a snapshot: the memory moves on meanwhile
        self._since_base = 0

        def write() -> None:
            try:
                self.store.write_state_base(run_date, seq, whole)
            except BaseException as exc:  # raised on the next join, in the job's thread
                self._failed = exc

        self._writer = threading.Thread(target=write, name="fee-state-base", daemon=True)
        self._writer.start()


def _decide_notice(notice: dict, feed: CollectionFeed, live: LiveState,
                   setup_: RunSetup, shards: int) -> dict[str, float]:
    """Decide one notice; its seconds by phase (empty: it was decided before)."""
    from datasets.schemas import COLLECTED

    spent: dict[str, float] = {}
    started = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal started
        now = time.perf_counter()
        spent[name] = now - started
        started = now

    if "tick" in notice:
        # A tick decides the accounts pending a disconnect at its instant, on the newest
        # state and under its date (days of grace move on with the feed's dates, not the
        # clock): no records, so nothing is settled.
        decide_at = dt.datetime.fromisoformat(notice["tick"])
        run_date = live.tick_date()
        if run_date is None:
            return spent
        part = f"tick-{decide_at:%Y%m%dT%H%M%S}"
        if live.decided(run_date, part):
            return spent
        records = COLLECTED.empty_table()
    else:
        run_date = dt.date.fromisoformat(notice["date"])
        part = f"batch-{int(notice['batch']):06d}"
        if live.decided(run_date, part):
            return spent  # decided before its ack was lost: its commands went out before
        records = feed.read(run_date, [int(notice["batch"])])
        # The batch's own clock decides it: a redelivered notice makes the same keys.
        received = pc.max(records["received_at"]).as_py() if records.num_rows else None
        decide_at = received or dt.datetime.combine(run_date, dt.time())
    lap("read")
    states, on_memory = live.states_for(run_date, records)
    lap("states")
    tables, counts = decide(setup_, records, states, run_date, decide_at, shards=shards)
    lap("decide")
    for name, value in counts.items():  # inside decide: the shards' time (summed), by part
        if name.startswith("stage_ms_") or name in ("shard_ms", "accounts_ms"):
            spent[f"shards.{name.removesuffix('_ms').removeprefix('stage_ms_')}"] = \
                value / 1000
    seq = live.next_delta(run_date, on_memory)
    commit(setup_, run_date, tables, part, delta=seq)
    lap("commit")
    live.committed(run_date, on_memory, seq, part, tables["state"])
    lap("apply")
    return spent


async def announce(url: str, date: dt.date, batch: int) -> bool:
    """Tell the continuous mode that feed batch ``batch`` of ``date`` is there."""
    from backends.nats import connect, ensure_streams, publish

    nc = await connect(url)
    try:
        js = nc.jetstream()
        await ensure_streams(js)
        stored, _ = await publish(js, f"feecontrol.feed.{date.isoformat()}",
                                  [(f"feed:{date.isoformat()}:{batch}",
                                    {"date": date.isoformat(), "batch": batch,
                                     "announced_at": time.time()})])
        return bool(stored)
    finally:
        await nc.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rayjobs.fee_control", description=__doc__)
    parser.add_argument("--datacentre", required=True, help="directory or pyarrow.fs URI")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--date", type=dt.date.fromisoformat, help="batch mode: YYYY-MM-DD")
    mode.add_argument("--continuous", action="store_true", help="consume the feed")
    parser.add_argument("--accounts", required=True, type=AccountsSpec.parse,
                        help="the accounts service: store:ROOT or actor:NAME")
    parser.add_argument("--nats", help="NATS URL (default: an embedded JetStream server)")
    parser.add_argument("--cluster", help="Ray cluster address (default: the job's)")
    parser.add_argument("--shards", type=int, default=DEFAULT_SHARDS)
    parser.add_argument("--tariffs", help="directory of tariff files (default: samples)")
    parser.add_argument("--idle-exit", type=float, help="continuous: stop after S idle")
    parser.add_argument("--tick", type=float, default=60.0,
                        help="continuous: seconds between timer ticks deciding pending "
                             "disconnects (default 60)")
    try:
        args = parser.parse_args(argv)
    except GridfareError as exc:
        print(f"gridfare: error: {exc}", file=sys.stderr)
        return 2
    try:
        from actors.attach import attach

        cluster = attach(args.cluster, start_local=True)
        print(cluster.describe(), flush=True)
        run_setup = setup(args.datacentre, args.accounts, nats_url=args.nats,
                          tariffs_dir=args.tariffs)
        try:
            if args.continuous:
                lags = run_continuous(run_setup, shards=args.shards,
                                      idle_exit_s=args.idle_exit, tick_s=args.tick)
                print(f"fee control: {len(lags)} feed batches decided", flush=True)
            else:
                run = run_batch(run_setup, args.date, shards=args.shards, show_progress=True)
                print(run.describe(), flush=True)
        finally:
            run_setup.close()
    except (GridfareError, TimeoutError) as exc:
        print(f"gridfare: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
