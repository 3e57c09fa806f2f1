"""The open-state table: one row per burst environment, and the moves it may make.

    opening -> open -> draining -> closed
       \\________________/^   \\___/^
    (opening or open may drain; an environment lost with its node is closed at once)

- ``opening``: asked of the autoscaler, not registered yet (no node);
- ``open``: registered from its node; it takes new work;
- ``draining``: told to close: it takes no new work, finishes what it has, and its node is
  drained (a preemption drain, so Ray gives it nothing new either);
- ``closed``: gone. Its row stays in the table for ``status`` until it has been closed
  longer than the retention and its credit is settled; the ledger keeps its entries.

Every change is a pure function returning the new row; a change the state does not allow
raises :class:`IllegalTransition`, except that repeating a change is a no-op, so a manager
that retries after a restart changes nothing twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from enum import Enum

from gridfare.errors import IllegalTransition

__all__ = ["EnvState", "Environment", "OpenTable"]


class EnvState(str, Enum):
    OPENING = "opening"
    OPEN = "open"
    DRAINING = "draining"
    CLOSED = "closed"


_ALLOWED = {
    EnvState.OPENING: {EnvState.OPEN, EnvState.DRAINING, EnvState.CLOSED},
    EnvState.OPEN: {EnvState.DRAINING, EnvState.CLOSED},
    EnvState.DRAINING: {EnvState.CLOSED},
    EnvState.CLOSED: set(),
}


@dataclass(frozen=True)
class Environment:
    """One row of the open-state table."""

    env_id: str
    episode: int  # the sharing episode that asked for it
    state: EnvState = EnvState.OPENING
    node_id: str = ""
    cpus: float = 0.0
    memory_bytes: int = 0
    asked_at: float = 0.0  # wall-clock seconds (time.time()): rows outlive the manager
    opened_at: float | None = None
    draining_at: float | None = None
    closed_at: float | None = None
    tasks_in_flight: int = 0
    tasks_done: int = 0
    reason: str = ""  # why it closed
    # (worker, in flight, done) of each process that reported from it (a replica's id):
    # a node may hold several replicas, and one Serve restarts counts from zero again.
    workers: tuple[tuple[str, int, int], ...] = ()

    def to_dict(self) -> dict:
        data = asdict(self)
        data["state"] = self.state.value
        data["workers"] = [list(w) for w in self.workers]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Environment:
        return cls(**{**data, "state": EnvState(data["state"]),
                      "workers": tuple(tuple(w) for w in data.get("workers", ()))})


def _move(env: Environment, to: EnvState, **changes) -> Environment:
    if env.state is to:
        return env  # repeated: nothing changes
    if to not in _ALLOWED[env.state]:
        raise IllegalTransition(
            f"environment {env.env_id}: cannot go from {env.state.value} to {to.value}")
    return replace(env, state=to, **changes)


class OpenTable:
    """The rows, keyed by environment id; the manager persists each changed row."""

    def __init__(self, rows: Iterable[Environment] = ()) -> None:
        self._rows: dict[str, Environment] = {r.env_id: r for r in rows}

    def rows(self) -> list[Environment]:
        return sorted(self._rows.values(), key=lambda r: (r.asked_at, r.env_id))

    def get(self, env_id: str) -> Environment | None:
        return self._rows.get(env_id)

    def in_state(self, *states: EnvState) -> list[Environment]:
        return [r for r in self.rows() if r.state in states]

    def live(self) -> list[Environment]:
        """Rows that hold or may still get a node: everything not closed."""
        return self.in_state(EnvState.OPENING, EnvState.OPEN, EnvState.DRAINING)

    def ask(self, env_id: str, episode: int, now: float) -> Environment:
        """A new environment is wanted (idempotent by id)."""
        known = self._rows.get(env_id)
        if known is not None:
            return known
        row = Environment(env_id=env_id, episode=episode, asked_at=now)
        self._rows[env_id] = row
        return row

    def register(self, env_id: str, node_id: str, cpus: float, memory_bytes: int,
                 now: float) -> Environment:
        """The environment started on ``node_id`` and reported its capacity."""
        row = self._need(env_id)
        if row.state is EnvState.OPEN and row.node_id == node_id:
            return row
        if row.state is not EnvState.OPENING:
            raise IllegalTransition(
                f"environment {env_id}: registration while {row.state.value}")
        return self._put(_move(row, EnvState.OPEN, node_id=node_id, cpus=cpus,
                               memory_bytes=memory_bytes, opened_at=now))

    def report(self, env_id: str, worker: str, tasks_in_flight: int,
               tasks_done: int) -> Environment:
        """The counters of one ``worker`` of the environment (each counts from zero).

        The environment's tasks are the sum over its workers, each at the most it reported,
        so a late or repeated report never takes ``tasks_done`` back.
        """
        row = self._need(env_id)
        if row.state is EnvState.CLOSED:
            return row
        counters = {w: (flight, done) for w, flight, done in row.workers}
        _, before = counters.get(worker, (0, 0))
        counters[worker] = (tasks_in_flight, max(before, tasks_done))
        workers = tuple(sorted((w, f, d) for w, (f, d) in counters.items()))
        return self._put(replace(row, workers=workers,
                                 tasks_in_flight=sum(f for _, f, _ in workers),
                                 tasks_done=sum(d for _, _, d in workers)))

    def on_node(self, node_id: str) -> Environment | None:
        """The live environment on ``node_id`` (one burst environment per node)."""
        for row in self.live():
            if row.node_id == node_id:
                return row
        return None

    def drain(self, env_id: str, now: float) -> Environment:
        row = self._need(env_id)
        if row.state in (EnvState.DRAINING, EnvState.CLOSED):
            return row
        return self._put(_move(row, EnvState.DRAINING, draining_at=now))

    def close(self, env_id: str, now: float, reason: str) -> Environment:
        row = self._need(env_id)
        if row.state is EnvState.CLOSED:
            return row
        return self._put(_move(row, EnvState.CLOSED, closed_at=now, reason=reason,
                               tasks_in_flight=0))

    def prune(self, closed_before: float) -> list[str]:
        """Forget the rows closed before ``closed_before``, so the table holds the live
        environments and the recent past, not every burst since the cluster began. The
        manager credits a row up to its close in the tick that closes it, and the ledger
        keeps the entries, so nothing owed is lost. Returns the ids forgotten."""
        gone = [r.env_id for r in self.in_state(EnvState.CLOSED)
                if r.closed_at is not None and r.closed_at < closed_before]
        for env_id in gone:
            del self._rows[env_id]
        return gone

    def _need(self, env_id: str) -> Environment:
        row = self._rows.get(env_id)
        if row is None:
            raise IllegalTransition(f"environment {env_id}: not in the open-state table")
        return row

    def _put(self, row: Environment) -> Environment:
        self._rows[row.env_id] = row
        return row
