"""Load sharing on the fake multi-node autoscaling cluster: a 10x burst, a burst environment
killed mid-task, a manager restart, a signal and a volume trigger at once.

The cluster (``rayjobs.devcluster`` on free ports and its own temp dir, beside the session
cluster and tests/faults/test_autoscaling.py's fixed ports) is driven by
``python -m bench.loadshare --scenario faults`` in a subprocess (this process is already a
driver of the session cluster): the LoadShareManager, the quote service on Serve, an
open-loop load on 127.0.0.1 (bounded: about 1,200 requests in 70 s). The driver writes what
it saw; the tests below judge it.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.timeout(900)]

DRIVER_TIMEOUT_S = 840
REPORT_SLACK_S = 0.5  # a report in flight at the kill; GCS declares a node dead in seconds


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("loadshare") / "report.json"
    try:
        done = subprocess.run([sys.executable, "-m", "bench.loadshare", "--scenario", "faults",
                               "--out", str(out)], capture_output=True, text=True,
                              timeout=DRIVER_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the load-sharing driver did not end in {DRIVER_TIMEOUT_S} s: "
                    f"{str(exc.stderr)[-3000:]}")
    assert done.returncode == 0 and out.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    burst = report["burst"]
    print(f"\nload sharing: burst {burst['sent']} requests, {burst['lost']} lost, events "
          f"{ {k: round(v, 1) for k, v in burst['events'].items()} }, autoscaler overshoots "
          f"{burst['autoscaler_overshoots']}, trigger -> first "
          f"served {burst['trigger_to_first_served_s']} s; kill: {report['kill'].get('sent')}"
          f" requests, {report['kill'].get('retried')} retried, "
          f"{report['kill'].get('lost')} lost")
    return report


def test_a_10x_burst_opens_environments_serves_every_request_and_closes_after(report):
    burst = report["burst"]
    (base_s, _), (burst_s, _), _ = report["phases"]
    events = burst["events"]
    assert burst["lost"] == 0 and set(burst["statuses"]) == {"200"}, burst["statuses"]
    assert burst["episodes"] == 1, "one opening for the burst"
    assert {"opened", "registered", "first_served", "closed", "removed"} <= set(events), events
    # The trigger waited for the burst; the exit for its end (cooldown after the load fell).
    assert base_s <= events["opened"] < base_s + burst_s
    assert events["closed"] > base_s + burst_s
    environments = [e for e in burst["environments"] if e["episode"] == 1]
    assert len(environments) == 2
    assert all(e["state"] == "closed" and e["reason"] == "drained" for e in environments)
    assert sum(e["tasks_done"] for e in environments) > 0, "the burst nodes served nothing"
    # Burst nodes only, two of them, beside any that Ray's autoscaler launched past the
    # burst type's max_workers and removed at once itself (bench/loadshare.py).
    assert events.get("max_billing_workers", 0) == 0
    assert 2 <= events["max_burst_workers"] <= 2 + burst["autoscaler_overshoots"]


def test_a_signal_and_a_volume_trigger_at_once_are_one_opening(report):
    kill = report["kill"]
    assert "error" not in kill, kill.get("error")
    # The hot event came over HTTP and opened the episode at once, named after it.
    assert kill["signalled"] == {"phase": "sharing", "cause": "signal", "episode": 2,
                                 "hot_events": ["release-day"]}
    # The burst was episode 1; the signal and the load of the kill scenario made one more.
    assert kill["before"]["episode"] == 2
    asked = [e for e in kill["before"]["environments"] if e["episode"] == 2]
    # Two at the opening, and one asked to replace the one that was killed.
    assert len(asked) == 3


def test_a_killed_environment_stops_earning_and_its_requests_are_served_elsewhere(report):
    kill = report["kill"]
    assert kill["lost"] == 0, kill["statuses"]  # idempotent quotes, retried by the client
    victim = kill["victim_closed"]
    assert victim["reason"] == "its node died"
    entries = kill["victim_entries"]
    assert entries, "the killed environment had earned nothing"
    # Credit stops at its last report before the kill, not when its node was declared dead
    # (seconds later). The manager stamps a report when it takes it off its loop, so one
    # sent just before the kill may be stamped a little after it: REPORT_SLACK_S.
    assert max(e["until"] for e in entries) <= kill["killed_at"] + REPORT_SLACK_S
    assert victim["closed_at"] <= kill["killed_at"] + REPORT_SLACK_S


def test_a_manager_restart_rebuilds_the_table_and_the_ledger_without_doubling(report):
    kill = report["kill"]
    before = {e["env_id"]: e for e in kill["before"]["environments"]}
    after = {e["env_id"]: e for e in kill["after"]["environments"]}
    assert set(before) <= set(after)
    # Task counts are the environments' reports (soft state, re-sent every second): what
    # was saved, the counts the ledger credited, is never lost.
    credited: dict[str, int] = {}
    for entry in kill["ledger_before"]:
        credited[entry["env_id"]] = max(credited.get(entry["env_id"], 0), entry["tasks_total"])
    for env_id, row in before.items():
        if row["state"] == "closed":
            assert after[env_id]["state"] == "closed", env_id
        assert after[env_id]["tasks_done"] >= credited.get(env_id, 0)
    assert kill["after"]["episode"] == kill["before"]["episode"]
    # What was in the ledger before the restart is there unchanged, once.
    ledger = kill["ledger_after"]
    keys = [(e["env_id"], e["seq"]) for e in ledger]
    assert len(keys) == len(set(keys))
    by_key = {(e["env_id"], e["seq"]): e for e in ledger}
    for entry in kill["ledger_before"]:
        assert by_key[(entry["env_id"], entry["seq"])] == entry
    # Each environment's entries are contiguous: no interval counted twice or skipped.
    for env_id in {e["env_id"] for e in ledger}:
        mine = sorted((e for e in ledger if e["env_id"] == env_id), key=lambda e: e["seq"])
        assert [e["seq"] for e in mine] == list(range(len(mine)))
        for earlier, later in itertools.pairwise(mine):
            assert later["since"] == pytest.approx(earlier["until"])
            assert later["tasks_total"] >= earlier["tasks_total"]
