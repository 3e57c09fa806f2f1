"""The seats Ray client: sell, refund and query through the seat actors, and manage
migrations. The faces reach it through ``gridfare.api.seats``.

``AsyncSeatsClient`` does the work (the Serve app uses it); ``SeatsClient`` is the same on a
private event loop for scripts, tests and the CLI. The client caches the directory's map
(train-date -> centre, version). A centre that no longer owns a train-date answers ``moved``
with the new owner and version: the client updates its cache and retries there, so callers
never see a migration. A sale on a frozen train-date waits at the centre (bounded) and is
retried here until ``ClientConfig.frozen_retry_s`` has passed. ``sell_many`` and
``refund_many`` are the bulk path: grouped by centre, batched, "moved" followed here.

    import gridfare.api
    seats = gridfare.api.seats("/data/seats", centres=["A", "B", "C"], main="A")
    seats.create_train(TrainDate("G1", date(2026, 10, 1), ("Beijing", "Jinan"), {"second": 500}))
    seats.sell("G1", "2026-10-01", "Beijing", "Jinan", "second", 2, request_id="r-1")
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction

import ray

from actors.seat_centre import get_seat_centre
from actors.seat_directory import get_seat_directory
from actors.seat_migrator import get_seat_migrator
from gridfare.errors import (
    GridfareError,
    InvalidInput,
    SeatError,
    SeatUnavailable,
    TrainFrozen,
    UnknownTrain,
)
from gridfare.seats.answers import (
    Answer,
    BulkAnswers,
    Frozen,
    Moved,
    Refused,
    Remaining,
    SaleAnswers,
    remaining_from_wire,
    settled,
)
from gridfare.seats.batching import Batcher, ClientConfig
from gridfare.seats.names import check_centre_id, check_migration_id
from gridfare.seats.placement import CentreReport, choose_centre_for_new_train, plan_placement
from gridfare.seats.plan import PlacementPlan, placement_plan, trains_by_centre
from gridfare.seats.requests import (
    MigrateRequest,
    RefundRequest,
    RemainingQuery,
    SellRequest,
    TrainDateRef,
    check_sell_rows,
)
from gridfare.seats.store import SeatsConfig, SeatsRoot
from gridfare.seats.train import TrainDate

__all__ = ["AsyncSeatsClient", "SeatsClient"]

WAIT_S = 10.0  # longest a wait for a migration's end is held at the migrator
CREATE_CHUNK = 2000


# ---- the client ------------------------------------------------------------------------


def _raise_cause(exc: BaseException) -> None:
    cause = getattr(exc, "cause", None)
    if isinstance(cause, GridfareError):
        raise cause from None


def _batch_answers(method: str, wire, rows: list):
    """A batch call's answer as the client reads it: a sale batch's plain values
    (``SaleAnswers.to_wire``) as ``SaleAnswers`` bound to the ``rows`` sent; a refund
    batch's list of answers as it came."""
    return SaleAnswers.from_wire(wire).bind(rows) if method == "sell_many" else wire


class AsyncSeatsClient:
    def __init__(self, root: str, config: ClientConfig | None = None) -> None:
        self.client_config = config or ClientConfig()
        self.root = SeatsRoot(root)
        self.config = self.root.config()
        self._map: dict[str, tuple[str, int]] = {}
        self._handles: dict[str, object] = {}
        self._batchers: dict[tuple[str, str], Batcher] = {}  # (centre, method) -> batcher

    # ---- handles ----------------------------------------------------------------------

    def centre(self, centre_id: str):
        check_centre_id(centre_id)
        if centre_id not in self.config.centres:
            raise InvalidInput(f"centre {centre_id!r} is not one of {self.config.centres}")
        handle = self._handles.get(centre_id)
        if handle is None:
            handle = self._handles[centre_id] = get_seat_centre(str(self.root.path), centre_id)
        return handle

    @property
    def directory(self):
        if "__directory" not in self._handles:
            self._handles["__directory"] = get_seat_directory(str(self.root.path))
        return self._handles["__directory"]

    @property
    def migrator(self):
        if "__migrator" not in self._handles:
            self._handles["__migrator"] = get_seat_migrator(str(self.root.path))
        return self._handles["__migrator"]

    async def _call(self, ref):
        """Await a seat actor's answer: its GridfareError raised as itself, an unreachable
        actor as ``SeatUnavailable``, any other remote fault as ``SeatError`` (a 500)."""
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
        """``call(centre)`` at the train-date's owner, following ``Moved`` and retrying a
        frozen train-date; the answer as the API's dict (an error answer raised)."""
        deadline = None
        limits = self.client_config
        for _ in range(limits.max_hops):
            centre = await self._owner(key)
            try:
                answer = settled(await call(centre))
            except TrainFrozen:
                deadline = deadline or time.monotonic() + limits.frozen_retry_s
                if time.monotonic() > deadline:
                    raise
                continue
            except UnknownTrain:
                self._map.pop(key, None)  # a stale entry: ask the directory again
                await self._owner(key)
                continue
            if isinstance(answer, Moved):
                known = self._map.get(key)
                if known is None or answer.version > known[1]:
                    self._map[key] = (answer.centre, answer.version)
                else:
                    self._map.pop(key, None)
                continue
            return answer.to_dict()
        raise SeatUnavailable(
            f"train-date {key}: still moving after {limits.max_hops} tries; retry later")

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
        row = request.as_list()
        return await self._routed(request.key, lambda c: self._batched(c, "sell_many", row))

    async def refund(self, train_no: str, day, request_id: str) -> dict:
        """Refund an order: ``{"status": "refunded", "seats": [...], ...}``; refunding it
        again answers the same with ``repeat`` set."""
        return await self.refund_request(RefundRequest(train_no, day, request_id))

    async def refund_request(self, request: RefundRequest) -> dict:
        row = request.as_tuple()
        return await self._routed(request.key, lambda c: self._batched(c, "refund_many", row))

    async def _batched(self, centre: str, method: str, request: Sequence) -> Answer:
        batcher = self._batchers.get((centre, method))
        if batcher is None:
            remote = getattr(self.centre(centre), method).remote

            async def send(batch: list):
                return _batch_answers(method, await self._call(remote(batch)), batch)

            batcher = self._batchers[centre, method] = Batcher(
                send, self.client_config.in_flight, self.client_config.max_batch,
                self.client_config.min_gap_s
            )
        return await batcher.submit(request)

    def coalescing(self) -> dict[str, dict[str, int]]:
        """For each centre and method (``"C1 sell_many"``): the coalesced calls sent and
        the single requests they carried, since this client started."""
        return {f"{centre} {method}": {"calls": b.calls, "requests": b.requests}
                for (centre, method), b in sorted(self._batchers.items())}

    async def remaining(self, train_no: str, day, from_station: str, to_station: str) -> dict:
        return await self.remaining_query(RemainingQuery(train_no, day, from_station, to_station))

    async def remaining_query(self, q: RemainingQuery) -> dict:
        key, query = q.key, q.as_list()

        async def ask(centre: str) -> Remaining | Moved:
            wire = await self._call(self.centre(centre).remaining.remote(query))
            return remaining_from_wire(key, q.from_station, q.to_station, wire)

        return await self._routed(key, ask)

    async def sell_many(self, requests: Iterable[SellRequest | Sequence]) -> BulkAnswers:
        """Sell many at once: each request (a ``SellRequest`` or ``sell``'s arguments) is
        checked first (a bad one refuses the whole call before anything is sent), then the
        requests are grouped by owner centre and sent in calls of at most
        ``bulk_max_batch``, ``bulk_in_flight`` per centre at once. "Moved" is followed
        here (the moved ones are regrouped and sent again), a frozen train-date retried;
        answers are typed, in request order: ``Sold``, ``SoldOut`` or ``Refused`` (a
        ``BulkAnswers`` sequence: the calls' columnar answers, each typed when read;
        ``sold_count`` counts the sales without typing them)."""
        return await self._bulk("sell_many", check_sell_rows(requests))

    async def refund_many(self, requests: Iterable[RefundRequest | Sequence]) -> BulkAnswers:
        """Refund many at once, as ``sell_many`` sells: ``Refunded`` or ``Refused`` each."""
        checked = [r if isinstance(r, RefundRequest) else RefundRequest(*r) for r in requests]
        return await self._bulk("refund_many", [(r.key, r.as_tuple()) for r in checked])

    async def _bulk(self, method: str, requests: list[tuple[str, tuple]]) -> BulkAnswers:
        """``requests`` are checked ``(train-date key, arguments)`` pairs."""
        limits = self.client_config
        answers = BulkAnswers(len(requests))
        pending = list(range(len(requests)))
        deadline = None
        for _ in range(limits.max_hops + 1):
            if not pending:
                return answers
            if any(requests[i][0] not in self._map for i in pending):
                await self.refresh()
            groups: dict[str, list[int]] = {}
            for i in pending:
                entry = self._map.get(requests[i][0])
                if entry is None:
                    answers.set(i, Refused(UnknownTrain(
                        f"no centre holds train-date {requests[i][0]}")))
                    continue
                groups.setdefault(entry[0], []).append(i)
            calls = []
            for centre, indices in groups.items():
                gate = asyncio.Semaphore(limits.bulk_in_flight)
                step = limits.bulk_max_batch
                calls += [self._send_bulk(method, centre, [requests[i] for i in chunk], chunk,
                                          gate, answers)
                          for chunk in (indices[j:j + step] for j in range(0, len(indices),
                                                                           step))]
            retry = [i for again in await asyncio.gather(*calls) for i in again]
            if retry:
                deadline = deadline or time.monotonic() + limits.frozen_retry_s
                if time.monotonic() > deadline:
                    break
            pending = sorted(retry)
        for i in pending:
            answers.set(i, Refused(SeatUnavailable(
                f"train-date {requests[i][0]}: still moving or frozen; retry later")))
        return answers

    async def _send_bulk(self, method: str, centre: str, requests: list, indices: list[int],
                         gate: asyncio.Semaphore, answers: BulkAnswers) -> list[int]:
        """One bulk call; puts its answers in ``answers`` and returns the indices to send
        again. A sale batch answers in columns (``SaleAnswers``): only its few whole
        answers (``others``: moved, frozen, refused) are looked at here."""
        rows = [row for _, row in requests]
        async with gate:
            got = _batch_answers(method, await self._call(
                getattr(self.centre(centre), method).remote(rows)), rows)
        odd = got.others.items() if isinstance(got, SaleAnswers) else enumerate(got)
        answers.put(indices, got)
        again: list[int] = []
        stale: set[str] = set()
        for j, answer in odd:
            key, i = requests[j][0], indices[j]
            if isinstance(answer, Moved):
                known = self._map.get(answer.key)
                if known is None or answer.version > known[1]:
                    self._map[answer.key] = (answer.centre, answer.version)
                else:
                    self._map.pop(answer.key, None)
                again.append(i)
            elif isinstance(answer, Frozen):
                again.append(i)
            elif (isinstance(answer, Refused) and isinstance(answer.error, UnknownTrain)
                  and (key in stale or self._map.get(key, ("",))[0] == centre)):
                stale.add(key)  # the map named a centre that never held it
                self._map.pop(key, None)  # ask the directory again
                again.append(i)
        return again

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

    def __init__(self, root: str, config: ClientConfig | None = None) -> None:
        self.aio = AsyncSeatsClient(root, config)
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

    def remaining(self, train_no: str, day, from_station: str, to_station: str) -> dict:
        """As ``AsyncSeatsClient.remaining``. A query of a train-date whose owner is in the
        map is one ``ray.get`` in this thread rather than a turn of the private event loop
        (which waits for Ray's thread to hand the answer over); any other case (no map
        entry, ``Moved``, an error) goes the async client's routed path, which asks
        again: a query changes nothing, so asking twice is safe."""
        q = RemainingQuery(train_no, day, from_station, to_station)
        entry = self.aio._map.get(q.key)
        if entry is not None:
            try:
                wire = ray.get(self.aio.centre(entry[0]).remaining.remote(q.as_list()))
            except ray.exceptions.RayError:
                wire = None  # the routed path below raises it as the async client does
            if wire is not None:
                answer = remaining_from_wire(q.key, q.from_station, q.to_station, wire)
                if isinstance(answer, Remaining):
                    return answer.to_dict()
        return self._run(self.aio.remaining_query(q))

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
