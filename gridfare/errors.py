"""The errors gridfare users see.

    GridfareError                 root: every failure gridfare reports on purpose
    ├── ConfigError               a configuration file or flag breaks a rule (names the key)
    ├── InvalidInput              a request or record breaks a rule (names the record and rule)
    │   ├── InvalidReading        a meter reading breaks a schema or domain rule
    │   └── TouSplitMismatch      TOU energy splits do not add up to the total energy
    ├── UnknownTariff             a tariff code that no loaded tariff book holds
    ├── TariffError               a tariff file breaks a rule (names the file and the key)
    └── DataCentreError           the data centre cannot be read or written
        └── DataCentreFull        a write failed for lack of space; nothing partial is visible

Lower-layer errors (OSError, pyarrow, DuckDB) become one of these at the edge with
``raise ... from exc`` so that the CLI and jobs can print one line and exit non-zero.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DataCentreError",
    "DataCentreFull",
    "GridfareError",
    "InvalidInput",
    "InvalidReading",
    "TariffError",
    "TouSplitMismatch",
    "UnknownTariff",
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


class UnknownTariff(GridfareError):
    """A tariff code that no loaded tariff book holds."""


class TariffError(GridfareError):
    """A tariff file breaks a rule; the message names the file and the key."""


class DataCentreError(GridfareError):
    """The data centre cannot be read or written."""


class DataCentreFull(DataCentreError):
    """A write failed for lack of space; nothing partial was left visible."""
