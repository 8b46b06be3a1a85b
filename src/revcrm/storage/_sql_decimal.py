"""Exact money in SQL: decimal values from driver results, SQLite's exact aggregates, and
the few expressions that differ between SQLite and PostgreSQL.

PostgreSQL sums ``NUMERIC`` natively. On SQLite money is decimal text plus seven integer
limbs (see :func:`revcrm.storage._codec.to_limbs`): the limbs are summed in C and only the
amounts without limbs go through the exact Python aggregates registered on each
connection (``rc_dsum``, ``rc_dsumx`` and the sortable key ``rc_dkey``): decimal
arithmetic only, no metric or segment rule. Nothing passes through a float.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from revcrm._money import EXACT_CONTEXT
from revcrm.errors import StorageError
from revcrm.storage._codec import from_limbs
from revcrm.storage._schema import LIMBS, Exact, Key

__all__ = ["decimal_key"]

_ZERO: Final = Decimal(0)
_LIMB_COLUMNS: Final = tuple(f"amount_l{k}" for k in range(7))
_LIMB_WEIGHTS: Final = tuple(10 ** (12 * (6 - k)) for k in range(7))  # units of 1e-48


def _dec(value: object) -> Decimal:
    """A driver's aggregate result as an exact Decimal (None is an empty sum)."""
    if value is None:
        return _ZERO
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, str):
        if " " in value:  # SQLite's packed sum: seven limb sums, then the exact rest
            *parts, rest = value.split(" ")
            return EXACT_CONTEXT.add(from_limbs([int(p) for p in parts]), Decimal(rest))
        return Decimal(value)
    raise StorageError(f"unexpected aggregate value {value!r}: money must never be a float")


def _split(value: object) -> tuple[int, Decimal]:
    """An aggregate as (integer units of 1e-48 from SQLite's limbs, exact Decimal rest)."""
    if isinstance(value, str) and " " in value:
        *parts, rest = value.split(" ")
        whole = sum(int(p) * w for p, w in zip(parts, _LIMB_WEIGHTS, strict=True))
        return whole, Decimal(rest)
    return 0, _dec(value)


def _exact(value: object) -> Decimal:
    """``_dec`` without tidying the representation: for values SQLite's own functions
    pass on (sort keys, products), where only the exact value matters."""
    if isinstance(value, str) and " " in value:
        whole, rest = _split(value)
        return EXACT_CONTEXT.add(_units_value(whole), rest)
    return _dec(value)


def _units_value(units: int) -> Decimal:
    return Decimal(units).scaleb(-48, context=EXACT_CONTEXT) if units else _ZERO


def _day(value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


# -- exact decimal functions registered on SQLite connections --------------------------------


class _DSum:
    def __init__(self) -> None:
        self.total = _ZERO

    def step(self, value: object) -> None:
        if value is not None:
            self.total = EXACT_CONTEXT.add(self.total, _exact(value))

    def finalize(self) -> str:
        return str(self.total)


class _DSumX:
    def __init__(self) -> None:
        self.total = _ZERO

    def step(self, value: object, factor: object) -> None:
        if value is not None and factor is not None:
            product = EXACT_CONTEXT.multiply(_exact(value), _exact(factor))
            self.total = EXACT_CONTEXT.add(self.total, product)

    def finalize(self) -> str:
        return str(self.total)


def decimal_key(value: Decimal) -> str:
    """Text whose byte order is the numeric order of ``value`` (SQLite sorts money by it).

    Sign class (0 negative, 1 zero, 2 positive), then the adjusted exponent in five digits
    (complemented for negatives), then the significant digits (nines' complement and a
    terminator for negatives, so a longer magnitude sorts first).
    """
    if value.is_zero():
        return "1"
    sign, digits, _ = value.normalize(context=EXACT_CONTEXT).as_tuple()
    exponent = value.adjusted() + 50000
    if not 0 <= exponent <= 99999:
        raise StorageError(f"amount {value} out of the sortable range")
    text = "".join(map(str, digits))
    if not sign:
        return f"2{exponent:05d}{text}"
    flipped = "".join(str(9 - int(d)) for d in text)
    return f"0{99999 - exponent:05d}{flipped}~"


def _dkey(value: object) -> str | None:
    return None if value is None else decimal_key(_exact(value))


def _register_sqlite(dbapi_connection: Any) -> None:
    dbapi_connection.create_aggregate("rc_dsum", 1, _DSum)
    dbapi_connection.create_aggregate("rc_dsumx", 2, _DSumX)
    dbapi_connection.create_function("rc_dkey", 1, _dkey, deterministic=True)


# -- dialect differences ----------------------------------------------------------------------


class _Ops:
    """The few expressions that differ between SQLite and PostgreSQL."""

    def __init__(self, dialect: str) -> None:
        self.sqlite = dialect == "sqlite"

    def dsum(
        self, cols: Any, name: str = "amount", sign: ColumnElement[Any] | None = None
    ) -> ColumnElement[Any]:
        """The exact sum of money column ``name`` of ``cols`` (times ``sign``, +1 or -1).

        PostgreSQL sums NUMERIC. SQLite sums the integer limbs in C and only the amounts
        without limbs through the exact Python aggregate, and packs the eight results into
        one text that ``_dec`` reads back. An empty sum is zero.
        """
        amount = cols[name]
        if not self.sqlite:
            return sa.func.coalesce(sa.func.sum(amount if sign is None else amount * sign), 0)
        limbs = [cols[f"{name}_l{k}"] for k in range(LIMBS)]
        sums = [sa.func.sum(limb if sign is None else limb * sign) for limb in limbs]
        no_limbs = limbs[0].is_(None)
        rest = (sa.func.rc_dsum(amount) if sign is None else sa.func.rc_dsumx(amount, sign)).filter(
            no_limbs
        )
        text: ColumnElement[str] = sa.literal_column("'" + " ".join(["%d"] * LIMBS) + " %s'")
        return sa.func.printf(text, *sums, sa.func.coalesce(rest, sa.literal_column("'0'")))

    def dsum_times(
        self, expr: ColumnElement[Any], factor: ColumnElement[Any]
    ) -> ColumnElement[Any]:
        if self.sqlite:
            return sa.func.coalesce(sa.func.rc_dsumx(expr, factor), sa.literal_column("'0'"))
        return sa.func.coalesce(sa.func.sum(expr * factor), 0)

    def money_key(self, expr: ColumnElement[Any]) -> ColumnElement[Any]:
        return sa.func.rc_dkey(expr) if self.sqlite else expr

    def money_key_value(self, value: Decimal) -> ColumnElement[Any]:
        if self.sqlite:
            return sa.literal(decimal_key(value), sa.Text())
        return sa.literal(value, Exact())

    def least(self, a: ColumnElement[Any], b: ColumnElement[Any]) -> ColumnElement[Any]:
        return sa.func.min(a, b) if self.sqlite else sa.func.least(a, b)

    def contains(self, column: ColumnElement[Any], needle: str) -> ColumnElement[bool]:
        fn = sa.func.instr if self.sqlite else sa.func.strpos
        return fn(column, sa.literal(needle, Key())) > 0

    def day(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        """The UTC date of a moment column."""
        if self.sqlite:
            # Microseconds floored to the day (SQLite's % truncates towards zero), as seconds.
            micros = sa.type_coerce(column, sa.BigInteger())
            day = sa.literal(86_400_000_000)
            floored = micros - ((micros % day) + day) % day
            return sa.func.date(floored / sa.literal(1_000_000), "unixepoch")
        return sa.cast(sa.func.timezone("UTC", column), sa.Date)


def _factor(value: Decimal) -> ColumnElement[Any]:
    return sa.literal(value, Exact())


def _rate_case(
    currency: ColumnElement[Any],
    rates: Mapping[str, Decimal],
    sign: ColumnElement[bool] | None = None,
) -> ColumnElement[Any]:
    """``rate(currency)``, negated where ``sign`` is false (refunds in net payments)."""
    whens: list[tuple[ColumnElement[bool], ColumnElement[Any]]] = []
    for code, rate in sorted(rates.items()):
        if sign is None:
            whens.append((currency == code, _factor(rate)))
        else:
            whens.append((sa.and_(currency == code, sign), _factor(rate)))
            whens.append((currency == code, _factor(-rate)))
    if not whens:
        return _factor(Decimal(1))
    return sa.case(*whens, else_=sa.null())
