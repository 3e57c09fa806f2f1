"""One train-date's seat inventory: segment bitmaps, sell, refund, remaining, replay.

Each seat's occupancy is one uint64: bit ``i`` is set while leg ``i`` (``stations[i]`` ->
``stations[i + 1]``) is sold. A trip ``from -> to`` needs legs ``from .. to - 1``; its mask is
``seg``, and a seat is free for it when ``mask & seg == 0``, so one seat can be sold several
times on disjoint segments. A class is one numpy uint64 array, so the free-seat search and
``remaining`` are a single vectorized comparison.

Rules of a sale:

- **Seat choice**: the lowest-numbered free seats of the class (deterministic; seat numbers
  are 1-based within the class).
- **All or nothing**: ``count`` (1..``MAX_PER_ORDER``, the 12306 limit of 5) seats or none.
- **Sold out is an answer, not an error**: ``SoldOut`` carries how many seats remain. A bad
  request (unknown station or class, ``from`` not before ``to``, bad count) raises
  ``InvalidInput`` naming the train-date and the rule.
- **Idempotent**: the same ``request_id`` with the same trip, class and count returns the
  same seats (``Sale.record`` is None: nothing new to log); with different parameters it
  raises ``InvalidInput``. A sold-out answer is not remembered, so a retry may succeed.
  A refunded request_id is spent: selling on it again raises ``InvalidInput``.
- ``refund(request_id)`` frees exactly that order's legs; refunding again returns the same
  ``Refund`` with ``record=None``; an unknown request_id raises ``UnknownOrder``.

Every change goes through ``apply(record)``: ``sell`` and ``refund`` build the log record and
apply it, and a restart replays the same records, so there is one implementation. ``seq``
counts the train-date's changes; a record at or below it is already in (replay is
idempotent), a gap or a record that would double-book a seat-leg raises ``WalCorrupt``.
The state is answered in memory at once; the caller acknowledges a sale only after its
record is flushed to the log (see ``wal.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa

from gridfare.errors import InvalidInput, SeatError, UnknownOrder, WalCorrupt
from gridfare.seats.allocate import Job, allocate, leg_bits, legs_of, seat_bits
from gridfare.seats.answers import Refused, SaleAnswers, Sold, SoldOut
from gridfare.seats.names import check_text
from gridfare.seats.snapshot import MOVED, ORDERS, SEATS, TRAINS, Snapshot
from gridfare.seats.train import TrainDate
from gridfare.seats.wal import Change, WalRecord, change_of

__all__ = [
    "MAX_PER_ORDER",
    "Inventory",
    "Order",
    "Refund",
    "Sale",
    "SalePlan",
    "SoldOut",
    "restore_inventories",
    "segment_mask",
]

MAX_PER_ORDER = 5
MAX_REQUEST_ID = 128
_NO_ORDERS = ORDERS.empty_table()
_NO_MOVES = MOVED.empty_table()


def segment_mask(first: int, last: int) -> int:
    """The legs of a trip from station index ``first`` to ``last`` (first < last)."""
    return (1 << last) - (1 << first)


@dataclass(frozen=True)
class Order:
    request_id: str
    cls: str
    from_station: str
    to_station: str
    seats: tuple[int, ...]
    legs: int
    refunded: bool = False


@dataclass(frozen=True)
class Sale:
    key: str
    request_id: str
    cls: str
    from_station: str
    to_station: str
    seats: tuple[int, ...]
    legs: int
    record: WalRecord | None  # the record to log; None when this repeats a known request

    @property
    def repeat(self) -> bool:
        return self.record is None


@dataclass
class SalePlan:
    """A checked batch of new orders on one train-date (``Inventory.plan_sales``): the
    refused ones by row, and per class its orders ``(row, legs, count)`` and their
    allocation job."""

    refused: dict[int, Refused] = field(default_factory=dict)
    orders: list[list[tuple[int, int, int]]] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)


@dataclass(frozen=True)
class Refund:
    key: str
    request_id: str
    cls: str
    seats: tuple[int, ...]
    legs: int
    record: WalRecord | None  # None when the order was already refunded


class Inventory:
    """The occupancy and orders of one train-date."""

    def __init__(self, train: TrainDate) -> None:
        self.train = train
        self.seq = 0
        self._masks = {cls: np.zeros(n, dtype=np.uint64) for cls, n in train.classes}
        # The same occupancy per leg (``allocate.leg_bits``), built at a class's first batch
        # of sales and kept in step by every change after it (``apply``, ``allocate``).
        self._bits: dict[str, list[int]] = {}
        self._orders: dict[str, Order] = {}
        self._index = {s: i for i, s in enumerate(train.stations)}

    @property
    def key(self) -> str:
        return self.train.key

    @property
    def orders(self) -> Mapping[str, Order]:
        return dict(self._orders)

    def masks(self, cls: str) -> np.ndarray:
        """A read-only view of a class's occupancy (index = seat number - 1)."""
        view = self._class(cls).view()
        view.flags.writeable = False
        return view

    def create_record(self) -> WalRecord:
        return WalRecord(op="create", key=self.key, seq=0, train=self.train)

    def install_record(self) -> WalRecord:
        """The whole train-date as one log record (a migration copy, see ``wal.py``)."""
        rows = tuple(
            (o.request_id, o.cls, o.from_station, o.to_station, o.seats, o.legs, o.refunded)
            for o in (self._orders[r] for r in sorted(self._orders))
        )
        return WalRecord(op="install", key=self.key, seq=self.seq, train=self.train, orders=rows)

    @classmethod
    def from_install(cls, record: WalRecord) -> Inventory:
        """Rebuild a train-date from an ``install`` record (occupancy from the open orders)."""
        if record.op != "install" or record.train is None or record.train.key != record.key:
            raise WalCorrupt(f"record lsn {record.lsn}: not an install record of {record.key}")
        inventory = cls(record.train)
        where = f"train-date {record.key}: install (lsn {record.lsn})"
        for rid, cls_, first, last, seats, legs, refunded in record.orders:
            order = Order(rid, cls_, first, last, seats, legs, refunded)
            if rid in inventory._orders:
                raise WalCorrupt(f"{where}: order {rid!r} listed twice")
            probe = WalRecord(
                op="sell", key=record.key, seq=0, request_id=rid, cls=cls_, seats=seats,
                legs=legs, from_station=first, to_station=last,
            )  # fmt: skip
            masks, idx = inventory._record_seats(probe, f"{where}: order {rid!r}")
            if not refunded:
                if (masks[idx] & np.uint64(legs)).any():
                    raise WalCorrupt(f"{where}: order {rid!r} overlaps another open order")
                masks[idx] |= np.uint64(legs)
            inventory._orders[rid] = order
        inventory.seq = record.seq
        return inventory

    # ---- requests ---------------------------------------------------------------------

    def sell(
        self, from_station: str, to_station: str, cls: str, count: int, request_id: str
    ) -> Sale | SoldOut:
        _check_request_id(self.key, request_id)
        first, last = self._segment(from_station, to_station)
        masks = self._class(cls)
        _check_count(self.key, count)
        legs = segment_mask(first, last)
        known = self._orders.get(request_id)
        if known is not None:
            return self._repeat(known, from_station, to_station, cls, int(count))
        free = np.flatnonzero((masks & np.uint64(legs)) == 0)
        if free.size < count:
            return SoldOut(self.key, cls, from_station, to_station, int(count), int(free.size))
        seats = tuple((free[:count] + 1).tolist())
        record = WalRecord(
            op="sell",
            key=self.key,
            seq=self.seq + 1,
            request_id=request_id,
            cls=cls,
            seats=seats,
            legs=legs,
            from_station=from_station,
            to_station=to_station,
        )
        self.apply(record)
        return Sale(self.key, request_id, cls, from_station, to_station, seats, legs, record)

    def sell_many(
        self, rows: list[tuple[str, str, str, int, str]]
    ) -> tuple[list[Sold | SoldOut | Refused], list[Change]]:
        """Sell a batch of ``(from, to, cls, count, request_id)`` in order: the answers
        (those ``sell`` would give one after another; a bad request is ``Refused`` alone)
        and the sales to log, in ``seq`` order. New orders are allocated together
        (``allocate``); a request_id already known, or repeated in the batch, goes through
        ``sell`` at its turn, after the new orders before it."""
        plan = self.plan_sales(rows)
        if plan is not None:
            return self.finish_sales(rows, plan, allocate(plan.jobs))
        answers: list[Sold | SoldOut | Refused | None] = [None] * len(rows)
        changes: list[Change] = []
        start = 0
        seen: set[str] = set()
        for i, row in enumerate(rows):
            request_id = row[4]
            if not isinstance(request_id, str):  # refused by its check, at its turn
                continue
            if request_id not in self._orders and request_id not in seen:
                seen.add(request_id)
                continue
            self._sell_new(rows, start, i, answers, changes)  # the new orders before it
            try:
                result = self.sell(*row)
            except (InvalidInput, SeatError) as exc:
                answers[i] = Refused(exc)
            else:
                if isinstance(result, Sale):
                    answers[i] = _sold(result)
                    if result.record is not None:
                        changes.append(change_of(result.record))
                else:
                    answers[i] = result
            start, seen = i + 1, set()
        self._sell_new(rows, start, len(rows), answers, changes)
        return answers, changes

    def _sell_new(self, rows, start: int, end: int, answers: list, changes: list) -> None:
        """``rows[start:end]`` (new, distinct request_ids) sold together into ``answers``."""
        if start < end:
            part = rows[start:end]
            plan = self.plan_sales(part)
            got, logged = self.finish_sales(part, plan, allocate(plan.jobs))
            answers[start:end] = got
            changes += logged

    def plan_sales(self, rows: list[tuple]) -> SalePlan | None:
        """Check a batch of new orders (``sell_many``'s rows): a bad one is answered
        ``Refused``, the rest become one allocation job per class (``allocate``, which
        can take the jobs of many train-dates at once). None if a request_id is known
        here or repeated in the batch: then ``sell_many`` sells it at its turn."""
        plan = SalePlan()
        seen: set[str] = set()
        by_class: dict[str, list] = {}
        for i, (from_station, to_station, cls, count, request_id) in enumerate(rows):
            try:
                _check_request_id(self.key, request_id)
                if request_id in self._orders or request_id in seen:
                    return None
                first, last = self._segment(from_station, to_station)
                self._class(cls)
                _check_count(self.key, count)
            except (InvalidInput, SeatError) as exc:
                plan.refused[i] = Refused(exc)
                continue
            seen.add(request_id)
            by_class.setdefault(cls, []).append((i, (1 << last) - (1 << first), int(count)))
        for cls, orders in by_class.items():
            plan.orders.append(orders)
            plan.jobs.append(Job(self.key, self._masks[cls], self._leg_bits(cls),
                                 [o[1] for o in orders], [o[2] for o in orders]))
        return plan

    def finish_sales(self, rows: list[tuple], plan: SalePlan, results: list[list]
                     ) -> tuple[list[Sold | SoldOut | Refused], list[Change]]:
        """Record what ``allocate`` gave ``plan``'s jobs: the answers (typed) and the sales
        to log, numbered (``seq``) in the batch's order as one-by-one sales are."""
        answers = SaleAnswers(len(rows), rows, keys=self.key, first=0)
        changes = self.finish_into(rows, plan, results, answers, range(len(rows)))
        return list(answers), changes

    def finish_into(self, rows: list[tuple], plan: SalePlan, results: list[list],
                    answers: SaleAnswers, at: Sequence[int]) -> list[Change]:
        """``finish_sales`` into slots of a batch's columnar answers: row ``j``'s answer
        goes to slot ``at[j]``. Returns the sales to log."""
        for j, refused in plan.refused.items():
            answers[at[j]] = refused
        sold: list[tuple[int, int, tuple[int, ...]]] = []
        for orders, got in zip(plan.orders, results, strict=True):
            for (i, legs, _), seats in zip(orders, got, strict=True):
                if isinstance(seats, tuple):
                    sold.append((i, legs, seats))
                else:
                    answers.sold_out(at[i], seats)
        if len(plan.orders) > 1:
            sold.sort()
        changes: list[Change] = []
        seq, key, orders_ = self.seq, self.key, self._orders
        for i, legs, seats in sold:
            from_station, to_station, cls, _, rid = rows[i]
            seq += 1
            orders_[rid] = Order(rid, cls, from_station, to_station, seats, legs)
            answers.sold(at[i], seats)
            changes.append(("sell", key, seq, rid, cls, seats, legs, from_station, to_station))
        self.seq = seq
        return changes

    def refund(self, request_id: str) -> Refund:
        _check_request_id(self.key, request_id)
        order = self._orders.get(request_id)
        if order is None:
            raise UnknownOrder(f"train-date {self.key}: no order with request_id {request_id!r}")
        if order.refunded:
            return Refund(self.key, request_id, order.cls, order.seats, order.legs, None)
        record = WalRecord(
            op="refund",
            key=self.key,
            seq=self.seq + 1,
            request_id=request_id,
            cls=order.cls,
            seats=order.seats,
            legs=order.legs,
            from_station=order.from_station,
            to_station=order.to_station,
        )
        self.apply(record)
        return Refund(self.key, request_id, order.cls, order.seats, order.legs, record)

    def remaining(self, from_station: str, to_station: str) -> dict[str, int]:
        """Free seats per class for the trip ``from -> to``."""
        first, last = self._segment(from_station, to_station)
        seg = np.uint64(segment_mask(first, last))
        return {cls: int(np.count_nonzero((m & seg) == 0)) for cls, m in self._masks.items()}

    def unsold(self) -> int:
        """Seats with no leg sold at all."""
        return sum(int(np.count_nonzero(m == 0)) for m in self._masks.values())

    # ---- replay -----------------------------------------------------------------------

    def apply(self, record: WalRecord) -> bool:
        """Apply a ``sell`` or ``refund`` record; False if it is already in (seq at or below
        ours). Raises ``WalCorrupt`` if it does not fit this state."""
        if record.key != self.key:
            raise WalCorrupt(f"record lsn {record.lsn} for {record.key} applied to {self.key}")
        if record.op not in ("sell", "refund"):
            raise WalCorrupt(f"train-date {self.key}: cannot apply a {record.op!r} record")
        if record.seq <= self.seq:
            return False
        where = f"train-date {self.key}: {record.op} seq {record.seq} (lsn {record.lsn})"
        if record.seq != self.seq + 1:
            raise WalCorrupt(f"{where}: expected seq {self.seq + 1}; a record is missing")
        masks, idx = self._record_seats(record, where)
        seg = np.uint64(record.legs)
        if record.op == "sell":
            if record.request_id in self._orders:
                raise WalCorrupt(f"{where}: request_id {record.request_id!r} was already sold")
            taken = (masks[idx] & seg) != 0
            if taken.any():
                seats = [record.seats[i] for i in np.flatnonzero(taken)]
                raise WalCorrupt(f"{where}: {record.cls} seats {seats} already sold on a leg")
            masks[idx] |= seg
            bits = self._bits.get(record.cls)
            if bits is not None:
                seats = seat_bits(record.seats)
                for leg in legs_of(record.legs):
                    bits[leg] |= seats
            self._orders[record.request_id] = Order(
                record.request_id,
                record.cls,
                record.from_station,
                record.to_station,
                record.seats,
                record.legs,
            )
        else:
            order = self._orders.get(record.request_id)
            if order is None or order.refunded:
                raise WalCorrupt(f"{where}: no open order {record.request_id!r} to refund")
            if (order.cls, order.seats, order.legs) != (record.cls, record.seats, record.legs):
                raise WalCorrupt(f"{where}: does not match order {record.request_id!r}")
            masks[idx] &= ~seg
            bits = self._bits.get(record.cls)
            if bits is not None:
                seats = seat_bits(record.seats)
                for leg in legs_of(record.legs):
                    bits[leg] &= ~seats
            self._orders[record.request_id] = replace(order, refunded=True)
        self.seq = record.seq
        return True

    def replay(self, records: Iterable[WalRecord]) -> int:
        """Apply this train-date's sell/refund records; returns how many were new."""
        return sum(
            self.apply(r) for r in records if r.key == self.key and r.op in ("sell", "refund")
        )

    # ---- snapshots --------------------------------------------------------------------

    def to_arrow(self) -> Snapshot:
        t = self.train
        key = self.key
        trains = pa.table(
            {
                "key": [key],
                "train_no": [t.train_no],
                "date": [t.date],
                "stations": [list(t.stations)],
                "classes": [[c for c, _ in t.classes]],
                "seat_counts": [[n for _, n in t.classes]],
                "through": [t.through],
                "service": [t.service],
                "seq": [self.seq],
            },
            schema=TRAINS,
        )
        n_seats = t.seats
        seats = pa.table(
            {
                # Repeated scalars, not Python lists of a string per seat: a checkpoint
                # copies millions of seats.
                "key": pa.repeat(pa.scalar(key, pa.string()), n_seats),
                "cls": pa.concat_arrays(
                    [pa.repeat(pa.scalar(c, pa.string()), n) for c, n in t.classes]),
                "seat": np.concatenate([np.arange(1, n + 1, dtype=np.int32) for _, n in t.classes]),
                "legs": np.concatenate([self._masks[c] for c, _ in t.classes]),
            },
            schema=SEATS,
        )
        ordered = [self._orders[r] for r in sorted(self._orders)]
        if not ordered:  # most train-dates in a checkpoint: tables are immutable, share one
            return Snapshot(trains, seats, _NO_ORDERS, _NO_MOVES)
        orders = pa.table(
            {
                "key": [key] * len(ordered),
                "request_id": [o.request_id for o in ordered],
                "cls": [o.cls for o in ordered],
                "from_station": [o.from_station for o in ordered],
                "to_station": [o.to_station for o in ordered],
                "seats": [list(o.seats) for o in ordered],
                "legs": pa.array([o.legs for o in ordered], pa.uint64()),
                "refunded": [o.refunded for o in ordered],
            },
            schema=ORDERS,
        )
        return Snapshot(trains, seats, orders, _NO_MOVES)

    @classmethod
    def from_arrow(cls, snapshot: Snapshot, key: str | None = None) -> Inventory:
        """Rebuild one train-date from a snapshot (``key`` may be omitted if it holds one)."""
        keys = snapshot.keys()
        if key is None:
            if len(keys) != 1:
                raise SeatError(f"snapshot holds {len(keys)} train-dates; name the key")
            key = keys[0]
        inventories = restore_inventories(snapshot, only=key)
        if key not in inventories:
            raise SeatError(f"snapshot does not hold train-date {key}")
        return inventories[key]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Inventory):
            return NotImplemented
        return (
            self.train == other.train
            and self.seq == other.seq
            and self._orders == other._orders
            and all(np.array_equal(m, other._masks[c]) for c, m in self._masks.items())
        )

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        return f"Inventory({self.key}, seq={self.seq}, orders={len(self._orders)})"

    # ---- helpers ----------------------------------------------------------------------

    def _segment(self, from_station: str, to_station: str) -> tuple[int, int]:
        try:
            first = self._index[from_station]
            last = self._index[to_station]
        except KeyError as exc:
            raise InvalidInput(
                f"train-date {self.key}: station {exc.args[0]!r} is not on this train"
            ) from None
        if first >= last:
            raise InvalidInput(
                f"train-date {self.key}: {from_station} -> {to_station}: "
                "from must come before to on the route"
            )
        return first, last

    def _leg_bits(self, cls: str) -> list[int]:
        bits = self._bits.get(cls)
        if bits is None:
            bits = self._bits[cls] = leg_bits(self._masks[cls], len(self.train.stations) - 1)
        return bits

    def _class(self, cls: str) -> np.ndarray:
        masks = self._masks.get(cls)
        if masks is None:
            raise InvalidInput(
                f"train-date {self.key}: class {cls!r} is not on this train "
                f"(has {', '.join(self._masks)})"
            )
        return masks

    def _repeat(self, known: Order, from_station: str, to_station: str, cls: str, count: int):
        asked = (from_station, to_station, cls, count)
        had = (known.from_station, known.to_station, known.cls, len(known.seats))
        if asked != had:
            raise InvalidInput(
                f"train-date {self.key}: request_id {known.request_id!r} was used for "
                f"{had}; a different request {asked} needs a new request_id"
            )
        if known.refunded:
            raise InvalidInput(
                f"train-date {self.key}: request_id {known.request_id!r} was refunded; "
                "a new sale needs a new request_id"
            )
        return Sale(
            self.key, known.request_id, cls, from_station, to_station, known.seats, known.legs, None
        )

    def _record_seats(self, record: WalRecord, where: str) -> tuple[np.ndarray, np.ndarray]:
        masks = self._masks.get(record.cls)
        if masks is None:
            raise WalCorrupt(f"{where}: class {record.cls!r} is not on this train")
        seats = np.asarray(record.seats, dtype=np.int64)
        if (
            seats.size == 0
            or seats.min() < 1
            or seats.max() > masks.size
            or np.unique(seats).size != seats.size
        ):
            raise WalCorrupt(f"{where}: bad seat numbers {list(record.seats)}")
        try:
            first, last = self._segment(record.from_station, record.to_station)
        except InvalidInput as exc:
            raise WalCorrupt(f"{where}: {exc}") from exc
        if record.legs != segment_mask(first, last):
            raise WalCorrupt(f"{where}: legs {record.legs:#x} do not match the trip")
        return masks, seats - 1


def _check_request_id(key: str, request_id: object) -> None:
    check_text(request_id, f"train-date {key}: request_id", MAX_REQUEST_ID)


def _check_count(key: str, count: object) -> None:
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)):
        raise InvalidInput(f"train-date {key}: count must be an integer, got {count!r}")
    if not 1 <= count <= MAX_PER_ORDER:
        raise InvalidInput(
            f"train-date {key}: count must be 1..{MAX_PER_ORDER} per order, got {count}"
        )


def _sold(sale: Sale) -> Sold:
    return Sold(sale.key, sale.request_id, sale.cls, sale.from_station, sale.to_station,
                sale.seats, sale.repeat)


def restore_inventories(snapshot: Snapshot, only: str | None = None) -> dict[str, Inventory]:
    """Every train-date in a snapshot as an ``Inventory`` (or just ``only``)."""
    seat_rows = snapshot.rows(snapshot.seats)
    order_rows = snapshot.rows(snapshot.orders)
    result: dict[str, Inventory] = {}
    for row in snapshot.trains.to_pylist():
        key = row["key"]
        if only is not None and key != only:
            continue
        train = TrainDate(
            train_no=row["train_no"],
            date=row["date"],
            stations=tuple(row["stations"]),
            classes=tuple(zip(row["classes"], row["seat_counts"], strict=True)),
            through=row["through"],
            service=row["service"],
        )
        if train.key != key:
            raise SeatError(f"snapshot: row key {key} does not match {train.key}")
        inventory = Inventory(train)
        inventory.seq = row["seq"]
        offset, length = seat_rows.get(key, (0, 0))
        if length != train.seats:
            raise SeatError(f"snapshot: {key} has {length} seat rows, expected {train.seats}")
        part = snapshot.seats.slice(offset, length)
        legs = part.column("legs").to_numpy()
        start = 0
        for cls, n in train.classes:
            inventory._masks[cls][:] = legs[start : start + n]
            start += n
        offset, length = order_rows.get(key, (0, 0))
        for o in snapshot.orders.slice(offset, length).to_pylist():
            inventory._orders[o["request_id"]] = Order(
                o["request_id"],
                o["cls"],
                o["from_station"],
                o["to_station"],
                tuple(o["seats"]),
                o["legs"],
                o["refunded"],
            )
        result[key] = inventory
    return result
