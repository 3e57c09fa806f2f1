"""Contribution credit: what each burst environment earned for the cluster.

Credit = (cpu_weight × CPUs + memory_weight × GiB) × seconds running + task_weight ×
tasks processed, with the weights in config. It is kept exact: every accrual is a ledger
entry in integer *milli-credits*, rounded half-up once per entry, and a total is the sum of
its entries.

An accrual covers ``[since, until)`` of one environment, contiguous with the previous one
(``seq`` counts them), and the tasks done since the previous entry, from the environment's
cumulative counter. So a manager that restarts and rebuilds from the ledger carries on from
the last entry's ``until`` and counter: nothing is counted twice, and an environment that
stops (killed, drained) simply gets no further entries.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal

from gridfare.errors import ConfigError

__all__ = ["CreditWeights", "LedgerEntry", "accrue", "credits_by"]

GIB = 1024 ** 3


@dataclass(frozen=True)
class CreditWeights:
    """Milli-credits per CPU-second, per GiB-second of memory, and per task processed."""

    cpu_second: Decimal = Decimal("1000")
    gib_second: Decimal = Decimal("250")
    task: Decimal = Decimal("10")

    def __post_init__(self) -> None:
        for name in ("cpu_second", "gib_second", "task"):
            value = getattr(self, name)
            if not isinstance(value, Decimal):
                try:
                    value = Decimal(str(value))
                except ArithmeticError:
                    raise ConfigError(f"loadshare.credit.{name}: {value!r} is not a number"
                                      ) from None
                object.__setattr__(self, name, value)
            if value < 0:
                raise ConfigError(f"loadshare.credit.{name}: must not be negative")


@dataclass(frozen=True)
class LedgerEntry:
    """One accrual of one environment; ``(env_id, seq)`` is its key."""

    env_id: str
    seq: int
    node_id: str
    period: str  # YYYY-MM of ``since`` (UTC)
    since: float  # wall-clock seconds
    until: float
    cpus: float
    memory_bytes: int
    tasks: int  # processed in this entry's interval
    tasks_total: int  # the environment's cumulative count at ``until``
    millicredits: int


def accrue(env_id: str, node_id: str, cpus: float, memory_bytes: int, *, seq: int,
           since: float, until: float, tasks_total: int, tasks_before: int,
           weights: CreditWeights) -> LedgerEntry | None:
    """The next entry for an environment, or None when there is nothing to record."""
    if until <= since and tasks_total <= tasks_before:
        return None
    seconds = Decimal(str(max(0.0, until - since)))
    tasks = max(0, tasks_total - tasks_before)
    size = weights.cpu_second * Decimal(str(cpus)) + (
        weights.gib_second * Decimal(memory_bytes) / GIB)
    amount = (size * seconds + weights.task * tasks).quantize(Decimal(1), ROUND_HALF_UP)
    period = datetime.fromtimestamp(since, timezone.utc).strftime("%Y-%m")
    return LedgerEntry(env_id=env_id, seq=seq, node_id=node_id, period=period, since=since,
                       until=max(until, since), cpus=cpus, memory_bytes=memory_bytes,
                       tasks=tasks, tasks_total=max(tasks_total, tasks_before),
                       millicredits=int(amount))


def credits_by(entries: Iterable[LedgerEntry], key: str = "node_id") -> dict[tuple, dict]:
    """Totals per ``node_id``, ``period`` or both (``"node_id,period"``)."""
    fields = tuple(key.split(","))
    totals: dict[tuple, dict] = defaultdict(lambda: {"seconds": 0.0, "tasks": 0,
                                                      "millicredits": 0})
    for entry in entries:
        row = totals[tuple(getattr(entry, f) for f in fields)]
        row["seconds"] += entry.until - entry.since
        row["tasks"] += entry.tasks
        row["millicredits"] += entry.millicredits
    return dict(sorted(totals.items()))
