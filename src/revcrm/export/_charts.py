"""Charts of revcrm results as matplotlib Figures (the ``revcrm[charts]`` extra).

Every function builds a :class:`matplotlib.figure.Figure` directly (no pyplot, no global
state, nothing shown): save it with ``fig.savefig(path)`` or embed it in a notebook.
Amounts are formatted by babel in an explicit ``locale``. Series differ in luminance and
also in hatching, markers or line style, so a greyscale print still tells them apart.
Amounts become floats here only to be drawn: they are rounded to the currency's minor
units first, so what is drawn is what the labels say.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

import babel.numbers

from revcrm._money import Money, format_money
from revcrm.errors import ValidationError
from revcrm.export._extras import require
from revcrm.export._frames import COHORT_VALUES
from revcrm.metrics import Breakdown, ChurnPoint, Cohort, Dashboard, MonthTrend, Waterfall
from revcrm.storage import StoreDashboard, TrendMonth

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "DARK",
    "LIGHT",
    "MID",
    "breakdown_chart",
    "churn_chart",
    "cohort_heatmap",
    "revenue_by_billing_cycle_chart",
    "revenue_by_payment_method_chart",
    "revenue_by_product_chart",
    "revenue_trend_chart",
    "waterfall_chart",
]

#: The palette: three colours far apart in luminance (about 15%, 45% and 80% grey).
DARK: Final = "#1b2a4a"
MID: Final = "#4f7fbf"
LIGHT: Final = "#f3c767"
_EDGE: Final = "#222222"


def _figure(width: float = 8.0, height: float = 4.5) -> Figure:
    require("matplotlib", "charts", "revcrm.export charts")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _money_value(m: Money) -> float:
    # The one float in revcrm's money: a plotted coordinate, made from the amount already
    # rounded for display (labels are formatted from the Money itself, never this value).
    return float(m.rounded().amount)


def _axis_money(currency: str, locale: str) -> Any:
    """A tick formatter showing whole currency units (``$4,257``) in ``locale``."""
    from matplotlib.ticker import FuncFormatter

    parsed = _parse(locale)
    # The locale's own currency pattern (symbol before or after, its separators) without
    # the decimals: axis ticks are whole units.
    pattern = parsed.currency_formats["standard"].pattern.split(";")[0].replace(".00", "")

    def fmt(value: float, _pos: object) -> str:
        return babel.numbers.format_currency(
            Decimal(round(float(value))),
            currency,
            format=pattern,
            currency_digits=False,
            locale=parsed,
        )

    return FuncFormatter(fmt)


def _parse(locale: str) -> Any:
    # Every chart starts here, so a missing extra is named before anything else.
    require("matplotlib", "charts", "revcrm.export charts")
    import babel

    try:
        return babel.Locale.parse(locale, sep="-" if "-" in locale else "_")
    except (babel.UnknownLocaleError, ValueError, TypeError) as e:
        raise ValidationError("locale", locale, "unknown locale") from e


def _percent(value: Decimal | None, places: int = 1) -> str:
    if value is None:
        return "n/a"
    return f"{(value * 100).quantize(Decimal(1).scaleb(-places))}%"


def _month(t: datetime) -> str:
    return t.strftime("%b %Y")


# -- trend ----------------------------------------------------------------------------------


def revenue_trend_chart(
    trend: Dashboard | StoreDashboard | Sequence[MonthTrend | TrendMonth],
    *,
    locale: str,
    title: str = "Revenue and MRR by month",
) -> Figure:
    """Net cash collected per month (hatched bars) and MRR at each month's close (line with
    markers): the dashboard's 12-month revenue trend."""
    _parse(locale)
    months = list(trend.trend if isinstance(trend, Dashboard | StoreDashboard) else trend)
    if not months:
        raise ValidationError("trend", trend, "no months to draw")
    currency = months[0].mrr.currency
    fig = _figure()
    ax = fig.add_subplot()
    x = list(range(len(months)))
    cash = [_money_value(m.cash.net) for m in months]
    mrr = [_money_value(m.mrr) for m in months]
    ax.bar(x, cash, color=LIGHT, edgecolor=_EDGE, hatch="//", label="Net cash collected")
    ax.plot(x, mrr, color=DARK, marker="o", linewidth=2.2, label="MRR at month end")
    ax.set_xticks(x, [_month(m.start) for m in months], rotation=45, ha="right")
    ax.yaxis.set_major_formatter(_axis_money(currency, locale))
    ax.set_ylabel(f"Amount ({currency})")
    ax.set_title(title)
    last = months[-1]
    ax.annotate(
        format_money(last.mrr, locale=locale),
        (x[-1], mrr[-1]),
        textcoords="offset points",
        xytext=(0, 8),
        ha="center",
        color=DARK,
    )
    ax.legend(loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    ax.set_ylim(bottom=min(0.0, *cash, *mrr))
    return fig


# -- waterfall ------------------------------------------------------------------------------

#: The waterfall's steps in order: (label, field of Waterfall).
WATERFALL_STEPS: Final = (
    ("New", "new"),
    ("Expansion", "expansion"),
    ("Reactivation", "reactivation"),
    ("Contraction", "contraction"),
    ("Churn", "churn"),
    ("FX", "fx_impact"),
)


def waterfall_chart(waterfall: Waterfall, *, locale: str, title: str | None = None) -> Figure:
    """The MRR bridge: start MRR, each movement kind as a floating bar (gains light and
    hatched ``//``, losses dark and hatched ``\\\\``), end MRR; each bar labelled."""
    _parse(locale)
    w = waterfall
    currency = w.start_mrr.currency
    fig = _figure()
    ax = fig.add_subplot()
    labels = ["Start MRR"]
    running = _money_value(w.start_mrr)
    ax.bar(0, running, color=MID, edgecolor=_EDGE, label="MRR")
    texts = [w.start_mrr]
    for i, (label, field) in enumerate(WATERFALL_STEPS, start=1):
        amount: Money = getattr(w, field)
        value = _money_value(amount)
        gain = value >= 0
        ax.bar(
            i,
            value,
            bottom=running,
            color=LIGHT if gain else DARK,
            edgecolor=_EDGE,
            hatch="//" if gain else "\\\\",
        )
        running += value
        labels.append(label)
        texts.append(amount)
    end = len(labels)
    ax.bar(end, _money_value(w.end_mrr), color=MID, edgecolor=_EDGE)
    labels.append("End MRR")
    texts.append(w.end_mrr)
    for i, (patch, m) in enumerate(zip(ax.patches, texts, strict=True)):
        top = max(patch.get_y(), patch.get_y() + patch.get_height())  # type: ignore[attr-defined]
        ax.annotate(
            format_money(m, locale=locale),
            (i, top),
            textcoords="offset points",
            xytext=(0, 4),
            ha="center",
            fontsize=8,
        )
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.yaxis.set_major_formatter(_axis_money(currency, locale))
    ax.set_ylabel(f"MRR ({currency})")
    ax.set_title(title or f"MRR movements {w.start:%d %b %Y} to {w.end:%d %b %Y}")
    ax.axhline(0, color=_EDGE, linewidth=0.8)
    ax.margins(y=0.12)  # room for the labels above the tallest bar
    ax.grid(axis="y", alpha=0.3)
    return fig


# -- cohorts --------------------------------------------------------------------------------


def cohort_heatmap(
    cohorts: Sequence[Cohort],
    *,
    locale: str,
    value: str = "customer_rate",
    title: str | None = None,
) -> Figure:
    """The cohort triangle as a heatmap (cividis: its lightness rises steadily, so it reads
    in greyscale), each cell labelled; rows are cohorts with their size, columns ages."""
    _parse(locale)
    if value not in COHORT_VALUES:
        raise ValidationError("value", value, f"one of {', '.join(COHORT_VALUES)}")
    rows = list(cohorts)
    if not rows:
        raise ValidationError("cohorts", cohorts, "no cohorts to draw")
    import numpy as np

    width = max(len(c.cells) for c in rows)
    grid = np.full((len(rows), width), np.nan)
    labels: dict[tuple[int, int], str] = {}
    for r, c in enumerate(rows):
        for a, cell in enumerate(c.cells):
            raw = getattr(cell, value)
            if raw is None:
                continue
            if isinstance(raw, Money):
                grid[r, a] = _money_value(raw)
                labels[r, a] = format_money(raw, locale=locale)
            elif isinstance(raw, Decimal):
                grid[r, a] = float(raw)
                labels[r, a] = _percent(raw, 0)
            else:
                grid[r, a] = float(raw)
                labels[r, a] = str(raw)
    fig = _figure(max(6.0, 1.0 + 0.75 * width), max(3.0, 1.2 + 0.45 * len(rows)))
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(grid), cmap="cividis", aspect="auto")
    low, high = np.nanmin(grid), np.nanmax(grid)
    middle = (low + high) / 2
    for (r, a), text in labels.items():
        # Dark text on the light end of the map, light text on the dark end.
        ax.text(
            a,
            r,
            text,
            ha="center",
            va="center",
            fontsize=8,
            color="black" if grid[r, a] >= middle else "white",
        )
    ax.set_xticks(range(width), [str(a) for a in range(width)])
    ax.set_yticks(range(len(rows)), [f"{_month(c.start)} ({c.size})" for c in rows])
    ax.set_xlabel("Periods since first payment")
    ax.set_ylabel("Cohort (customers)")
    names = {
        "customer_rate": "Customers retained",
        "mrr_rate": "Net MRR retained",
        "customers": "Customers",
        "mrr": "MRR",
    }
    ax.set_title(title or f"{names[value]} by cohort")
    fig.colorbar(image, ax=ax, shrink=0.8)
    return fig


# -- churn ----------------------------------------------------------------------------------


def churn_chart(
    points: Sequence[ChurnPoint], *, locale: str, title: str = "Churn by month"
) -> Figure:
    """Customer churn rate, gross and net MRR churn per period, as percentages: three
    lines of different lightness, marker and dash. Periods without a rate are gaps."""
    _parse(locale)
    items = list(points)
    if not items:
        raise ValidationError("points", points, "no periods to draw")
    from matplotlib.ticker import PercentFormatter

    fig = _figure()
    ax = fig.add_subplot()
    x = list(range(len(items)))

    def pct(values: list[Decimal | None]) -> list[float]:
        return [float("nan") if v is None else float(v * 100) for v in values]

    series = (
        ("Customer churn", [p.customer_churn.rate for p in items], DARK, "o", "-"),
        ("Gross MRR churn", [p.mrr_churn.gross for p in items], MID, "s", "--"),
        ("Net MRR churn", [p.mrr_churn.net for p in items], "#c98a00", "^", ":"),
    )
    for label, values, colour, marker, style in series:
        ax.plot(
            x, pct(values), color=colour, marker=marker, linestyle=style, linewidth=2, label=label
        )
    ax.set_xticks(x, [_month(p.start) for p in items], rotation=45, ha="right")
    ax.yaxis.set_major_formatter(PercentFormatter(decimals=1))
    ax.set_ylabel("Share of the period's start")
    ax.axhline(0, color=_EDGE, linewidth=0.8)
    ax.set_title(title)
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    return fig


# -- breakdowns -----------------------------------------------------------------------------

_DIMENSIONS: Final = {
    "product": "product",
    "billing_cycle": "billing cycle",
    "payment_method": "payment method",
}
_MEASURES: Final = {"cash": "Net cash", "mrr": "MRR"}


def breakdown_chart(
    breakdown: Breakdown, *, locale: str, title: str | None = None, limit: int = 12
) -> Figure:
    """A breakdown as horizontal bars, largest on top, each labelled with its amount and
    share; rows beyond ``limit`` are summed into one "other" bar."""
    _parse(locale)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValidationError("limit", limit, "a whole number of bars, 1 or more")
    rows = [(r.label, r.amount, r.share) for r in breakdown.rows]
    if len(rows) > limit:
        rest = rows[limit - 1 :]
        other = sum((m for _, m, _ in rest), Money.zero(breakdown.currency))
        total = breakdown.total
        share = None if total.is_zero() else other.ratio(total)
        rows = [*rows[: limit - 1], ("other", other, share)]
    fig = _figure(8.0, max(2.5, 1.2 + 0.45 * len(rows)))
    ax = fig.add_subplot()
    y = list(range(len(rows)))
    values = [_money_value(m) for _, m, _ in rows]
    ax.barh(y, values, color=MID, edgecolor=_EDGE, hatch="..")
    ax.set_yticks(y, [label for label, _, _ in rows])
    ax.invert_yaxis()
    for i, (_, m, share) in enumerate(rows):
        ax.annotate(
            f"{format_money(m, locale=locale)} ({_percent(share)})",
            (max(values[i], 0.0), i),
            textcoords="offset points",
            xytext=(4, 0),
            va="center",
            fontsize=8,
        )
    ax.xaxis.set_major_formatter(_axis_money(breakdown.currency, locale))
    ax.set_xlabel(f"{_MEASURES.get(breakdown.measure, breakdown.measure)} ({breakdown.currency})")
    dimension = _DIMENSIONS.get(breakdown.dimension, breakdown.dimension)
    ax.set_title(title or f"{_MEASURES.get(breakdown.measure, breakdown.measure)} by {dimension}")
    ax.margins(x=0.25)
    ax.grid(axis="x", alpha=0.3)
    return fig


def _dimension_chart(
    dimension: str, breakdown: Breakdown, locale: str, title: str | None
) -> Figure:
    if not isinstance(breakdown, Breakdown) or breakdown.dimension != dimension:
        shown = breakdown.dimension if isinstance(breakdown, Breakdown) else breakdown
        raise ValidationError("breakdown", shown, f"expected a breakdown by {dimension}")
    return breakdown_chart(breakdown, locale=locale, title=title)


def revenue_by_product_chart(
    breakdown: Breakdown, *, locale: str, title: str | None = None
) -> Figure:
    """Revenue (cash or MRR) by product: ``cash_revenue_by_product`` or ``mrr_by_product``."""
    return _dimension_chart("product", breakdown, locale, title)


def revenue_by_billing_cycle_chart(
    breakdown: Breakdown, *, locale: str, title: str | None = None
) -> Figure:
    """Revenue by billing cycle: ``cash_revenue_by_billing_cycle`` or ``mrr_by_billing_cycle``."""
    return _dimension_chart("billing_cycle", breakdown, locale, title)


def revenue_by_payment_method_chart(
    breakdown: Breakdown, *, locale: str, title: str | None = None
) -> Figure:
    """Net cash by payment method: ``cash_revenue_by_payment_method``."""
    return _dimension_chart("payment_method", breakdown, locale, title)
