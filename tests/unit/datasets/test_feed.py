"""The collection feed and the simulated collector (no Ray)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from datasets.collector import Collector, CollectorRates
from datasets.datacentre import DataCentre
from datasets.feed import CollectionFeed, FeeControlStore
from datasets.generator import generate_section
from datasets.schemas import COLLECTED, FEE_STATE
from gridfare.errors import DataCentreError, FeedConflict

DAY = dt.date(2026, 11, 1)


@pytest.fixture(scope="module")
def customers() -> pa.Table:
    return generate_section(0, "S00001", 3_000, 1, "2026-10", 5).accounts


def test_same_seed_same_batches(customers):
    first = Collector(customers, 3, DAY).collect(DAY)
    again = Collector(customers, 3, DAY).collect(DAY)
    assert all(a.equals(b) for a, b in zip(first, again, strict=True))
    assert all(b.schema.equals(COLLECTED) for b in first)


def test_dirt_is_there(customers):
    collector = Collector(customers, 3, DAY, CollectorRates(late=0.05, duplicate=0.05))
    day1 = pa.concat_tables(collector.collect(DAY))
    day2 = pa.concat_tables(collector.collect(DAY + dt.timedelta(days=1)))
    ids = day2["record_id"]
    assert len(ids) > len(pc.unique(ids))  # resends repeat a record_id
    freeze = day2.filter(pc.field("kind") == "daily_freeze")
    measured = freeze["measured_at"].cast(pa.int64()).to_numpy()
    assert len(np.unique(measured)) == 2  # yesterday's late readings arrive with today's
    active = int(pc.sum(customers["active"]).as_py())
    fresh = day1.filter(pc.field("kind") == "daily_freeze")
    assert len(pc.unique(fresh["account_id"])) < active  # gaps and late ones
    assert set(day1["kind"].unique().to_pylist()) >= {"daily_freeze", "payment", "interval"}


def test_registers_never_go_back(customers):
    collector = Collector(customers, 3, DAY, CollectorRates(malformed=0))
    before = collector.registers_kwh()
    collector.collect(DAY)
    assert (collector.registers_kwh() >= before).all()


def test_feed_is_append_only_and_idempotent(tmp_path, customers):
    feed = CollectionFeed(DataCentre(str(tmp_path), create=True))
    batches = Collector(customers, 3, DAY).collect(DAY)
    assert feed.append(DAY, 1, batches[0])
    assert not feed.append(DAY, 1, batches[0])  # a retried append is a no-op
    with pytest.raises(FeedConflict, match="append-only"):
        feed.append(DAY, 1, batches[0].slice(1))
    with pytest.raises(DataCentreError, match="another batch"):
        feed.append(DAY, 2, batches[0])
    assert feed.append(DAY, 2, batches[1])
    assert feed.batches(DAY) == [1, 2]
    assert feed.read(DAY).num_rows == batches[0].num_rows + batches[1].num_rows
    assert feed.dates() == [DAY]


def test_store_reads_the_state_before_a_date(tmp_path):
    store = FeeControlStore(DataCentre(str(tmp_path), create=True))
    assert store.state_before(DAY).num_rows == 0
    assert store.state_before(DAY).schema.equals(FEE_STATE)


def test_store_parts_of_a_date_are_read_together(tmp_path):
    from datasets.schemas import FEE_HOLDS

    store = FeeControlStore(DataCentre(str(tmp_path), create=True))

    def holds(*ids: int) -> pa.Table:
        return pa.table({"account_id": list(ids), "rule": ["tamper"] * len(ids),
                         "detail": ["x"] * len(ids), "run_date": [DAY] * len(ids)},
                        schema=FEE_HOLDS)

    store.write("holds", DAY, holds(1, 2), "batch-000001")
    store.write("holds", DAY, holds(3), "batch-000002")
    store.write("holds", DAY, holds(4), "batch-000002")  # a rerun of a batch replaces it
    assert store.read("holds", DAY)["account_id"].to_pylist() == [1, 2, 4]
    with pytest.raises(DataCentreError, match="one part"):
        store.write("state", DAY, FEE_STATE.empty_table(), "batch-000001")
