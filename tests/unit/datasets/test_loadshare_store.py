import dataclasses

from datasets.loadshare_store import LoadShareStore
from gridfare.loadshare import CreditWeights, Environment, EnvState, accrue


def _entry(seq, since, until, total, before):
    return dataclasses.asdict(accrue("e1", "n1", 1.0, 1 << 30, seq=seq, since=since,
                                     until=until, tasks_total=total, tasks_before=before,
                                     weights=CreditWeights()))


def test_rows_entries_and_state_survive_a_new_store(tmp_path):
    store = LoadShareStore(tmp_path)
    row = Environment("e1", 1, EnvState.OPEN, "n1", 1.0, 1 << 30, 10.0, 11.0,
                      workers=(("r1", 2, 5),))
    store.save([row.to_dict()], [_entry(0, 11.0, 16.0, 5, 0)], {"episode": 1})
    again = LoadShareStore(tmp_path)
    assert [Environment.from_dict(r) for r in again.environments()] == [row]
    assert again.state() == {"episode": 1}
    assert [e["seq"] for e in again.entries()] == [0]


def test_a_repeated_entry_is_ignored_and_the_last_one_found(tmp_path):
    store = LoadShareStore(tmp_path)
    first, second = _entry(0, 0.0, 5.0, 3, 0), _entry(1, 5.0, 10.0, 7, 3)
    store.save(entries=[first])
    store.save(entries=[first, second])  # a retried write of entry 0: ignored
    assert [e["seq"] for e in store.entries("e1")] == [0, 1]
    assert store.last_entries()["e1"] == second
    changed = {**first, "millicredits": first["millicredits"] + 1}
    store.save(entries=[changed])
    assert store.entries("e1")[0] == first  # an entry once written is never rewritten


def test_a_pruned_row_is_deleted_and_its_ledger_kept(tmp_path):
    store = LoadShareStore(tmp_path)
    row = Environment("e1", 1, EnvState.CLOSED, "n1", 1.0, 1 << 30, 10.0, 11.0,
                      closed_at=16.0)
    store.save([row.to_dict()], [_entry(0, 11.0, 16.0, 5, 0)])
    store.save(forgotten=["e1"])
    again = LoadShareStore(tmp_path)
    assert again.environments() == []
    assert [e["seq"] for e in again.entries("e1")] == [0]  # credit earned stays
