from decimal import Decimal

import pytest

from gridfare.errors import ConfigError
from gridfare.loadshare import CreditWeights, accrue, credits_by

GIB = 1 << 30
WEIGHTS = CreditWeights(cpu_second=Decimal(1000), gib_second=Decimal(250), task=Decimal(10))


def test_credit_is_size_times_time_plus_tasks_in_exact_millicredits():
    # 1 CPU, 2 GiB for 10 s: (1000 + 500) * 10 = 15,000; 7 tasks: 70.
    entry = accrue("e1", "n1", 1.0, 2 * GIB, seq=0, since=1_790_000_000.0,
                   until=1_790_000_010.0, tasks_total=7, tasks_before=0, weights=WEIGHTS)
    assert entry.millicredits == 15_070 and entry.tasks == 7 and entry.period == "2026-09"


def test_each_entry_is_rounded_half_up_once():
    weights = CreditWeights(cpu_second=Decimal("0.5"), gib_second=Decimal(0), task=Decimal(0))
    entry = accrue("e1", "n1", 1.0, 0, seq=0, since=0.0, until=1.0, tasks_total=0,
                   tasks_before=0, weights=weights)
    assert entry.millicredits == 1  # 0.5 -> 1, half-up


def test_contiguous_entries_sum_to_one_long_entry_and_tasks_count_once():
    whole = accrue("e1", "n1", 2.0, GIB, seq=0, since=0.0, until=30.0, tasks_total=90,
                   tasks_before=0, weights=WEIGHTS)
    parts, before, since = [], 0, 0.0
    for seq, (until, total) in enumerate([(10.0, 30), (20.0, 60), (30.0, 90)]):
        parts.append(accrue("e1", "n1", 2.0, GIB, seq=seq, since=since, until=until,
                            tasks_total=total, tasks_before=before, weights=WEIGHTS))
        since, before = until, total
    assert sum(p.millicredits for p in parts) == whole.millicredits
    assert sum(p.tasks for p in parts) == 90


def test_nothing_to_record_is_no_entry():
    assert accrue("e1", "n1", 1.0, 0, seq=3, since=5.0, until=5.0, tasks_total=4,
                  tasks_before=4, weights=WEIGHTS) is None


def test_totals_per_node_and_period():
    entries = [accrue(f"e{i}", node, 1.0, 0, seq=0, since=since, until=since + 10,
                      tasks_total=5, tasks_before=0, weights=WEIGHTS)
               for i, (node, since) in enumerate([("a", 0.0), ("a", 100.0), ("b", 0.0)])]
    by_node = credits_by(entries)
    assert by_node[("a",)] == {"seconds": 20.0, "tasks": 10, "millicredits": 20_100}
    assert list(credits_by(entries, "node_id,period")) == [("a", "1970-01"), ("b", "1970-01")]


def test_weights_are_checked():
    with pytest.raises(ConfigError, match=r"loadshare\.credit\.task"):
        CreditWeights(task=Decimal(-1))
    assert CreditWeights(cpu_second="2.5").cpu_second == Decimal("2.5")
