"""The errors gridfare users see.

    GridfareError                 root: every failure gridfare reports on purpose
    ├── ConfigError               a configuration file or flag breaks a rule (names the key)
    ├── InvalidInput              a request or record breaks a rule (names the record and rule)
    │   ├── InvalidReading        a meter reading breaks a schema or domain rule
    │   ├── TouSplitMismatch      TOU energy splits do not add up to the total energy
    │   ├── QuantityOutOfRange    a quantity beyond what exact int64 fen can price (names bound)
    │   ├── UnsafeOutputPath      an output path is the input, a link of it, or not writable
    │   ├── ProfileError          an hourly load profile breaks a rule (names the profile, hour)
    │   ├── InvalidName           a client-chosen id or path breaks its pattern (no path escapes)
    │   ├── RequestTooLarge       an HTTP body over its size or nesting bound (HTTP 413)
    │   ├── UnknownSection        a section id or pattern that matches no section of the period
    │   └── NothingToBill         a billing request for a period with no readings at all
    ├── UnknownTariff             a tariff code that no loaded tariff book holds
    ├── TariffError               a tariff file breaks a rule (names the file and the key)
    │   └── UrdbError             a URDB rate record breaks a rule or has a field not priced
    ├── ClusterUnavailable        no Ray cluster given, found or reachable (says how to start one)
    ├── ServeStillRunning         Serve outlived the wait for its shutdown (controller or port held)
    ├── DataCentreError           the data centre cannot be read or written
    │   ├── DataCentreFull        a write failed for lack of space; nothing partial is visible
    │   ├── DataCentreNotEmpty    generating into a data centre that already holds data
    │   ├── NotADataCentre        a path or bucket prefix that holds no data centre
    │   ├── CatalogBusy           another writer holds the catalog's lease past the wait
    │   ├── CatalogLeaseLost      the writer's catalog lease was taken over; its write refused
    │   ├── ForeignData           a file in the lake breaks its layout, schema or partition
    │   └── UnknownRun            a run id the catalog does not hold
    ├── LoadShareError            a load-sharing rule was broken (names the environment, rule)
    │   ├── QuotaExceeded         a burst environment's working directory would exceed its quota
    │   └── IllegalTransition     an open-state table change its state does not allow
    ├── FeeControlError           prepaid fee control could not do what it was asked
    │   ├── FeedConflict          a feed batch appended again with other rows (append-only)
    │   ├── MessagingError        the message system (NATS JetStream) failed or refused a message
    │   └── AccountsUnavailable   the accounts service did not answer a batch of reads or posts
    ├── SeatError                 a seat inventory, directory or migration rule was broken
    │   ├── UnknownTrain          a train-date this centre or directory does not hold
    │   ├── UnknownOrder          a refund names a request_id no sale on the train-date holds
    │   ├── TrainMoved            the train-date now lives on another centre (names it, version)
    │   ├── TrainFrozen           the train-date is frozen for the last step of its migration
    │   ├── StaleVersion          a directory write based on a version that is no longer current
    │   ├── WalCorrupt            a seat log is damaged before its last line or does not replay
    │   ├── SeatUnavailable       a seat actor cannot be reached now (retry; HTTP 503)
    │   ├── SeatsAppConflict      the cluster already serves another seats root over HTTP
    │   └── MigrationError        an illegal migration transition (names the train-date, state)
    │       ├── UnknownMigration  no migration has this id
    │       └── MigrationConflict a migration id reused for another selector or target
    └── StoreError                the accounts store (state database) refused or failed a call
        ├── UnknownAccount        no account has this id
        ├── Overdraft             a deduction would take a balance below its floor: refused
        ├── IdempotencyConflict   an idempotency key already names a different operation
        ├── VersionConflict       the account kept changing under the write; retry
        ├── StaleEpoch            a write based on an epoch that is no longer the store's
        ├── NotReplicated         no synchronous standby confirmed the write: not acknowledged
        └── StoreUnavailable      no primary can be reached now (names the address or why)

Lower-layer errors (OSError, pyarrow, DuckDB) become one of these at the edge with
``raise ... from exc`` so that the CLI and jobs can print one line and exit non-zero.
"""

from __future__ import annotations

__all__ = [
    "AccountsUnavailable",
    "CatalogBusy",
    "CatalogLeaseLost",
    "ClusterUnavailable",
    "ConfigError",
    "DataCentreError",
    "DataCentreFull",
    "DataCentreNotEmpty",
    "FeeControlError",
    "FeedConflict",
    "ForeignData",
    "GridfareError",
    "IdempotencyConflict",
    "IllegalTransition",
    "InvalidInput",
    "InvalidName",
    "InvalidReading",
    "LoadShareError",
    "MessagingError",
    "MigrationConflict",
    "MigrationError",
    "NotADataCentre",
    "NotReplicated",
    "NothingToBill",
    "Overdraft",
    "ProfileError",
    "QuantityOutOfRange",
    "QuotaExceeded",
    "RequestTooLarge",
    "SeatError",
    "SeatUnavailable",
    "SeatsAppConflict",
    "ServeStillRunning",
    "StaleEpoch",
    "StaleVersion",
    "StoreError",
    "StoreUnavailable",
    "TariffError",
    "TouSplitMismatch",
    "TrainFrozen",
    "TrainMoved",
    "UnknownAccount",
    "UnknownMigration",
    "UnknownOrder",
    "UnknownRun",
    "UnknownSection",
    "UnknownTariff",
    "UnknownTrain",
    "UnsafeOutputPath",
    "UrdbError",
    "VersionConflict",
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


class QuantityOutOfRange(InvalidInput):
    """A quantity beyond what exact int64 fen can price; the message names it and the bound."""


class UnsafeOutputPath(InvalidInput):
    """An output path is the input, a link of it, inside the data centre, or not writable."""


class ProfileError(InvalidInput):
    """An hourly load profile breaks a rule; the message names the profile, the hour, the rule."""


class InvalidName(InvalidInput):
    """A client-chosen id or path (centre, migration, seats root) breaks its strict pattern."""


class RequestTooLarge(InvalidInput):
    """An HTTP body is over its size bound or nested too deeply to be read (HTTP 413)."""


class UnknownSection(InvalidInput):
    """A section id or pattern that matches no section of the period; names it."""


class NothingToBill(InvalidInput):
    """A billing request for a period that has no readings in the data centre at all."""


class UnknownTariff(GridfareError):
    """A tariff code that no loaded tariff book holds."""


class TariffError(GridfareError):
    """A tariff file breaks a rule; the message names the file and the key."""


class UrdbError(TariffError):
    """A URDB rate record breaks a rule or holds a field gridfare does not price (names both)."""


class ClusterUnavailable(GridfareError):
    """No Ray cluster was given, found or reachable; the message says how to start one."""


class ServeStillRunning(GridfareError):
    """Serve's controller or its HTTP port outlived the wait after ``serve.shutdown``."""


class DataCentreError(GridfareError):
    """The data centre cannot be read or written."""


class DataCentreFull(DataCentreError):
    """A write failed for lack of space; nothing partial was left visible."""


class DataCentreNotEmpty(DataCentreError):
    """Generating into a data centre that already holds data, without asking to replace it."""
class NotADataCentre(DataCentreError):
    """A path or bucket prefix that holds no data centre (no manifest, datasets or catalog)."""


class CatalogBusy(DataCentreError):
    """Another writer holds the catalog's lease for longer than this writer would wait."""


class CatalogLeaseLost(DataCentreError):
    """The writer's catalog lease was taken over; its write was refused, not published."""


class ForeignData(DataCentreError):
    """A file in the lake breaks its layout, schema or partition; names the file and rule."""


class UnknownRun(DataCentreError):
    """A run id that the data centre's catalog does not hold."""


class LoadShareError(GridfareError):
    """A load-sharing rule was broken; the message names the environment and the rule."""


class QuotaExceeded(LoadShareError):
    """A burst environment's working directory would grow past its quota; nothing was written."""


class IllegalTransition(LoadShareError):
    """An open-state table change that the environment's state does not allow."""


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


class FeeControlError(GridfareError):
    """Prepaid fee control could not do what it was asked."""


class FeedConflict(FeeControlError):
    """A feed batch was appended again with other rows; the feed is append-only."""


class MessagingError(FeeControlError):
    """The message system (NATS JetStream) failed or refused a message."""


class AccountsUnavailable(FeeControlError):
    """The accounts service did not answer a batch of balance reads or deduction posts."""


class UnknownMigration(MigrationError):
    """No migration has this id."""


class MigrationConflict(MigrationError):
    """A migration id was reused for another selector or target than the one it was made with."""


class SeatUnavailable(SeatError):
    """A seat actor (centre, directory, migrator) cannot be reached now; retry later."""


class SeatsAppConflict(SeatError):
    """The Ray cluster already serves another seats root over HTTP; one seats app per cluster."""
class StoreError(GridfareError):
    """The accounts store (the state database) refused or failed a call."""


class UnknownAccount(StoreError):
    """No account has this id."""


class Overdraft(StoreError):
    """A deduction would take the balance below the account's floor; it was not applied."""

    def __init__(self, account_id: int, key: str, amount_fen: int, balance_fen: int) -> None:
        super().__init__(f"account {account_id}: deduction {key} of {amount_fen} fen refused: "
                         f"the balance {balance_fen} fen would go below the account's floor")
        self.account_id = account_id
        self.key = key
        self.amount_fen = amount_fen
        self.balance_fen = balance_fen

    def __reduce__(self):  # keep the fields when pickled across processes (Ray)
        return (type(self), (self.account_id, self.key, self.amount_fen, self.balance_fen))


class IdempotencyConflict(StoreError):
    """An idempotency key came back naming a different operation; nothing was applied."""


class VersionConflict(StoreError):
    """The account kept changing under the write (version check) past the retries."""


class StaleEpoch(StoreError):
    """A write was based on a store epoch that is no longer current (a failover happened)."""


class NotReplicated(StoreError):
    """No synchronous standby confirmed the write, so it is not acknowledged (RPO 0)."""


class StoreUnavailable(StoreError):
    """No primary can be reached now; the message names the address or the reason."""
