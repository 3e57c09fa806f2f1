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
    with pytest.raises(DataCentreError, match="written whole"):
        store.write("state", DAY, FEE_STATE.empty_table(), "batch-000001")


def _state(*pairs: tuple[int, str]) -> pa.Table:
    at = dt.datetime(2026, 11, 1)
    return pa.Table.from_pylist([
        {"account_id": a, "settled_at": at, "register_kwh": 1.0, "month_kwh": 0.0,
         "month_critical_kwh": 0.0, "month_peak_kwh": 0.0, "month_flat_kwh": 0.0,
         "month_valley_kwh": 0.0, "year_kwh": 0.0, "state": s, "run_date": DAY}
        for a, s in pairs], schema=FEE_STATE)


def test_the_state_of_a_date_is_its_base_with_its_deltas_laid_over_in_order(tmp_path):
    store = FeeControlStore(DataCentre(str(tmp_path), create=True))
    day2, day3 = DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=2)
    store.write("state", DAY, _state((1, "normal"), (2, "normal"), (3, "warned")))
    # A date without a base starts from the date before.
    store.write_state_delta(day2, 1, "batch-000001", _state((2, "warned")))
    store.write_state_delta(day2, 2, "batch-000002", _state((2, "reminded"), (4, "normal")))
    expected = _state((1, "normal"), (2, "reminded"), (3, "warned"), (4, "normal"))
    assert store.read("state", day2).equals(expected)
    assert store.state_before(day3).equals(expected)
    assert store.state_files(day2).notices() == {"batch-000001", "batch-000002"}
    # A base covers the deltas up to its number; later deltas are laid over it.
    store.write_state_base(day2, 1, _state((9, "normal")))  # (what base 1 says wins)
    store.write_state_delta(day2, 3, "tick-20261102T213000", _state((9, "warned")))
    assert store.read("state", day2).equals(_state((2, "reminded"), (4, "normal"),
                                                   (9, "warned")))
    store.write_state_base(day2, 3, _state((9, "warned"), (10, "normal")))
    assert [n for n in store._names(store._dir("state", day2)) if n.startswith("base")] == [
        "base-00000003.parquet"]  # older bases go, the deltas stay as commit marks
    assert store.state_files(day2).last == 3
    # Deltas are numbered upward, one per notice.
    with pytest.raises(DataCentreError, match="not above"):
        store.write_state_delta(day2, 3, "batch-000003", _state())
    with pytest.raises(DataCentreError, match="already decided"):
        store.write_state_delta(day2, 4, "batch-000001", _state())
    with pytest.raises(DataCentreError, match="bad notice"):
        store.write_state_delta(day2, 4, "../x", _state())
    # A batch run of the date replaces it whole.
    store.write("state", day2, _state((1, "warned")))
    assert store.state_files(day2).deltas == ()
    assert store.read("state", day2).equals(_state((1, "warned")))
