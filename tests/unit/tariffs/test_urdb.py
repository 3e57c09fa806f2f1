"""The URDB translator: exports, records, and every field it refuses by name."""

from __future__ import annotations

import json
from decimal import Decimal
from importlib.resources import files

import pytest

from gridfare.errors import TariffError, UrdbError
from gridfare.tariffs.urdb import load_urdb, parse_urdb, translate
from gridfare.tariffs.urdb_demand import UrdbDemand
from gridfare.tariffs.urdb_energy import UrdbEnergy
from gridfare.tariffs.urdb_fixed import UrdbFixed
from gridfare.tariffs.urdb_flat_demand import UrdbFlatDemand
from gridfare.tariffs.urdb_minimum import UrdbMinimum

SAMPLE = str(files("datasets") / "samples" / "urdb" / "sample-export.json")
LABEL = "5e1676e95457a3f87673e3b0"


def _export(*records) -> str:
    return json.dumps({"items": list(records)}, default=float)  # Decimal -> JSON number


def test_the_sample_export_translates_every_record():
    tariffs = load_urdb(SAMPLE)
    assert len(tariffs) == 5
    gs2 = next(t for t in tariffs if t.label == "66a0f3c1e9b2a4d3c8f1a003")
    assert [type(c) for c in gs2.components] == [UrdbEnergy, UrdbDemand, UrdbFlatDemand,
                                                 UrdbFixed, UrdbMinimum]
    assert gs2.currency == "USD" and gs2.utility == "Sample Valley Electric Co"


def test_label_selects_one_record_and_an_unknown_label_lists_the_known():
    (one,) = load_urdb(SAMPLE, label="66a0f3c1e9b2a4d3c8f1a004")
    assert one.name == "R-1 Residential Inclining Block"
    with pytest.raises(UrdbError, match="no record labelled 'nope'; labels: 66a0f3c1"):
        load_urdb(SAMPLE, label="nope")


def test_rates_are_exact_decimals_rate_plus_adj(urdb_record):
    record = urdb_record(energyratestructure=[[{"rate": Decimal("0.31876"),
                                               "adj": Decimal("0.00412")}]])
    (energy,) = translate(record).components
    assert energy.periods[0].rates == (32_288_000,)  # 0.32288 in 1e-8


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "not valid JSON"),
    ('{"items": {}}', 'an export object with an "items" list'),
    ("[1, 2]", 'an export object with an "items" list'),
    ('{"items": []}', "holds no rate records"),
    ('{"items": [3]}', r"items\[0\]: expected a JSON object"),
])
def test_malformed_exports_are_one_line_errors(text, message):
    with pytest.raises(UrdbError, match=message) as caught:
        parse_urdb(text, "export.json")
    assert "\n" not in str(caught.value) and str(caught.value).startswith("export.json: ")
    assert isinstance(caught.value, TariffError)


def test_a_duplicate_label_is_refused(urdb_record):
    with pytest.raises(UrdbError, match="label appears twice"):
        parse_urdb(_export(urdb_record(), urdb_record()), "x.json")


@pytest.mark.parametrize(("fields", "field"), [
    ({"coincidentratestructure": [[{"rate": 3}]]}, "coincidentratestructure"),
    ({"demandratchetpercentage": [0.8] * 12}, "demandratchetpercentage"),
    ({"fueladjustmentsmonthly": [0.01] * 12}, "fueladjustmentsmonthly"),
    ({"energyattrs": [{"Franchise fee": "2%"}]}, "energyattrs"),
    ({"lookbackpercent": 0.5}, "lookbackpercent"),
    ({"demandwindow": 15}, "demandwindow"),
    ({"flatdemandunit": "kVA"}, "flatdemandunit"),
    ({"minmonthlycharge": 10}, "minmonthlycharge"),
    ({"energyratestruture": [[{"rate": 1}]]}, "energyratestruture"),  # misspelt
    ({"fixedchargefirstmeter": 3, "fixedchargeunits": "$/year"}, "fixedchargeunits"),
    ({"mincharge": 3, "minchargeunits": "$/kWh"}, "minchargeunits"),
    ({"currency": "XYZ"}, "currency"),
])
def test_a_field_it_does_not_price_is_refused_by_name(urdb_record, fields, field):
    with pytest.raises(UrdbError) as caught:
        parse_urdb(_export(urdb_record(**fields)), "x.json")
    assert f"x.json: record {LABEL}: {field}: " in str(caught.value)


def test_fields_that_price_nothing_are_accepted(urdb_record):
    translate(urdb_record(demandratchetpercentage=[0] * 12, energyattrs=[], demandwindow=60,
                          coincidentratestructure=None, fueladjustmentsmonthly=[0] * 12,
                          dgrules="Net Metering", description="x", startdate=1, eiaid=1,
                          somethingnew=None, flatdemandunit="kW"))


@pytest.mark.parametrize(("fields", "where", "rule"), [
    ({"energyratestructure": []}, "energyratestructure", "non-empty list of periods"),
    ({"energyratestructure": [[{"max": 5}]]}, r"energyratestructure\[0\]\[0\].rate",
     "is required"),
    ({"energyratestructure": [[{"rate": "0.1"}]]}, r"energyratestructure\[0\]\[0\].rate",
     "expected a number"),
    ({"energyratestructure": [[{"rate": -1}]]}, r"energyratestructure\[0\]\[0\]", "negative"),
    ({"energyratestructure": [[{"rate": 1, "unit": "therms"}]]},
     r"energyratestructure\[0\]\[0\].unit",
     "'therms' is not supported"),
    ({"energyratestructure": [[{"rate": 1, "max": 5}, {"rate": 1, "max": 5}, {"rate": 2}]]},
     r"energyratestructure\[0\]\[1\].max", "positive and increasing"),
    ({"energyratestructure": [[{"rate": 1}, {"rate": 2}]]}, r"energyratestructure\[0\]\[0\].max",
     "only the top tier"),
    ({"energyratestructure": [[{"rate": 1, "foo": 2}]]}, r"energyratestructure\[0\]\[0\].foo",
     "not a tier field"),
    ({"energyratestructure": [[{"rate": Decimal("0.123456789")}]]},
     r"energyratestructure\[0\]\[0\]",
     "finer than"),
    ({"energyweekdayschedule": [[0] * 24] * 11}, "energyweekdayschedule", "12 rows"),
    ({"energyweekdayschedule": [[0] * 23] * 12}, r"energyweekdayschedule\[0\]", "24 period"),
    ({"energyweekendschedule": [[0] * 23 + [1]] * 12}, r"energyweekendschedule\[0\]\[23\]",
     "period 1 is not one of the 1 periods"),
    ({"energyweekdayschedule": None}, "energyweekdayschedule", "is required"),
    ({"energyratestructure": None}, "energyweekdayschedule", "given without"),
    ({"flatdemandstructure": [[{"rate": 5}]], "flatdemandmonths": [0] * 11},
     "flatdemandmonths", "12 period indexes"),
    ({"flatdemandstructure": [[{"rate": 5}]], "flatdemandmonths": [1] * 12},
     r"flatdemandmonths\[0\]", "period 1 is not one"),
    ({"demandratestructure": [[{"rate": 5}]]}, "demandweekdayschedule", "is required"),
])
def test_broken_records_name_the_record_the_field_and_the_rule(urdb_record, fields, where,
                                                               rule):
    with pytest.raises(UrdbError, match=f"record {LABEL}: {where}.*{rule}"):
        translate(urdb_record(**fields), source="x.json")


def test_tou_tiers_must_agree_within_a_month(urdb_record):
    structure = [[{"rate": 1, "max": 100}, {"rate": 2}], [{"rate": 3, "max": 200}, {"rate": 4}]]
    weekday = [[0] * 12 + [1] * 12 for _ in range(12)]
    with pytest.raises(UrdbError, match=r"energyratestructure\[1\]: tier maxima differ from "
                       "period 0's, and both are used in month 1"):
        translate(urdb_record(energyratestructure=structure, energyweekdayschedule=weekday))
    # In different seasons the same two periods may tier differently.
    seasonal = [[0] * 24 if m < 6 else [1] * 24 for m in range(12)]
    translate(urdb_record(energyratestructure=structure, energyweekdayschedule=seasonal,
                          energyweekendschedule=seasonal))


def test_a_record_that_prices_nothing_is_refused(urdb_record):
    with pytest.raises(UrdbError, match="prices nothing"):
        translate(urdb_record(energyratestructure=None, energyweekdayschedule=None,
                              energyweekendschedule=None, mincharge=5))
