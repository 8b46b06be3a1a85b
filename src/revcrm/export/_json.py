"""Results as plain JSON values: the one conversion every exporter (JSON, frames, reports) shares."""

from __future__ import annotations

import enum
import json
import math
import types
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TypeAlias
from zoneinfo import ZoneInfo

import attrs

from revcrm._cycles import BillingCycle
from revcrm._money import (
    DEFAULT_ROUNDING,
    EXACT_CONTEXT,
    ROUNDINGS,
    FxRates,
    Money,
    format_money,
)
from revcrm.errors import ValidationError
from revcrm.leads import Pipeline
from revcrm.metrics import MrrAnalysis

__all__ = ["Json", "decimal_text", "duration_text", "money_text", "to_jsonable"]

#: What :func:`to_jsonable` returns: values :func:`json.dumps` writes without a ``default``.
Json: TypeAlias = dict[str, "Json"] | list["Json"] | str | int | float | bool | None



def decimal_text(value: Decimal) -> str:
    """A Decimal as a plain decimal string: no exponent, no trailing zeros, no ``-0``.

    ``Decimal("0E+45")`` is ``"0"``, ``Decimal("10.000")`` is ``"10"``,
    ``Decimal("1.50")`` is ``"1.5"``: the same value always gives the same text, whatever
    scale a backend stored it with.
    """
    if not value.is_finite():
        raise ValidationError("value", value, "only finite decimals can be exported")
    if value == 0:
        return "0"
    return format(value.normalize(EXACT_CONTEXT), "f")


def money_text(money: Money, *, exact: bool = False, rounding: str = DEFAULT_ROUNDING) -> str:
    """The amount of ``money`` as text: rounded to the currency's CLDR minor units with
    ``rounding`` (``"10.00"`` for USD, ``"1235"`` for JPY), or its exact canonical value."""
    if exact:
        return decimal_text(money.amount)
    # rounded_amount keeps the minor-unit digits ("10.00"); a canonical Money would say "10".
    amount = money.rounded_amount(rounding)
    if amount == 0:  # -0.004 rounds to -0.00: a zero has no sign
        amount = amount.copy_abs()
    return format(amount, "f")


def duration_text(value: timedelta) -> str:
    """A timedelta as an ISO 8601 duration of days and seconds: ``P30D``, ``PT1H`` is
    ``PT3600S``, ``-P1DT0.5S``; ``P0D`` for zero."""
    sign = "-" if value < timedelta(0) else ""
    value = abs(value)
    days, seconds, micros = value.days, value.seconds, value.microseconds
    out = f"{sign}P{days}D" if days or not (seconds or micros) else f"{sign}P"
    if seconds or micros:
        text = decimal_text(Decimal(seconds) + Decimal(micros).scaleb(-6))
        out += f"T{text}S"
    return out


def to_jsonable(
    result: object,
    *,
    exact: bool = False,
    rounding: str = DEFAULT_ROUNDING,
    locale: str | None = None,
) -> Json:
    """``result`` (any revcrm result, record or a list, tuple or mapping of them) as plain
    JSON values that :func:`json.dumps` writes as they are.

    * :class:`~revcrm.Money` is ``{"amount": "10.00", "currency": "USD"}``, rounded to the
      currency's CLDR minor units with ``rounding`` (half to even unless told); with
      ``exact=True`` the amount is the exact value (:func:`decimal_text`). With
      ``locale`` each amount also carries ``"display"``, formatted by babel.
    * Decimals (rates, shares, scores) are exact decimal strings (:func:`decimal_text`).
    * Enums are their values, :class:`~revcrm.BillingCycle` its canonical name
      (``"monthly"``, ``"2 weeks"``), datetimes ISO 8601 with their offset, dates ISO,
      timedeltas ISO 8601 durations (:func:`duration_text`).
    * Sets and frozensets are sorted lists; tuples and lists are lists; mappings
      (also mapping proxies) are objects with string keys.
    * attrs classes are objects of their public fields, in declaration order.
    * :class:`~revcrm.FxRates` is a list of ``{"day", "source", "target", "rate"}``.

    Anything else is a :class:`~revcrm.errors.ValidationError` naming the type (never a
    silent ``repr``); so is a naive datetime or a non-finite number.
    """
    if rounding not in ROUNDINGS:
        raise ValidationError("rounding", rounding, "expected a decimal.ROUND_* mode")
    if locale is not None and (not isinstance(locale, str) or not locale):
        raise ValidationError("locale", locale, "a locale such as 'en_US', or None")
    return _Converter(exact=exact, rounding=rounding, locale=locale).value(result, "result")


@attrs.frozen
class _Converter:
    exact: bool
    rounding: str
    locale: str | None

    def money(self, money: Money) -> dict[str, Json]:
        out: dict[str, Json] = {
            "amount": money_text(money, exact=self.exact, rounding=self.rounding),
            "currency": money.currency,
        }
        if self.locale is not None:
            out["display"] = format_money(money, locale=self.locale, rounding=self.rounding)
        return out

    def value(self, value: object, path: str) -> Json:
        # Order matters: bool before int, enums (some are str or int) before both,
        # datetime before date.
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, enum.Enum):
            return self.value(value.value, path)
        if isinstance(value, str):
            return str(value)
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ValidationError(path, value, "only finite numbers can be exported")
            return value
        if isinstance(value, Decimal):
            return decimal_text(value)
        if isinstance(value, Money):
            return self.money(value)
        if isinstance(value, datetime):
            if value.utcoffset() is None:
                raise ValidationError(path, value, "a naive datetime has no offset to export")
            return value.isoformat()
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, timedelta):
            return duration_text(value)
        if isinstance(value, ZoneInfo):
            return value.key
        if isinstance(value, BillingCycle):
            return str(value)
        if isinstance(value, FxRates):
            return [
                {"day": d.isoformat(), "source": s, "target": t, "rate": decimal_text(r)}
                for d, s, t, r in value.items()
            ]
        if isinstance(value, Pipeline):
            return {"leads": [self.value(lead, f"{path}.leads") for lead in value]}
        if isinstance(value, MrrAnalysis):
            raise ValidationError(
                path,
                type(value).__name__,
                "an analysis is not a result: export what it computes (series, waterfalls)",
            )
        if isinstance(value, Mapping | types.MappingProxyType):
            return {self.key(k, path): self.value(v, f"{path}[{k!r}]") for k, v in value.items()}
        if isinstance(value, set | frozenset):
            items = [self.value(v, f"{path}[]") for v in value]
            return sorted(items, key=_sort_key)
        if isinstance(value, tuple | list):
            return [self.value(v, f"{path}[{i}]") for i, v in enumerate(value)]
        cls = type(value)
        if attrs.has(cls):
            return {
                f.name: self.value(getattr(value, f.name), f"{path}.{f.name}")
                for f in attrs.fields(cls)
                if not f.name.startswith("_")
            }
        raise ValidationError(
            path,
            type(value).__qualname__,
            f"revcrm does not export {type(value).__module__}.{type(value).__qualname__} values",
        )

    def key(self, key: object, path: str) -> str:
        converted = self.value(key, f"{path} key")
        if isinstance(converted, str):
            return converted
        if isinstance(converted, int) and not isinstance(converted, bool):
            return str(converted)
        raise ValidationError(f"{path} key", key, "mapping keys export as strings only")


def _sort_key(item: Json) -> tuple[int, str]:
    # Strings sort as themselves; mixed or structured members by their JSON text, so the
    # order never depends on hash seeds.
    if isinstance(item, str):
        return (0, item)
    return (1, json.dumps(item, sort_keys=True))
