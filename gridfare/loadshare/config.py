"""The load-sharing configuration: one frozen dataclass, loaded from TOML, checked on load.

    [loadshare]
    watch = ["gridfare-quote/Quote", "SeatsHTTP"]   # [app/]deployment, Serve's metrics
    share = "gridfare-quote/Quote"                   # the deployment that grows onto bursts
    base_replicas = 1
    tick_s = 1.0
    [loadshare.policy]      # SharePolicy's fields
    rate_above = 50.0
    [loadshare.credit]      # CreditWeights' fields, milli-credits
    cpu_second = "1000"
    [loadshare.caps]        # EnvironmentCaps' fields
    bandwidth_bytes_s = 8388608
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from decimal import Decimal
from pathlib import Path

from gridfare.errors import ConfigError
from gridfare.loadshare.caps import EnvironmentCaps
from gridfare.loadshare.credit import CreditWeights
from gridfare.loadshare.policy import SharePolicy
from gridfare.loadshare.watch import Watched

__all__ = ["LoadShareConfig", "parse_deployment"]


def parse_deployment(text: str, key: str) -> Watched:
    """``"app/deployment"`` or ``"deployment"`` (any app)."""
    if not isinstance(text, str) or not text.strip("/ "):
        raise ConfigError(f"loadshare.{key}: {text!r}: expected '[app/]deployment'")
    app, _, name = text.rpartition("/")
    return Watched(deployment=name, app=app or None)


@dataclass(frozen=True)
class LoadShareConfig:
    watch: tuple[Watched, ...] = (Watched("Quote", "gridfare-quote"),)
    share: Watched | None = field(  # None: no Serve deployment grows onto the bursts
        default_factory=lambda: Watched("Quote", "gridfare-quote"))
    base_replicas: int = 1
    replicas_per_environment: int = 1  # one per loadshare_slot of a burst node
    burst_bundle: dict = field(default_factory=lambda: {"CPU": 1, "burst": 1})
    tick_s: float = 1.0
    ledger_interval_s: float = 5.0  # credit entries are written this often (and on close)
    drain_deadline_s: float = 60.0  # a draining node's tasks get this long to finish
    closed_kept_s: float = 86400.0  # a closed environment stays in `status` this long
    # How a burst node leaves: "preemption" (the manager asks GCS for a preemption drain:
    # no new work, running work finishes, the node leaves when idle) or "idle" (the
    # capacity request is withdrawn and the autoscaler's idle termination, which drains the
    # node itself, removes it). See docs/operations.md for why the fake cluster uses "idle".
    exit_drain: str = "preemption"
    policy: SharePolicy = field(default_factory=SharePolicy)
    credit: CreditWeights = field(default_factory=CreditWeights)
    caps: EnvironmentCaps = field(default_factory=EnvironmentCaps)

    def __post_init__(self) -> None:
        if self.base_replicas < 1 or self.replicas_per_environment < 1:
            raise ConfigError("loadshare.base_replicas / replicas_per_environment: "
                              "must be at least 1")
        if not self.burst_bundle or any(
                not isinstance(v, (int, float)) or v <= 0 for v in self.burst_bundle.values()):
            raise ConfigError("loadshare.burst_bundle: resources with positive amounts, "
                              "e.g. {CPU = 1, burst = 1}")
        if self.exit_drain not in ("preemption", "idle"):
            raise ConfigError(f"loadshare.exit_drain: {self.exit_drain!r} must be "
                              "'preemption' or 'idle'")
        if min(self.tick_s, self.ledger_interval_s, self.drain_deadline_s) <= 0:
            raise ConfigError("loadshare.tick_s / ledger_interval_s / drain_deadline_s: "
                              "must be positive")
        if self.closed_kept_s < self.tick_s:
            raise ConfigError(f"loadshare.closed_kept_s: {self.closed_kept_s} must be at "
                              f"least tick_s ({self.tick_s}): a closed environment's last "
                              "credit is written in the tick after it closes")

    @classmethod
    def from_dict(cls, data: dict) -> LoadShareConfig:
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                raise ConfigError(f"loadshare.{key}: unknown key (known: {sorted(known)})")
        values = dict(data)
        if "watch" in values:
            values["watch"] = tuple(parse_deployment(w, "watch") for w in values["watch"])
        if "share" in values:
            values["share"] = parse_deployment(values["share"], "share") if values[
                "share"] else None
        if "policy" in values:
            values["policy"] = SharePolicy.from_dict(values["policy"])
        if "credit" in values:
            credit = values["credit"]
            for key in credit:
                if key not in CreditWeights.__dataclass_fields__:
                    raise ConfigError(f"loadshare.credit.{key}: unknown key")
            values["credit"] = CreditWeights(**{k: Decimal(str(v)) for k, v in credit.items()})
        if "caps" in values:
            caps = values["caps"]
            for key in caps:
                if key not in EnvironmentCaps.__dataclass_fields__:
                    raise ConfigError(f"loadshare.caps.{key}: unknown key")
            values["caps"] = EnvironmentCaps(**caps)
        return cls(**values)

    @classmethod
    def load(cls, path: str | Path) -> LoadShareConfig:
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib

        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        return cls.from_dict(data.get("loadshare", data))

    def to_dict(self) -> dict:
        """The same config as plain data (it crosses to the manager actor this way)."""
        def name(w: Watched) -> str:
            return f"{w.app}/{w.deployment}" if w.app else w.deployment

        return {
            "watch": [name(w) for w in self.watch],
            "share": name(self.share) if self.share else "",
            "base_replicas": self.base_replicas,
            "replicas_per_environment": self.replicas_per_environment,
            "burst_bundle": dict(self.burst_bundle),
            "tick_s": self.tick_s,
            "ledger_interval_s": self.ledger_interval_s,
            "drain_deadline_s": self.drain_deadline_s,
            "closed_kept_s": self.closed_kept_s,
            "exit_drain": self.exit_drain,
            "policy": self.policy.to_dict(),
            "credit": {k: str(getattr(self.credit, k))
                       for k in CreditWeights.__dataclass_fields__},
            "caps": {k: getattr(self.caps, k) for k in EnvironmentCaps.__dataclass_fields__},
        }
