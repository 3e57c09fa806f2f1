"""Live migration of train-dates between centres, as a pure, durable state machine.

One train-date moves at a time, so only that train's sales are affected, and only briefly:

    pending -> copying -> catching_up -> frozen -> flipped -> done

- ``copying``: the origin's snapshot of the train-date is installed at the destination
  (frozen there) while the origin keeps selling;
- ``catching_up``: the origin's log records after the snapshot's seq are applied;
- ``frozen``: the origin freezes this train-date alone (sales get ``TrainFrozen``) and the
  final delta is applied;
- ``flipped``: the directory moves the train-date (naming the version it read); ``version``
  is the new one;
- ``done``: the destination unfreezes, the origin drops it (answering ``TrainMoved``).

A step that fails before the flip is undone at once by the shell (unfreeze the origin,
``CentreState.discard`` the destination's copy, which logs a ``drop``) and recorded with
``fail(key, reason)``: the origin still owns the train-date, nothing is lost. After the
flip nothing can fail for good: unfreeze and drop are retried until they succeed.

Migration states: ``running``, ``paused`` (the train-date in flight finishes, no new one
starts), ``rolling_back`` (moved train-dates return by the same protocol, last moved first;
ones never started are ``rolled_back`` at once; one in flight finishes first and then
returns), ``failed`` (a step failed: ``resume`` retries, ``rollback`` returns), ``done`` and
``rolled_back``. A returning move has ``returning=True`` and runs from its ``target`` back
to its ``source``; its last step is ``rolled_back`` instead of ``done``.

The record (``to_record``/``from_record``) is stored after every change, as a journal line
on a periodically compacted record (``SeatsRoot.write_migration``; its ``revision`` lets the
store refuse a stale write); after a restart ``after_restart`` says per
train-date what to do next.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from gridfare.errors import InvalidInput, MigrationError
from gridfare.seats.names import check_migration_id
from gridfare.seats.selectors import TrainSelector
from gridfare.seats.train import TrainDate

__all__ = [
    "IN_FLIGHT",
    "MIGRATION_STATES",
    "STEPS",
    "Decision",
    "Migration",
    "TrainDateMove",
    "after_restart",
]

STEPS: tuple[str, ...] = (
    "pending",
    "copying",
    "catching_up",
    "frozen",
    "flipped",
    "done",
    "failed",
    "rolled_back",
)
IN_FLIGHT: tuple[str, ...] = ("copying", "catching_up", "frozen", "flipped")
_BEFORE_FLIP = ("copying", "catching_up", "frozen")
_TERMINAL = ("done", "rolled_back")
_NEXT = {
    "pending": "copying",
    "copying": "catching_up",
    "catching_up": "frozen",
    "frozen": "flipped",
}
MIGRATION_STATES: tuple[str, ...] = (
    "running",
    "paused",
    "rolling_back",
    "failed",
    "done",
    "rolled_back",
)


@dataclass(frozen=True)
class TrainDateMove:
    key: str
    source: str
    target: str
    step: str = "pending"
    returning: bool = False
    reason: str = ""
    version: int = 0  # directory version after the last flip

    @property
    def origin(self) -> str:
        """Where the train-date is moving from now."""
        return self.target if self.returning else self.source

    @property
    def destination(self) -> str:
        return self.source if self.returning else self.target

    @property
    def next_step(self) -> str:
        if self.step == "flipped":
            return "rolled_back" if self.returning else "done"
        return _NEXT.get(self.step, "")

    def to_dict(self) -> dict[str, object]:
        return {
            "key": self.key,
            "source": self.source,
            "target": self.target,
            "step": self.step,
            "returning": self.returning,
            "reason": self.reason,
            "version": self.version,
        }


class Migration:
    def __init__(
        self,
        migration_id: str,
        selector: str,
        moves: Iterable[TrainDateMove],
        state: str = "running",
        rollback_requested: bool = False,
        revision: int = 0,
    ) -> None:
        self.id = check_migration_id(migration_id)
        self.selector = selector
        self.moves: dict[str, TrainDateMove] = {m.key: m for m in moves}
        self.state = state
        self.rollback_requested = rollback_requested
        self.revision = revision

    @classmethod
    def plan(
        cls,
        migration_id: str,
        selector: TrainSelector,
        train_dates: Iterable[TrainDate],
        owners: Mapping[str, str],
        target: str,
    ) -> Migration:
        """A migration of every selected train-date not already on ``target``."""
        moves = []
        for train in selector.select(train_dates):
            owner = owners.get(train.key)
            if owner is None:
                raise MigrationError(f"migration {migration_id}: {train.key} has no owner")
            if owner != target:
                moves.append(TrainDateMove(train.key, owner, target))
        if not moves:
            raise InvalidInput(
                f"migration {migration_id}: selector {str(selector)!r} matches no train-date "
                f"outside {target}"
            )
        return cls(migration_id, str(selector), moves)

    # ---- what next --------------------------------------------------------------------

    def current(self) -> TrainDateMove | None:
        """The train-date in flight, if any."""
        return next((m for m in self.moves.values() if m.step in IN_FLIGHT), None)

    def next_move(self) -> TrainDateMove | None:
        """The move to work on now: the one in flight, else the next one to start (none
        while paused or failed)."""
        current = self.current()
        if current is not None:
            return current
        if self.state == "running":
            return next(
                (m for m in self.moves.values() if m.step == "pending" and not m.returning), None
            )
        if self.state == "rolling_back":
            return next(
                (m for m in reversed(self.moves.values()) if m.step == "pending" and m.returning),
                None,
            )
        return None

    def frozen_at(self, centre: str) -> set[str]:
        """Train-dates a restarted ``centre`` must keep frozen until ``after_restart``'s
        decisions are carried out: the one in flight, at both of its ends until the flip,
        then at its origin only. Once flipped, the destination holds every acknowledged
        sale (the final delta was durable there before the directory flipped) and is the
        owner: it sells, even if it restarts before the move is stored as finished."""
        current = self.current()
        if current is None:
            return set()
        if centre == current.origin or (
                centre == current.destination and current.step != "flipped"):
            return {current.key}
        return set()

    # ---- transitions ------------------------------------------------------------------

    def advance(self, key: str, version: int = 0) -> TrainDateMove:
        """Record that ``key`` finished its current step; ``version`` is required for the
        flip (the directory version naming the destination)."""
        move = self._move(key)
        step = move.next_step
        if not step:
            raise self._illegal(move, "advance")
        if move.step == "pending":
            starting = "rolling_back" if move.returning else "running"
            if self.state != starting:
                raise self._illegal(move, f"start while the migration is {self.state}")
            other = self.current()
            if other is not None:
                raise self._illegal(move, f"start while {other.key} is {other.step}")
        elif self.state not in ("running", "paused", "rolling_back"):
            raise self._illegal(move, f"advance while the migration is {self.state}")
        if step == "flipped":
            if isinstance(version, bool) or not isinstance(version, int) or version < 1:
                raise self._illegal(move, f"flip without a directory version (got {version!r})")
            move = replace(move, version=version)
        move = replace(move, step=step)
        if step == "done" and self.rollback_requested:
            move = replace(move, step="pending", returning=True)  # finished; now send it back
        self._put(move)
        self._settle()
        return self.moves[key]

    def fail(self, key: str, reason: str) -> TrainDateMove:
        """A step before the flip failed and the shell undid it; the origin still owns it."""
        move = self._move(key)
        if move.step not in _BEFORE_FLIP:
            raise self._illegal(move, "fail (only copying, catching_up or frozen can fail)")
        self._put(replace(move, step="failed", reason=str(reason)))
        self.state = "failed"
        return self.moves[key]

    def restart(self, key: str) -> TrainDateMove:
        """After a crash: the shell discarded the partial copy and unfroze the origin; the
        train-date starts over from ``pending``."""
        move = self._move(key)
        if move.step not in _BEFORE_FLIP:
            raise self._illegal(move, "restart (only before the flip)")
        self._put(replace(move, step="pending"))
        return self.moves[key]

    def pause(self) -> None:
        if self.state not in ("running", "rolling_back"):
            raise MigrationError(f"migration {self.id}: cannot pause while {self.state}")
        self.state = "paused"
        self.revision += 1

    def resume(self) -> None:
        if self.state not in ("paused", "failed"):
            raise MigrationError(f"migration {self.id}: cannot resume while {self.state}")
        for move in list(self.moves.values()):
            if move.step == "failed":
                self._put(replace(move, step="pending", reason=""))
        self.state = "rolling_back" if self.rollback_requested else "running"
        self.revision += 1
        self._settle()

    def rollback(self) -> None:
        """Send every moved train-date back; ones never started are rolled back at once."""
        if self.state in ("rolling_back", "rolled_back"):
            raise MigrationError(f"migration {self.id}: cannot roll back while {self.state}")
        self.rollback_requested = True
        for move in list(self.moves.values()):
            if move.step in ("pending", "failed") and not move.returning:
                self._put(replace(move, step="rolled_back"))
            elif move.step == "failed":
                self._put(replace(move, step="pending", reason=""))
            elif move.step == "done":
                self._put(replace(move, step="pending", returning=True))
        self.state = "rolling_back"
        self.revision += 1
        self._settle()

    # ---- records ----------------------------------------------------------------------

    def to_record(self) -> dict[str, object]:
        return {
            "id": self.id,
            "selector": self.selector,
            "state": self.state,
            "rollback_requested": self.rollback_requested,
            "revision": self.revision,
            "moves": [m.to_dict() for m in self.moves.values()],
        }

    @classmethod
    def from_record(cls, record: Mapping[str, object]) -> Migration:
        try:
            moves = [
                TrainDateMove(
                    key=str(m["key"]),
                    source=str(m["source"]),
                    target=str(m["target"]),
                    step=str(m["step"]),
                    returning=bool(m["returning"]),
                    reason=str(m.get("reason", "")),
                    version=int(m.get("version", 0)),
                )
                for m in record["moves"]
            ]
            migration = cls(
                str(record["id"]),
                str(record["selector"]),
                moves,
                state=str(record["state"]),
                rollback_requested=bool(record["rollback_requested"]),
                revision=int(record["revision"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MigrationError(f"migration record: missing or bad field {exc}") from exc
        if migration.state not in MIGRATION_STATES:
            raise MigrationError(f"migration {migration.id}: unknown state {migration.state!r}")
        for move in migration.moves.values():
            if move.step not in STEPS:
                raise MigrationError(f"migration {migration.id}: {move.key} step {move.step!r}")
        if len(migration.moves) != len(record["moves"]):
            raise MigrationError(f"migration {migration.id}: a train-date is listed twice")
        if sum(m.step in IN_FLIGHT for m in migration.moves.values()) > 1:
            raise MigrationError(f"migration {migration.id}: more than one train-date in flight")
        TrainSelector.parse(migration.selector)
        return migration

    # ---- helpers ----------------------------------------------------------------------

    def _move(self, key: str) -> TrainDateMove:
        move = self.moves.get(key)
        if move is None:
            raise MigrationError(f"migration {self.id}: train-date {key} is not part of it")
        return move

    def _put(self, move: TrainDateMove) -> None:
        self.moves[move.key] = move
        self.revision += 1

    def _illegal(self, move: TrainDateMove, what: str) -> MigrationError:
        way = "returning " if move.returning else ""
        return MigrationError(
            f"migration {self.id}: train-date {move.key} ({way}step {move.step}): cannot {what}"
        )

    def _settle(self) -> None:
        steps = [m.step for m in self.moves.values()]
        if self.state == "running" and all(s == "done" for s in steps):
            self.state = "done"
        elif self.state == "rolling_back" and all(s == "rolled_back" for s in steps):
            self.state = "rolled_back"


@dataclass(frozen=True)
class Decision:
    """What the shell does next for one train-date after a restart.

    Actions: ``none`` (finished, or failed and already undone: waits for the operator),
    ``wait`` (paused or failed migration), ``move`` / ``return`` (start the protocol),
    ``restart`` (before the flip: discard the copy at ``destination``, unfreeze ``origin``,
    then ``Migration.restart``), ``finish`` (the directory already names the destination:
    record the flip if it was not, unfreeze at ``destination``, drop at ``origin``).
    """

    key: str
    action: str
    origin: str
    destination: str


def after_restart(migration: Migration, owner_of: Callable[[str], str]) -> list[Decision]:
    """Per train-date, what to do after a restart; ``owner_of(key)`` reads the directory."""
    decisions = []
    for move in migration.moves.values():
        if move.step in ("done", "rolled_back", "failed"):
            action = "none"
        elif move.step == "flipped":
            action = "finish"
        elif move.step == "frozen" and owner_of(move.key) == move.destination:
            action = "finish"  # the flip reached the directory but not this record
        elif move.step in _BEFORE_FLIP:
            action = "restart"
        elif migration.state == "running" and not move.returning:
            action = "move"
        elif migration.state == "rolling_back" and move.returning:
            action = "return"
        else:
            action = "wait"
        decisions.append(Decision(move.key, action, move.origin, move.destination))
    return decisions
