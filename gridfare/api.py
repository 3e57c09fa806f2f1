"""The analyst's Python API.

    >>> import gridfare
    >>> dc = gridfare.connect("demo-data")
    >>> dc.bills("2026-10").df()              # a DuckDB relation: .df(), .to_arrow_table()
    >>> dc.summary("2026-10").by_tariff       # totals per tariff
    >>> dc.run_billing("2026-10", sections=["S000*"])
    >>> dc.tariff_comparison("c1").df()     # profiles x tariffs (rayjobs.tariff_compare)

Bills are read straight from the Parquet datasets through an in-memory DuckDB connection,
so they can be read while a run is writing (a section's file is replaced atomically, never
half-written); audit exceptions come from the catalog, which the run's writer holds only
for one short transaction at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gridfare.errors import InvalidInput
from gridfare.period import Period

if TYPE_CHECKING:
    import duckdb

    from datasets.catalog import RunRecord, SectionRecord


def accounts(store: str, cluster: str | None = "auto", *, create: bool = False,
             **config):
    """The prepaid accounts store under directory ``store`` on a Ray cluster (an
    ``actors.accounts_client.AccountsClient``).

        >>> from gridfare.api import accounts
        >>> acc = accounts("/data/store", cluster="127.0.0.1:6379", create=True, standbys=1)
        >>> acc.open(42); acc.payment(42, 10_000, key="pay-42-1")
        >>> acc.deduction(42, 2_500, key="fee-42-2026-10").balance_fen
        7500

    ``create`` starts the store when it is not running (``config``: ``StoreConfig`` keys,
    e.g. ``standbys``, ``replication``, ``floor_fen``); operations are exactly once per
    idempotency key (see ``actors.accounts_client``)."""
    if not store or not isinstance(store, str):
        raise InvalidInput("accounts: a store directory is required")
    from actors.accounts_client import connect_accounts

    return connect_accounts(store, cluster, create, **config)


def connect(datacentre_uri: str) -> DataCentreClient:
    """Open a data centre (a directory or a ``pyarrow.fs`` URI) for analysis and billing."""
    if not datacentre_uri:
        raise InvalidInput("connect: a data centre directory or URI is required")
    return DataCentreClient(datacentre_uri)


@dataclass(frozen=True)
class PeriodSummary:
    """Totals of one period's bills: per tariff, per section, and the bill distribution."""

    period: str
    by_tariff: list[tuple]  # (tariff_code, bills, kwh, total_fen)
    by_section: list[tuple]  # (section_id, bills, kwh, total_fen), largest total first
    distribution: dict[str, int]  # total_fen quantiles: p10, p50, p90, p99, max
    exceptions_by_rule: list[tuple]  # (rule, count)

    def render(self) -> str:
        from gridfare.money import format_cny

        bills = sum(row[1] for row in self.by_tariff)
        total = sum(row[3] for row in self.by_tariff)
        lines = [f"period {self.period}: {bills:,} bills, total {format_cny(total)} CNY",
                 "  by tariff:"]
        for code, count, kwh, fen in self.by_tariff:
            lines.append(f"    {code:32} {count:>9,} bills {kwh:>16,.2f} kWh "
                         f"{format_cny(fen):>16} CNY")
        if self.distribution:
            lines.append("  bill distribution (CNY): " + ", ".join(
                f"{name} {format_cny(fen)}" for name, fen in self.distribution.items()))
        lines.append("  largest sections:")
        for section, count, _kwh, fen in self.by_section[:5]:
            lines.append(f"    {section:10} {count:>7,} bills {format_cny(fen):>16} CNY")
        if self.exceptions_by_rule:
            lines.append("  audit exceptions: " + ", ".join(
                f"{rule} {count:,}" for rule, count in self.exceptions_by_rule))
        return "\n".join(lines)


class DataCentreClient:
    """Read bills, exceptions and runs of one data centre; start billing runs."""

    def __init__(self, uri: str) -> None:
        import duckdb

        from datasets.datacentre import DataCentre

        self._centre = DataCentre(uri)
        self._con = duckdb.connect()

    def __repr__(self) -> str:
        return f"DataCentreClient({self._centre.shown!r})"  # credentials redacted

    @property
    def uri(self) -> str:
        return self._centre.uri

    def bills(self, period: str, sections: Sequence[str] | None = None
              ) -> duckdb.DuckDBPyRelation:
        """One period's bills (optionally only some sections) as a DuckDB relation."""
        return self._relation("bills", period, sections)

    def exceptions(self, period: str, sections: Sequence[str] | None = None
                   ) -> duckdb.DuckDBPyRelation:
        """One period's audit exceptions as a DuckDB relation (from the catalog: they are
        recorded with their section's state)."""
        Period.parse(period)
        table = self._catalog().exceptions(period, _section_ids(sections))
        return self._con.cursor().from_arrow(table)

    def tariff_comparison(self, comparison_id: str) -> duckdb.DuckDBPyRelation:
        """One stored tariff comparison (``rayjobs.tariff_compare``) as a DuckDB relation:
        a row per (profile, tariff), annual lines in the tariff's minor unit and ``rank``."""
        table = self._centre.read_comparison(comparison_id)
        if not table.num_rows:
            known = ", ".join(self._centre.comparisons()) or "none"
            raise InvalidInput(f"no tariff comparison {comparison_id!r}; stored: {known}")
        return self._con.cursor().from_arrow(table)

    def runs(self) -> list[RunRecord]:
        """Every billing run recorded in the catalog, oldest first."""
        return self._catalog().runs()

    def summary(self, period: str) -> PeriodSummary:
        """Totals per tariff and per section, the bill distribution and exception counts."""
        bills = self.bills(period)
        by_tariff = bills.aggregate(
            "tariff_code, count(*), sum(kwh), sum(total_fen)::BIGINT", "tariff_code"
        ).order("tariff_code").fetchall()
        by_section = bills.aggregate(
            "section_id, count(*), sum(kwh), sum(total_fen)::BIGINT", "section_id"
        ).order("4 DESC, section_id").fetchall()
        quantiles = bills.aggregate(
            "quantile_disc(total_fen, [0.1, 0.5, 0.9, 0.99]), max(total_fen)").fetchall()[0]
        distribution = {}
        if quantiles and quantiles[1] is not None:
            distribution = dict(zip(("p10", "p50", "p90", "p99"), quantiles[0], strict=True))
            distribution["max"] = quantiles[1]
        rules = self.exceptions(period).aggregate("rule, count(*)", "rule").order(
            "2 DESC, rule").fetchall()
        return PeriodSummary(period, by_tariff, by_section, distribution, rules)

    def sections(self, run_id: str) -> list[SectionRecord]:
        """Each section of a run: status, node, bills, exceptions, seconds, error."""
        return self._catalog().sections(run_id)

    def run_billing(self, period: str | None = None, *, sections: Sequence[str] | None = None,
                    resume_run_id: str | None = None, tariffs_dir: str | None = None,
                    cluster: str | None = None) -> RunRecord:
        """Bill ``period`` (all sections, or ids/patterns) and store the results; or, with
        ``resume_run_id``, bill what that run has not done (with its own period and tariff
        book: another ``period`` or book is refused).

        With ``cluster`` (``HOST:PORT``, ``"auto"`` for the one on this host, or
        ``"local"`` for a private one) the run goes through the data centre's ControlServer
        on that cluster (``actors.attach``: an unreachable one is a ClusterUnavailable in
        seconds); without, it runs in this process. Either way the run's record comes back
        once every section is done or failed.
        """
        from gridfare.billing.request import RunRequest

        # Checked here whole, before a cluster is joined or anything is written.
        request = RunRequest.build(period, sections=sections, resume_run_id=resume_run_id,
                                   tariffs_dir=tariffs_dir)
        if cluster is not None:
            from actors.attach import attach
            from rayjobs.billing import submit_and_wait

            attach(cluster)
            run_id = submit_and_wait(self._centre.uri, period, sections=sections,
                                     resume_run_id=resume_run_id, tariffs_dir=tariffs_dir,
                                     show_progress=False)["run_id"]
            writer = self._catalog(writer=True)
            try:
                writer.refresh_views(self._centre.view_globs())
            finally:
                writer.release()
        else:
            from gridfare.billing.runner import run_billing

            writer = self._catalog(writer=True)
            try:
                run_id = run_billing(self._centre, writer, request).run_id
                writer.refresh_views(self._centre.view_globs())
            finally:
                writer.release()
        return self._catalog().run(run_id)

    def _catalog(self, *, writer: bool = False):
        from datasets.catalog import open_catalog

        # Readers open it read-only (and create nothing); a run's writer only in run_billing.
        return open_catalog(self._centre, writer=writer)

    def _relation(self, dataset: str, period: str, sections: Sequence[str] | None
                  ) -> duckdb.DuckDBPyRelation:
        import pyarrow.dataset as ds

        Period.parse(period)
        table = self._centre.dataset(dataset, period)
        wanted = _section_ids(sections)
        if wanted is not None:
            table = table.filter(ds.field("section_id").isin(wanted))
        return self._con.cursor().from_arrow(table)


def _section_ids(sections: Sequence[str] | None) -> list[str] | None:
    """Section ids asked for by an analyst, each checked as a section id (not a pattern)."""
    from datasets.schemas import check_section_id

    if sections is None:
        return None
    if isinstance(sections, str):
        raise InvalidInput(f"sections {sections!r}: expected a list of section ids")
    return [check_section_id(section) for section in sections]


def seats(root: str, centres: Sequence[str] | None = None, main: str | None = None, *,
          cluster: str | None = None, on_attach=None, **options):
    """Open a seats data root on a Ray cluster: its ``SeatsClient`` (``actors.seats_client``).

    ``centres`` (and ``main``, default the first) configure a new root; ``options`` are
    ``SeatsConfig`` fields. ``cluster`` is joined through ``actors.attach`` (``None``: the
    cluster this process or job is already in); ``on_attach`` hears which one.

        >>> seats = gridfare.api.seats("seats/", ["A", "B", "C"], cluster="auto")
        >>> seats.sell("G1", "2026-10-01", "Beijing", "Jinan", "second", 2, "r-1")
    """
    from gridfare.seats.store import SeatsRoot

    root_path = SeatsRoot(root)  # a bad root is refused before any cluster is joined
    if centres is None:
        root_path.config()  # and so is one that is not a seats data root
    import ray

    from actors.attach import attach
    from actors.seats_client import SeatsClient

    if cluster is not None or not ray.is_initialized():  # else: the cluster it is in
        joined = attach(cluster)
        if on_attach is not None:
            on_attach(joined.describe())
    return SeatsClient.start(root, centres, main, **options)
