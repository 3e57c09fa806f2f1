"""Which train-dates a centre's next checkpoint must copy, and whether it is a full snapshot
or a delta on the chain (pure: ``actors/seat_centre.py`` runs it between sales).

The chain is the last full snapshot and the deltas after it (``gridfare.seats.snapshot``). A
train-date the chain already holds, still the same inventory object at the same ``seq``, has
had no change since it was copied and is left out of the next delta. The record of what the
chain holds changes only when a checkpoint is on disk (``commit``): a write that fails must
not let the next delta skip train-dates it never stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["CheckpointChain", "PendingCheckpoint"]


class _Versioned(Protocol):
    seq: int


@dataclass
class PendingCheckpoint:
    """A checkpoint being taken: ``full`` or a delta following the chain's lsn ``after``."""

    full: bool
    after: int
    captured: dict[str, tuple[_Versioned, int]] = field(default_factory=dict)
    held: tuple[str, ...] = ()

    def changed(self, inventories: Mapping[str, _Versioned]) -> list[str]:
        """The train-dates to copy, in key order: all of them for a full snapshot."""
        return [k for k in sorted(inventories) if not self._holds(k, inventories[k])]

    def capture(self, keys: Iterable[str], inventories: Mapping[str, _Versioned]) -> None:
        """``keys`` were copied just now, as they are in ``inventories``."""
        self.captured.update((k, (inventories[k], inventories[k].seq)) for k in keys)

    def close(self, held: Iterable[str]) -> None:
        """The train-dates held when the copying ended; the others leave the record."""
        self.held = tuple(held)
        for key in set(self.captured) - set(self.held):
            del self.captured[key]

    def _holds(self, key: str, inventory: _Versioned) -> bool:
        # The same object (a train-date moved away and back is a new one) at the same seq.
        known = self.captured.get(key)
        return known is not None and known[0] is inventory and known[1] == inventory.seq


class CheckpointChain:
    """A centre's chain since it started: a full snapshot first (after a restart nothing is
    known of what the chain holds), then deltas until they hold more seats than the full
    snapshot (a restart then reads at most twice a centre's seats)."""

    def __init__(self, lsn: int) -> None:
        self.lsn = lsn  # of the chain's last checkpoint (0: none)
        self._captured: dict[str, tuple[_Versioned, int]] = {}
        self._full_rows: int | None = None
        self._delta_rows = 0

    def start(self) -> PendingCheckpoint:
        full = self._full_rows is None or self._delta_rows > self._full_rows
        return PendingCheckpoint(full, self.lsn, {} if full else dict(self._captured))

    def commit(self, pending: PendingCheckpoint, lsn: int, rows: int) -> None:
        """``pending`` is on disk at ``lsn``, with ``rows`` seats."""
        if pending.full:
            self._full_rows, self._delta_rows = max(rows, 1), 0
        else:
            self._delta_rows += rows
        self._captured = pending.captured
        self.lsn = lsn
