"""Results as pandas DataFrames (the ``revcrm[pandas]`` extra).

Column types follow the result types' annotations, never the data, so an empty or
all-``None`` column has the same dtype as a full one:

* money: ``Int64`` minor units of its currency, in a column named ``<field>_minor``,
  rounded once here (CLDR minor units, half to even unless told) -- exact, summable and
  plottable, unlike a ``Decimal`` object column; plus one ``currency`` column (or one
  ``<field>_currency`` column per money field when a row mixes currencies);
* rates, shares and other Decimals: ``Float64`` (nullable) display values for analysis;
  the exact figures are in the results and in :func:`to_jsonable`;
* counts: ``Int64``; flags: ``boolean``; text, enums and billing cycles: ``string``;
* datetimes: ``datetime64[us, UTC]``; dates: ``datetime64[s]``; durations ``timedelta64[us]``.
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

import attrs

from revcrm._cycles import BillingCycle
from revcrm._money import DEFAULT_ROUNDING, Money
from revcrm.errors import ValidationError
from revcrm.export._extras import require
from revcrm.export._schema import type_hints
from revcrm.leads import Funnel, LeadStage
from revcrm.metrics import Breakdown, Cohort, Dashboard
from revcrm.segments import Segment, SegmentCounts
from revcrm.storage import Page, StoreDashboard

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["COHORT_VALUES", "minor_units", "to_frame"]

#: What a cohort triangle's cells can show (``to_frame(cohorts, value=...)``).
COHORT_VALUES: Final = ("customer_rate", "mrr_rate", "customers", "mrr")

# Nested fields that repeat the parent's period (a ChurnPoint's rates have its start and
# end again) are left out of the flattened row.
_PERIOD_FIELDS: Final = frozenset({"start", "end", "at", "as_of"})


def _require_pandas() -> None:
    require("pandas", "pandas", "revcrm.export.to_frame")


def minor_units(money: Money, rounding: str = DEFAULT_ROUNDING) -> int:
    """``money`` in whole minor units of its currency, rounded once (``$10.005`` -> 1000)."""
    rounded = money.rounded(rounding)
    return int(rounded.amount.scaleb(rounded.minor_units))


def to_frame(
    result: object, *, value: str = "customer_rate", rounding: str = DEFAULT_ROUNDING
) -> pd.DataFrame:
    """A revcrm result as a :class:`pandas.DataFrame` (see the module docs for dtypes).

    * a list of results of one type (MRR points, waterfalls, movements, churn points,
      trend months, customer rows, breakdown rows...): one row each, nested results
      flattened with their field name as prefix (``customer_churn_rate``);
    * a :class:`~revcrm.storage.Page`: its items (``as_of`` and ``next_cursor`` in
      ``frame.attrs``);
    * cohorts (a list of :class:`~revcrm.metrics.Cohort`): the triangle, one row per
      cohort (index ``cohort``, its start) and one column per age in periods; ``value``
      picks the cells: ``customer_rate`` (default), ``mrr_rate``, ``customers`` or ``mrr``
      (minor units);
    * a :class:`~revcrm.metrics.Breakdown`: its rows (dimension, measure, currency and
      total in ``frame.attrs``);
    * a :class:`~revcrm.leads.Funnel`: ``stage`` and ``leads``, in stage order;
    * :class:`~revcrm.segments.SegmentCounts`: ``segment``, ``members``, ``primary``
      (missing for custom segments) and ``custom``;
    * a dashboard (:class:`~revcrm.metrics.Dashboard` or the store's): its monthly trend;
    * any other single result: a one-row frame.
    """
    _require_pandas()
    import pandas as pd

    if isinstance(result, Page):
        frame = to_frame(list(result.items), rounding=rounding)
        frame.attrs.update(as_of=result.as_of, next_cursor=result.next_cursor)
        return frame
    if isinstance(result, Breakdown):
        frame = _rows(list(result.rows), rounding)
        frame.attrs.update(
            dimension=result.dimension,
            measure=result.measure,
            currency=result.currency,
            total_minor=minor_units(result.total, rounding),
        )
        return frame
    if isinstance(result, Funnel):
        stages = [s for s in LeadStage if s in result.counts]
        return pd.DataFrame(
            {
                "stage": pd.array([s.value for s in stages], dtype="string"),
                "leads": pd.array([result.counts[s] for s in stages], dtype="Int64"),
            }
        )
    if isinstance(result, Dashboard | StoreDashboard):
        return _rows(list(result.trend), rounding)
    if isinstance(result, SegmentCounts):
        return _segment_counts(result)
    if isinstance(result, Cohort):
        return _triangle([result], value, rounding)
    if isinstance(result, Sequence) and not isinstance(result, str | bytes):
        items = list(result)
        if items and all(isinstance(c, Cohort) for c in items):
            return _triangle(items, value, rounding)
        return _rows(items, rounding)
    if attrs.has(type(result)):
        return _rows([result], rounding)
    raise ValidationError(
        "result", type(result).__qualname__, "to_frame takes a revcrm result or a list of them"
    )


# -- rows of one result type -------------------------------------------------------------------


@attrs.frozen
class _Column:
    name: str
    get: Callable[[Any], Any]
    kind: type  # the scalar type: int, bool, str, Decimal, Money, datetime, date, timedelta


def _scalar(tp: Any) -> type | None:
    """The column type of an annotation, None for structured values (left out)."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return _scalar(args[0]) if len(args) == 1 else None
    inner: Any = None
    if (origin is tuple and len(args) == 2 and args[1] is Ellipsis) or (
        origin in (frozenset, set) and args
    ):
        inner = args[0]
    if inner is not None:
        kind = _scalar(inner)
        return _Joined if kind in (str, enum.Enum) else None
    if not isinstance(tp, type):
        return None
    if issubclass(tp, enum.Enum) or tp is BillingCycle:
        return enum.Enum
    for kind in (bool, int, float, str, Decimal, Money, datetime, date, timedelta):
        if issubclass(tp, kind):
            return kind
    return None


class _Joined:
    """Marker: a tuple or set of names, shown as one comma-separated string."""


def _columns(cls: type, prefix: str = "", parent: frozenset[str] = frozenset()) -> list[_Column]:
    hints = type_hints(cls)
    out: list[_Column] = []
    names = frozenset(f.name for f in attrs.fields(cls))
    for f in attrs.fields(cls):
        if f.name.startswith("_") or (f.name in parent and f.name in _PERIOD_FIELDS):
            continue
        tp = hints[f.name]
        getter = _getter(f.name)
        kind = _scalar(tp)
        if kind is not None:
            out.append(_Column(prefix + f.name, getter, kind))
            continue
        nested = _nested_class(tp)
        if nested is not None:
            # A list row wraps the store's row: its columns keep their own names.
            inner = prefix if f.name == "row" else f"{prefix}{f.name}_"
            for c in _columns(nested, inner, names):
                out.append(_Column(c.name, _chain(getter, c.get), c.kind))
    return out


def _nested_class(tp: Any) -> type | None:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) is not None and len(args) == 1:
        tp = args[0]
    return tp if isinstance(tp, type) and attrs.has(tp) else None


def _getter(name: str) -> Callable[[Any], Any]:
    return lambda obj: getattr(obj, name)


def _chain(first: Callable[[Any], Any], then: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda obj: None if (inner := first(obj)) is None else then(inner)


def _rows(items: list[Any], rounding: str) -> pd.DataFrame:
    import pandas as pd

    if not items:
        return pd.DataFrame()
    cls = type(items[0])
    if not attrs.has(cls) or any(type(i) is not cls for i in items):
        raise ValidationError(
            "result", type(items[0]).__qualname__, "to_frame takes results of one revcrm type"
        )
    columns = _columns(cls)
    data: dict[str, Any] = {}
    money = [c for c in columns if c.kind is Money]
    currencies = {m.currency for item in items for c in money if (m := c.get(item)) is not None}
    per_row = [{m.currency for c in money if (m := c.get(item)) is not None} for item in items]
    one_per_row = all(len(s) <= 1 for s in per_row)
    for c in columns:
        values = [c.get(item) for item in items]
        if c.kind is Money:
            data[f"{c.name}_minor"] = pd.array(
                [None if v is None else minor_units(v, rounding) for v in values], dtype="Int64"
            )
            if not one_per_row:
                data[f"{c.name}_currency"] = pd.array(
                    [None if v is None else v.currency for v in values], dtype="string"
                )
        else:
            data[c.name] = _series(c.kind, values)
    if money and one_per_row and currencies:
        data["currency"] = pd.array([next(iter(s)) if s else None for s in per_row], dtype="string")
    return pd.DataFrame(data)


def _series(kind: type, values: list[Any]) -> Any:
    import pandas as pd

    if kind is bool:
        return pd.array(values, dtype="boolean")
    if kind is int:
        return pd.array(values, dtype="Int64")
    if kind in (float, Decimal):
        return pd.array([None if v is None else float(v) for v in values], dtype="Float64")
    if kind is str:
        return pd.array(values, dtype="string")
    if kind is enum.Enum:
        shown = [
            None if v is None else (str(v) if isinstance(v, BillingCycle) else v.value)
            for v in values
        ]
        return pd.array(shown, dtype="string")
    if kind is _Joined:
        return pd.array(
            [None if v is None else ", ".join(_names(v)) for v in values], dtype="string"
        )
    if kind is datetime:
        return pd.to_datetime(pd.Series(values, dtype=object), utc=True).astype(
            "datetime64[us, UTC]"
        )
    if kind is date:
        return pd.Series(values, dtype=object).astype("datetime64[s]")
    if kind is timedelta:
        return pd.Series(values, dtype=object).astype("timedelta64[us]")
    raise AssertionError(kind)  # pragma: no cover - _scalar returns only these


def _names(values: Iterable[Any]) -> list[str]:
    names = [v.value if isinstance(v, enum.Enum) else str(v) for v in values]
    return names if isinstance(values, tuple | list) else sorted(names)


# -- shapes of their own -----------------------------------------------------------------------


def _triangle(items: list[Cohort], value: str, rounding: str) -> pd.DataFrame:
    import pandas as pd

    if value not in COHORT_VALUES:
        raise ValidationError("value", value, f"one of {', '.join(COHORT_VALUES)}")
    width = max((len(c.cells) for c in items), default=0)
    index = pd.DatetimeIndex(
        pd.to_datetime([c.start for c in items], utc=True), name="cohort"
    ).as_unit("us")
    dtype = "Float64" if value.endswith("rate") else "Int64"
    data: dict[int, Any] = {}
    for age in range(width):
        cells: list[Any] = []
        for c in items:
            cell = c.cells[age] if age < len(c.cells) else None
            raw = None if cell is None else getattr(cell, value)
            if raw is None:
                cells.append(None)
            elif isinstance(raw, Money):
                cells.append(minor_units(raw, rounding))
            elif isinstance(raw, Decimal):
                cells.append(float(raw))
            else:
                cells.append(raw)
        data[age] = pd.array(cells, dtype=dtype)  # type: ignore[call-overload]
    frame = pd.DataFrame(data, index=index)
    frame.columns = pd.Index(list(range(width)), name="age", dtype="int64")
    frame.attrs.update(value=value, sizes=[c.size for c in items])
    return frame


def _segment_counts(counts: SegmentCounts) -> pd.DataFrame:
    import pandas as pd

    builtin: list[Segment] = list(Segment)
    custom: Mapping[str, int] = counts.custom
    names = [s.value for s in builtin] + sorted(custom)
    members = [counts.members.get(s, 0) for s in builtin] + [custom[n] for n in sorted(custom)]
    primary = [counts.primary.get(s, 0) for s in builtin] + [None] * len(custom)
    return pd.DataFrame(
        {
            "segment": pd.array(names, dtype="string"),
            "members": pd.array(members, dtype="Int64"),
            "primary": pd.array(primary, dtype="Int64"),
            "custom": pd.array([False] * len(builtin) + [True] * len(custom), dtype="boolean"),
        }
    )
