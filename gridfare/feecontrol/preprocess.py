"""Stage 1, pre-processing: classify the feed's records, drop resends, reject malformed ones.

In: ``records`` (COLLECTED). Out: ``freeze`` (per account, its newest valid daily freeze
reading of the batch: an older one that arrived late is superseded, never added),
``payments``, ``events`` and ``rejects`` (FEE_REJECTS, the first rule a record breaks).
A record whose ``record_id`` came earlier in the batch is a resend and is dropped, counted,
not rejected (a resend in a later batch is harmless too: a payment's key is its record_id,
and a reading not newer than the last settled one settles nothing).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datasets.schemas import COLLECTED_KINDS, FEE_REJECTS, METER_EVENTS
from gridfare.feecontrol.batch import Context, FeeBatch, to_units

__all__ = ["RULES", "run"]

NAME = "preprocess"
_TOU = ("critical_kwh", "peak_kwh", "flat_kwh", "valley_kwh")
# Rule names in the order a record is checked; a record is rejected with the first it breaks.
RULES: tuple[str, ...] = ("unknown_kind", "missing_register", "negative_register",
                          "register_resolution", "tou_split_mismatch", "bad_payment",
                          "unknown_event")


def run(batch: FeeBatch, context: Context) -> FeeBatch:
    records = batch.table("records")
    n = records.num_rows
    first = _first_of_each(records["record_id"])
    records = records.take(pa.array(first))
    rule = _broken_rule(records)
    bad = rule >= 0
    kinds = records["kind"]
    good = records.filter(pa.array(~bad))
    rejects = _rejects(records.filter(pa.array(bad)), rule[bad], batch)
    kind = good["kind"]
    freeze = _newest_per_account(good.filter(pc.equal(kind, "daily_freeze")))
    payments = good.filter(pc.equal(kind, "payment"))
    events = good.filter(pc.equal(kind, "event"))
    counts = {"records": n, "resends": n - len(first), "rejected": int(bad.sum()),
              "freeze_readings": freeze.num_rows, "payments": payments.num_rows,
              "events": events.num_rows,
              "intervals": int(pc.sum(pc.equal(kinds, "interval")).as_py() or 0)}
    return batch.with_tables(counts, freeze=freeze, payments=payments, events=events,
                             rejects=rejects)


def _first_of_each(ids: pa.ChunkedArray) -> np.ndarray:
    """Row indices of each record_id's first appearance, in arrival order."""
    indexed = pa.table({"id": ids, "row": pa.array(np.arange(len(ids), dtype=np.int64))})
    firsts = indexed.group_by("id", use_threads=False).aggregate([("row", "min")])
    return np.sort(firsts["row_min"].to_numpy())


def _broken_rule(records: pa.Table) -> np.ndarray:
    """Index into RULES of the first rule each record breaks, -1 for none."""
    n = records.num_rows
    rule = np.full(n, -1, np.int64)

    def mark(index: int, broken: np.ndarray) -> None:
        rule[(rule < 0) & broken] = index

    kind = records["kind"]
    known = pc.is_in(kind, value_set=pa.array(COLLECTED_KINDS)).to_numpy(zero_copy_only=False)
    mark(0, ~known)
    reading = pc.is_in(kind, value_set=pa.array(["daily_freeze", "interval"])).to_numpy(
        zero_copy_only=False)
    total = records["register_kwh"]
    mark(1, reading & pc.is_null(total).to_numpy(zero_copy_only=False))
    registers = [total, *(records[name] for name in _TOU)]
    negative = np.zeros(n, bool)
    finer = np.zeros(n, bool)
    for column in registers:
        values = np.asarray(column.fill_null(0.0).to_numpy(), dtype=np.float64)
        negative |= values < 0
        finer |= np.abs(values * 100 - np.rint(values * 100)) > 1e-6 * np.maximum(
            1.0, np.abs(values))
    mark(2, reading & negative)
    mark(3, reading & finer)
    has_tou = np.zeros(n, bool)
    tou_units = np.zeros(n, np.int64)
    for name in _TOU:
        column = records[name]
        has_tou |= pc.is_valid(column).to_numpy(zero_copy_only=False)
        tou_units += to_units(column)
    mark(4, reading & has_tou & (tou_units != to_units(total)))
    amount = records["amount_fen"].fill_null(0).to_numpy()
    mark(5, pc.equal(kind, "payment").to_numpy(zero_copy_only=False) & (amount <= 0))
    event_ok = pc.is_in(records["event"], value_set=pa.array(METER_EVENTS)).to_numpy(
        zero_copy_only=False)
    mark(6, pc.equal(kind, "event").to_numpy(zero_copy_only=False) & ~event_ok)
    return rule


def _rejects(records: pa.Table, rule: np.ndarray, batch: FeeBatch) -> pa.Table:
    names = np.array(RULES, dtype=object)[rule]
    details = [
        f"{name}: {kind} record of account {account}"
        for name, kind, account in zip(names.tolist(), records["kind"].to_pylist(),
                                       records["account_id"].to_pylist(), strict=True)]
    return pa.table({
        "record_id": records["record_id"],
        "account_id": records["account_id"],
        "rule": pa.array(names.tolist(), pa.string()),
        "detail": pa.array(details, pa.string()),
        "run_date": pa.array([batch.run_date] * records.num_rows, pa.date32()),
    }, schema=FEE_REJECTS)


def _newest_per_account(freeze: pa.Table) -> pa.Table:
    if not freeze.num_rows:
        return freeze
    account = freeze["account_id"].to_numpy()
    measured = freeze["measured_at"].cast(pa.int64()).to_numpy()
    order = np.lexsort((-measured, account))
    sorted_account = account[order]
    first = np.r_[True, sorted_account[1:] != sorted_account[:-1]]
    return freeze.take(pa.array(order[first]))
