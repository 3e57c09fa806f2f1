"""A seat load centre's state, pure: the train-dates it holds, frozen ones, moved ones.

The ``SeatCentre`` actor is a thin shell over ``CentreState``: it calls a method, appends the
returned record(s) to its ``WalWriter``, flushes (fsync) and only then answers. On restart it
loads the last snapshot (``CentreState.restore``) and replays the log after it.

- ``sell`` on a train-date frozen for migration raises ``TrainFrozen`` (retry shortly);
  on one that moved away raises ``TrainMoved`` with the new centre and directory version;
  on one never held raises ``UnknownTrain``.
- ``export`` / ``install`` / ``records_after`` / ``catch_up`` / ``freeze`` / ``drop`` /
  ``discard`` are the migration steps on the origin and destination (see ``migration.py``);
  ``install``, ``catch_up`` (the shell logs the records it applied), ``drop`` and
  ``discard`` all leave log records, so a centre's log alone rebuilds what it holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

import pyarrow as pa

from gridfare.errors import (
    InvalidInput,
    SeatError,
    TrainFrozen,
    TrainMoved,
    UnknownTrain,
    WalCorrupt,
)
from gridfare.seats.allocate import allocate
from gridfare.seats.answers import Answer, Moved, Refunded, Refused, SaleAnswers
from gridfare.seats.inventory import Inventory, Refund, Sale, SoldOut, restore_inventories
from gridfare.seats.placement import CentreReport
from gridfare.seats.snapshot import MOVED, Snapshot
from gridfare.seats.train import TrainDate, train_key
from gridfare.seats.wal import Change, WalRecord, change_of

__all__ = ["CentreState", "SaleBatch", "parse_day"]


def parse_day(day: object) -> date:
    if isinstance(day, date):
        return day
    try:
        return date.fromisoformat(str(day))
    except ValueError:
        raise InvalidInput(f"date {day!r}: expected YYYY-MM-DD") from None


@dataclass
class SaleBatch:
    """What ``CentreState.sell_many`` did: an answer per request (None while its
    train-date is frozen: ``frozen`` holds those, by train-date; a ``SaleAnswers`` for
    sales) and the changes to log."""

    answers: SaleAnswers | list[Answer | None]
    changes: list[Change] = field(default_factory=list)
    frozen: dict[str, list[int]] = field(default_factory=dict)


class CentreState:
    def __init__(self, centre_id: str) -> None:
        self.centre_id = centre_id
        self.inventories: dict[str, Inventory] = {}
        self.frozen: set[str] = set()
        self.moved: dict[str, tuple[str, int]] = {}  # key -> (new centre, directory version)

    # ---- requests ---------------------------------------------------------------------

    def create(self, train: TrainDate) -> WalRecord:
        if train.key in self.inventories:
            raise InvalidInput(f"centre {self.centre_id}: train-date {train.key} already exists")
        inventory = Inventory(train)
        self.inventories[train.key] = inventory
        self.moved.pop(train.key, None)
        return inventory.create_record()

    def sell(
        self,
        train_no: str,
        day: date,
        from_station: str,
        to_station: str,
        cls: str,
        count: int,
        request_id: str,
    ) -> Sale | SoldOut:
        key = train_key(train_no, day)
        inventory = self._writable(key)
        return inventory.sell(from_station, to_station, cls, count, request_id)

    def sell_many(self, requests: Sequence[tuple]) -> SaleBatch:
        """Sell a batch of ``sell``'s argument tuples: grouped by train-date, each group one
        ``Inventory.sell_many`` (in the batch's order within it; train-dates do not share
        seats, so the answers are those of selling one by one). A request on a moved or
        unknown train-date, or a bad one, is answered alone (``Moved``, ``Refused``)."""
        batch = SaleBatch(SaleAnswers(len(requests), requests))
        groups: dict[str, list[int]] = {}
        days: dict[object, date] = {}
        for i, request in enumerate(requests):
            try:
                if not isinstance(request, (tuple, list)) or len(request) != 7:
                    raise InvalidInput(f"request {i}: expected sell's 7 arguments, got "
                                       f"{request!r:.80}")
                day = request[1]
                parsed = days.get(day)
                if parsed is None:
                    parsed = days[day] = parse_day(day)
                groups.setdefault(train_key(request[0], parsed), []).append(i)
            except InvalidInput as exc:
                batch.answers[i] = Refused(exc)
        planned = []  # (inventory, its rows, their indices, its plan)
        for key, indices in groups.items():
            try:
                inventory = self.get(key)
            except TrainMoved as exc:
                for i in indices:
                    batch.answers[i] = Moved(exc.key, exc.centre, exc.version)
                continue
            except SeatError as exc:
                for i in indices:
                    batch.answers[i] = Refused(exc)
                continue
            if key in self.frozen:
                batch.frozen[key] = indices
                continue
            rows = [requests[i][2:] for i in indices]
            plan = inventory.plan_sales(rows)
            if plan is None:  # a request_id seen before: sold one by one at its turn
                self._answer(batch, indices, *inventory.sell_many(rows))
            else:
                planned.append((inventory, rows, indices, plan))
        # Every train-date's new orders in one allocation: train-dates share no seats, so
        # this is what selling them one by one gives, at a few numpy calls per batch.
        results = iter(allocate([job for *_, plan in planned for job in plan.jobs]))
        for inventory, rows, indices, plan in planned:
            got = [next(results) for _ in plan.jobs]
            batch.changes += inventory.finish_into(rows, plan, got, batch.answers, indices)
        return batch

    def refund_many(self, requests: Sequence[tuple]) -> SaleBatch:
        """Refund a batch of ``refund``'s argument tuples in order, each answered alone:
        ``Refunded`` (``repeat`` set when it was refunded before), ``Moved`` or
        ``Refused``; those on a frozen train-date are left in ``frozen``."""
        batch = SaleBatch([None] * len(requests))
        for i, request in enumerate(requests):
            try:
                if not isinstance(request, (tuple, list)) or len(request) != 3:
                    raise InvalidInput(f"request {i}: expected refund's 3 arguments, got "
                                       f"{request!r:.80}")
                train_no, day, request_id = request
                result = self.refund(train_no, parse_day(day), request_id)
            except TrainFrozen:
                batch.frozen.setdefault(train_key(train_no, parse_day(day)), []).append(i)
            except TrainMoved as exc:
                batch.answers[i] = Moved(exc.key, exc.centre, exc.version)
            except (SeatError, InvalidInput) as exc:
                batch.answers[i] = Refused(exc)
            else:
                batch.answers[i] = Refunded(result.key, result.request_id, result.cls,
                                            result.seats, result.record is None)
                if result.record is not None:
                    batch.changes.append(change_of(result.record))
        return batch

    @staticmethod
    def _answer(batch: SaleBatch, indices: list[int], answers: list, changes: list) -> None:
        for i, answer in zip(indices, answers, strict=True):
            batch.answers[i] = answer
        batch.changes += changes

    def refund(self, train_no: str, day: date, request_id: str) -> Refund:
        return self._writable(train_key(train_no, day)).refund(request_id)

    def remaining(
        self, train_no: str, day: date, from_station: str, to_station: str
    ) -> dict[str, int]:
        return self.get(train_key(train_no, day)).remaining(from_station, to_station)

    def get(self, key: str) -> Inventory:
        inventory = self.inventories.get(key)
        if inventory is not None:
            return inventory
        if key in self.moved:
            centre, version = self.moved[key]
            raise TrainMoved(key, centre, version)
        raise UnknownTrain(f"centre {self.centre_id} does not hold train-date {key}")

    def report(self, cpu: float, sales_per_minute: float) -> CentreReport:
        """The load report; ``cpu`` and ``sales_per_minute`` are measured by the shell."""
        return CentreReport(
            centre_id=self.centre_id,
            seats_stored=sum(i.train.seats for i in self.inventories.values()),
            seats_unsold=sum(i.unsold() for i in self.inventories.values()),
            sales_per_minute=sales_per_minute,
            cpu=cpu,
        )

    # ---- migration steps --------------------------------------------------------------

    def export(self, key: str) -> Snapshot:
        """Copy one train-date (the source keeps selling)."""
        return self.get(key).to_arrow()

    def records_after(self, key: str, seq: int, log: Iterable[WalRecord]) -> list[WalRecord]:
        """This centre's log records of ``key`` after ``seq``: the catch-up and final delta."""
        return [r for r in log if r.key == key and r.op in ("sell", "refund") and r.seq > seq]

    def install(self, snapshot: Snapshot) -> list[WalRecord]:
        """Take train-dates copied from another centre, frozen until the directory flips.
        Returns one ``install`` record per train-date to log, so the log alone rebuilds
        them after a restart."""
        records = []
        for key, inventory in sorted(restore_inventories(snapshot).items()):
            record = inventory.install_record()
            self.apply(record)
            self.frozen.add(key)
            records.append(record)
        return records

    def catch_up(self, records: Iterable[WalRecord]) -> int:
        """Apply another centre's records to installed train-dates (idempotent)."""
        return sum(self.get(r.key).apply(r) for r in records)

    def freeze(self, key: str) -> None:
        self.get(key)
        self.frozen.add(key)

    def unfreeze(self, key: str) -> None:
        self.get(key)
        self.frozen.discard(key)

    def drop(self, key: str, new_centre: str, version: int) -> WalRecord:
        """Forget a train-date that now lives on ``new_centre``; later requests get
        ``TrainMoved``. Returns the record to log."""
        inventory = self.get(key)
        record = WalRecord(
            op="drop", key=key, seq=inventory.seq, centre=new_centre, version=version
        )
        self.apply(record)
        return record

    def discard(self, key: str, owner: str, version: int) -> WalRecord | None:
        """Throw away the copy of a migration step being undone (``owner`` still owns the
        train-date at directory ``version``). Returns the record to log, None if there was
        no copy."""
        if key not in self.inventories:
            return None
        return self.drop(key, owner, version)

    # ---- durability -------------------------------------------------------------------

    def apply(self, record: WalRecord) -> bool:
        """Replay one log record of this centre."""
        if record.op == "create":
            if record.train is None or record.train.key != record.key:
                raise WalCorrupt(f"create record lsn {record.lsn}: train does not match key")
            if record.key in self.inventories:
                return False
            self.inventories[record.key] = Inventory(record.train)
            self.moved.pop(record.key, None)
            return True
        if record.op == "install":
            known = self.inventories.get(record.key)
            if known is not None and known.seq >= record.seq:
                return False
            self.inventories[record.key] = Inventory.from_install(record)
            self.moved.pop(record.key, None)
            return True
        if record.op == "drop":
            self.inventories.pop(record.key, None)
            self.frozen.discard(record.key)
            known = self.moved.get(record.key)
            if known is not None and known[1] >= record.version:
                return False
            self.moved[record.key] = (record.centre, record.version)
            return True
        if record.key not in self.inventories:
            if record.key in self.moved:
                return False  # an old record of a train-date that has since left
            raise WalCorrupt(f"record lsn {record.lsn}: train-date {record.key} was never created")
        return self.inventories[record.key].apply(record)

    def snapshot(self, lsn: int) -> Snapshot:
        """Everything this centre holds, complete up to its log position ``lsn``."""
        return self.assemble(self.snapshot_parts(sorted(self.inventories)), self.moved, lsn)

    def snapshot_parts(self, keys: Iterable[str]) -> list[Snapshot]:
        """The current state of some train-dates (those still held), one part each.

        A checkpoint takes the parts a few train-dates at a time, between sales, so the
        snapshot is *fuzzy*: each train-date is caught at its own moment at or after the
        snapshot's ``lsn``. Restoring it is still exact because replaying the log after
        ``lsn`` is idempotent per train-date (``seq``): records a part already holds are
        skipped, the later ones applied (see ``restore``)."""
        return [self.inventories[k].to_arrow() for k in keys if k in self.inventories]

    @staticmethod
    def assemble(
        parts: Iterable[Snapshot], moved: Mapping[str, tuple[str, int]], lsn: int
    ) -> Snapshot:
        """One snapshot from ``snapshot_parts`` and the moved train-dates (pure: a checkpoint
        runs it off the centre's event loop)."""
        keys = sorted(moved)
        table = pa.table(
            {
                "key": keys,
                "centre": [moved[k][0] for k in keys],
                "version": [moved[k][1] for k in keys],
            },
            schema=MOVED,
        )
        merged = Snapshot.concat(parts, lsn=lsn)
        return Snapshot(merged.trains, merged.seats, merged.orders, table, lsn=lsn)

    @classmethod
    def restore(
        cls,
        centre_id: str,
        snapshot: Snapshot | None,
        log: Iterable[WalRecord],
        frozen: Iterable[str] = (),
    ) -> CentreState:
        """Rebuild from the last snapshot and the log (records at or below the snapshot's
        lsn are skipped). ``frozen`` comes from the migration record, the one durable place
        that knows which train-dates are mid-migration."""
        state = cls(centre_id)
        if snapshot is not None:
            state.inventories = restore_inventories(snapshot)
            for row in snapshot.moved.to_pylist():
                state.moved[row["key"]] = (row["centre"], row["version"])
        after = snapshot.lsn if snapshot is not None else 0
        for record in log:
            if record.lsn > after:
                state.apply(record)
        state.frozen = {k for k in frozen if k in state.inventories}
        return state

    def _writable(self, key: str) -> Inventory:
        inventory = self.get(key)
        if key in self.frozen:
            raise TrainFrozen(
                f"centre {self.centre_id}: train-date {key} is frozen for migration; retry"
            )
        return inventory

    def keys(self) -> list[str]:
        return sorted(self.inventories)
