"""The caps a burst environment enforces itself: a token-bucket bandwidth cap on its data
path and a quota on its working directory (Ray caps CPU, memory and object store by node
type; it caps neither bandwidth nor disk, see docs/operations.md).

Both are pure bookkeeping with the clock passed in; the environment actor owns them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gridfare.errors import ConfigError, QuotaExceeded

__all__ = ["EnvironmentCaps", "TokenBucket", "WorkdirQuota"]


@dataclass(frozen=True)
class EnvironmentCaps:
    """What one burst environment may use (one frozen config, checked on construction)."""

    bandwidth_bytes_s: int = 8 * 1024 * 1024  # its data path's sustained rate
    burst_bytes: int = 256 * 1024  # what the bucket holds when full
    workdir_bytes: int = 256 * 1024 * 1024  # its working directory's quota

    def __post_init__(self) -> None:
        if self.bandwidth_bytes_s <= 0 or self.burst_bytes <= 0:
            raise ConfigError("loadshare.caps.bandwidth_bytes_s / burst_bytes: must be positive")
        if self.workdir_bytes <= 0:
            raise ConfigError("loadshare.caps.workdir_bytes: must be positive")


class TokenBucket:
    """``rate`` bytes/s sustained, ``capacity`` bytes at once.

    ``reserve(n)`` takes ``n`` bytes' tokens now (the balance may go negative: a message
    larger than the bucket still passes, later) and answers how long the caller must wait
    before sending them, so that over any window the bytes sent are at most
    ``capacity + rate × window``.
    """

    def __init__(self, rate: float, capacity: float, clock: Callable[[], float]) -> None:
        if rate <= 0 or capacity <= 0:
            raise ConfigError("token bucket: rate and capacity must be positive")
        self.rate = float(rate)
        self.capacity = float(capacity)
        self._clock = clock
        self._tokens = float(capacity)
        self._at = clock()

    def reserve(self, n: int) -> float:
        if n < 0:
            raise ValueError("token bucket: cannot reserve a negative amount")
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now
        self._tokens -= n
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    @property
    def tokens(self) -> float:
        return self._tokens


class WorkdirQuota:
    """Bytes a working directory holds, refused past ``limit`` before anything is written."""

    def __init__(self, env_id: str, limit: int, used: int = 0) -> None:
        self.env_id = env_id
        self.limit = limit
        self.used = used

    def claim(self, name: str, size: int, replaces: int = 0) -> None:
        """Account ``size`` bytes for ``name`` (replacing a file of ``replaces`` bytes)."""
        after = self.used - replaces + size
        if after > self.limit:
            raise QuotaExceeded(
                f"environment {self.env_id}: writing {name} ({size:,} bytes) would take its "
                f"working directory to {after:,} bytes, over its quota of {self.limit:,}")
        self.used = after

    def release(self, size: int) -> None:
        self.used = max(0, self.used - size)
