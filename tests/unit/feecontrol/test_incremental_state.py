"""The continuous mode's incremental state against a full recompute (no Ray).

Each feed batch decided on only the states ``prepare.state_needed`` names, its delta laid
over the memory (``StateTable``) and written to the store, must give the same decisions,
commands and state, batch after batch, as the same batch decided on every account's state
(the way continuous mode worked before: the whole state read and written per batch).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datasets.collector import Collector, CollectorRates
from datasets.datacentre import DataCentre
from datasets.fee_state import StateTable
from datasets.feed import FeeControlStore
from datasets.generator import generate_section
from datasets.schemas import FEE_STATE
from gridfare.feecontrol.batch import Context
from gridfare.feecontrol.cache import BalanceCache
from gridfare.feecontrol.pipeline import outcome, run_stages
from gridfare.feecontrol.prepare import state_needed
from gridfare.feecontrol.strategy import State
from tests.unit.feecontrol.helpers import snapshot
from tests.unit.feecontrol.memory import MemoryAccounts

START = dt.date(2026, 11, 1)


def _decide(records: pa.Table, day: dt.date, states: pa.Table, snap, service):
    received = pc.max(records["received_at"]).as_py() if records.num_rows else None
    decide_at = received or dt.datetime.combine(day, dt.time())
    context = Context(snapshot=snap, accounts=BalanceCache(service), states=states)
    return outcome(run_stages(records, day, decide_at, context), context)


def test_batches_decided_on_their_accounts_states_equal_a_full_recompute(tmp_path):
    accounts = generate_section(0, "S00001", 300, 1, "2026-10", 4).accounts
    table = accounts.filter(pc.field("active")).select(
        ["account_id", "customer_kind", "tariff_code"])
    ids = table["account_id"].to_numpy()
    rng = np.random.default_rng(4)
    # Small balances, so accounts walk down to warnings, notices and disconnects.
    opening = dict(zip(ids.tolist(), rng.integers(-500, 4_000, len(ids)).tolist(),
                       strict=True))
    full_service, live_service = MemoryAccounts(opening), MemoryAccounts(opening)
    snap = snapshot(table)
    collector = Collector(accounts, 4, START, CollectorRates(
        gap=0.05, late=0.05, duplicate=0.05, payment=0.1, tamper=0.01, batches=5))
    store = FeeControlStore(DataCentre(str(tmp_path), create=True))
    full = FEE_STATE.empty_table()
    live = StateTable()
    seen_pending = touched_only = 0
    for offset in range(6):
        day = START + dt.timedelta(days=offset)
        for seq, records in enumerate(collector.collect(day), start=1):
            whole = _decide(records, day, full, snap, full_service)
            pending = live.ids_in_state(State.DISCONNECT_PENDING.value)
            seen_pending += len(pending)
            needed = live.rows(state_needed(records["account_id"].to_numpy(), pending))
            touched_only += needed.num_rows < len(live)
            part = _decide(records, day, needed, snap, live_service)
            for name in ("decisions", "commands", "rejects", "holds"):
                assert part.tables[name].equals(whole.tables[name]), (day, name)
            delta = part.tables["state"]
            assert delta.num_rows <= needed.num_rows + part.counts.get("decided", 0)
            store.write_state_delta(day, seq, f"batch-{seq:06d}", delta)
            live.apply(delta)
            full = whole.tables["state"]
            assert live.to_table().equals(full), (day, seq)
        assert store.read("state", day).equals(full), day
    assert seen_pending and touched_only  # the walk reached pending; batches read a part
    assert live_service.balance == full_service.balance
