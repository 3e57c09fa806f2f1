"""The errors gridfare users see.

    GridfareError                 root: every failure gridfare reports on purpose
    ├── ConfigError               a configuration file or flag breaks a rule (names the key)
    ├── InvalidInput              a request or record breaks a rule (names the record and rule)
    │   ├── InvalidReading        a meter reading breaks a schema or domain rule
    │   ├── TouSplitMismatch      TOU energy splits do not add up to the total energy
    │   ├── UnknownSection        a section id or pattern that matches no section of the period
    │   ├── UnknownRun            a run id the catalog does not hold
    │   └── NothingToBill         a billing request for a period with no readings at all
    ├── UnknownTariff             a tariff code that no loaded tariff book holds
    ├── TariffError               a tariff file breaks a rule (names the file and the key)
    ├── ClusterUnavailable        no Ray cluster given, found or reachable (says how to start one)
    ├── DataCentreError           the data centre cannot be read or written
    │   ├── DataCentreFull        a write failed for lack of space; nothing partial is visible
    │   └── ForeignData           a file in the lake breaks its layout, schema or partition
    └── SeatError                 a seat inventory, directory or migration rule was broken
        ├── UnknownTrain          a train-date this centre or directory does not hold
        ├── UnknownOrder          a refund names a request_id no sale on the train-date holds
        ├── TrainMoved            the train-date now lives on another centre (names it, version)
        ├── TrainFrozen           the train-date is frozen for the last step of its migration
        ├── StaleVersion          a directory write based on a version that is no longer current
        ├── WalCorrupt            a seat log is damaged before its last line or does not replay
        └── MigrationError        an illegal migration transition (names the train-date, state)

Lower-layer errors (OSError, pyarrow, DuckDB) become one of these at the edge with
``raise ... from exc`` so that the CLI and jobs can print one line and exit non-zero.
"""

from __future__ import annotations

__all__ = [
    "ClusterUnavailable",
    "ConfigError",
    "DataCentreError",
    "DataCentreFull",
    "ForeignData",
    "GridfareError",
    "InvalidInput",
    "InvalidReading",
    "MigrationError",
    "NothingToBill",
    "SeatError",
    "StaleVersion",
    "TariffError",
    "TouSplitMismatch",
    "TrainFrozen",
    "TrainMoved",
    "UnknownOrder",
    "UnknownRun",
    "UnknownSection",
    "UnknownTariff",
    "UnknownTrain",
    "WalCorrupt",
]


class GridfareError(Exception):
    """Root of every error gridfare raises on purpose."""


class ConfigError(GridfareError):
    """A configuration file or flag breaks a rule; the message names the key."""


class InvalidInput(GridfareError):
    """A request or record breaks a rule; the message names the record and the rule."""


class InvalidReading(InvalidInput):
    """A meter reading breaks a schema or domain rule."""


class TouSplitMismatch(InvalidInput):
    """Time-of-use energy splits do not add up to the total energy."""


class UnknownSection(InvalidInput):
    """A section id or pattern that matches no section of the period; names it."""


class UnknownRun(InvalidInput):
    """A run id that the data centre's catalog does not hold."""


class NothingToBill(InvalidInput):
    """A billing request for a period that has no readings in the data centre at all."""


class UnknownTariff(GridfareError):
    """A tariff code that no loaded tariff book holds."""


class TariffError(GridfareError):
    """A tariff file breaks a rule; the message names the file and the key."""


class ClusterUnavailable(GridfareError):
    """No Ray cluster was given, found or reachable; the message says how to start one."""


class DataCentreError(GridfareError):
    """The data centre cannot be read or written."""


class DataCentreFull(DataCentreError):
    """A write failed for lack of space; nothing partial was left visible."""


class ForeignData(DataCentreError):
    """A file in the lake breaks its layout, schema or partition; names the file and rule."""


class SeatError(GridfareError):
    """A seat inventory, directory or migration rule was broken."""


class UnknownTrain(SeatError):
    """A train-date that this centre or directory does not hold."""


class UnknownOrder(SeatError):
    """A refund names a request_id that no sale on the train-date holds."""


class TrainMoved(SeatError):
    """The train-date now lives on another centre; retry there with the new version."""

    def __init__(self, key: str, centre: str, version: int) -> None:
        super().__init__(f"train-date {key} moved to centre {centre} (directory version {version})")
        self.key = key
        self.centre = centre
        self.version = version

    def __reduce__(self):  # keep the fields when pickled across processes (Ray)
        return (type(self), (self.key, self.centre, self.version))


class TrainFrozen(SeatError):
    """The train-date is frozen for the last step of its migration; retry shortly."""


class StaleVersion(SeatError):
    """A directory write was based on a version that is no longer current."""


class WalCorrupt(SeatError):
    """A seat log is damaged before its last line, or a record does not replay onto its state."""


class MigrationError(SeatError):
    """An illegal migration transition; the message names the train-date and its state."""
