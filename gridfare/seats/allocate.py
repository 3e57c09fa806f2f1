"""First come, first served seat allocation over many batches at once, on per-leg bitsets.

A *job* is one class of one train-date and the new orders on it, in their order: the
class's occupancy twice over (``masks``: one uint64 per seat, bit ``i`` = leg ``i`` sold,
what snapshots and the audit read; ``bits``: one Python int per leg, bit ``s`` = seat
``s + 1`` sold on that leg), each order's legs and seat count. ``allocate`` gives each
order, in turn, the lowest-numbered seats free on all its legs, or (sold out) the number
of such seats free at its turn: what selling them one by one would give. It updates both.

An order is a handful of big-integer operations on ``bits``: the OR of its legs' sets
(seats taken on any of them), the complement within the class (free seats), its popcount
(sold out?), the lowest ``count`` set bits (``x & -x``), and the chosen seats OR-ed into
its legs. A 1,000-seat class is a 1,000-bit int: each operation is a few dozen machine
words in C, with no per-batch matrix to build. The turn of each order is inherently
sequential (an order's seats depend on those the orders before it took), and this makes
that turn the whole cost. It replaced an orders x seats numpy matrix (a cumulative count
and a binary search per seat wanted, then each order's turn over a short candidate list in
Python), which was four fifths of a centre's time per request on ``bench/seats.py``'s
Redis stream (py-spy: the matrix's ``cumsum`` alone a quarter of it).

Checked per job, against the other representation: no seat given out was sold on one of
its new legs already in ``masks``, and within the batch the bits set are the bits sold
(no seat-leg went to two orders). Either failing is ``WalCorrupt``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from gridfare.errors import WalCorrupt

__all__ = ["Job", "allocate", "leg_bits", "legs_of", "seat_bits"]


@dataclass(frozen=True)
class Job:
    key: str  # the train-date, for messages
    masks: np.ndarray  # the class's occupancy per seat, updated in place
    bits: list[int]  # the class's occupancy per leg (``leg_bits``), updated in place
    legs: list[int]  # each order's legs (a bit per leg)
    counts: list[int]  # each order's seats


@lru_cache(maxsize=4096)
def legs_of(seg: int) -> tuple[int, ...]:
    """The leg indexes of a trip's leg mask (bit ``i`` -> ``i``)."""
    return tuple(i for i in range(seg.bit_length()) if seg >> i & 1)


def leg_bits(masks: np.ndarray, n_legs: int) -> list[int]:
    """Per leg, the seats sold on it as an int (bit ``s``: seat index ``s``), from the
    per-seat masks: the ``bits`` of a ``Job``."""
    if masks.size == 0:
        return [0] * n_legs
    sold = (masks[:, None] >> np.arange(n_legs, dtype=np.uint64)) & np.uint64(1)
    packed = np.packbits(sold.astype(np.uint8), axis=0, bitorder="little")
    return [int.from_bytes(packed[:, leg].tobytes(), "little") for leg in range(n_legs)]


def seat_bits(seats) -> int:
    """1-based seat numbers as an int with bit ``seat - 1`` set for each."""
    found = 0
    for s in seats:
        found |= 1 << (s - 1)
    return found


def allocate(jobs: list[Job]) -> list[list[tuple[int, ...] | int]]:
    """Per job, per order: its seat numbers (1-based) or, sold out, the seats free then."""
    return [_turns(job) for job in jobs]


def _turns(job: Job) -> list[tuple[int, ...] | int]:
    bits = job.bits
    full = (1 << job.masks.size) - 1
    result: list[tuple[int, ...] | int] = []
    taken: dict[int, int] = {}  # seat index -> legs sold on it in this batch
    sold_bits = 0
    for want, seg in zip(job.counts, job.legs, strict=True):
        legs = legs_of(seg)
        busy = 0
        for leg in legs:
            busy |= bits[leg]
        free = full & ~busy
        left = free.bit_count()
        if left < want:
            result.append(left)
            continue
        took, seats = 0, []
        for _ in range(want):
            low = free & -free
            free ^= low
            took |= low
            seat = low.bit_length()  # 1-based
            seats.append(seat)
            taken[seat - 1] = taken.get(seat - 1, 0) | seg
        for leg in legs:
            bits[leg] |= took
        sold_bits += want * len(legs)
        result.append(tuple(seats))
    if taken:
        if sum(v.bit_count() for v in taken.values()) != sold_bits:
            raise WalCorrupt(f"train-date {job.key}: a batch would sell a seat-leg twice")
        index = np.fromiter(taken, np.int64, len(taken))
        new = np.fromiter(taken.values(), np.uint64, len(taken))
        if (job.masks[index] & new).any():
            raise WalCorrupt(f"train-date {job.key}: a batch would sell a seat-leg twice")
        job.masks[index] |= new
    return result
