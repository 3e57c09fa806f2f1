from __future__ import annotations

from collections import Counter

import pytest

from gridfare.errors import InvalidInput
from gridfare.seats.inventory import Inventory, Sale
from gridfare.seats.timetable import generate_demand, generate_timetable


@pytest.fixture(scope="module")
def timetable():
    return generate_timetable(seed=7, n_trains=400, days=3)


def test_same_seed_same_timetable_and_demand(timetable):
    again = generate_timetable(seed=7, n_trains=400, days=3)
    assert again == timetable
    assert generate_demand(timetable, seed=3, n_requests=500) == generate_demand(
        again, seed=3, n_requests=500
    )
    assert generate_timetable(seed=8, n_trains=400, days=3) != timetable


def test_shape_of_the_national_timetable(timetable):
    assert len(timetable.trains) == 400 and len(timetable.days) == 3
    assert len({t.train_no for t in timetable.trains}) == 400
    assert len(timetable.bureaus) == 18
    assert sum(len(c) for _, c in timetable.bureaus) == 33
    assert timetable.centres("B01") == ("B01C1", "B01C2")
    prefixes = Counter(t.train_no[0] for t in timetable.trains)
    assert set(prefixes) == {"G", "D", "Z", "T", "K"} and prefixes["G"] > prefixes["Z"]
    for t in timetable.trains:
        assert 2 <= len(t.stations) <= 20
        if t.train_no[0] == "G":
            assert dict(t.classes).keys() == {"business", "first", "second"}
            assert t.service == "emu"
        if t.train_no[0] in "ZT":
            assert "sleeper" in dict(t.classes) and t.service == "express"
    assert {t.through for t in timetable.trains} == {True, False}
    dates = list(timetable.train_dates())
    assert len(dates) == 1200 and len({d.key for d in dates}) == 1200
    seats = timetable.train_seats("B01")
    assert seats and all(n > 0 for n in seats.values())


def test_a_few_hot_trains_draw_most_requests(timetable):
    requests = generate_demand(timetable, seed=1, n_requests=5000)
    by_train = Counter(r.train_no for r in requests)
    top = sum(n for _, n in by_train.most_common(20))  # 5 % of the trains
    assert top > 0.5 * len(requests)
    assert len({r.request_id for r in requests}) == 5000
    assert Counter(r.count for r in requests).most_common(1)[0][0] == 1


def test_requests_are_valid_sales(timetable):
    inventories = {d.key: Inventory(d) for d in timetable.train_dates()}
    sold = 0
    for r in generate_demand(timetable, seed=2, n_requests=2000):
        result = inventories[f"{r.train_no}@{r.date.isoformat()}"].sell(
            r.from_station, r.to_station, r.cls, r.count, r.request_id
        )
        sold += isinstance(result, Sale)
    assert sold > 0


def test_bad_arguments():
    with pytest.raises(InvalidInput, match="n_trains"):
        generate_timetable(n_trains=0)
    with pytest.raises(InvalidInput, match="n_bureaus"):
        generate_timetable(n_bureaus=40, n_centres=33, n_stations=900)
