"""First come, first served seat allocation over many batches at once, vectorized.

A *job* is one class of one train-date and the new orders on it, in their order: the
class's occupancy (``masks``: one uint64 per seat, bit ``i`` = leg ``i`` sold), each
order's legs and seat count. ``allocate`` gives each order, in turn, the lowest-numbered
seats free on all its legs, or (sold out) the number of such seats free at its turn: what
selling them one by one would give. It updates ``masks``.

The seat work of every job of a centre's batch is a few numpy operations over one matrix
(an order per row, seats across): the seats free for each trip before the batch and, of
those, the first few the order could ever need (its count plus the counts of the orders
before it in its job, the most they can take from it). What is left per order is its turn
in that short list against the seats taken earlier in the batch, which no vector can skip
(an order's seats depend on those the orders before it took): a dict lookup or two per
seat looked at. One pass per job then sets the seats' bits and checks them: none of them
was sold on those legs already, and the bits set are the bits sold (no seat-leg twice).
Before, each sale scanned its class alone and re-checked its own record (``np.unique``):
four fifths of a centre's time per sale (``bench/seats.py``, profiled).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridfare.errors import WalCorrupt

__all__ = ["Job", "allocate"]



# Up to this many orders in a batch, each scans its class on its own: the matrix costs a
# fixed ~20 numpy calls, about eight orders' worth, and under steady single sales most
# batches hold one or two (a steady load of single sales and refunds ran at half the rate
# through the matrix alone).
_FEW = 8


@dataclass(frozen=True)
class Job:
    key: str  # the train-date, for messages
    masks: np.ndarray  # the class's occupancy, updated in place
    n_legs: int  # the train's legs: no bit above them is ever set
    legs: list[int]  # each order's legs (a bit per leg)
    counts: list[int]  # each order's seats


def allocate(jobs: list[Job]) -> list[list[tuple[int, ...] | int]]:
    """Per job, per order: its seat numbers (1-based) or, sold out, the seats free then."""
    if not jobs:
        return []
    if sum(len(job.counts) for job in jobs) <= _FEW:
        return [_one_by_one(job) for job in jobs]
    counts = np.array([c for job in jobs for c in job.counts], dtype=np.int64)
    # The narrowest integer holding every leg: the matrix below is read several times, and
    # a train has a dozen legs, not 64 (uint16 instead of uint64: a quarter of the bytes).
    bits = max(job.n_legs for job in jobs)
    dtype = np.uint16 if bits <= 16 else np.uint32 if bits <= 32 else np.uint64
    legs = np.array([s for job in jobs for s in job.legs], dtype=dtype)
    sizes = [len(job.counts) for job in jobs]
    row_job = np.repeat(np.arange(len(jobs)), sizes)
    starts = np.cumsum([0, *sizes])
    # An order can lose seats only to the orders before it in its job: its count plus
    # theirs bounds how far down its free list it may have to look.
    reach = np.cumsum(counts)
    reach -= np.repeat(reach[starts[:-1]] - counts[starts[:-1]], sizes)
    padded, lists = _candidates(jobs, legs, reach, row_job, sizes)
    results, where, taken_legs = [], [], []
    for j, (job, near) in enumerate(zip(jobs, lists, strict=True)):
        result, taken = _turns(job, near)
        results.append(result)
        if taken:
            where.append((j, len(taken_legs), len(taken)))
            taken_legs += taken.items()
    if taken_legs:
        # Checked at once for the whole batch: no seat given out was sold on one of its
        # new legs already (the occupancy the candidates were read from, padded).
        seats = np.fromiter((s for s, _ in taken_legs), np.int64, len(taken_legs))
        new = np.fromiter((v for _, v in taken_legs), np.uint64, len(taken_legs))
        jobs_of = np.repeat([j for j, _, _ in where], [n for _, _, n in where])
        clash = np.flatnonzero(padded[jobs_of, seats] & new.astype(padded.dtype))
        if clash.size:
            key = jobs[int(jobs_of[clash[0]])].key
            raise WalCorrupt(f"train-date {key}: a batch would sell a seat-leg twice")
        for j, start, n in where:
            jobs[j].masks[seats[start:start + n]] |= new[start:start + n]
    return results


def _candidates(jobs, legs, reach, row_job, sizes):
    """The occupancy read (one row per job, padded as sold) and, per job, per order: its
    first ``reach`` free seats (indexes), or all of them if fewer.

    One cumulative count over the whole matrix, row after row, numbers the free seats of
    every order at once; the r-th free seat of an order is where that count first reaches
    the order's base + r (a binary search per seat wanted, not a pass per order)."""
    width = max(job.masks.size for job in jobs)
    padded = np.full((len(jobs), width), np.iinfo(legs.dtype).max, legs.dtype)  # sold: pads
    for j, job in enumerate(jobs):
        padded[j, :job.masks.size] = job.masks  # lossless: no bit above n_legs
    free = (padded[row_job] & legs[:, None]) == 0
    counted = np.cumsum(free.ravel(), dtype=np.int64)
    upto = counted[width - 1::width]  # free seats in the rows up to each one
    base = upto - np.count_nonzero(free, axis=1)
    wanted = np.minimum(reach, upto - base)
    ends = np.cumsum(wanted)
    total = int(ends[-1])
    # For every seat wanted: its order's base + 1, 2, ...
    rank = np.arange(1, total + 1) - np.repeat(ends - wanted, wanted)
    at = np.searchsorted(counted, np.repeat(base, wanted) + rank)
    seats_list = (at - np.repeat(np.arange(len(row_job)) * width, wanted)).tolist()
    ends_list = ends.tolist()
    lists, start, k = [], 0, 0
    for n in sizes:
        lists.append([seats_list[s:e] for s, e in zip([start, *ends_list[k:k + n - 1]],
                                                      ends_list[k:k + n], strict=True)])
        start, k = ends_list[k + n - 1], k + n
    return padded, lists


def _one_by_one(job: Job) -> list[tuple[int, ...] | int]:
    """The same allocation, order after order on the class itself (for a few orders)."""
    result: list[tuple[int, ...] | int] = []
    masks = job.masks
    for want, seg in zip(job.counts, job.legs, strict=True):
        legs = np.uint64(seg)
        free = np.flatnonzero((masks & legs) == 0)
        if free.size < want:
            result.append(int(free.size))
            continue
        take = free[:want]
        masks[take] |= legs  # free on these legs a moment ago: no seat-leg sold twice
        result.append(tuple((take + 1).tolist()))
    return result


def _turns(job: Job, lists: list[list[int]]) -> tuple[list[tuple[int, ...] | int], dict]:
    """Each order in turn over its short list: its seats, or the number free at its turn;
    and the legs sold per seat index in this batch, checked: the bits set are the bits
    sold, so no seat-leg went to two orders of the batch."""
    taken: dict[int, int] = {}  # seat index -> legs sold on it in this batch
    result: list[tuple[int, ...] | int] = []
    sold_bits = 0
    for want, seg, near in zip(job.counts, job.legs, lists, strict=True):
        got = []
        for s in near:
            if not taken.get(s, 0) & seg:
                got.append(s)
                if len(got) == want:
                    break
        if len(got) < want:  # the list held every seat free before: sold out now
            result.append(len(got))
            continue
        for s in got:
            taken[s] = taken.get(s, 0) | seg
        sold_bits += want * seg.bit_count()
        result.append(tuple(s + 1 for s in got))
    if sum(v.bit_count() for v in taken.values()) != sold_bits:
        raise WalCorrupt(f"train-date {job.key}: a batch would sell a seat-leg twice")
    return result, taken
