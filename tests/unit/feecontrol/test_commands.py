"""Terminals apply a command once per key; failed deliveries back off, then go to people."""

from __future__ import annotations

from gridfare.feecontrol.commands import Delivery, TerminalLog, Verdict, retry


def test_a_command_is_applied_once_per_key():
    log = TerminalLog()
    command = {"idempotency_key": "disconnect:1:20261102T090000", "account_id": 1}
    assert log.deliver(command) == Delivery.APPLIED
    assert log.deliver(command) == Delivery.DUPLICATE
    assert list(log.applied) == ["disconnect:1:20261102T090000"]
    assert len(log.received) == 2


def test_retries_back_off_then_go_to_the_manual_queue():
    assert retry(1, 4, 0.5) == (Verdict.RETRY, 0.5)
    assert retry(2, 4, 0.5) == (Verdict.RETRY, 1.0)
    assert retry(3, 4, 0.5) == (Verdict.RETRY, 2.0)
    assert retry(4, 4, 0.5) == (Verdict.MANUAL, 0.0)


def test_injected_faults_are_used_up():
    log = TerminalLog(failures={1: 1}, delays={2: 2})
    assert [log.fault(1), log.fault(1)] == ["fail", None]
    assert [log.fault(2), log.fault(2), log.fault(2)] == ["slow", "slow", None]
