"""Commands to user terminals: what a terminal keeps, and how a failed delivery is retried.

A terminal applies a command once per idempotency key: a second delivery of the same key
(a retry after a lost answer, a rerun's republish that slipped past de-duplication) is
recorded as received and answered ``duplicate``, never applied again. ``retry`` is the
executor's policy: redeliver with a doubling backoff, and after the last attempt move the
command to the manual-work queue, where a person takes it; it is never dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

__all__ = ["Delivery", "TerminalLog", "Verdict", "retry"]


class Delivery(str, Enum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"


class Verdict(str, Enum):
    RETRY = "retry"  # nak with a delay: JetStream redelivers
    MANUAL = "manual"  # out of attempts: to the manual-work queue, then acknowledged


def retry(delivered: int, attempts: int, backoff_s: float) -> tuple[Verdict, float]:
    """After the ``delivered``-th delivery failed: what to do and the delay before the next."""
    if delivered >= attempts:
        return Verdict.MANUAL, 0.0
    return Verdict.RETRY, backoff_s * 2 ** (delivered - 1)


@dataclass
class TerminalLog:
    """What the terminals of some accounts received and applied, in order."""

    applied: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    received: list[str] = field(default_factory=list)
    # Injected faults: per account, deliveries to refuse, and to answer too late.
    failures: dict[int, int] = field(default_factory=dict)
    delays: dict[int, int] = field(default_factory=dict)

    def fault(self, account_id: int) -> str | None:
        """The fault this delivery to ``account_id`` meets ('fail', 'slow') or None."""
        for name, table in (("fail", self.failures), ("slow", self.delays)):
            if table.get(account_id, 0) > 0:
                table[account_id] -= 1
                return name
        return None

    def deliver(self, command: Mapping[str, Any]) -> Delivery:
        key = command["idempotency_key"]
        self.received.append(key)
        if key in self.applied:
            return Delivery.DUPLICATE
        self.applied[key] = dict(command)
        return Delivery.APPLIED
