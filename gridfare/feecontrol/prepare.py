"""Stage 2, data preparation: join the readings with customer files, balances and last state.

Payments seen in the feed are posted first (key ``pay:<record_id>``, so a resend or a
rerun is applied once), so the balances read next include them: a payment and the reading
of the same batch are decided together, and a disconnected account that paid is reconnected
in the same cycle. The accounts decided are those with a new reading, a payment, a tamper
event, or a disconnect pending from an earlier run (it may go out once the window opens).
Records of accounts missing from the customer files are rejected (``unknown_account``).

Out: ``accounts``, one row per decided account sorted by id, energy in int64 0.01 kWh.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datasets.schemas import FEE_REJECTS
from gridfare.feecontrol.batch import Context, FeeBatch, to_units
from gridfare.feecontrol.ports import OPERATIONS, Status
from gridfare.feecontrol.strategy import State

__all__ = ["REGISTERS", "lookup", "run", "state_needed"]

NAME = "prepare"
REGISTERS = ("critical", "peak", "flat", "valley")
_NONE = -1  # an absent timestamp or date in the working table


def lookup(sorted_ids: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position in ``sorted_ids``, found) for each of ``ids``."""
    if not len(sorted_ids):
        return np.zeros(len(ids), np.int64), np.zeros(len(ids), bool)
    position = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
    return position, sorted_ids[position] == ids


def state_needed(account_ids: np.ndarray, pending: np.ndarray) -> np.ndarray:
    """The accounts whose last state a batch can read, given the accounts its records name
    (``account_ids``) and those pending a disconnect: ``run`` decides no other, so a run
    given only these states decides as one given every account's."""
    named = np.asarray(account_ids)
    return np.union1d(named, np.asarray(pending, dtype=np.int64)).astype(np.int64)


def run(batch: FeeBatch, context: Context) -> FeeBatch:
    customers = context.snapshot.customers
    order = np.argsort(customers["account_id"].to_numpy(), kind="stable")
    customers = customers.take(pa.array(order))
    customer_ids = customers["account_id"].to_numpy()
    rejects = [batch.table("rejects")]
    tables = {}
    for name in ("freeze", "payments", "events"):
        table = batch.table(name)
        _, known = lookup(customer_ids, table["account_id"].to_numpy())
        rejects.append(_unknown(table.filter(pa.array(~known)), batch))
        tables[name] = table.filter(pa.array(known))
    freeze, payments, events = tables["freeze"], tables["payments"], tables["events"]

    paid = _post_payments(payments, context)
    states = context.states
    state_ids = states["account_id"].to_numpy()
    pending = state_ids[pc.equal(states["state"], State.DISCONNECT_PENDING.value)
                        .to_numpy(zero_copy_only=False)]
    pending = pending[lookup(customer_ids, pending)[1]]
    tampered = events.filter(pc.equal(events["event"], "tamper"))["account_id"].to_numpy()
    ids = np.unique(np.concatenate([freeze["account_id"].to_numpy(),
                                    payments["account_id"].to_numpy(), tampered, pending
                                    ]).astype(np.int64))
    balances = context.accounts.balances(pa.array(ids, pa.int64()))
    columns = _columns(ids, customers, customer_ids, balances, states, freeze)
    columns["tamper"] = np.isin(ids, tampered)
    pay_ids, pay_fen = paid
    position, found = lookup(pay_ids, ids)
    columns["paid_fen"] = np.where(found, pay_fen[position] if len(pay_fen) else 0, 0)
    accounts = pa.table(columns)
    counts = {"decided": len(ids), "unknown_account": sum(t.num_rows for t in rejects[1:]),
              "payments_posted": len(pay_ids)}
    return batch.with_tables(counts, accounts=accounts,
                             rejects=pa.concat_tables(rejects).cast(FEE_REJECTS))


def _post_payments(payments: pa.Table, context: Context) -> tuple[np.ndarray, np.ndarray]:
    """Post the batch's payments; (account ids, fen applied) summed per account."""
    if not payments.num_rows:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    keys = pc.binary_join_element_wise("pay", payments["record_id"], ":")
    operations = pa.table({
        "idempotency_key": keys, "account_id": payments["account_id"],
        "kind": pa.array(["payment"] * payments.num_rows, pa.string()),
        "amount_fen": payments["amount_fen"]}).cast(OPERATIONS)
    answers = context.accounts.post(operations)
    applied = pc.equal(answers["status"], Status.APPLIED.value).to_numpy(zero_copy_only=False)
    ids = payments["account_id"].to_numpy()[applied]
    fen = payments["amount_fen"].to_numpy()[applied]
    unique, inverse = np.unique(ids, return_inverse=True)
    return unique, np.bincount(inverse, weights=fen, minlength=len(unique)).astype(np.int64)


def _columns(ids: np.ndarray, customers: pa.Table, customer_ids: np.ndarray,
             balances: pa.Table, states: pa.Table, freeze: pa.Table) -> dict[str, np.ndarray]:
    n = len(ids)
    position, _ = lookup(customer_ids, ids)
    columns: dict[str, np.ndarray] = {
        "account_id": ids,
        "customer_kind": customers["customer_kind"].take(pa.array(position)).to_numpy(
            zero_copy_only=False) if n else np.empty(0, object),
        "tariff_code": customers["tariff_code"].take(pa.array(position)).to_numpy(
            zero_copy_only=False) if n else np.empty(0, object),
    }
    balance_order = np.argsort(balances["account_id"].to_numpy(), kind="stable")
    balance_ids = balances["account_id"].to_numpy()[balance_order]
    balance_fen = balances["balance_fen"].to_numpy()[balance_order]
    position, found = lookup(balance_ids, ids)
    columns["has_balance"] = found
    columns["balance_fen"] = np.where(found, balance_fen[position] if n and len(balance_fen)
                                      else 0, 0).astype(np.int64)

    state_order = np.argsort(states["account_id"].to_numpy(), kind="stable")
    states = states.take(pa.array(state_order))
    position, found = lookup(states["account_id"].to_numpy(), ids)
    columns["has_state"] = found
    take = pa.array(position)

    def state_column(name: str, convert) -> np.ndarray:
        values = convert(states[name].take(take)) if states.num_rows and n else np.zeros(
            n, np.int64)
        return np.where(found, values, _NONE if name in ("settled_at",) else 0)

    columns["settled_at"] = state_column("settled_at", _seconds)
    columns["settled_units"] = state_column("register_kwh", to_units)
    for register in REGISTERS:
        columns[f"settled_{register}"] = state_column(f"{register}_kwh", to_units)
        columns[f"month_{register}"] = state_column(f"month_{register}_kwh", to_units)
    state_tou = np.zeros(n, bool)
    for register in REGISTERS:
        if states.num_rows and n:
            state_tou |= pc.is_valid(states[f"{register}_kwh"].take(take)).to_numpy(
                zero_copy_only=False)
    columns["state_tou"] = found & state_tou
    columns["month_units"] = state_column("month_kwh", to_units)
    columns["year_units"] = state_column("year_kwh", to_units)
    if states.num_rows and n:
        state = states["state"].take(take).to_numpy(zero_copy_only=False)
        columns["state"] = np.where(found, state, State.NORMAL.value).astype(object)
        below = _days(states["below_since"].take(take))
        notice = _seconds(states["notice_at"].take(take))
        columns["below_since"] = np.where(found, below, _NONE)
        columns["notice_at"] = np.where(found, notice, _NONE)
    else:
        columns["state"] = np.full(n, State.NORMAL.value, dtype=object)
        columns["below_since"] = np.full(n, _NONE, np.int64)
        columns["notice_at"] = np.full(n, _NONE, np.int64)

    freeze = freeze.take(pa.array(np.argsort(freeze["account_id"].to_numpy(), kind="stable")))
    position, found = lookup(freeze["account_id"].to_numpy(), ids)
    take = pa.array(position)
    has = found & (freeze.num_rows > 0)
    columns["has_reading"] = has
    if freeze.num_rows and n:
        columns["measured_at"] = np.where(has, _seconds(freeze["measured_at"].take(take)),
                                          _NONE)
        columns["new_units"] = np.where(has, to_units(freeze["register_kwh"].take(take)), 0)
        tou = np.zeros(n, bool)
        for register in REGISTERS:
            column = freeze[f"{register}_kwh"].take(take)
            tou |= pc.is_valid(column).to_numpy(zero_copy_only=False)
            columns[f"new_{register}"] = np.where(has, to_units(column), 0)
        columns["tou_registers"] = has & tou
    else:
        columns["measured_at"] = np.full(n, _NONE, np.int64)
        columns["new_units"] = np.zeros(n, np.int64)
        for register in REGISTERS:
            columns[f"new_{register}"] = np.zeros(n, np.int64)
        columns["tou_registers"] = np.zeros(n, bool)
    return columns


def _seconds(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    values = column.cast(pa.int64())
    return np.asarray(values.fill_null(_NONE).to_numpy(), dtype=np.int64)


def _days(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    values = column.cast(pa.int32()).cast(pa.int64())
    return np.asarray(values.fill_null(_NONE).to_numpy(), dtype=np.int64)


def _unknown(records: pa.Table, batch: FeeBatch) -> pa.Table:
    n = records.num_rows
    details = [f"unknown_account: account {a} is not in the customer files"
               for a in records["account_id"].to_pylist()]
    return pa.table({
        "record_id": records["record_id"], "account_id": records["account_id"],
        "rule": pa.array(["unknown_account"] * n, pa.string()),
        "detail": pa.array(details, pa.string()),
        "run_date": pa.array([batch.run_date] * n, pa.date32())}, schema=FEE_REJECTS)
