"""Fee control's configuration: every error names its key."""

from __future__ import annotations

import pytest

from gridfare.errors import ConfigError
from gridfare.feecontrol.config import (
    AuditRules,
    StrategyRules,
    SystemParams,
    Thresholds,
    thresholds_from_mapping,
)


@pytest.mark.parametrize(("kwargs", "key"), [
    ({"warn_fen": 100, "remind_fen": 50, "disconnect_fen": 10}, "disconnect_fen"),
    ({"warn_fen": 100, "remind_fen": 200, "disconnect_fen": -1}, "remind_fen <= warn_fen"),
    ({"warn_fen": 100, "remind_fen": 50, "disconnect_fen": -1, "grace_days": -1},
     "grace_days"),
    ({"warn_fen": 1.5, "remind_fen": 0, "disconnect_fen": -1}, "warn_fen"),
])
def test_thresholds_name_the_key(kwargs, key):
    with pytest.raises(ConfigError, match=key):
        Thresholds(**kwargs)


def test_thresholds_from_toml_tables():
    table = thresholds_from_mapping({"commercial": {"warn_fen": 10, "remind_fen": 5,
                                                    "disconnect_fen": 0}})
    assert table["commercial"].warn_fen == 10
    assert table["residential"].warn_fen == 3_000  # the default stays
    with pytest.raises(ConfigError, match=r"strategy\.farm"):
        thresholds_from_mapping({"farm": {}})
    with pytest.raises(ConfigError, match=r"strategy\.commercial\.colour: unknown key"):
        thresholds_from_mapping({"commercial": {"colour": 1}})


def test_audit_and_system_name_the_key():
    with pytest.raises(ConfigError, match="max_daily_kwh: no limit for 'industrial'"):
        AuditRules(max_daily_kwh={"residential": 1, "commercial": 1})
    with pytest.raises(ConfigError, match="max_gap_days"):
        AuditRules(max_gap_days=0)
    with pytest.raises(ConfigError, match="decide_hour"):
        SystemParams(decide_hour=24)
    with pytest.raises(ConfigError, match="notice_hours"):
        StrategyRules(notice_hours=-1)
