"""A billing request: checked whole at the edge; a resume keeps its run's period and book."""

from __future__ import annotations

import pytest

from gridfare.billing.request import (
    RunRequest,
    check_run_id,
    new_run_sections,
    resume_options,
    select_sections,
)
from gridfare.errors import InvalidInput, NothingToBill, TariffError, UnknownSection
from gridfare.tariffs import TariffFiles, read_tariff_files

PERIOD = "2026-10"
RUN = "2026-10-20261101T080000-0a0b0c"


def test_a_new_run_needs_a_valid_period():
    assert RunRequest("2026-10").period == PERIOD
    for bad in (None, "2026-13", "../2026-10", "2026-10\n"):
        with pytest.raises(InvalidInput, match="period"):
            RunRequest(bad)


@pytest.mark.parametrize("sections", [
    (), ("../S00001",), ("S/1",), ("S 1",), ("x" * 65,), ("",), ("S1'; drop",), (3,),
])
def test_section_names_are_strict_at_the_edge(sections):
    with pytest.raises(InvalidInput, match="section"):
        RunRequest(PERIOD, sections=sections)


def test_a_string_is_not_a_list_of_sections():
    with pytest.raises(InvalidInput, match="list"):
        RunRequest(PERIOD, sections="S00001")


@pytest.mark.parametrize("run_id", ["r", "../../x", RUN + "/", RUN.upper(), "", " " + RUN])
def test_run_ids_are_strict(run_id):
    with pytest.raises(InvalidInput, match="run id"):
        check_run_id(run_id)
    with pytest.raises(InvalidInput):
        RunRequest(resume_run_id=run_id)


def test_a_resume_takes_no_sections_and_may_omit_the_period():
    assert RunRequest(resume_run_id=RUN).period is None
    with pytest.raises(InvalidInput, match="--sections with --resume"):
        RunRequest(resume_run_id=RUN, sections=("S00001",))


def test_new_run_sections_include_sections_whose_readings_are_gone():
    request = RunRequest(PERIOD)
    assert new_run_sections(request, ["S1", "S3"], ["S1", "S2", "S3"]) == ["S1", "S2", "S3"]
    with pytest.raises(NothingToBill, match="2026-10: the data centre has no readings"):
        new_run_sections(request, [], ["S1", "S2"])
    with pytest.raises(UnknownSection, match="'S9\\*'"):
        new_run_sections(RunRequest(PERIOD, sections=("S1", "S9*")), ["S1"], ["S1"])


def test_select_sections():
    available = ["S00001", "S00002", "S00010"]
    assert select_sections(available, None) == available
    assert select_sections(available, ["all"]) == available
    assert select_sections(available, ["S0000[12]", "S00001"]) == ["S00001", "S00002"]


def test_a_resume_keeps_its_runs_period_and_book():
    samples = read_tariff_files()
    other = TariffFiles(samples.files[:1], "elsewhere")
    request = RunRequest(resume_run_id=RUN)
    assert resume_options(request, PERIOD, samples) == (PERIOD, samples)
    assert resume_options(RunRequest(PERIOD, resume_run_id=RUN), PERIOD, samples)[0] == PERIOD
    with pytest.raises(InvalidInput, match="bills period 2026-10, not 2026-11"):
        resume_options(RunRequest("2026-11", resume_run_id=RUN), PERIOD, samples)
    with pytest.raises(InvalidInput, match="tariff book sha256:"):
        resume_options(RunRequest(resume_run_id=RUN, tariffs=other), PERIOD, samples)
    # The same book read again is the same book.
    again = RunRequest(resume_run_id=RUN, tariffs=read_tariff_files())
    assert resume_options(again, PERIOD, samples) == (PERIOD, samples)
    # A run recorded before books were: the request's book, or the samples.
    assert resume_options(request, PERIOD, None) == (PERIOD, samples)
    assert resume_options(RunRequest(resume_run_id=RUN, tariffs=other), PERIOD, None)[1] == other


def test_tariff_files_round_trip_and_name_a_broken_file():
    samples = read_tariff_files()
    assert TariffFiles.from_json(samples.to_json()).digest == samples.digest
    assert samples.digest.startswith("sha256:") and len(samples.digest) == 71
    assert list(samples.book().codes) == sorted(name[:-5] for name, _ in samples.files)
    broken = TariffFiles((("cn-x.toml", "code = 'cn-y'"),), "d")
    with pytest.raises(TariffError, match=r"cn-x\.toml"):
        broken.book()
    with pytest.raises(TariffError, match="no tariff files"):
        TariffFiles((), "empty").book()
