from __future__ import annotations

from datetime import date

import pytest

from gridfare.seats.inventory import Inventory
from gridfare.seats.train import TrainDate

DAY = date(2026, 10, 1)
STATIONS = ("Beijing", "Tianjin", "Jinan", "Nanjing", "Shanghai")  # legs 0..3


def make_train(
    train_no: str = "G1",
    day: date = DAY,
    classes=None,
    stations=STATIONS,
    through: bool = False,
    service: str = "emu",
) -> TrainDate:
    if classes is None:
        classes = {"business": 2, "second": 4}
    return TrainDate(train_no, day, stations, classes, through, service)


@pytest.fixture
def train() -> TrainDate:
    return make_train()


@pytest.fixture
def inventory(train) -> Inventory:
    return Inventory(train)
