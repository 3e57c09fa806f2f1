"""When to open burst environments and when to close them: a pure function of a snapshot.

The manager gathers a :class:`LoadSnapshot` (request rate and queue depth of the watched
Serve deployments, the billing queue, the signals and commands received since the last
tick) and applies the :class:`SharePlan` that :func:`decide` returns; this module decides.

Triggers, each enabled by name in ``SharePolicy.triggers`` and combined with ``any`` or
``all``:

- ``manual``: ``gridfare loadshare start``. A manual start *pins* the sharing: automatic
  exits do not close it, only a manual stop does.
- ``signal``: an external hot event (``gridfare loadshare signal EVENT``); it stays hot
  until ``signal EVENT --end``.
- ``volume``: the load is above the *activation* threshold (request rate, queue depth or
  queued billing sections) without a break for ``activation_s`` (KEDA's activation
  threshold, held for a dwell time so that one spike does not open anything).

Exits (``SharePolicy.exits``, combined likewise): ``manual`` (a stop command), ``signal``
(every hot event has ended) and ``volume`` (the load has stayed below the *lower*
threshold for ``cooldown_s``: KEDA's cooldown period). The lower threshold is below the
activation threshold (hysteresis) and a sharing episode stays open at least
``min_open_s``, so a load hovering at the threshold neither opens and closes in a loop
nor closes an opening that has not served yet.

A close spends what opened the episode: its hot events are forgotten (a new signal opens
again) and the volume trigger dwells afresh from the close.

Whatever fires, and however many triggers fire at once, one episode opens once: the plan
says OPEN only on the idle -> sharing edge, and the environments it asks for are a
number, not a per-trigger increment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import Enum

from gridfare.errors import ConfigError

__all__ = [
    "Action",
    "Cause",
    "Command",
    "LoadSnapshot",
    "Phase",
    "ShareMemory",
    "SharePlan",
    "SharePolicy",
    "Signal",
    "decide",
]

KINDS = ("manual", "signal", "volume")


class Phase(str, Enum):
    IDLE = "idle"  # no burst environment wanted
    SHARING = "sharing"  # an episode is open: environments wanted


class Action(str, Enum):
    NONE = "none"
    OPEN = "open"  # ask for ``environments`` burst environments
    RESIZE = "resize"  # still sharing; the number of environments wanted changed
    CLOSE = "close"  # drain every environment and withdraw the capacity request


class Cause(str, Enum):
    NONE = "none"
    MANUAL = "manual"
    SIGNAL = "signal"
    VOLUME = "volume"


class Command(str, Enum):
    START = "start"
    STOP = "stop"


@dataclass(frozen=True)
class Signal:
    """An external hot event began (``end=False``) or ended."""

    event: str
    end: bool = False


@dataclass(frozen=True)
class SharePolicy:
    """Knobs of load sharing (one frozen config, checked on construction)."""

    triggers: tuple[str, ...] = ("manual", "signal", "volume")
    trigger_mode: str = "any"  # any | all of the enabled triggers
    exits: tuple[str, ...] = ("manual", "signal", "volume")
    exit_mode: str = "any"
    rate_above: float = 50.0  # requests/s across the watched deployments: activation
    queue_above: int = 20  # requests queued or in flight at the watched deployments
    billing_above: int = 0  # queued billing sections (0: not a trigger)
    rate_below: float = 20.0  # exit threshold, below the activation one (hysteresis)
    queue_below: int = 2
    billing_below: int = 0
    activation_s: float = 3.0  # above the threshold this long before the volume fires
    cooldown_s: float = 10.0  # below the lower threshold this long before it exits
    min_open_s: float = 10.0  # an episode stays open at least this long
    # ... and, while none of its environments has opened yet, this long: a burst whose
    # nodes are still coming is not closed on a reading that its queue drained (seen on a
    # machine at load 100: the episode closed before its nodes served, then opened again).
    open_timeout_s: float = 120.0
    environments: int = 1  # environments an episode opens at first
    max_environments: int = 3  # what a rising load may grow to
    rate_per_environment: float = 0.0  # requests/s one environment takes (0: no growth)

    def __post_init__(self) -> None:
        for key, kinds in (("triggers", self.triggers), ("exits", self.exits)):
            if not kinds:
                raise ConfigError(f"loadshare.{key}: name at least one of {KINDS}")
            unknown = [k for k in kinds if k not in KINDS]
            if unknown:
                raise ConfigError(f"loadshare.{key}: {unknown[0]!r} is not one of {KINDS}")
        for key, mode in (("trigger_mode", self.trigger_mode), ("exit_mode", self.exit_mode)):
            if mode not in ("any", "all"):
                raise ConfigError(f"loadshare.{key}: {mode!r} must be 'any' or 'all'")
        if self.rate_below >= self.rate_above:
            raise ConfigError("loadshare.rate_below: must be below rate_above (hysteresis)")
        if self.queue_below >= self.queue_above:
            raise ConfigError("loadshare.queue_below: must be below queue_above (hysteresis)")
        if self.billing_above and self.billing_below >= self.billing_above:
            raise ConfigError("loadshare.billing_below: must be below billing_above")
        if min(self.activation_s, self.cooldown_s, self.min_open_s, self.open_timeout_s) < 0:
            raise ConfigError("loadshare.activation_s / cooldown_s / min_open_s: "
                              "must not be negative")
        if not 1 <= self.environments <= self.max_environments:
            raise ConfigError("loadshare.environments: must be in 1..max_environments")
        if self.rate_per_environment < 0:
            raise ConfigError("loadshare.rate_per_environment: must not be negative")

    @classmethod
    def from_dict(cls, data: dict) -> SharePolicy:
        """From a TOML table or JSON object; an unknown key is refused by name."""
        known = set(cls.__dataclass_fields__)
        for key in data:
            if key not in known:
                raise ConfigError(f"loadshare.{key}: unknown key (known: {sorted(known)})")
        values = dict(data)
        for key in ("triggers", "exits"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)

    def to_dict(self) -> dict:
        return {name: (list(value) if isinstance(value, tuple) else value)
                for name, value in self.__dict__.items()}


@dataclass(frozen=True)
class LoadSnapshot:
    """What the manager measured and received since its last tick."""

    now: float  # monotonic seconds on the manager's clock
    rate: float = 0.0  # requests/s over the last interval, all watched deployments
    queue: int = 0  # requests queued or in flight at the watched deployments
    billing_queued: int = 0  # billing sections waiting for a node
    signals: tuple[Signal, ...] = ()
    command: Command | None = None  # the last manual command received since the last tick
    open_environments: int | None = None  # environments open now (None: not known)
    # False when the load could not be read this tick (a node's metrics did not answer):
    # then the volume dwell and cooldown neither start nor break, and neither completes on
    # it, so a missed scrape never reads as a quiet (or a busy) load.
    known: bool = True


@dataclass(frozen=True)
class ShareMemory:
    """What :func:`decide` remembers between ticks (the manager stores and returns it)."""

    phase: Phase = Phase.IDLE
    since: float = 0.0  # when the phase began
    cause: Cause = Cause.NONE  # what opened the current episode
    hot_since: float | None = None  # volume above the activation threshold since
    cool_since: float | None = None  # volume below the lower threshold since
    hot_events: frozenset[str] = frozenset()
    signal_ended: bool = False  # a hot event ended during this episode
    pinned: bool = False  # opened by hand: only a manual stop closes it
    stop_requested: bool = False  # a manual stop arrived during this episode
    environments: int = 0  # environments wanted now


@dataclass(frozen=True)
class SharePlan:
    action: Action
    environments: int  # wanted after this plan
    cause: Cause
    memory: ShareMemory
    reason: str = ""  # why, in words, for the log and ``status``
    conditions: dict[str, bool] = field(default_factory=dict)


def decide(snapshot: LoadSnapshot, memory: ShareMemory, policy: SharePolicy) -> SharePlan:
    """The next step of load sharing for ``snapshot``, given what was decided before."""
    now = snapshot.now
    hot_events = set(memory.hot_events)
    signal_ended = memory.signal_ended
    for sig in snapshot.signals:
        if sig.end:
            if sig.event in hot_events:
                hot_events.discard(sig.event)
                signal_ended = True
        else:
            hot_events.add(sig.event)
    if snapshot.known:
        hot = _above(snapshot, policy)
        cool = _below(snapshot, policy)
        hot_since = (memory.hot_since if memory.hot_since is not None else now) if hot else None
        cool_since = ((memory.cool_since if memory.cool_since is not None else now)
                      if cool else None)
    else:
        hot_since, cool_since = memory.hot_since, memory.cool_since
    memory = replace(memory, hot_events=frozenset(hot_events), hot_since=hot_since,
                     cool_since=cool_since, signal_ended=signal_ended)
    command = snapshot.command
    if memory.phase is Phase.IDLE:
        return _when_idle(snapshot, memory, policy, command)
    return _when_sharing(snapshot, memory, policy, command)


def _above(s: LoadSnapshot, p: SharePolicy) -> bool:
    return (s.rate > p.rate_above or s.queue > p.queue_above
            or (p.billing_above > 0 and s.billing_queued > p.billing_above))


def _below(s: LoadSnapshot, p: SharePolicy) -> bool:
    billing_cool = p.billing_above == 0 or s.billing_queued <= p.billing_below
    return s.rate < p.rate_below and s.queue <= p.queue_below and billing_cool


def _combine(mode: str, conditions: dict[str, bool]) -> bool:
    return all(conditions.values()) if mode == "all" else any(conditions.values())


def _wanted(snapshot: LoadSnapshot, policy: SharePolicy, current: int) -> int:
    """Environments for the load: the policy's first number, more while the rate needs them
    (never fewer during an episode: shrinking is the exit's job)."""
    wanted = max(current, policy.environments)
    if policy.rate_per_environment > 0:
        excess = max(0.0, snapshot.rate - policy.rate_above)
        wanted = max(wanted, math.ceil(excess / policy.rate_per_environment))
    return min(policy.max_environments, wanted)


def _when_idle(snapshot: LoadSnapshot, memory: ShareMemory, policy: SharePolicy,
               command: Command | None) -> SharePlan:
    now = snapshot.now
    conditions = {
        "manual": command is Command.START,
        "signal": bool(memory.hot_events),
        "volume": (snapshot.known and memory.hot_since is not None
                   and now - memory.hot_since >= policy.activation_s),
    }
    enabled = {k: v for k, v in conditions.items() if k in policy.triggers}
    manual = "manual" in policy.triggers and command is Command.START
    fired = manual or _combine(policy.trigger_mode, enabled)
    if not fired:
        return SharePlan(Action.NONE, 0, Cause.NONE, memory, "below the triggers", enabled)
    # Several triggers at once are one opening, named after the first that holds.
    cause = Cause(next(k for k in ("manual", "signal", "volume") if enabled.get(k)))
    wanted = _wanted(snapshot, policy, 0)
    memory = replace(memory, phase=Phase.SHARING, since=now, cause=cause,
                     pinned=cause is Cause.MANUAL, stop_requested=False,
                     signal_ended=False, environments=wanted)
    fired_names = [k for k, v in enabled.items() if v]
    return SharePlan(Action.OPEN, wanted, cause, memory,
                     f"open {wanted} environment(s): {' + '.join(fired_names)}", enabled)


def _when_sharing(snapshot: LoadSnapshot, memory: ShareMemory, policy: SharePolicy,
                  command: Command | None) -> SharePlan:
    now = snapshot.now
    if command is Command.STOP:
        memory = replace(memory, stop_requested=True, pinned=False)
    elif command is Command.START:
        memory = replace(memory, pinned=True)
    conditions = {
        "manual": memory.stop_requested,
        "signal": memory.signal_ended and not memory.hot_events,
        "volume": (snapshot.known and memory.cool_since is not None
                   and now - memory.cool_since >= policy.cooldown_s),
    }
    enabled = {k: v for k, v in conditions.items() if k in policy.exits}
    manual_stop = "manual" in policy.exits and memory.stop_requested
    waiting = (snapshot.open_environments == 0
               and now - memory.since < policy.open_timeout_s)
    automatic = (not memory.pinned and not waiting and now - memory.since >= policy.min_open_s
                 and _combine(policy.exit_mode, enabled))
    if manual_stop or automatic:
        cause = Cause.MANUAL if manual_stop else Cause(
            next(k for k in ("signal", "volume") if enabled.get(k)))
        # A hot event opens one episode at most, and the volume trigger dwells afresh: a
        # close is never undone by the next tick's leftovers (no flapping).
        closed = ShareMemory(phase=Phase.IDLE, since=now, cool_since=memory.cool_since)
        return SharePlan(Action.CLOSE, 0, cause, closed,
                         f"close: {cause.value} exit", enabled)
    wanted = _wanted(snapshot, policy, memory.environments)
    if wanted != memory.environments:
        memory = replace(memory, environments=wanted)
        return SharePlan(Action.RESIZE, wanted, memory.cause, memory,
                         f"grow to {wanted} environment(s) for {snapshot.rate:.0f} req/s",
                         enabled)
    why = "pinned by a manual start" if memory.pinned else "exit conditions not met"
    return SharePlan(Action.NONE, memory.environments, memory.cause, memory, why, enabled)
