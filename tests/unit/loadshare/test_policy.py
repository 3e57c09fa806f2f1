"""decide() replayed over small recorded traces (tests/unit/loadshare/traces/*.csv, one
tick a second) and on hand-built edges."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from gridfare.errors import ConfigError
from gridfare.loadshare import (
    Action,
    Cause,
    Command,
    LoadSnapshot,
    Phase,
    ShareMemory,
    SharePolicy,
    Signal,
    decide,
)

TRACES = Path(__file__).parent / "traces"
POLICY = SharePolicy(rate_above=50, queue_above=20, rate_below=20, queue_below=2,
                     activation_s=3, cooldown_s=10, min_open_s=10, environments=2)


def snapshots(name: str):
    with (TRACES / name).open() as f:
        for row in csv.DictReader(f):
            signals = ()
            if row["signal"]:
                event, _, end = row["signal"].partition(":")
                signals = (Signal(event, end=end == "end"),)
            yield LoadSnapshot(now=float(row["t"]), rate=float(row["rate"]),
                               queue=int(row["queue"]), billing_queued=int(row["billing"]),
                               signals=signals,
                               command=Command(row["command"]) if row["command"] else None)


def replay(name: str, policy: SharePolicy = POLICY):
    memory = ShareMemory()
    actions = []
    for snapshot in snapshots(name):
        plan = decide(snapshot, memory, policy)
        memory = plan.memory
        if plan.action is not Action.NONE:
            actions.append((snapshot.now, plan.action, plan.cause, plan.environments))
    return actions, memory


def test_a_10x_burst_opens_once_after_the_dwell_and_closes_after_the_cooldown():
    actions, memory = replay("burst_10x.csv")
    # Above from t=10; the dwell is 3 s. Below from t=40; the cooldown is 10 s.
    assert actions == [(13.0, Action.OPEN, Cause.VOLUME, 2),
                       (50.0, Action.CLOSE, Cause.VOLUME, 0)]
    assert memory.phase is Phase.IDLE


def test_a_signal_and_a_volume_trigger_at_once_are_one_opening():
    actions, _ = replay("signal_and_volume.csv")
    opens = [a for a in actions if a[1] is Action.OPEN]
    assert len(opens) == 1
    # Volume is hot from t=2 and would fire at t=5 after its dwell; the signal arrives at
    # t=5 too: one opening, named after the signal (the first of the causes that hold).
    assert opens[0][0] == 5.0 and opens[0][2] is Cause.SIGNAL
    # The signal ends at t=24 (and the volume falls at t=25): the signal exit closes it.
    closes = [a for a in actions if a[1] is Action.CLOSE]
    assert closes == [(24.0, Action.CLOSE, Cause.SIGNAL, 0)]


def test_a_load_hovering_at_the_threshold_never_opens():
    actions, _ = replay("flapping_at_threshold.csv")
    assert actions == []


def test_a_load_dipping_below_the_exit_threshold_does_not_flap():
    actions, _ = replay("flapping_after_burst.csv")
    # Opens once at 5 + 3; the dips below 20 last 2 s, shorter than the cooldown, so the
    # episode holds until the load stays low: from t=58 (its last dip runs into the quiet
    # tail at t=60), closing at 68.
    assert [(t, a) for t, a, _, _ in actions] == [(8.0, Action.OPEN), (68.0, Action.CLOSE)]


def test_a_short_spike_opens_nothing():
    assert replay("spike.csv")[0] == []


def test_a_manual_start_is_pinned_until_a_manual_stop():
    actions, _ = replay("manual.csv")
    # The volume is low all along (its exit would hold after min_open_s), but a manual start
    # holds until the manual stop.
    assert actions == [(3.0, Action.OPEN, Cause.MANUAL, 2), (30.0, Action.CLOSE, Cause.MANUAL, 0)]


def test_all_mode_needs_every_trigger():
    policy = SharePolicy(triggers=("signal", "volume"), trigger_mode="all", activation_s=0)
    memory = ShareMemory()
    hot = decide(LoadSnapshot(now=0, rate=100), memory, policy)
    assert hot.action is Action.NONE
    both = decide(LoadSnapshot(now=1, rate=100, signals=(Signal("promo"),)), hot.memory, policy)
    assert both.action is Action.OPEN


def test_repeated_triggers_while_sharing_do_not_open_again():
    memory = decide(LoadSnapshot(now=0, command=Command.START), ShareMemory(), POLICY).memory
    for t in range(1, 20):
        plan = decide(LoadSnapshot(now=t, rate=500, queue=100, signals=(Signal("news"),),
                                   command=Command.START), memory, POLICY)
        assert plan.action is Action.NONE
        memory = plan.memory


def test_a_rising_rate_grows_the_episode_but_never_past_the_maximum():
    policy = SharePolicy(activation_s=0, environments=1, max_environments=3,
                         rate_per_environment=40)
    plan = decide(LoadSnapshot(now=0, rate=60), ShareMemory(), policy)
    assert (plan.action, plan.environments) == (Action.OPEN, 1)
    plan = decide(LoadSnapshot(now=1, rate=150), plan.memory, policy)
    assert (plan.action, plan.environments) == (Action.RESIZE, 3)  # ceil(100 / 40)
    plan = decide(LoadSnapshot(now=2, rate=900), plan.memory, policy)
    assert (plan.action, plan.environments) == (Action.NONE, 3)


def test_a_close_spends_its_hot_events_and_the_volume_dwells_afresh():
    policy = SharePolicy(triggers=("signal", "volume"), exits=("manual",), activation_s=3,
                         min_open_s=0)
    plan = decide(LoadSnapshot(now=0, rate=100, signals=(Signal("news"),)), ShareMemory(),
                  policy)
    assert plan.action is Action.OPEN
    plan = decide(LoadSnapshot(now=1, rate=100, command=Command.STOP), plan.memory, policy)
    assert plan.action is Action.CLOSE
    # Still hot, and the event never ended: nothing reopens until the volume has dwelt again.
    plan = decide(LoadSnapshot(now=2, rate=100), plan.memory, policy)
    assert plan.action is Action.NONE
    plan = decide(LoadSnapshot(now=5, rate=100), plan.memory, policy)
    assert (plan.action, plan.cause) == (Action.OPEN, Cause.VOLUME)


def test_min_open_holds_an_episode_whose_load_fell_at_once():
    policy = SharePolicy(activation_s=0, cooldown_s=0, min_open_s=10)
    plan = decide(LoadSnapshot(now=0, rate=100), ShareMemory(), policy)
    for t in range(1, 10):
        plan = decide(LoadSnapshot(now=t, rate=0), plan.memory, policy)
        assert plan.action is Action.NONE
    assert decide(LoadSnapshot(now=10, rate=0), plan.memory, policy).action is Action.CLOSE


def test_billing_queue_is_a_volume_trigger_when_configured():
    policy = SharePolicy(activation_s=0, billing_above=100, billing_below=10)
    assert decide(LoadSnapshot(now=0, billing_queued=101), ShareMemory(),
                  policy).action is Action.OPEN
    assert decide(LoadSnapshot(now=0, billing_queued=10_000), ShareMemory(),
                  SharePolicy(activation_s=0)).action is Action.NONE


@pytest.mark.parametrize("values, key", [
    ({"rate_below": 50, "rate_above": 50}, "rate_below"),
    ({"queue_below": 30}, "queue_below"),
    ({"triggers": ()}, "triggers"),
    ({"exits": ("volume", "weather")}, "exits"),
    ({"trigger_mode": "most"}, "trigger_mode"),
    ({"environments": 4}, "environments"),
    ({"cooldown_s": -1}, "cooldown_s"),
])
def test_policy_errors_name_the_key(values, key):
    with pytest.raises(ConfigError, match=key):
        SharePolicy(**values)


def test_policy_from_dict_refuses_unknown_keys_and_round_trips():
    with pytest.raises(ConfigError, match=r"loadshare\.rate_abvoe"):
        SharePolicy.from_dict({"rate_abvoe": 3})
    assert SharePolicy.from_dict(POLICY.to_dict()) == POLICY


def test_an_unknown_reading_neither_starts_nor_breaks_a_dwell():
    policy = SharePolicy(activation_s=3, cooldown_s=3, min_open_s=0)
    plan = decide(LoadSnapshot(now=0, rate=100), ShareMemory(), policy)
    plan = decide(LoadSnapshot(now=1, known=False), plan.memory, policy)  # reads as 0 req/s
    plan = decide(LoadSnapshot(now=3, rate=100), plan.memory, policy)
    assert plan.action is Action.OPEN  # the dwell from t=0 held through the missed scrape
    plan = decide(LoadSnapshot(now=4, rate=0), plan.memory, policy)
    for t in (5, 6, 7, 8):
        plan = decide(LoadSnapshot(now=t, known=False), plan.memory, policy)
        assert plan.action is Action.NONE  # ... and a quiet-looking gap is not a cooldown
    assert decide(LoadSnapshot(now=9, rate=100), plan.memory, policy).action is Action.NONE


def test_automatic_exits_wait_for_an_environment_to_open_up_to_a_timeout():
    policy = SharePolicy(activation_s=0, cooldown_s=0, min_open_s=0, open_timeout_s=60)
    plan = decide(LoadSnapshot(now=0, rate=100), ShareMemory(), policy)
    plan = decide(LoadSnapshot(now=5, rate=0, open_environments=0), plan.memory, policy)
    assert plan.action is Action.NONE  # nodes still coming: not closed on a quiet reading
    assert decide(LoadSnapshot(now=5, rate=0, open_environments=1), plan.memory,
                  policy).action is Action.CLOSE
    assert decide(LoadSnapshot(now=60, rate=0, open_environments=0), plan.memory,
                  policy).action is Action.CLOSE
