"""The seats Python API: sell, refund and query through the seat actors, and manage
migrations. Ray is imported only when a client is made.

``AsyncSeatsClient`` does the work (the Serve app uses it); ``SeatsClient`` is the same on a
private event loop for scripts, tests and the CLI. The client caches the directory's map
(train-date -> centre, version). A centre that no longer owns a train-date answers ``moved``
with the new owner and version: the client updates its cache and retries there, so callers
never see a migration. A sale on a frozen train-date waits at the centre (bounded) and is
retried here until ``FROZEN_RETRY_S`` has passed.

    from gridfare.seats_client import SeatsClient
    seats = SeatsClient.start("/data/seats", centres=["A", "B", "C"], main="A")
    seats.create_train(TrainDate("G1", date(2026, 10, 1), ("Beijing", "Jinan"), {"second": 500}))
    seats.sell("G1", "2026-10-01", "Beijing", "Jinan", "second", 2, request_id="r-1")
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from gridfare import errors
from gridfare.errors import (
    GridfareError,
    InvalidInput,
    SeatError,
    SeatUnavailable,
    TrainFrozen,
    TrainMoved,
    UnknownTrain,
)
from gridfare.seats.names import check_centre_id, check_migration_id
from gridfare.seats.placement import (
    CentreReport,
    PlannedMove,
    choose_centre_for_new_train,
    loads,
    moves_to_target,
    plan_placement,
    target_shares,
)
from gridfare.seats.requests import (
    MigrateRequest,
    RefundRequest,
    RemainingQuery,
    SellRequest,
    TrainDateRef,
)
from gridfare.seats.store import SeatsConfig, SeatsRoot
from gridfare.seats.train import TrainDate

__all__ = ["AsyncSeatsClient", "PlacementPlan", "SeatsClient", "placement_plan"]

MAX_HOPS = 8  # "moved" answers followed before giving up
BATCH_IN_FLIGHT = 2  # sell_many (refund_many) calls in flight per centre; more wait for the next
BATCH_MAX = 256  # at most this many sales (refunds) in one call
WAIT_S = 10.0  # longest a wait for a migration's end is held at the migrator
FROZEN_RETRY_S = 10.0  # a frozen train-date is retried this long (the centre waits 2 s each)
CREATE_CHUNK = 2000


# ---- placement plan (pure) -------------------------------------------------------------


@dataclass(frozen=True)
class PlacementPlan:
    centres: tuple[str, ...]
    main: str
    seats: dict[str, int]  # centre -> seats held now
    targets: dict[str, Fraction]  # centre -> target share
    moves: tuple[PlannedMove, ...]

    def render(self) -> str:
        total = sum(self.seats.values()) or 1
        after = dict(self.seats)
        for m in self.moves:
            after[m.source] -= m.seats
            after[m.target] += m.seats
        lines = [f"{'centre':10} {'seats':>12} {'current':>8} {'target':>8} {'after':>8}"]
        for c in self.centres:
            role = " (main)" if c == self.main else ""
            lines.append(
                f"{c + role:10} {self.seats.get(c, 0):>12,} "
                f"{self.seats.get(c, 0) / total:>8.2%} {float(self.targets[c]):>8.2%} "
                f"{after.get(c, 0) / total:>8.2%}"
            )
        lines.append(f"{len(self.moves)} moves reach the target:")
        lines += [
            f"  migrate {m.train} {m.source} -> {m.target} ({m.seats:,} seats)" for m in self.moves
        ]
        return "\n".join(lines)


def placement_plan(
    current: Mapping[str, str],
    train_seats: Mapping[str, int],
    centres: Sequence[str],
    main: str,
    r: str = "0.65",
) -> PlacementPlan:
    """Current vs target shares per centre and the train moves that reach the target.
    ``current`` maps each train to a centre (``None`` for a new train: it is placed by the
    formula first and its placement is part of the plan)."""
    targets = target_shares(list(centres), main, Fraction(str(r)))
    placed = {t: c for t, c in current.items() if c is not None}
    new = {t: train_seats[t] for t in current if current[t] is None}
    if new:
        placed |= plan_placement(new, list(centres), main, Fraction(str(r)))
    held = dict.fromkeys(centres, 0) | loads({t: c for t, c in current.items() if c}, train_seats)
    moves = moves_to_target(placed, train_seats, targets) if placed else []
    return PlacementPlan(tuple(centres), main, held, targets, tuple(moves))


def trains_by_centre(
    owners: Mapping[str, str], trains: Iterable[TrainDate]
) -> tuple[dict[str, str], dict[str, int]]:
    """Per train number: the centre holding most of its seats, and its seats per departure."""
    weight: dict[str, dict[str, int]] = {}
    seats: dict[str, int] = {}
    for t in trains:
        centre = owners.get(t.key)
        if centre is None:
            continue
        by = weight.setdefault(t.train_no, {})
        by[centre] = by.get(centre, 0) + t.seats
        seats[t.train_no] = t.seats
    current = {n: max(sorted(by), key=lambda c: by[c]) for n, by in weight.items()}
    return current, seats


# ---- the client ------------------------------------------------------------------------


def _raise_cause(exc: BaseException) -> None:
    cause = getattr(exc, "cause", None)
    if isinstance(cause, GridfareError):
        raise cause from None


def _raise_error_answer(answer: dict) -> dict:
    """A ``sell_many`` or ``refund_many`` answer; ``{"status": "error", ...}`` is raised
    as its error."""
    if answer.get("status") != "error":
        return answer
    kind = getattr(errors, str(answer.get("error")), None)
    if not (isinstance(kind, type) and issubclass(kind, GridfareError)) or kind is TrainMoved:
        kind = SeatError
    raise kind(answer.get("message", ""))


class _Batcher:
    """One centre's sales (or refunds), sent as ``sell_many`` (``refund_many``) calls.

    A request goes at once when fewer than ``BATCH_IN_FLIGHT`` calls are in flight to the centre;
    otherwise it joins the next call, sent when one returns. So a lone buyer pays no delay,
    and under load many sales share one actor call and one fsync. Profiled through the Serve
    app (64 connections, 2 cores): submitting one actor call per sale was the largest single
    cost in the replica (~a quarter of its CPU), and the centre paid per call as well.
    """

    def __init__(self, send) -> None:
        self._send = send  # list of request tuples -> awaitable list of answers
        self._queue: list[tuple[tuple, asyncio.Future]] = []
        self._in_flight = 0
        self._tasks: set[asyncio.Task] = set()  # held until done (the loop keeps weak refs)

    def submit(self, request: tuple) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self._queue.append((request, future))
        if self._in_flight < BATCH_IN_FLIGHT:
            self._start()
        return future

    def _start(self) -> None:
        batch, self._queue = self._queue[:BATCH_MAX], self._queue[BATCH_MAX:]
        self._in_flight += 1
        task = asyncio.ensure_future(self._run(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[tuple[tuple, asyncio.Future]]) -> None:
        try:
            answers = await self._send([request for request, _ in batch])
        except Exception as exc:  # the whole call failed: every sale in it hears why
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
        else:
            for (_, future), answer in zip(batch, answers, strict=True):
                if not future.done():
                    future.set_result(answer)
        finally:
            self._in_flight -= 1
            if self._queue and self._in_flight < BATCH_IN_FLIGHT:
                self._start()


class AsyncSeatsClient:
    def __init__(self, root: str) -> None:
        import ray  # noqa: F401  (fails early and clearly if Ray is missing)

        self.root = SeatsRoot(root)
        self.config = self.root.config()
        self._map: dict[str, tuple[str, int]] = {}
        self._handles: dict[str, object] = {}
        self._batchers: dict[tuple[str, str], _Batcher] = {}  # (centre, method) -> batcher

    # ---- handles ----------------------------------------------------------------------

    def centre(self, centre_id: str):
        check_centre_id(centre_id)
        if centre_id not in self.config.centres:
            raise InvalidInput(f"centre {centre_id!r} is not one of {self.config.centres}")
        handle = self._handles.get(centre_id)
        if handle is None:
            from actors.seat_centre import get_seat_centre

            handle = self._handles[centre_id] = get_seat_centre(str(self.root.path), centre_id)
        return handle

    @property
    def directory(self):
        if "__directory" not in self._handles:
            from actors.seat_directory import get_seat_directory

            self._handles["__directory"] = get_seat_directory(str(self.root.path))
        return self._handles["__directory"]

    @property
    def migrator(self):
        if "__migrator" not in self._handles:
            from actors.seat_migrator import get_seat_migrator

            self._handles["__migrator"] = get_seat_migrator(str(self.root.path))
        return self._handles["__migrator"]

    async def _call(self, ref):
        import ray

        try:
            return await ref
        except ray.exceptions.RayTaskError as exc:
            _raise_cause(exc)
            raise SeatError(f"seat actor call failed: {exc}") from exc
        except ray.exceptions.RayError as exc:
            raise SeatUnavailable(f"seat actor unavailable: {type(exc).__name__}") from exc

    async def ready(self) -> None:
        """Start (or find) every actor and wait until each answers."""
        await asyncio.gather(
            *(self._call(self.centre(c).ping.remote()) for c in self.config.centres)
        )
        await self.refresh()
        await self._call(self.migrator.list.remote())

    # ---- the directory map ------------------------------------------------------------

    async def refresh(self) -> None:
        _, entries = await self._call(self.directory.entries.remote())
        self._map = dict(entries)

    async def owners(self) -> dict[str, str]:
        """train-date -> centre, read from the directory now."""
        await self.refresh()
        return {k: c for k, (c, _) in self._map.items()}

    async def _owner(self, key: str) -> str:
        entry = self._map.get(key)
        if entry is None:
            try:
                entry = tuple(await self._call(self.directory.lookup.remote(key)))
            except UnknownTrain:
                raise UnknownTrain(f"no centre holds train-date {key}") from None
            self._map[key] = entry
        return entry[0]

    async def _routed(self, key: str, call) -> dict:
        deadline = None
        for _ in range(MAX_HOPS):
            centre = await self._owner(key)
            try:
                answer = await call(centre)
            except TrainFrozen:
                deadline = deadline or time.monotonic() + FROZEN_RETRY_S
                if time.monotonic() > deadline:
                    raise
                continue
            except UnknownTrain:
                self._map.pop(key, None)  # a stale entry: ask the directory again
                await self._owner(key)
                continue
            if answer.get("status") == "moved":
                known = self._map.get(key)
                if known is None or answer["version"] > known[1]:
                    self._map[key] = (answer["centre"], answer["version"])
                else:
                    self._map.pop(key, None)
                continue
            return answer
        raise SeatUnavailable(f"train-date {key}: still moving after {MAX_HOPS} tries; retry later")

    # ---- requests ---------------------------------------------------------------------

    async def sell(
        self,
        train_no: str,
        day,
        from_station: str,
        to_station: str,
        cls: str,
        count: int,
        request_id: str,
    ) -> dict:
        """Sell seats: ``{"status": "sold", "seats": [...], ...}`` or ``"sold_out"`` with the
        seats remaining. The same ``request_id`` never sells twice."""
        request = SellRequest(train_no, day, from_station, to_station, cls, count, request_id)
        return await self.sell_request(request)

    async def sell_request(self, request: SellRequest) -> dict:
        row = request.as_tuple()
        return await self._routed(request.key, lambda c: self._batched(c, "sell_many", row))

    async def refund(self, train_no: str, day, request_id: str) -> dict:
        """Refund an order: ``{"status": "refunded", "seats": [...], ...}``; refunding it
        again answers the same with ``repeat`` set."""
        return await self.refund_request(RefundRequest(train_no, day, request_id))

    async def refund_request(self, request: RefundRequest) -> dict:
        row = request.as_tuple()
        return await self._routed(request.key, lambda c: self._batched(c, "refund_many", row))

    async def _batched(self, centre: str, method: str, request: tuple) -> dict:
        batcher = self._batchers.get((centre, method))
        if batcher is None:
            remote = getattr(self.centre(centre), method).remote
            batcher = self._batchers[centre, method] = _Batcher(
                lambda batch: self._call(remote(batch))
            )
        return _raise_error_answer(await batcher.submit(request))

    async def remaining(self, train_no: str, day, from_station: str, to_station: str) -> dict:
        return await self.remaining_query(RemainingQuery(train_no, day, from_station, to_station))

    async def remaining_query(self, q: RemainingQuery) -> dict:
        return await self._routed(
            q.key,
            lambda c: self._call(
                self.centre(c).remaining.remote(q.train_no, q.date, q.from_station, q.to_station)
            ),
        )

    async def owner(self, ref: TrainDateRef) -> dict:
        """The centre that owns a train-date and its directory version, read now."""
        centre, version = await self._call(self.directory.lookup.remote(ref.key))
        return {"key": ref.key, "centre": centre, "version": version}

    async def create_train(self, train: TrainDate) -> dict:
        """Place a new train-date on the idlest centre holding the fewest seats."""
        reports = await self.reports()
        if train.key in await self.owners():
            raise InvalidInput(f"train-date {train.key} already exists")
        chosen = choose_centre_for_new_train(
            [
                CentreReport(
                    r["centre_id"],
                    r["seats_stored"],
                    r["seats_unsold"],
                    r["sales_per_minute"],
                    r["cpu"],
                )
                for r in reports
            ]
        )
        await self._call(self.centre(chosen).create_many.remote([train.to_dict()]))
        versions = await self._call(self.directory.place_many.remote([train.key], chosen))
        self._map[train.key] = (chosen, versions[train.key])
        return {"key": train.key, "centre": chosen, "version": versions[train.key]}

    async def load_timetable(
        self, trains: Iterable[TrainDate], placement: Mapping[str, str] | None = None
    ) -> dict[str, int]:
        """Create many train-dates at once; by default every train (all its dates) goes
        where the bureau formula puts it (``plan_placement``). Returns seats per centre."""
        trains = list(trains)
        if placement is None:
            seats = {t.train_no: t.seats for t in trains}
            placement = plan_placement(
                seats, list(self.config.centres), self.config.main, Fraction(self.config.r)
            )
        groups: dict[str, list[TrainDate]] = {}
        for t in trains:
            groups.setdefault(placement[t.train_no], []).append(t)

        async def load(centre: str, chunk: list[TrainDate]) -> None:
            await self._call(self.centre(centre).create_many.remote([t.to_dict() for t in chunk]))
            await self._call(self.directory.place_many.remote([t.key for t in chunk], centre))

        await asyncio.gather(
            *(
                load(c, group[i : i + CREATE_CHUNK])
                for c, group in groups.items()
                for i in range(0, len(group), CREATE_CHUNK)
            )
        )
        await self.refresh()
        return {c: sum(t.seats for t in g) for c, g in groups.items()}

    async def reports(self) -> list[dict]:
        return list(
            await asyncio.gather(
                *(self._call(self.centre(c).report.remote()) for c in self.config.centres)
            )
        )

    async def train_dates(self) -> list[TrainDate]:
        held = await asyncio.gather(
            *(self._call(self.centre(c).trains.remote()) for c in self.config.centres)
        )
        return [TrainDate.from_dict(t) for part in held for t in part]

    async def plan(self) -> PlacementPlan:
        current, seats = trains_by_centre(await self.owners(), await self.train_dates())
        return placement_plan(current, seats, self.config.centres, self.config.main, self.config.r)

    # ---- migrations -------------------------------------------------------------------

    async def migrate(
        self, selector: str, target: str, *, migration_id: str | None = None, auto: bool = True
    ) -> dict:
        return await self.migrate_request(MigrateRequest(selector, target, migration_id, auto))

    async def migrate_request(self, request: MigrateRequest) -> dict:
        return await self._call(
            self.migrator.start.remote(request.selector, request.target, request.id, request.auto)
        )

    async def migration(self, migration_id: str) -> dict:
        return await self._call(self.migrator.status.remote(check_migration_id(migration_id)))

    async def migrations(self) -> list[dict]:
        return await self._call(self.migrator.list.remote())

    async def step(self, migration_id: str) -> dict:
        return await self._call(self.migrator.step.remote(check_migration_id(migration_id)))

    async def pause(self, migration_id: str) -> dict:
        return await self._call(self.migrator.pause.remote(check_migration_id(migration_id)))

    async def resume(self, migration_id: str) -> dict:
        return await self._call(self.migrator.resume.remote(check_migration_id(migration_id)))

    async def rollback(self, migration_id: str) -> dict:
        return await self._call(self.migrator.rollback.remote(check_migration_id(migration_id)))

    async def wait_migration(
        self,
        migration_id: str,
        timeout_s: float = 120.0,
        states: Sequence[str] = ("done", "rolled_back", "failed", "paused"),
    ) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            # A long poll (answered at the end, or after at most WAIT_S so that a restarted
            # migrator is asked again); the full status, with every train-date, once over.
            # It used to be polled 20 times a second: calls on the loop that drives the
            # migration, CPU taken from the sales.
            left = max(0.0, deadline - time.monotonic())
            settled = await self._call(
                self.migrator.wait.remote(migration_id, list(states), min(left, WAIT_S))
            )
            if settled is not None:
                return await self.migration(migration_id)
            if time.monotonic() >= deadline:
                status = await self._call(self.migrator.status.remote(migration_id, False))
                raise SeatError(
                    f"migration {migration_id}: still {status['state']} after {timeout_s:g} s"
                )

    # ---- audit ------------------------------------------------------------------------

    async def audit(self):
        """Audit the logs on disk against the centres' live inventories. Run it on a quiet
        cluster: a sale logged after an inventory was read would look lost."""
        from gridfare.seats.inventory import restore_inventories
        from gridfare.seats.snapshot import Snapshot

        snapshots = await asyncio.gather(
            *(self._call(self.centre(c).export_all.remote()) for c in self.config.centres)
        )
        live = {
            c: restore_inventories(Snapshot.from_bytes(s))
            for c, s in zip(self.config.centres, snapshots, strict=True)
        }
        return self.root.audit(live)


class SeatsClient:
    """``AsyncSeatsClient`` with plain methods (runs them on a private event loop)."""

    def __init__(self, root: str) -> None:
        self.aio = AsyncSeatsClient(root)
        self._loop = asyncio.new_event_loop()

    @classmethod
    def start(
        cls, root: str, centres: Sequence[str] | None = None, main: str | None = None, **options
    ) -> SeatsClient:
        """Configure ``root`` (if ``centres`` are given) and start its actors."""
        if centres is not None:
            SeatsRoot(root).init(SeatsConfig(tuple(centres), main or centres[0], **options))
        client = cls(root)
        client._run(client.aio.ready())
        return client

    def _run(self, coro):
        return self._loop.run_until_complete(coro)

    def __getattr__(self, name: str):
        attr = getattr(self.aio, name)
        if not asyncio.iscoroutinefunction(attr):
            return attr

        def call(*args, **kwargs):
            return self._run(attr(*args, **kwargs))

        call.__doc__ = attr.__doc__
        return call

    def close(self) -> None:
        self._loop.close()
