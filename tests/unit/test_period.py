import pytest

from gridfare.errors import InvalidInput
from gridfare.period import Period


def test_parse_and_shift_across_years():
    p = Period.parse("2026-02")
    assert str(p.shift(-2)) == "2025-12"
    assert [str(x) for x in p.previous(3)] == ["2025-11", "2025-12", "2026-01"]


@pytest.mark.parametrize("bad", ["2026-13", "2026-00", "26-01", "2026-1", "", "2026-01-01"])
def test_bad_periods_are_refused(bad):
    with pytest.raises(InvalidInput, match="YYYY-MM"):
        Period.parse(bad)
