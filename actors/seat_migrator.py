"""SeatMigrator: drives live migrations of train-dates between centres.

The state machine is ``gridfare.seats.Migration`` (pure); this shell carries out each step
on the centres and the directory and stores the record (``<root>/migrations/<id>.json``,
atomically, revision-checked) after every transition. One train-date at a time, in stages:

1. ``copy`` (pending -> copying): the origin exports the train-date, the destination
   installs it (frozen there, logged); the origin keeps selling.
2. ``catch_up`` (copying -> catching_up): the origin's log records after the copy's seq are
   applied at the destination.
3. ``switch`` (catching_up -> frozen -> flipped): the origin freezes that train-date alone,
   the final delta is applied, the directory flips it (naming the version it read), the
   destination unfreezes it and the origin drops it (its waiting sales answer ``moved``
   and the client retries at the new owner). The freeze time is the origin's, from its
   freeze to its drop.
4. ``finish`` (flipped -> done): the destination unfreezes and the origin drops it again
   (both idempotent): needed only when the switch failed after the flip, or after a
   restart.

A failure before the flip (an error, or a centre that restarted since the copy: each step
answers the centre's incarnation id) is undone at once: the origin is unfrozen, the copy at
the destination discarded, and the train-date marked failed (``resume`` retries it,
``rollback`` returns the moved ones). After the flip the steps are retried until they
succeed. ``pause`` takes effect after the train-date in flight; ``rollback`` sends the moved
train-dates back by the same protocol.

A migration started with ``auto=False`` runs only when ``step`` is called (one stage per
call): the fault tests drive it that way. Restart policy: ``max_restarts=-1``,
``max_task_retries=-1`` (every public call is idempotent or refused by the state machine);
a restarted migrator reloads the records and, per train-date, does what ``after_restart``
says before it drives the running migrations on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import replace
from datetime import datetime, timezone

import ray
from ray.util import metrics

from actors import NAMESPACE, named_detached, one_line
from actors.seat_centre import get_seat_centre
from actors.seat_directory import get_seat_directory
from actors.seat_runtime import quiet_gc, seats_suffix
from gridfare.errors import (
    GridfareError,
    InvalidInput,
    MigrationConflict,
    MigrationError,
    SeatError,
    UnknownMigration,
)
from gridfare.seats.migration import IN_FLIGHT, Migration, TrainDateMove, after_restart
from gridfare.seats.names import check_migration_id
from gridfare.seats.selectors import TrainSelector
from gridfare.seats.store import SeatsRoot
from gridfare.seats.train import TrainDate

_BEFORE_FLIP = ("copying", "catching_up", "frozen")
_ACTIVE = ("running", "paused", "rolling_back", "failed")
RETRY_S = 0.2


def migrator_name(root: str) -> str:
    return f"gridfare-seat-migrator-{seats_suffix(root)}"


def get_seat_migrator(root: str) -> ray.actor.ActorHandle:
    return named_detached(SeatMigrator, migrator_name(root)).remote(str(SeatsRoot(root).path))


class CentreRestarted(SeatError):
    """A centre restarted during a migration step (its incarnation changed)."""


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class SeatMigrator:
    def __init__(self, root: str) -> None:
        self._root = SeatsRoot(root)
        self._config = self._root.config()
        self._migrations: dict[str, Migration] = {}
        self._extra: dict[str, dict] = {}
        for mid, (migration, extra) in self._root.read_migrations().items():
            self._migrations[mid] = migration
            self._extra[mid] = extra
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: dict[str, asyncio.Task] = {}
        self._incarnations: dict[str, tuple[str, str]] = {}  # key -> (origin, destination)
        self._seqs: dict[str, int] = {}  # key -> seq copied to the destination
        self._recovered: asyncio.Task | None = None
        self._handles: dict[str, ray.actor.ActorHandle] = {}
        self._directory_handle: ray.actor.ActorHandle | None = None
        self._freeze_s: list[float] = []
        self._freeze_steps: list[dict[str, float]] = []  # each freeze's steps, seconds
        self._saved = asyncio.Event()  # set (and replaced) at each store of a record
        self._freeze_hist = metrics.Histogram(
            "gridfare_seat_freeze_seconds",
            "one train-date frozen during its migration",
            boundaries=[0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2],
        )
        self._moved = metrics.Counter(
            "gridfare_seat_train_dates_moved",
            "train-dates moved (or returned)",
            tag_keys=("result",),
        )
        quiet_gc()  # its loop times the freeze window: no long full collections in it

    # ---- handles ----------------------------------------------------------------------

    # Handles are kept: getting one asks the GCS (about 6 % of the migrator's time when it
    # did so at every step). They survive the actors' restarts (same named actor).

    def _centre(self, centre_id: str):
        handle = self._handles.get(centre_id)
        if handle is None:
            handle = self._handles[centre_id] = get_seat_centre(str(self._root.path), centre_id)
        return handle

    def _directory(self):
        if self._directory_handle is None:
            self._directory_handle = get_seat_directory(str(self._root.path))
        return self._directory_handle

    # ---- recovery ---------------------------------------------------------------------

    async def _ready(self) -> None:
        if self._recovered is None:
            self._recovered = asyncio.ensure_future(self._recover())
        await asyncio.shield(self._recovered)

    async def _recover(self) -> None:
        directory = self._directory()
        for mid, migration in self._migrations.items():
            if migration.state not in _ACTIVE:
                continue
            owners = {}
            for move in migration.moves.values():
                if move.step in IN_FLIGHT:
                    owners[move.key] = (await directory.lookup.remote(move.key))[0]
            async with self._lock(mid):
                for decision in after_restart(migration, lambda k, o=owners: o.get(k, "")):
                    move = migration.moves[decision.key]
                    if decision.action == "restart" and owners.get(move.key) == move.destination:
                        # The flip reached the directory before the record was stored.
                        if move.step == "copying":
                            migration.advance(move.key)
                        if migration.moves[move.key].step == "catching_up":
                            migration.advance(move.key)
                        decision = replace(decision, action="finish")
                        move = migration.moves[move.key]
                    if decision.action == "restart":
                        await self._undo(migration, move)
                        migration.restart(move.key)
                        self._save(migration)
                    elif decision.action == "finish":
                        if move.step == "frozen":
                            version = (await directory.lookup.remote(move.key))[1]
                            migration.advance(move.key, version)
                            self._save(migration)
                        await self._finish(migration, migration.moves[move.key])
                        self._save(migration)
            self._drive(mid)

    # ---- public API -------------------------------------------------------------------

    async def start(
        self, selector: str, target: str, migration_id: str | None = None, auto: bool = True
    ) -> dict:
        """Plan and start a migration of the train-dates ``selector`` picks to ``target``."""
        await self._ready()
        if target not in self._config.centres:
            raise InvalidInput(
                f"migration: target centre {target!r} is not one of {self._config.centres}"
            )
        parsed = TrainSelector.parse(selector)
        mid = check_migration_id(migration_id) if migration_id is not None else _new_id()
        if mid in self._migrations:
            known, extra = self._migrations[mid], self._extra[mid]
            if known.selector != str(parsed) or extra.get("target") != target:
                raise MigrationConflict(
                    f"migration {mid} exists for {known.selector!r} to "
                    f"{extra.get('target')!r}; a retried start must name the same selector "
                    "and target (choose a new id for another migration)"
                )
            return self._status(mid)  # a retried start
        _, owners = await self._directory().entries.remote()
        trains = []
        for centre in self._config.centres:
            held = await self._centre(centre).trains.remote(str(parsed))
            trains += [t for t in map(TrainDate.from_dict, held) if parsed.matches(t)]
        owned = {t.key: owners[t.key][0] for t in trains if t.key in owners}
        trains = [t for t in trains if t.key in owned]
        migration = Migration.plan(mid, parsed, trains, owned, target)
        busy = self._busy_keys()
        clash = sorted(set(migration.moves) & busy)
        if clash:
            raise MigrationError(
                f"migration {mid}: {clash[0]} (and {len(clash) - 1} more) "
                "already belong to an unfinished migration"
            )
        self._migrations[mid] = migration
        self._extra[mid] = {"auto": bool(auto), "target": target, "created": _now()}
        self._save(migration)
        self._drive(mid)
        return self._status(mid)

    async def step(self, migration_id: str) -> dict:
        """Carry out one stage of the train-date in flight (or start the next one)."""
        await self._ready()
        migration = self._get(migration_id)
        async with self._lock(migration_id):
            move = migration.next_move()
            if move is None:
                raise MigrationError(
                    f"migration {migration_id}: nothing to do while {migration.state}"
                )
            await self._stage(migration, move)
            self._save(migration)  # a stage driven by hand is stored at once
        return self._status(migration_id)

    async def pause(self, migration_id: str) -> dict:
        await self._ready()
        migration = self._get(migration_id)
        migration.pause()
        self._save(migration)
        return self._status(migration_id)

    async def resume(self, migration_id: str) -> dict:
        await self._ready()
        migration = self._get(migration_id)
        async with self._lock(migration_id):
            migration.resume()
            self._save(migration)
        self._drive(migration_id)
        return self._status(migration_id)

    async def rollback(self, migration_id: str) -> dict:
        await self._ready()
        migration = self._get(migration_id)
        migration.rollback()
        self._save(migration)
        self._drive(migration_id)
        return self._status(migration_id)

    async def status(self, migration_id: str, moves: bool = True) -> dict:
        """A migration's state; with ``moves`` every train-date's step (large: a poll
        leaves it out)."""
        await self._ready()
        return self._status(migration_id, moves=moves)

    async def wait(self, migration_id: str, states: list[str], timeout_s: float
                   ) -> dict | None:
        """The status (without the per-train-date steps) once the migration is in one of
        ``states`` with no train-date in flight, or None after ``timeout_s``: a long poll,
        so a waiting client learns of the end at once and nobody polls the migrator's loop."""
        await self._ready()
        deadline = time.monotonic() + timeout_s
        while True:
            status = self._status(migration_id, moves=False)
            if status["state"] in states and status["current"] is None:
                return status
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._saved.wait(), left)

    async def list(self) -> list[dict]:
        await self._ready()
        return [self._status(mid, moves=False) for mid in sorted(self._migrations)]

    async def freeze_times(self) -> list[float]:
        """Seconds each train-date was frozen, since this migrator started."""
        return list(self._freeze_s)

    async def freeze_steps(self) -> list[dict[str, float]]:
        """For each of ``freeze_times``: the seconds of each step of its window, as the
        destination timed them (``gridfare.seats.takeover``)."""
        return list(self._freeze_steps)

    # ---- driving ----------------------------------------------------------------------

    def _drive(self, mid: str) -> None:
        if not self._extra[mid].get("auto", True):
            return
        task = self._tasks.get(mid)
        if task is None or task.done():
            self._tasks[mid] = asyncio.ensure_future(self._run(mid))

    async def _run(self, mid: str) -> None:
        migration = self._migrations[mid]
        while True:
            started = time.perf_counter()
            async with self._lock(mid):
                move = migration.next_move()
                if move is None:
                    self._save(migration)  # the last move's "done"
                    return
                try:
                    await self._stage(migration, move)
                except Exception as exc:  # after the flip: retry until it succeeds
                    print(f"migration {mid}: {move.key}: {one_line(exc)}; retrying", flush=True)
                    await asyncio.sleep(RETRY_S)
            # A migration is background work: it rests between stages (outside the lock, so
            # pause and rollback act at once) to work only ``migration_duty`` of the time.
            # Run flat out on 2 cores, its export/install/record work took CPU straight
            # from the other trains' sales (bench/seats.py: others at 54-85 % of before);
            # the freeze window itself is one stage and is never split.
            worked = time.perf_counter() - started
            await asyncio.sleep(worked * (1 / self._config.migration_duty - 1))

    async def _stage(self, migration: Migration, move: TrainDateMove) -> None:
        if move.step == "flipped":
            await self._finish(migration, move)
            return
        try:
            if move.step == "pending":
                await self._copy(migration, move)
            elif move.step == "copying":
                await self._catch_up(migration, move)
            elif move.step == "catching_up":
                await self._switch(migration, move)
            elif move.step == "frozen":  # only after a restart: settled by _recover
                raise MigrationError(f"migration {migration.id}: {move.key} is frozen")
        except (GridfareError, ray.exceptions.RayError) as exc:
            current = migration.moves[move.key]
            if current.step not in _BEFORE_FLIP:
                raise
            owner, version = await self._directory().lookup.remote(move.key)
            if current.step == "frozen" and owner == current.destination:
                migration.advance(move.key, version)  # the flip landed; its answer did not
                self._save(migration)
                return
            await self._undo(migration, current)
            migration.fail(move.key, one_line(exc))
            self._save(migration)
            self._moved.inc(tags={"result": "failed"})

    async def _copy(self, migration: Migration, move: TrainDateMove) -> None:
        migration.advance(move.key)
        self._save(migration)
        origin, dest = self._centre(move.origin), self._centre(move.destination)
        inc_o, data, _ = await origin.export.remote(move.key)
        inc_d, seq = await dest.install.remote(data)
        self._incarnations[move.key] = (inc_o, inc_d)
        self._seqs[move.key] = seq

    async def _catch_up(self, migration: Migration, move: TrainDateMove) -> None:
        # Not stored: after a restart "catching_up" is settled exactly as "copying" (undone
        # unless the directory already names the destination), and each store is an fsync
        # beside the sales.
        migration.advance(move.key)
        origin, dest = self._centre(move.origin), self._centre(move.destination)
        # No ping first: both answers carry the incarnation (checked below), a restarted
        # origin refuses records_after, and catch-up records applied to a restarted
        # destination are undone with the rest of the copy.
        inc_o, records = await origin.records_after.remote(move.key, self._seqs[move.key])
        inc_d, seq = await dest.catch_up.remote(records)
        self._check(move, inc_o, inc_d)
        self._seqs[move.key] = max(seq, self._seqs[move.key])

    async def _switch(self, migration: Migration, move: TrainDateMove) -> None:
        dest = self._centre(move.destination)
        directory = self._directory()
        # Read before the freeze, to keep the window to the calls that must be in it: only
        # this migration moves this train-date, and ``move`` is refused if the version has
        # changed anyway.
        owner, version = await directory.lookup.remote(move.key)
        if owner != move.origin:
            raise MigrationError(
                f"migration {migration.id}: {move.key} is on {owner}, not {move.origin}"
            )
        # The window, run by the destination in one call (``SeatCentre.take_over``): freeze
        # at the origin and take the final delta, apply it at the destination, flip the
        # directory, unfreeze at the destination, drop at the origin. At most three fsyncs
        # before the sales go on, each needed: the delta durable at the origin (only if it
        # has records), the same records durable at the destination before it sells on
        # top of them, and the flip durable before the destination accepts sales (else a
        # directory restart could name the origin again while the destination sells: two
        # owners). The drop's own fsync comes after it has released the origin's waiting
        # sales (see ``SeatCentre.drop``).
        # "frozen" is not stored until after the flip (a store is an fsync inside the
        # window): a restart meanwhile finds "catching_up" and reads the directory.
        migration.advance(move.key)  # frozen
        known = self._incarnations.get(move.key)
        if known is None:
            raise CentreRestarted(f"{move.key}: the migrator lost the copy's state; redo it")
        _, version, frozen, steps = await dest.take_over.remote(
            move.key, move.origin, self._seqs[move.key], version, known
        )
        migration.advance(move.key, version)  # flipped: nothing can fail for good now
        self._save(migration)
        if frozen is not None:  # None: the origin restarted meanwhile (not measured)
            self._freeze_s.append(frozen)
            self._freeze_steps.append(steps)
            self._freeze_hist.observe(frozen)

    async def _finish(self, migration: Migration, move: TrainDateMove) -> None:
        origin, dest = self._centre(move.origin), self._centre(move.destination)
        while True:
            try:
                # Also after take_over: a destination restarted before the flip was stored
                # keeps it frozen (``Migration.frozen_at``).
                await dest.unfreeze.remote(move.key)
                await origin.drop.remote(move.key, move.destination, move.version)
                break
            except ray.exceptions.RayError:
                await asyncio.sleep(RETRY_S)  # retried until it succeeds
        self._incarnations.pop(move.key, None)
        self._seqs.pop(move.key, None)
        # Stored with the next step or at the end of the run, not one more fsync beside
        # the sales: a restart meanwhile finds it "flipped" and finishes it again (unfreeze
        # and drop are idempotent), and a destination restarting meanwhile sells it
        # (``Migration.frozen_at``).
        migration.advance(move.key)
        self._moved.inc(tags={"result": "returned" if move.returning else "moved"})

    async def _undo(self, migration: Migration, move: TrainDateMove) -> None:
        """Before the flip: the origin keeps the train-date; throw the copy away."""
        origin, dest = self._centre(move.origin), self._centre(move.destination)
        owner, version = await self._directory().lookup.remote(move.key)
        if owner != move.origin:
            raise MigrationError(
                f"migration {migration.id}: cannot undo {move.key}: the "
                f"directory names {owner}, not {move.origin}"
            )
        await dest.discard.remote(move.key, move.origin, version)
        await origin.unfreeze.remote(move.key)
        self._incarnations.pop(move.key, None)
        self._seqs.pop(move.key, None)

    def _check(self, move: TrainDateMove, inc_origin: str, inc_dest: str) -> None:
        known = self._incarnations.get(move.key)
        if known is None:
            raise CentreRestarted(f"{move.key}: the migrator lost the copy's state; redo it")
        if known[0] != inc_origin:
            raise CentreRestarted(f"{move.key}: origin {move.origin} restarted mid-migration")
        if known[1] != inc_dest:
            raise CentreRestarted(
                f"{move.key}: destination {move.destination} restarted mid-migration"
            )

    # ---- records ----------------------------------------------------------------------

    def _lock(self, mid: str) -> asyncio.Lock:
        return self._locks.setdefault(mid, asyncio.Lock())

    def _get(self, mid: str) -> Migration:
        migration = self._migrations.get(mid)
        if migration is None:
            raise UnknownMigration(f"no migration {mid!r}")
        return migration

    def _save(self, migration: Migration) -> None:
        self._root.write_migration(migration, self._extra[migration.id])
        # Every change that ``wait`` looks for is stored: wake the waiters.
        self._saved.set()
        self._saved = asyncio.Event()

    def _busy_keys(self) -> set[str]:
        return {
            k
            for m in self._migrations.values()
            if m.state in _ACTIVE
            for k, mv in m.moves.items()
            if mv.step not in ("done", "rolled_back")
        }

    def _status(self, mid: str, moves: bool = True) -> dict:
        migration = self._get(mid)
        steps: dict[str, int] = {}
        for move in migration.moves.values():
            name = (
                "returning " if move.returning and move.step != "rolled_back" else ""
            ) + move.step
            steps[name] = steps.get(name, 0) + 1
        current = migration.current()
        status = {
            "id": mid,
            "selector": migration.selector,
            "state": migration.state,
            "revision": migration.revision,
            "steps": steps,
            "current": current.key if current else None,
            **self._extra[mid],
        }
        if moves:
            status["moves"] = [m.to_dict() for m in migration.moves.values()]
        return status


def _new_id() -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"m{stamp}-{uuid.uuid4().hex[:6]}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def kill_seat_actors(root: str) -> None:
    """Kill the seat actors of ``root`` for good (tests and ``gridfare seats stop``)."""
    from actors.seat_centre import centre_name
    from actors.seat_directory import directory_name

    names = [migrator_name(root), directory_name(root)]
    names += [centre_name(root, c) for c in SeatsRoot(root).config().centres]
    for name in names:
        try:
            ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)
        except ValueError:
            continue  # never started
