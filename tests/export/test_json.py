"""revcrm.export.to_jsonable and json_schema: worked examples, every public result type,
schemas, and round trips."""

from __future__ import annotations

import json
import types
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from revcrm import BillingCycle, Money
from revcrm.errors import ValidationError
from revcrm.export import decimal_text, json_schema, to_jsonable
from revcrm.metrics import MovementKind, MrrAnalysis, analyse
from revcrm.segments import Segment
from tests.export._catalogue import catalogue
from tests.export._validate import problems
from tests.export._walk import public_attrs_classes, types_in

# Public attrs classes that are not results: inputs and query objects (a query carries
# the cursor-signing secret, which must never be exported), predicates and the analysis
# (an engine object: export what it computes). Everything else must be exportable.
NOT_RESULTS = frozenset(
    {
        "MrrAnalysis",
        "CustomerQuery",
        "RecordQuery",
        "CustomSegment",
        "AllOf",
        "AnyOf",
        "AttributeEquals",
        "HasActiveService",
        "HasTag",
        "InSegment",
        "LtvAtLeast",
        "MrrAtLeast",
        "MrrBelow",
        "Not",
        "OwnedBy",
        "ReferralSourceIs",
        "RegisteredBefore",
        "RegisteredSince",
        "Where",
    }
)


def test_money_is_rounded_by_cldr_at_the_boundary() -> None:
    assert to_jsonable(Money("10", "USD")) == {"amount": "10.00", "currency": "USD"}
    assert to_jsonable(Money("1234.5", "JPY")) == {"amount": "1234", "currency": "JPY"}
    assert to_jsonable(Money("1.2345", "KWD")) == {"amount": "1.234", "currency": "KWD"}
    assert to_jsonable(Money("0.125", "USD")) == {"amount": "0.12", "currency": "USD"}
    assert to_jsonable(Money("0.125", "USD"), rounding=ROUND_HALF_UP)["amount"] == "0.13"  # type: ignore[index,call-overload]
    assert to_jsonable(Money("-0.001", "USD")) == {"amount": "0.00", "currency": "USD"}


def test_exact_amounts_are_canonical() -> None:
    # The SQLite store reads a $10 plan back as 10 with 48 zeros; 0E+45 is a zero.
    assert to_jsonable(Money(Decimal("10." + "0" * 48), "USD"), exact=True) == {
        "amount": "10",
        "currency": "USD",
    }
    assert decimal_text(Decimal("0E+45")) == "0"
    assert decimal_text(Decimal("-0.000")) == "0"
    assert decimal_text(Decimal("1.50")) == "1.5"
    assert decimal_text(Decimal("5.1E+3")) == "5100"
    rate = Decimal(1) / Decimal(119)
    assert to_jsonable(rate) == str(rate)


def test_display_strings_with_a_locale() -> None:
    out = to_jsonable(Money("1234.5", "EUR"), locale="de_DE")
    assert out == {"amount": "1234.50", "currency": "EUR", "display": "1.234,50\xa0€"}


def test_scalars_collections_and_time() -> None:
    berlin = timezone(timedelta(hours=1))
    value = {
        "at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=berlin),
        "day": date(2026, 1, 2),
        "window": timedelta(days=30),
        "short": timedelta(seconds=90, microseconds=500000),
        "kind": MovementKind.CHURN,
        "cycle": BillingCycle.months(2),
        "annual": BillingCycle.ANNUAL,
        "tags": frozenset({"b", "a", "c"}),
        "proxy": types.MappingProxyType({Segment.AT_RISK: 3}),
        "pair": (1, None, True),
    }
    assert to_jsonable(value) == {
        "at": "2026-01-02T03:04:05+01:00",
        "day": "2026-01-02",
        "window": "P30D",
        "short": "PT90.5S",
        "kind": "churn",
        "cycle": "2 months",
        "annual": "annual",
        "tags": ["a", "b", "c"],
        "proxy": {"at_risk": 3},
        "pair": [1, None, True],
    }


@pytest.mark.parametrize(
    ("value", "field"),
    [
        (object(), "result"),
        (b"secret", "result"),
        ({"k": 1 + 2j}, "result['k']"),
        (datetime(2026, 1, 1), "result"),  # naive: no offset to export
        (float("nan"), "result"),
        ({(1, 2): "tuple key"}, "result key"),
    ],
)
def test_unknown_values_are_refused_by_name(value: object, field: str) -> None:
    with pytest.raises(ValidationError) as e:
        to_jsonable(value)
    assert e.value.field == field


def test_an_analysis_is_not_a_result() -> None:
    a = analyse(catalogue().book, currency="USD")
    with pytest.raises(ValidationError, match="export what it computes"):
        to_jsonable(a)
    with pytest.raises(ValidationError):
        json_schema(MrrAnalysis)


def test_every_public_result_type_is_exported() -> None:
    # A new result type fails here until the catalogue builds one (and to_jsonable and
    # json_schema handle it).
    seen: set[type] = set()
    for value in catalogue().results.values():
        seen.update(types_in(value))
    public = public_attrs_classes()
    missing = sorted(
        n for n, t in public.items() if t not in seen and t.__name__ not in NOT_RESULTS
    )
    assert missing == []
    for t in seen:
        if attrs.has(t) and t.__name__ not in NOT_RESULTS:
            json_schema(t)


@pytest.mark.parametrize("name", sorted(catalogue().results))
def test_each_result_dumps_and_matches_its_schema(name: str) -> None:
    value = catalogue().results[name]
    out = to_jsonable(value)
    text = json.dumps(out)
    assert json.loads(text) == out
    assert to_jsonable(value) == out  # stable
    items = value if isinstance(value, list | tuple) else [value]
    parts = out if isinstance(value, list | tuple) else [out]
    assert isinstance(parts, list)
    for item, part in zip(items, parts, strict=True):
        if attrs.has(type(item)) or type(item).__name__ == "Pipeline":
            schema = json_schema(type(item))
            assert problems(part, schema, schema) == []


def test_schema_rejects_what_is_not_the_result() -> None:
    # The checker can fail: a money amount with an exponent breaks the Waterfall schema.
    w = catalogue().results["waterfall"]
    out: Any = to_jsonable(w)
    schema = json_schema(type(w))
    out["new"]["amount"] = "1E+2"
    del out["churn"]
    assert len(problems(out, schema, schema)) == 2


_amounts = st.decimals(
    min_value=Decimal("-1E12"), max_value=Decimal("1E12"), allow_nan=False, places=6
)
_currencies = st.sampled_from(["USD", "EUR", "JPY", "KWD", "GBP"])


@given(_amounts, _currencies)
def test_money_round_trips(amount: Decimal, currency: str) -> None:
    m = Money(amount, currency)
    out = to_jsonable(m)
    assert json.loads(json.dumps(out)) == out
    assert isinstance(out, dict)
    assert Decimal(str(out["amount"])) == m.rounded().amount
    exact = to_jsonable(m, exact=True)
    assert isinstance(exact, dict)
    assert Decimal(str(exact["amount"])) == m.amount
    assert "E" not in str(exact["amount"])


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_decimal_text_is_exact_and_canonical(value: Decimal) -> None:
    text = decimal_text(value)
    assert Decimal(text) == value
    assert ("E" not in text and not text.startswith("-0")) or Decimal(text) != 0
    assert decimal_text(Decimal(text)) == text


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 1),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5))]),
    )
)
def test_datetimes_round_trip(t: datetime) -> None:
    out = to_jsonable(t)
    assert isinstance(out, str)
    assert datetime.fromisoformat(out) == t
