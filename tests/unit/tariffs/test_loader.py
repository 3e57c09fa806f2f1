from __future__ import annotations

import pytest

from datasets.schemas import CUSTOMER_KINDS
from gridfare.errors import TariffError
from gridfare.tariffs import load_tariff, load_tariff_book
from gridfare.tariffs.loader import KINDS, default_directory, parse_tariff
from gridfare.tariffs.tiered import Tiered

SAMPLES = {
    "cn-bj-residential-monthly",
    "cn-bj-residential-annual",
    "cn-zj-residential-tou",
    "cn-bj-commercial-tou",
    "cn-bj-industrial-two-part",
    "cn-bj-industrial-demand",
}

GOOD = """
code = "{code}"
name = "x"
customer_kind = "residential"

[[components]]
kind = "tiered"
basis = "monthly"
edges_kwh = [240, 400]
prices = [0.4883, "0.5383", "0.7883"]
"""


def test_samples_load(book):
    assert set(book.codes) == SAMPLES
    for code in book:
        assert book[code].customer_kind in CUSTOMER_KINDS


def test_every_sample_file_is_in_the_default_directory():
    names = {entry.name for entry in default_directory().iterdir()}
    assert {f"{code}.toml" for code in SAMPLES} <= names


def test_toml_numbers_and_strings_are_the_same_exact_price():
    tariff = parse_tariff(GOOD.format(code="t"), "t.toml")
    (tiered,) = tariff.components
    assert isinstance(tiered, Tiered)
    assert tiered.prices == (48_830_000, 53_830_000, 78_830_000)
    assert tiered.edges == (24_000, 40_000)


def test_load_tariff_from_path(tmp_path):
    path = tmp_path / "t-path.toml"
    path.write_text(GOOD.format(code="t-path"), encoding="utf-8")
    assert load_tariff(path).code == "t-path"
    assert load_tariff(str(path)).code == "t-path"


def test_load_book_from_directory(tmp_path):
    for code in ("b", "a"):
        (tmp_path / f"{code}.toml").write_text(GOOD.format(code=code), encoding="utf-8")
    (tmp_path / "README.md").write_text("not a tariff", encoding="utf-8")
    assert load_tariff_book(tmp_path).codes == ("a", "b")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD.format(code="other"), "t.toml: code: 'other' does not match the file name"),
        (GOOD.format(code="T_1"), "t.toml: code: 'T_1' is not lowercase"),
        (
            GOOD.format(code="t").replace('kind = "tiered"', 'kind = "ladder"'),
            "t.toml: components[0].kind: unknown component kind 'ladder'",
        ),
        (
            GOOD.format(code="t").replace("edges_kwh = [240, 400]", "edges_kwh = [400, 240]"),
            "t.toml: components[0].edges_kwh: edges must be positive and strictly increasing",
        ),
        (GOOD.format(code="t") + 'colour = "red"\n', "t.toml: components[0].colour: unknown key"),
        ('colour = "red"\n' + GOOD.format(code="t"), "t.toml: colour: unknown key"),
        (
            GOOD.format(code="t").replace(
                'customer_kind = "residential"', 'customer_kind = "farm"'
            ),
            "t.toml: customer_kind: expected one of",
        ),
        (GOOD.format(code="t").replace('name = "x"\n', ""), "t.toml: name: is required"),
        (
            'code = "t"\nname = "x"\ncustomer_kind = "residential"\ncomponents = []\n',
            "t.toml: components: a tariff needs at least one component",
        ),
        (
            GOOD.format(code="t") + GOOD.split("[[components]]")[1].join(["[[components]]", ""]),
            "t.toml: components[1].kind: a second 'tiered' component",
        ),
        ("code = ", "t.toml: not valid TOML"),
    ],
)
def test_errors_name_file_and_key(text, message):
    with pytest.raises(TariffError) as info:
        parse_tariff(text, "t.toml")
    assert str(info.value).startswith(message)


def test_missing_file_and_empty_directory(tmp_path):
    with pytest.raises(TariffError, match="cannot read"):
        load_tariff(tmp_path / "nope.toml")
    with pytest.raises(TariffError, match=r"no tariff files"):
        load_tariff_book(tmp_path)
    with pytest.raises(TariffError, match="cannot list"):
        load_tariff_book(tmp_path / "nowhere")
    # A name the OS will not look up (found by the CLI fuzzer: it had escaped as OSError).
    with pytest.raises(TariffError, match="cannot list tariff directory: File name too long"):
        load_tariff_book("x" * 5000)


def test_kinds_registry():
    assert set(KINDS) == {"tiered", "tou", "basic", "power_factor", "funds", "fixed", "minimum"}


def test_tariff_directories_take_only_their_own_regular_files(tmp_path):
    from pathlib import Path

    from gridfare.tariffs.loader import default_directory

    sample = next(iter(sorted(Path(str(default_directory())).glob("*.toml"))))
    inside = tmp_path / "book"
    (inside / "..data").mkdir(parents=True)
    (inside / "..data" / sample.name).write_bytes(sample.read_bytes())
    (inside / sample.name).symlink_to(inside / "..data" / sample.name)  # a ConfigMap's way
    assert list(load_tariff_book(inside).codes) == [sample.stem]
    outside = tmp_path / "elsewhere.toml"
    outside.write_bytes(sample.read_bytes())
    (inside / "x-out.toml").symlink_to(outside)
    with pytest.raises(TariffError, match="inside the directory"):
        load_tariff_book(inside)
    (inside / "x-out.toml").unlink()
    (inside / "../x.toml").write_text("")
    (inside / "Bad Name.toml").write_text("")
    with pytest.raises(TariffError, match=r"not named <code>\.toml"):
        load_tariff_book(inside)
