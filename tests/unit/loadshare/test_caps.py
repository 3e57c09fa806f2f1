import pytest

from gridfare.errors import ConfigError, QuotaExceeded
from gridfare.loadshare import EnvironmentCaps, TokenBucket, WorkdirQuota


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_full_bucket_passes_its_capacity_at_once_then_the_rate():
    clock = Clock()
    bucket = TokenBucket(rate=1000, capacity=500, clock=clock)
    assert bucket.reserve(500) == 0.0
    assert bucket.reserve(250) == pytest.approx(0.25)
    clock.now = 0.25
    assert bucket.reserve(0) == 0.0  # the debt was paid by waiting


def test_bytes_sent_never_exceed_capacity_plus_rate_times_window():
    clock = Clock()
    bucket = TokenBucket(rate=10_000, capacity=1_000, clock=clock)
    sent, t = 0, 0.0
    for _ in range(1000):  # a sender that always waits what it is told
        wait = bucket.reserve(700)
        t += wait
        clock.now = t
        sent += 700
    assert sent <= 1_000 + 10_000 * t + 700


def test_a_message_larger_than_the_bucket_passes_later():
    bucket = TokenBucket(rate=100, capacity=10, clock=Clock())
    assert bucket.reserve(1010) == pytest.approx(10.0)


def test_the_quota_refuses_before_anything_is_written():
    quota = WorkdirQuota("e1", limit=1000)
    quota.claim("a.parquet", 600)
    with pytest.raises(QuotaExceeded, match=r"e1: writing b.parquet \(500 bytes\).*quota of 1,000"):
        quota.claim("b.parquet", 500)
    assert quota.used == 600
    quota.claim("a.parquet", 900, replaces=600)  # replacing a file counts the difference
    assert quota.used == 900


def test_caps_are_checked():
    with pytest.raises(ConfigError, match="bandwidth_bytes_s"):
        EnvironmentCaps(bandwidth_bytes_s=0)
    with pytest.raises(ConfigError, match="workdir_bytes"):
        EnvironmentCaps(workdir_bytes=-1)
