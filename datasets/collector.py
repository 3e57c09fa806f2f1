"""A seeded simulated collector: what prepaid meters deliver to the collection database.

``Collector(customers, seed, start)`` holds every meter's registers; ``collect(date)``
returns that date's feed batches (``COLLECTED`` rows) and moves the meters on one day. Each
collection date brings, per active account, the daily freeze reading taken at 00:00 (the
registers at the end of the day before), plus a few interval readings, meter events and
payments. Realistic dirt, at the rates of ``CollectorRates``: freeze readings that never
arrive (gaps), that arrive a day late (out of order: after a newer one), records sent twice
(the same ``record_id`` in a later batch), and malformed records (a negative register, TOU
registers that do not add up, a payment of zero, an unknown account). The batches of a date
are shuffled a little so that arrival order is not measurement order.

Every draw comes from ``numpy.random.default_rng([seed, ordinal of the date])``, so a date's
batches depend only on the seed, the customers and the dates collected before it.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datasets.generator import TARIFF_MIX
from datasets.schemas import COLLECTED

__all__ = ["TOU_REGISTERS", "Collector", "CollectorRates", "opening_balances"]

# Which TOU registers a tariff's meters keep (others: total register only).
TOU_REGISTERS: dict[str, tuple[str, ...]] = {
    "cn-zj-residential-tou": ("peak", "valley"),
    "cn-bj-commercial-tou": ("critical", "peak", "flat", "valley"),
    "cn-bj-industrial-two-part": ("peak", "flat", "valley"),
}
_PERIODS = ("critical", "peak", "flat", "valley")
_KINDS = ("residential", "commercial", "industrial")
# Typical kWh a day by customer kind (the generator's monthly levels / 30).
_DAILY_KWH = np.array([6.0, 83.0, 5_000.0])
_SIGMA = np.array([0.55, 0.7, 0.8])
_BAD_ACCOUNT = -1  # the malformed 'unknown account' records carry ids beyond every real one


@dataclass(frozen=True)
class CollectorRates:
    """Shares of records (or of accounts per day) with each kind of dirt or extra."""

    gap: float = 0.004  # an account's freeze reading never arrives
    late: float = 0.004  # it arrives with the next date's feed
    duplicate: float = 0.01  # a record is sent again in a later batch
    malformed: float = 0.0005
    payment: float = 0.02  # accounts paying on a given day
    event: float = 0.001
    tamper: float = 0.0002
    interval: float = 0.02  # accounts whose meters also send 6-hourly interval readings
    batches: int = 4  # feed batches per collection date


def opening_balances(account_ids: np.ndarray, kinds: np.ndarray, seed: int) -> np.ndarray:
    """Each account's prepaid balance when fee control starts, int64 fen (seeded)."""
    rng = np.random.default_rng([seed, 0])
    days = rng.uniform(-8.0, 40.0, size=len(account_ids))  # days of credit, some overdrawn
    kind = _kind_index(kinds)
    typical_fen = _DAILY_KWH[kind] * 60.0  # ~0.6 CNY a kWh
    return np.rint(days * typical_fen).astype(np.int64)


def _set(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), COLLECTED.field(name), values)


def _kind_index(kinds: np.ndarray) -> np.ndarray:
    index = np.zeros(len(kinds), np.int64)
    for i, kind in enumerate(_KINDS):
        index[kinds == kind] = i
    return index


class Collector:
    """The meters of ``customers`` (``account_id, customer_kind, tariff_code, active``)."""

    def __init__(self, customers: pa.Table, seed: int, start: dt.date,
                 rates: CollectorRates = CollectorRates()) -> None:
        active = customers.filter(pc.field("active"))
        self._ids = active["account_id"].to_numpy().astype(np.int64)
        self._codes = np.asarray(active["tariff_code"].to_pylist(), dtype=object)
        kinds = np.asarray(active["customer_kind"].to_pylist(), dtype=object)
        self._kind = _kind_index(kinds)
        self._seed = seed
        self._rates = rates
        self._next = start
        n = len(self._ids)
        rng = np.random.default_rng([seed, 1])
        self._level = _DAILY_KWH[self._kind] * np.exp(_SIGMA[self._kind]
                                                      * rng.standard_normal(n))
        # Registers in integer 0.01 kWh, per TOU period (column 0..3) of _PERIODS.
        self._registers = np.zeros((n, 4), dtype=np.int64)
        self._registers[:, 2] = rng.integers(0, 5_000_000, size=n)
        self._tou = np.zeros((n, 4), dtype=bool)
        for code, periods in TOU_REGISTERS.items():
            rows = self._codes == code
            for period in periods:
                self._tou[rows, _PERIODS.index(period)] = True
        self._is_tou = self._tou.any(axis=1)
        # A non-TOU meter counts everything on one register (column 2, 'flat').
        self._registers[self._is_tou, 2] *= self._tou[self._is_tou, 2]
        self._late: pa.Table = COLLECTED.empty_table()
        self._batch = 0
        self._interval = rng.random(n) < rates.interval

    @property
    def account_ids(self) -> np.ndarray:
        return self._ids

    def registers_kwh(self) -> np.ndarray:
        """The meters' total registers now, kWh (for tests)."""
        return self._registers.sum(axis=1) / 100

    def collect(self, date: dt.date) -> list[pa.Table]:
        """The feed batches of collection date ``date``; dates must be collected in order."""
        if date != self._next:
            raise ValueError(f"collector: next date is {self._next}, not {date}")
        self._next = date + dt.timedelta(days=1)
        rng = np.random.default_rng([self._seed, date.toordinal()])
        n = len(self._ids)
        midnight = dt.datetime.combine(date, dt.time())
        # The day before's consumption moves the registers; the freeze at 00:00 reads them.
        energy = np.maximum(0, np.rint(self._level * np.exp(0.25 * rng.standard_normal(n))
                                       * 100)).astype(np.int64)
        self._advance(energy, rng)
        freeze = self._freeze(midnight, rng)
        parts = [self._late, freeze["now"], self._intervals(midnight, rng),
                 self._events(midnight, rng), self._payments(midnight, rng),
                 self._malformed(freeze["now"], rng)]
        self._late = freeze["late"]
        records = pa.concat_tables([p for p in parts if p.num_rows] or
                                   [COLLECTED.empty_table()])
        # Received times decide the batches; a little shuffling makes arrival disordered.
        received = records["received_at"].cast(pa.int64()).to_numpy()
        jitter = rng.integers(-1800, 1800, size=records.num_rows)
        order = np.argsort(received + jitter, kind="stable")
        records = records.take(pa.array(order))
        records = self._duplicate(records, rng)
        return self._batches(records)

    # ---------------------------------------------------------------- the day's records
    def _advance(self, energy: np.ndarray, rng: np.random.Generator) -> None:
        shares = rng.dirichlet(np.ones(4), size=len(energy)) * self._tou
        totals = shares.sum(axis=1, keepdims=True)
        shares = np.where(totals > 0, shares / np.where(totals > 0, totals, 1), 0.0)
        split = np.floor(shares * energy[:, None]).astype(np.int64)
        rest = energy - split.sum(axis=1)
        # What the floors left goes to the first register the meter has (flat for others).
        first = np.where(self._is_tou, np.argmax(self._tou, axis=1), 2)
        split[np.arange(len(energy)), first] += rest
        self._registers += split

    def _register_columns(self, rows: np.ndarray) -> dict[str, pa.Array]:
        regs = self._registers[rows]
        tou = self._tou[rows]
        columns = {"register_kwh": pa.array(regs.sum(axis=1) / 100, pa.float64())}
        for i, period in enumerate(_PERIODS):
            columns[f"{period}_kwh"] = pa.array(regs[:, i] / 100, pa.float64(),
                                                mask=~tou[:, i])
        return columns

    def _table(self, kind: str, rows: np.ndarray, ids: np.ndarray, measured: np.ndarray,
               received: np.ndarray, record_ids: list[str], **columns: pa.Array) -> pa.Table:
        n = len(ids)
        data = {
            "record_id": pa.array(record_ids, pa.string()),
            "account_id": pa.array(ids, pa.int64()),
            "kind": pa.array([kind] * n, pa.string()),
            "measured_at": pa.array(measured.astype("datetime64[s]"), pa.timestamp("s")),
            "received_at": pa.array(received.astype("datetime64[s]"), pa.timestamp("s")),
            "batch": pa.array(np.zeros(n, np.int64)),
        }
        data.update(columns)
        return pa.table({f.name: data.get(f.name, pa.nulls(n, f.type)) for f in COLLECTED},
                        schema=COLLECTED)

    def _freeze(self, midnight: dt.datetime, rng: np.random.Generator) -> dict[str, pa.Table]:
        n = len(self._ids)
        draw = rng.random(n)
        gap, late = draw < self._rates.gap, (draw >= self._rates.gap) & (
            draw < self._rates.gap + self._rates.late)
        rows = np.flatnonzero(~gap)
        at = np.datetime64(midnight, "s")
        delay = rng.integers(60, 6 * 3600, size=len(rows)).astype("timedelta64[s]")
        delay = np.where(late[rows], delay + np.timedelta64(86_400, "s"), delay)
        stamp = midnight.strftime("%Y%m%d")
        ids = self._ids[rows]
        table = self._table("daily_freeze", rows, ids, np.full(len(rows), at), at + delay,
                            [f"F{stamp}-{a}" for a in ids.tolist()],
                            **self._register_columns(rows))
        is_late = pa.array(late[rows])
        return {"now": table.filter(pc.invert(is_late)), "late": table.filter(is_late)}

    def _intervals(self, midnight: dt.datetime, rng: np.random.Generator) -> pa.Table:
        rows = np.flatnonzero(self._interval)
        tables = []
        for hour in (6, 12, 18):
            at = np.datetime64(midnight - dt.timedelta(hours=24 - hour), "s")
            ids = self._ids[rows]
            stamp = (midnight - dt.timedelta(hours=24 - hour)).strftime("%Y%m%d%H")
            tables.append(self._table(
                "interval", rows, ids, np.full(len(rows), at),
                np.full(len(rows), at) + rng.integers(30, 900, len(rows)).astype(
                    "timedelta64[s]"),
                [f"I{stamp}-{a}" for a in ids.tolist()], **self._register_columns(rows)))
        return pa.concat_tables(tables)

    def _events(self, midnight: dt.datetime, rng: np.random.Generator) -> pa.Table:
        n = len(self._ids)
        draw = rng.random(n)
        rows = np.flatnonzero(draw < self._rates.event + self._rates.tamper)
        names = np.where(draw[rows] < self._rates.tamper, "tamper",
                         rng.choice(["power_off", "power_on", "cover_open"], size=len(rows)))
        at = (np.datetime64(midnight, "s") - np.timedelta64(86_400, "s")
              + rng.integers(0, 86_400, len(rows)).astype("timedelta64[s]"))
        ids = self._ids[rows]
        return self._table("event", rows, ids, at, at + np.timedelta64(5, "s"),
                           [f"E{t.astype(np.int64)}-{a}" for t, a in zip(at, ids.tolist(),
                                                                         strict=True)],
                           event=pa.array(names.tolist(), pa.string()))

    def _payments(self, midnight: dt.datetime, rng: np.random.Generator) -> pa.Table:
        n = len(self._ids)
        rows = np.flatnonzero(rng.random(n) < self._rates.payment)
        amount = (np.rint(self._level[rows] * 60 * rng.uniform(10, 60, len(rows)) / 1000)
                  * 1000).astype(np.int64) + 5_000
        at = (np.datetime64(midnight, "s") - np.timedelta64(86_400, "s")
              + rng.integers(0, 86_400, len(rows)).astype("timedelta64[s]"))
        ids = self._ids[rows]
        stamp = midnight.strftime("%Y%m%d")
        return self._table("payment", rows, ids, at, at + np.timedelta64(2, "s"),
                           [f"P{stamp}-{i}-{a}" for i, a in enumerate(ids.tolist())],
                           amount_fen=pa.array(amount, pa.int64()))

    def _malformed(self, freeze: pa.Table, rng: np.random.Generator) -> pa.Table:
        count = int(rng.binomial(max(freeze.num_rows, 0), self._rates.malformed))
        if not count:
            return COLLECTED.empty_table()
        picked = freeze.take(pa.array(rng.choice(freeze.num_rows, count, replace=False)))
        kinds = rng.integers(0, 3, count)
        ids = picked["account_id"].to_numpy().copy()
        register = picked["register_kwh"].to_numpy().copy()
        ids[kinds == 0] = _BAD_ACCOUNT
        register[kinds == 1] = -register[kinds == 1] - 1
        record_ids = [f"X{i}-{r}" for i, r in enumerate(picked["record_id"].to_pylist())]
        columns = {name: picked[name] for name in picked.column_names}
        columns.update(record_id=pa.array(record_ids), account_id=pa.array(ids, pa.int64()),
                       register_kwh=pa.array(register, pa.float64()))
        table = pa.table(columns, schema=COLLECTED)
        # kinds == 2: a payment of zero fen.
        zero = pa.array(kinds == 2)
        payments = table.filter(zero)
        payments = _set(payments, "kind", pa.array(["payment"] * payments.num_rows, pa.string()))
        payments = _set(payments, "amount_fen", pa.array(np.zeros(payments.num_rows, np.int64)))
        return pa.concat_tables([table.filter(pc.invert(zero)), payments])

    def _duplicate(self, records: pa.Table, rng: np.random.Generator) -> pa.Table:
        again = np.flatnonzero(rng.random(records.num_rows) < self._rates.duplicate)
        # A resend comes later: the duplicates go after the originals, in arrival order.
        return pa.concat_tables([records, records.take(pa.array(again))])

    def _batches(self, records: pa.Table) -> list[pa.Table]:
        count = max(1, self._rates.batches)
        edges = np.linspace(0, records.num_rows, count + 1).astype(np.int64)
        batches = []
        for low, high in itertools.pairwise(edges):
            self._batch += 1
            part = records.slice(low, high - low)
            part = _set(part, "batch", pa.array(np.full(part.num_rows, self._batch, np.int64)))
            batches.append(part)
        return batches


# Tariffs whose meters keep TOU registers are exactly the generator's TOU and two-part ones.
assert set(TOU_REGISTERS) == {code for _, code, _ in TARIFF_MIX
                              if "tou" in code or "two-part" in code}
