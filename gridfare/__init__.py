"""gridfare: an elastic compute cluster for utility billing and railway ticketing, on Ray."""

from gridfare.api import connect
from gridfare.errors import (
    ConfigError,
    DataCentreError,
    DataCentreFull,
    GridfareError,
    InvalidInput,
    InvalidReading,
    MigrationError,
    SeatError,
    StaleVersion,
    TariffError,
    TouSplitMismatch,
    TrainFrozen,
    TrainMoved,
    UnknownOrder,
    UnknownTariff,
    UnknownTrain,
    WalCorrupt,
)

__all__ = [
    "ConfigError",
    "DataCentreError",
    "DataCentreFull",
    "GridfareError",
    "InvalidInput",
    "InvalidReading",
    "MigrationError",
    "SeatError",
    "StaleVersion",
    "TariffError",
    "TouSplitMismatch",
    "TrainFrozen",
    "TrainMoved",
    "UnknownOrder",
    "UnknownTariff",
    "UnknownTrain",
    "WalCorrupt",
    "connect",
]
