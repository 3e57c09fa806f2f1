"""Property-based fuzzing of the `gridfare` command's arguments, in process.

Random and adversarial argv for every billing-side subcommand against a real small data
centre (not ``--cluster`` and not ``seats``: those join Ray, and a fuzzed ``seats plan``
joined another cluster running on this host through ``ray.init("auto")``; the seats
commands are fuzzed once they attach through ``actors.attach``): whatever the input, the
command returns an exit code from ``gridfare.exit_codes``, a refusal is exactly one
``gridfare: error:`` line on stderr, nothing ever prints a traceback, and after a refusal
the lake's files and the catalog's rows are what they were.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datasets.catalog import Catalog
from datasets.datacentre import DataCentre
from datasets.generator import generate_city
from gridfare.cli import main
from gridfare.exit_codes import BROKEN_PIPE, EXIT_CODES, SECTIONS_FAILED

PERIOD = "2026-10"
SAMPLES = str(Path(__file__).resolve().parents[2] / "datasets" / "samples" / "tariffs")
CODES = {0, SECTIONS_FAILED, BROKEN_PIPE, *EXIT_CODES.values()}
pytestmark = pytest.mark.timeout(300)

# What a shell can pass: any text without NUL, including the lone surrogates Python makes
# of bytes that are not UTF-8 (surrogateescape).
ADVERSARIAL = st.one_of(
    st.sampled_from(["", " ", "-", "--", "-1", "0", "1e309", "nan", "inf", "9" * 40, "../..",
                     "../../etc/passwd", "/", "/etc", "/proc/self/mem", ".", "..", "*", "?",
                     "[", "S0000*", "S00001/../S00002", "S00001\n", "'; DROP TABLE runs; --",
                     "%s%n", "\udcff\udcfe", "2026-10\n", "2026-00", "9999-12", "s3:/x",
                     "file:///nonexistent", "x" * 5000, "é" * 70, "\u202e", "C:\\x"]),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
            max_size=30),
)


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    """A small billed city, a good readings CSV and a broken tariff directory."""
    root = tmp_path_factory.mktemp("fuzz")
    city = root / "dc"
    generate_city(DataCentre(str(city), create=True), accounts=600, sections=4,
                  period=PERIOD, seed=17)
    assert main(["bill", "--datacentre", str(city), "--period", PERIOD]) == 0
    run_id = Catalog(city / "catalog.duckdb").runs()[-1].run_id
    broken = shutil.copytree(SAMPLES, root / "broken-tariffs")
    (broken / "cn-bj-residential-monthly.toml").write_text("code = 1\n")
    csv = root / "readings.csv"
    csv.write_text("account_id,meter_point_id,period\n1,1,2026-10\n")
    return {"city": str(city), "run": run_id, "broken": str(broken), "csv": str(csv),
            "root": root}


def _values(lake: dict, *valid: str) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(list(valid)), ADVERSARIAL)


def _argv(lake: dict) -> st.SearchStrategy[list[str]]:
    city, run = lake["city"], lake["run"]
    centres = _values(lake, city, str(lake["root"] / "nowhere"), lake["csv"],
                      str(lake["root"]))
    periods = _values(lake, PERIOD, "2026-11", "2026-09")
    sections = _values(lake, "S00001", "S0000*", "all", "S9*", "S00004")
    options = {
        "bill": {"--datacentre": centres, "--period": periods, "--resume": _values(lake, run),
                 "--tariffs": _values(lake, SAMPLES, lake["broken"]),
                 "--sections": sections},
        "status": {"--datacentre": centres, "--sections": None},
        "runs": {"--datacentre": centres},
        "summary": {"--datacentre": centres, "--period": periods},
        "tariff quote": {"--kwh": _values(lake, "500", "0", "240.01", "-5"),
                         "--month": periods, "--tariffs": _values(lake, SAMPLES, lake["broken"]),
                         "--peak-kwh": _values(lake, "10"), "--json": None},
        "tariff list": {"--tariffs": _values(lake, SAMPLES, lake["broken"])},
        "import readings": {"--datacentre": centres, "--period": periods,
                            "--rejects": _values(lake, lake["csv"], "/proc/rejects.csv")},
        "generate": {"--accounts": _values(lake, "5", "0", "-3"),
                     "--sections": _values(lake, "1", "0"), "--period": periods,
                     "--out": _values(lake, city, lake["csv"])},
    }
    positional = {"status": _values(lake, run), "tariff quote": _values(lake,
                  "cn-bj-residential-monthly", "cn-bj-commercial-tou"),
                  "import readings": _values(lake, lake["csv"], city)}

    @st.composite
    def build(draw) -> list[str]:
        command = draw(st.sampled_from(sorted(options)))
        argv = command.split()
        if command in positional and draw(st.booleans()):
            argv.append(draw(positional[command]))
        flags = draw(st.lists(st.sampled_from(sorted(options[command])), max_size=5))
        for flag in flags:
            argv.append(flag)
            if options[command][flag] is not None:
                argv.append(draw(options[command][flag]))
        if command == "generate" and "--accounts" not in flags:
            argv += ["--accounts", "5"]  # the default, 200,000, is a real city: minutes
        if draw(st.integers(0, 9)) == 0:
            argv.insert(draw(st.integers(0, len(argv))), draw(ADVERSARIAL))
        return argv

    return build()


def _state(lake: dict) -> tuple:
    """The lake's files (bytes) and the catalog's runs, sections and exceptions."""
    root = Path(lake["city"])
    files = {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(root.rglob("*")) if p.is_file()
             and not p.name.startswith("catalog.duckdb")}
    catalog = Catalog(root / "catalog.duckdb")
    rows = [(r, catalog.sections(r.run_id)) for r in catalog.runs()]
    return files, rows, catalog.exceptions(PERIOD).num_rows


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def test_any_argv_is_an_exit_code_and_at_most_one_line(lake):
    @settings(max_examples=80, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(argv=_argv(lake))
    def check(argv: list[str]) -> None:
        before = _state(lake)
        code, _, err = _run(argv)
        assert code in CODES, (argv, code, err)
        assert "Traceback" not in err, (argv, err)
        if code not in (0, SECTIONS_FAILED):
            assert err.startswith("gridfare: error: ") and err.count("\n") == 1, (argv, err)
            assert _state(lake) == before, argv

    check()
