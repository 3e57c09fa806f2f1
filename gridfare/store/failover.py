"""The coordinator's policy: a pure function of a snapshot (habit 1).

``decide(snapshot) -> Plan`` looks at the coordinator's durable record (epoch, primary,
phase) and what each replica answered, and says what to do next. The coordinator only
gathers the snapshot and carries the plan out; each action is safe to repeat, so a
coordinator restarted mid-failover decides again from its record and finishes the same
promotion (the record names the candidate before anything is promoted), never a second one.

Rules:
- a promotion in progress (phase ``promoting``) is finished on its recorded candidate;
- a primary that failed ``failures_to_fail_over`` probes in a row is replaced by the most
  advanced standby (highest replay LSN; ties: lowest name), under epoch + 1. Under RPO 0
  (``every_standby_needed``) only while every standby answers: a commit was acknowledged
  once ANY one standby applied it, so the most advanced is known only when all are seen;
  with one missing the coordinator waits rather than risk an acknowledged operation;
- with a healthy primary, any other replica that is not a standby following it is fenced
  (a second primary: stopped, rewound) or rebuilt (down: restarted as a standby) or
  re-pointed (following an old primary).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from gridfare.errors import InvalidInput

__all__ = [
    "Action",
    "ActionKind",
    "CoordinatorRecord",
    "Phase",
    "Plan",
    "ReplicaStatus",
    "Snapshot",
    "decide",
    "format_lsn",
    "parse_lsn",
    "sync_standby_names",
]


class Phase(str, enum.Enum):
    STEADY = "steady"
    PROMOTING = "promoting"


class ActionKind(str, enum.Enum):
    PROMOTE = "promote"  # make the replica primary under the plan's epoch
    FENCE = "fence"  # stop a replica that acts as primary but is not the current one
    REBUILD = "rebuild"  # (re)start a replica as a standby of the primary
    REPOINT = "repoint"  # a running standby follows another replica: point it at the primary


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    replica: str
    primary: str  # the primary the action serves (the candidate, for a promotion)
    epoch: int


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...] = ()
    waiting: str | None = None  # why nothing can be done now (names the rule)


@dataclass(frozen=True)
class CoordinatorRecord:
    """The coordinator's hard state, written durably before each step is taken."""

    epoch: int
    primary: str
    replicas: tuple[str, ...]
    phase: Phase = Phase.STEADY
    candidate: str | None = None

    def __post_init__(self) -> None:
        if self.primary not in self.replicas:
            raise InvalidInput(f"coordinator record: primary {self.primary!r} is not one of "
                               f"{self.replicas}")
        if (self.phase is Phase.PROMOTING) != (self.candidate is not None):
            raise InvalidInput("coordinator record: a candidate is named exactly while "
                               "promoting")

    def promoting(self, candidate: str) -> CoordinatorRecord:
        return replace(self, epoch=self.epoch + 1, phase=Phase.PROMOTING, candidate=candidate)

    def promoted(self) -> CoordinatorRecord:
        assert self.candidate is not None
        return replace(self, primary=self.candidate, phase=Phase.STEADY, candidate=None)

    def to_dict(self) -> dict[str, object]:
        return {"epoch": self.epoch, "primary": self.primary, "replicas": list(self.replicas),
                "phase": self.phase.value, "candidate": self.candidate}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> CoordinatorRecord:
        try:
            return cls(int(data["epoch"]), str(data["primary"]),
                       tuple(str(r) for r in data["replicas"]), Phase(data["phase"]),
                       None if data.get("candidate") is None else str(data["candidate"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"coordinator record {dict(data)!r}: {exc}") from exc


@dataclass(frozen=True)
class ReplicaStatus:
    """What one replica answered (``running=False`` when it did not answer in time)."""

    name: str
    running: bool
    in_recovery: bool = False
    lsn: int = 0  # a standby's replay LSN; a primary's current WAL LSN
    following: str | None = None  # the replica a standby is configured to stream from
    epoch: int | None = None  # the epoch its store_meta row holds (None when unread)


@dataclass(frozen=True)
class Snapshot:
    record: CoordinatorRecord
    statuses: Mapping[str, ReplicaStatus]
    primary_failures: int = 0  # consecutive probes of the recorded primary that failed
    failures_to_fail_over: int = 2
    every_standby_needed: bool = True  # RPO 0: promote only when every standby answers
    down: frozenset[str] = field(default_factory=frozenset)  # replicas with no owner now


def _status(snapshot: Snapshot, name: str) -> ReplicaStatus:
    return snapshot.statuses.get(name) or ReplicaStatus(name, running=False)


def decide(snapshot: Snapshot) -> Plan:
    record = snapshot.record
    if record.phase is Phase.PROMOTING:
        assert record.candidate is not None
        return Plan((Action(ActionKind.PROMOTE, record.candidate, record.candidate,
                            record.epoch),))
    primary = _status(snapshot, record.primary)
    if not primary.running or primary.in_recovery:
        if snapshot.primary_failures < snapshot.failures_to_fail_over:
            return Plan(waiting=f"primary {record.primary} failed "
                                f"{snapshot.primary_failures} of "
                                f"{snapshot.failures_to_fail_over} probes")
        standbys = [_status(snapshot, n) for n in record.replicas if n != record.primary]
        candidates = [s for s in standbys if s.running and s.in_recovery]
        missing = [s.name for s in standbys if not (s.running and s.in_recovery)]
        if candidates and missing and snapshot.every_standby_needed:
            return Plan(waiting=f"primary {record.primary} is lost and standby "
                                f"{', '.join(missing)} does not answer: the most advanced "
                                "standby cannot be known (RPO 0), waiting")
        if not candidates:
            return Plan(waiting=f"primary {record.primary} is lost and no standby answers: "
                                "nothing to promote")
        best = max(candidates, key=lambda s: (s.lsn, [-ord(c) for c in s.name]))
        return Plan((Action(ActionKind.PROMOTE, best.name, best.name, record.epoch + 1),))
    actions = []
    for name in record.replicas:
        if name == record.primary or name in snapshot.down:
            continue
        status = _status(snapshot, name)
        if status.running and not status.in_recovery:
            kind = ActionKind.FENCE
        elif not status.running:
            kind = ActionKind.REBUILD
        elif status.following != record.primary:
            kind = ActionKind.REPOINT
        else:
            continue
        actions.append(Action(kind, name, record.primary, record.epoch))
    return Plan(tuple(actions))


def sync_standby_names(primary: str, replicas: tuple[str, ...]) -> str:
    """``ANY 1 (...)`` over every replica but the primary: a commit waits for any one of
    them, and a standby that rejoins counts again without a configuration change."""
    others = [f'"{r}"' for r in replicas if r != primary]
    return f"ANY 1 ({', '.join(others)})" if others else ""


def parse_lsn(text: str | None) -> int:
    """``'16/B374D848'`` -> an integer (0 for None)."""
    if not text:
        return 0
    high, _, low = text.partition("/")
    try:
        return (int(high, 16) << 32) | int(low, 16)
    except ValueError:
        raise InvalidInput(f"LSN {text!r}: not of the form X/Y in hexadecimal") from None


def format_lsn(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"
