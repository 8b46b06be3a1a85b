"""Charts of revcrm results as inline SVG text: no dependency beyond babel, no JavaScript,
no external reference (fonts, images, scripts, stylesheets), so a page that embeds them is
self-contained.

Every text drawn or named is XML-escaped (a title ``<script>`` stays text). Each chart is
``role="img"`` with a ``<title>`` and a ``<desc>`` listing the figures it shows, and each
mark carries its own ``<title>`` (a tooltip without script). Series differ in lightness
and also in hatching, markers or dashes, and every bar is labelled, so a greyscale print
reads. Amounts printed come from babel on the exact ``Decimal`` (rounded once to the
currency's minor units, :func:`revcrm.format_money`); floats are used only for pixel
coordinates.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Final
from xml.sax.saxutils import escape

import babel
import babel.dates
import babel.numbers

from revcrm._money import Money, format_money
from revcrm.errors import ValidationError
from revcrm.metrics import Cohort, Waterfall

__all__ = [
    "SVG_DARK",
    "SVG_LIGHT",
    "SVG_MID",
    "month_label",
    "svg_bar_chart",
    "svg_heatmap",
    "svg_line_chart",
    "svg_lines_chart",
    "svg_waterfall_chart",
]

#: The palette: far apart in luminance (about 15%, 45% and 80% grey), like the matplotlib
#: charts, plus a fourth series colour between the first two.
SVG_DARK: Final = "#1b2a4a"
SVG_MID: Final = "#4f7fbf"
SVG_LIGHT: Final = "#f3c767"
_ACCENT: Final = "#8a5a00"
_EDGE: Final = "#222222"
_GRID: Final = "#d9d9d9"
_FONT: Final = 'font-family="sans-serif" font-size="11"'
_SVG_NS: Final = "http://www.w3.org/2000/svg"

# (colour, marker, dash) per line series: three cues, not only colour.
_LINE_STYLES: Final = (
    (SVG_DARK, "circle", ""),
    (SVG_MID, "square", "6 3"),
    (_ACCENT, "triangle", "2 3"),
    ("#666666", "diamond", "8 2 2 2"),
)


def _esc(text: object) -> str:
    """Text for an element's content or a double-quoted attribute."""
    return escape(str(text), {'"': "&quot;", "'": "&#39;"})


def _px(value: float) -> str:
    return f"{value:.1f}"


def _parse_locale(locale: str) -> babel.Locale:
    if not isinstance(locale, str) or not locale:
        raise ValidationError("locale", locale, "an explicit locale such as 'en_US' is required")
    try:
        return babel.Locale.parse(locale, sep="-" if "-" in locale else "_")
    except (babel.UnknownLocaleError, ValueError, TypeError) as e:
        raise ValidationError("locale", locale, "unknown locale") from e


def month_label(moment: datetime | date, *, locale: str) -> str:
    """A short month label in ``locale``: ``Jan 2026``, ``Jan. 2026`` (de_DE)."""
    day = moment.date() if isinstance(moment, datetime) else moment
    return babel.dates.format_date(day, format="MMM y", locale=_parse_locale(locale))


def _check_size(width: object, height: object) -> None:
    for field, value in (("width", width), ("height", height)):
        if value is None and field == "height":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 80 <= value <= 10_000:
            raise ValidationError(field, value, "a whole number of pixels, 80 to 10000")


def _uid(kind: str, *parts: object) -> str:
    # Charts are embedded side by side in one page: their ids (title, desc, patterns) must
    # not collide. A digest of what is drawn is stable across runs, unlike a counter.
    digest = hashlib.sha1(repr((kind, parts)).encode(), usedforsecurity=False).hexdigest()
    return f"rc{digest[:10]}"


def _open(uid: str, width: int, height: int, title: str, desc: str) -> list[str]:
    return [
        f'<svg xmlns="{_SVG_NS}" class="revcrm-chart" role="img" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" '
        f'aria-labelledby="{uid}-t {uid}-d" {_FONT}>',
        f'<title id="{uid}-t">{_esc(title)}</title>',
        f'<desc id="{uid}-d">{_esc(desc)}</desc>',
        "<defs>",
        # Hatching for gains (//), losses (\\) and plain bars (dots): distinguishable in
        # greyscale and for colour-blind readers.
        f'<pattern id="{uid}-up" width="6" height="6" patternUnits="userSpaceOnUse" '
        f'patternTransform="rotate(45)"><rect width="6" height="6" fill="{SVG_LIGHT}"/>'
        f'<line x1="0" y1="0" x2="0" y2="6" stroke="{_EDGE}" stroke-width="1.2"/></pattern>',
        f'<pattern id="{uid}-down" width="6" height="6" patternUnits="userSpaceOnUse" '
        f'patternTransform="rotate(-45)"><rect width="6" height="6" fill="{SVG_DARK}"/>'
        f'<line x1="0" y1="0" x2="0" y2="6" stroke="#ffffff" stroke-width="1.2"/></pattern>',
        f'<pattern id="{uid}-dots" width="5" height="5" patternUnits="userSpaceOnUse">'
        f'<rect width="5" height="5" fill="{SVG_MID}"/>'
        f'<circle cx="2.5" cy="2.5" r="0.9" fill="#ffffff"/></pattern>',
        "</defs>",
        f'<text x="{width / 2:.1f}" y="16" text-anchor="middle" font-size="13" '
        f'font-weight="bold">{_esc(title)}</text>',
    ]


# -- number formatting ------------------------------------------------------------------------


def _formatter(
    currency: str | None, locale: str, percent: bool
) -> tuple[Callable[[Decimal], str], Callable[[Decimal, Decimal], str]]:
    """(value label, axis tick label given the tick step) for one chart's numbers."""
    parsed = _parse_locale(locale)
    if currency is not None and percent:
        raise ValidationError("percent", percent, "a chart is of money or of rates, not both")
    if currency is not None:
        # Validate the code once, through Money, before anything is drawn.
        Money.zero(currency)
        pattern = parsed.currency_formats["standard"].pattern.split(";")[0]
        whole = pattern.replace(".00", "")

        def value(v: Decimal) -> str:
            return format_money(Money(v, currency), locale=locale)

        def tick(v: Decimal, step: Decimal) -> str:
            if step >= 1 and v == v.to_integral_value():
                return babel.numbers.format_currency(
                    v, currency, format=whole, currency_digits=False, locale=parsed
                )
            return value(v)

        return value, tick
    if percent:

        def pct(v: Decimal) -> str:
            return babel.numbers.format_percent(v, format="#,##0.0%", locale=parsed)

        def pct_tick(v: Decimal, step: Decimal) -> str:
            fmt = "#,##0%" if step >= Decimal("0.01") else "#,##0.#%"
            return babel.numbers.format_percent(v, format=fmt, locale=parsed)

        return pct, pct_tick

    def number(v: Decimal) -> str:
        return babel.numbers.format_decimal(v, locale=parsed)

    return number, lambda v, _step: number(v)


def _ticks(lo: Decimal, hi: Decimal, count: int = 4) -> tuple[list[Decimal], Decimal]:
    """Round tick values (1, 2, 2.5 or 5 times a power of ten) covering ``lo..hi``, exactly."""
    if hi <= lo:
        hi = lo + (abs(lo) or Decimal(1))
    raw = (hi - lo) / count
    base = Decimal(1).scaleb(raw.adjusted())
    step = next(base * m for m in (1, 2, Decimal("2.5"), 5, 10) if base * m >= raw)
    first = (lo / step).to_integral_value(ROUND_FLOOR) * step
    last = (hi / step).to_integral_value(ROUND_CEILING) * step
    ticks = []
    t = first
    while t <= last:
        ticks.append(t.normalize() if t else Decimal(0))
        t += step
    return ticks, step


def _scale(lo: Decimal, hi: Decimal, a: float, b: float) -> Callable[[Decimal], float]:
    # Pixel coordinates are the one place a figure becomes a float: an SVG coordinate has
    # no use for more than a tenth of a pixel, and no printed amount is read back from it.
    span = float(hi - lo) or 1.0

    def to(v: Decimal) -> float:
        return a + (float(v - lo) / span) * (b - a)

    return to


def _text_width(text: str, size: float = 11.0) -> float:
    # An estimate for layout only (no font metrics without a renderer).
    return 0.6 * size * len(text)


def _ellipsis(text: str, max_px: float) -> str:
    limit = max(3, int(max_px / _text_width("x")))
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


# -- line charts ------------------------------------------------------------------------------


def svg_line_chart(
    points: Sequence[tuple[str, Decimal]],
    *,
    title: str,
    currency: str | None,
    locale: str,
    width: int = 640,
    height: int = 240,
    percent: bool = False,
) -> str:
    """One series as a line with markers: ``points`` are (x label, value). With a
    ``currency`` the values are amounts in it (axis and labels by babel in ``locale``);
    with ``percent=True`` they are rates (0.05 is 5%); otherwise plain numbers."""
    return svg_lines_chart(
        [(title, points)],
        title=title,
        currency=currency,
        locale=locale,
        width=width,
        height=height,
        percent=percent,
    )


def svg_lines_chart(
    series: Sequence[tuple[str, Sequence[tuple[str, Decimal | None]]]],
    *,
    title: str,
    currency: str | None,
    locale: str,
    width: int = 640,
    height: int = 240,
    percent: bool = False,
) -> str:
    """Up to four series over the same x labels, each with its own colour, marker and
    dash, and a legend when there is more than one. A ``None`` value is a gap."""
    _check_size(width, height)
    if not series or len(series) > len(_LINE_STYLES):
        raise ValidationError("series", len(series), f"1 to {len(_LINE_STYLES)} series")
    labels = [x for x, _ in series[0][1]]
    if not labels:
        raise ValidationError("points", series[0][1], "no points to draw")
    for name, pts in series:
        if [x for x, _ in pts] != labels:
            raise ValidationError("series", name, "every series has the same x labels")
    value_text, tick_text = _formatter(currency, locale, percent)
    known = [v for _, pts in series for _, v in pts if v is not None]
    lo = min([Decimal(0), *known])
    hi = max([Decimal(0), *known])
    ticks, step = _ticks(lo, hi)
    tick_labels = [tick_text(t, step) for t in ticks]
    left = 14 + max(_text_width(t) for t in tick_labels)
    legend = 18 if len(series) > 1 else 0
    top, bottom, right = 28 + legend, height - 34, width - 16
    y = _scale(ticks[0], ticks[-1], bottom, top)
    n = len(labels)
    slot = (right - left) / n

    def x(i: int) -> float:
        return left + slot * (i + 0.5)

    desc = "; ".join(
        f"{name}: " + ", ".join(f"{lab} {'n/a' if v is None else value_text(v)}" for lab, v in pts)
        for name, pts in series
    )
    uid = _uid("lines", title, series, currency, locale, percent, width, height)
    out = _open(uid, width, height, title, desc)
    out += _y_axis(ticks, tick_labels, y, left, right)
    every = max(1, -(-int(max(_text_width(s) for s in labels) + 8) // max(int(slot), 1)))
    for i, lab in enumerate(labels):
        if i % every == 0:
            out.append(
                f'<text x="{_px(x(i))}" y="{_px(bottom + 16)}" text-anchor="middle">'
                f"{_esc(lab)}</text>"
            )
    for k, (name, pts) in enumerate(series):
        colour, marker, dash = _LINE_STYLES[k]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        runs: list[list[str]] = [[]]
        for i, (_, v) in enumerate(pts):
            if v is None:
                runs.append([])
                continue
            runs[-1].append(f"{_px(x(i))},{_px(y(v))}")
        for run in runs:
            if len(run) > 1:
                out.append(
                    f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" '
                    f'stroke-width="2.2"{dash_attr}/>'
                )
        for i, (lab, v) in enumerate(pts):
            if v is not None:
                tip = f"{name}, {lab}: {value_text(v)}"
                out.append(_marker(marker, x(i), y(v), colour, tip))
        last = next(((i, v) for i, (_, v) in reversed(list(enumerate(pts))) if v is not None), None)
        # The latest value of the first series is written out; with several series the
        # labels would overlap, and every value is in the marks' titles and the desc.
        if last is not None and k == 0:
            i, v = last
            out.append(
                f'<text x="{_px(x(i))}" y="{_px(y(v) - 8)}" text-anchor="end" '
                f'fill="{colour}" class="value">{_esc(value_text(v))}</text>'
            )
        if legend:
            lx = left + k * (right - left) / len(series)
            out.append(
                f'<line x1="{_px(lx)}" y1="34" x2="{_px(lx + 22)}" y2="34" stroke="{colour}" '
                f'stroke-width="2.2"{dash_attr}/>'
            )
            out.append(_marker(marker, lx + 11, 34, colour, name))
            out.append(f'<text x="{_px(lx + 28)}" y="38" class="legend">{_esc(name)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _marker(kind: str, cx: float, cy: float, colour: str, tip: str) -> str:
    t = f"<title>{_esc(tip)}</title>"
    if kind == "circle":
        return f'<circle cx="{_px(cx)}" cy="{_px(cy)}" r="3.5" fill="{colour}">{t}</circle>'
    if kind == "square":
        return (
            f'<rect x="{_px(cx - 3.5)}" y="{_px(cy - 3.5)}" width="7" height="7" '
            f'fill="{colour}">{t}</rect>'
        )
    if kind == "triangle":
        pts = f"{_px(cx)},{_px(cy - 4.5)} {_px(cx - 4)},{_px(cy + 3)} {_px(cx + 4)},{_px(cy + 3)}"
        return f'<polygon points="{pts}" fill="{colour}">{t}</polygon>'
    pts = f"{_px(cx)},{_px(cy - 4.5)} {_px(cx - 4)},{_px(cy)} {_px(cx)},{_px(cy + 4.5)} " + (
        f"{_px(cx + 4)},{_px(cy)}"
    )
    return f'<polygon points="{pts}" fill="{colour}">{t}</polygon>'


def _y_axis(
    ticks: list[Decimal],
    labels: list[str],
    y: Callable[[Decimal], float],
    left: float,
    right: float,
) -> list[str]:
    out = []
    for t, lab in zip(ticks, labels, strict=True):
        py = _px(y(t))
        stroke = _EDGE if t == 0 else _GRID
        out.append(
            f'<line x1="{_px(left)}" y1="{py}" x2="{_px(right)}" y2="{py}" stroke="{stroke}"/>'
        )
        out.append(
            f'<text x="{_px(left - 6)}" y="{_px(y(t) + 4)}" text-anchor="end" class="tick">'
            f"{_esc(lab)}</text>"
        )
    return out


# -- horizontal bars --------------------------------------------------------------------------


def svg_bar_chart(
    rows: Sequence[tuple[str, Decimal]],
    *,
    title: str,
    currency: str | None,
    locale: str,
    width: int = 640,
    height: int | None = None,
    percent: bool = False,
    share: bool = False,
) -> str:
    """Horizontal bars in the order given (revenue by product, cycle or payment method,
    segment counts, the funnel), each labelled with its value and, with ``share=True``,
    its share of the rows' total. ``height`` defaults to what the rows need."""
    items = list(rows)
    if not items:
        raise ValidationError("rows", rows, "no rows to draw")
    height = height if height is not None else 44 + 24 * len(items) + 20
    _check_size(width, height)
    value_text = _formatter(currency, locale, percent)[0]
    total = sum((v for _, v in items), Decimal(0))
    share_text = _formatter(None, locale, True)[0]

    def label(v: Decimal) -> str:
        text = value_text(v)
        if share and total:
            text += f" ({share_text(v / total)})"
        return text

    values = [v for _, v in items]
    lo, hi = min(Decimal(0), *values), max(Decimal(0), *values)
    if hi == lo:
        hi = lo + 1
    label_w = min(width * 0.35, 10 + max(_text_width(name) for name, _ in items))
    value_w = 12 + max(_text_width(label(v)) for v in values)
    left = label_w
    right = max(left + 40, width - value_w)  # huge labels squeeze the bars, never invert them
    top = 28
    band = (height - top - 8) / len(items)
    x = _scale(lo, hi, left, right)
    desc = "; ".join(f"{name}: {label(v)}" for name, v in items)
    uid = _uid("bars", title, items, currency, locale, percent, share, width, height)
    out = _open(uid, width, height, title, desc)
    zero = x(Decimal(0))
    for i, (name, v) in enumerate(items):
        by = top + band * i
        x0, x1 = sorted((zero, x(v)))
        bar_h = max(band * 0.7, 1.0)
        out.append(
            f'<rect x="{_px(x0)}" y="{_px(by + (band - bar_h) / 2)}" width="{_px(x1 - x0)}" '
            f'height="{_px(bar_h)}" fill="url(#{uid}-dots)" stroke="{_EDGE}" '
            f'stroke-width="0.8"><title>{_esc(f"{name}: {label(v)}")}</title></rect>'
        )
        mid = _px(by + band / 2 + 4)
        out.append(
            f'<text x="{_px(left - 6)}" y="{mid}" text-anchor="end" class="label">'
            f"{_esc(_ellipsis(name, label_w - 10))}</text>"
        )
        out.append(
            f'<text x="{_px(max(x1, zero) + 5)}" y="{mid}" class="value">{_esc(label(v))}</text>'
        )
    out.append(
        f'<line x1="{_px(zero)}" y1="{top}" x2="{_px(zero)}" y2="{_px(height - 8)}" '
        f'stroke="{_EDGE}"/>'
    )
    out.append("</svg>")
    return "\n".join(out)


# -- waterfall --------------------------------------------------------------------------------

#: The waterfall's steps in order: (label, field of Waterfall).
_WATERFALL_STEPS: Final = (
    ("New", "new"),
    ("Expansion", "expansion"),
    ("Reactivation", "reactivation"),
    ("Contraction", "contraction"),
    ("Churn", "churn"),
    ("FX", "fx_impact"),
)


def svg_waterfall_chart(
    waterfall: Waterfall,
    *,
    locale: str,
    title: str | None = None,
    width: int = 640,
    height: int = 260,
) -> str:
    """The MRR bridge of one period: start MRR, each movement kind as a floating bar
    (gains light and hatched ``//``, losses dark and hatched ``\\\\``), end MRR; every bar
    labelled with its amount."""
    if not isinstance(waterfall, Waterfall):
        raise ValidationError("waterfall", type(waterfall).__name__, "expected a Waterfall")
    _check_size(width, height)
    w = waterfall
    currency = w.start_mrr.currency
    value_text, tick_text = _formatter(currency, locale, False)
    title = title or (
        f"MRR movements {month_label(w.start, locale=locale)}"
        f" ({w.start:%Y-%m-%d} to {w.end:%Y-%m-%d})"
    )
    steps: list[tuple[str, Money, Decimal, Decimal, str]] = []  # label, amount, from, to, kind
    running = w.start_mrr.rounded().amount
    steps.append(("Start MRR", w.start_mrr, Decimal(0), running, "total"))
    for label, field in _WATERFALL_STEPS:
        amount: Money = getattr(w, field)
        delta = amount.rounded().amount
        steps.append((label, amount, running, running + delta, "up" if delta >= 0 else "down"))
        running += delta
    steps.append(("End MRR", w.end_mrr, Decimal(0), w.end_mrr.rounded().amount, "total"))
    levels = [v for _, _, a, b, _ in steps for v in (a, b)]
    ticks, step = _ticks(min(levels), max(levels))
    tick_labels = [tick_text(t, step) for t in ticks]
    left = 14 + max(_text_width(t) for t in tick_labels)
    top, bottom, right = 40, height - 34, width - 10
    y = _scale(ticks[0], ticks[-1], bottom, top)
    slot = (right - left) / len(steps)
    desc = "; ".join(f"{label}: {format_money(m, locale=locale)}" for label, m, *_ in steps)
    uid = _uid("waterfall", title, w, locale, width, height)
    out = _open(uid, width, height, title, desc)
    out += _y_axis(ticks, tick_labels, y, left, right)
    fills = {"total": SVG_MID, "up": f"url(#{uid}-up)", "down": f"url(#{uid}-down)"}
    for i, (label, amount, a, b, kind) in enumerate(steps):
        bx = left + slot * i + slot * 0.15
        y0, y1 = sorted((y(a), y(b)))
        text = value_text(amount.rounded().amount)
        out.append(
            f'<rect x="{_px(bx)}" y="{_px(y0)}" width="{_px(slot * 0.7)}" '
            f'height="{_px(max(y1 - y0, 0.5))}" fill="{fills[kind]}" stroke="{_EDGE}" '
            f'stroke-width="0.8" class="{kind}"><title>{_esc(f"{label}: {text}")}</title></rect>'
        )
        cx = _px(bx + slot * 0.35)
        out.append(
            f'<text x="{cx}" y="{_px(y0 - 4)}" text-anchor="middle" font-size="10" '
            f'class="value">{_esc(text)}</text>'
        )
        out.append(
            f'<text x="{cx}" y="{_px(bottom + 16)}" text-anchor="middle" class="label">'
            f"{_esc(label)}</text>"
        )
    out.append("</svg>")
    return "\n".join(out)


# -- cohort heatmap ---------------------------------------------------------------------------

_COHORT_VALUES: Final = ("customer_rate", "mrr_rate", "customers", "mrr")
# A ramp from light to dark whose lightness falls steadily, so it reads in greyscale.
_RAMP_LIGHT: Final = (0xF7, 0xFB, 0xFF)
_RAMP_DARK: Final = (0x08, 0x30, 0x6B)


def _ramp(t: float) -> tuple[str, str]:
    """(fill, text colour) at ``t`` in 0..1: dark text on light cells, white on dark."""
    rgb = [round(a + (b - a) * t) for a, b in zip(_RAMP_LIGHT, _RAMP_DARK, strict=True)]
    return "#" + "".join(f"{c:02x}" for c in rgb), "#000000" if t < 0.55 else "#ffffff"


def svg_heatmap(
    cohorts: Sequence[Cohort],
    *,
    locale: str,
    value: str = "customer_rate",
    title: str | None = None,
    width: int = 640,
) -> str:
    """The cohort triangle: one row per cohort (its month and size), one column per age,
    each cell shaded by ``value`` (``customer_rate``, ``mrr_rate``, ``customers`` or
    ``mrr``) and labelled with it."""
    if value not in _COHORT_VALUES:
        raise ValidationError("value", value, f"one of {', '.join(_COHORT_VALUES)}")
    rows = list(cohorts)
    if not rows:
        raise ValidationError("cohorts", cohorts, "no cohorts to draw")
    # At least one column: cohorts of a period not yet closed may have no cell.
    ages = max(1, *(len(c.cells) for c in rows))
    height = 68 + 24 * len(rows)
    _check_size(width, height)
    names = {
        "customer_rate": "Customers retained",
        "mrr_rate": "Net MRR retained",
        "customers": "Customers",
        "mrr": "MRR",
    }
    title = title or f"{names[value]} by cohort and months since first payment"
    parsed = _parse_locale(locale)

    def pct(v: Decimal) -> str:
        return babel.numbers.format_percent(v, format="#,##0%", locale=parsed)

    number = _formatter(None, locale, False)[0]
    cells: dict[tuple[int, int], tuple[Decimal, str]] = {}
    for r, c in enumerate(rows):
        for a, cell in enumerate(c.cells):
            raw = getattr(cell, value)
            if raw is None:
                continue
            if isinstance(raw, Money):
                cells[r, a] = (raw.rounded().amount, format_money(raw, locale=locale))
            elif isinstance(raw, Decimal):
                cells[r, a] = (raw, pct(raw))
            else:
                cells[r, a] = (Decimal(raw), number(Decimal(raw)))
    row_labels = [f"{month_label(c.start, locale=locale)} ({c.size})" for c in rows]
    left = 12 + max(_text_width(s) for s in row_labels)
    top = 56
    cell_w = (width - left - 8) / ages
    # Shade from zero, and rates up to 100% at least, so a shade means the same in every
    # row and in every report (a 67% cell is not pale because all others are 100%).
    known = [v for v, _ in cells.values()]
    floor = Decimal(1) if value.endswith("_rate") else Decimal(0)
    lo, hi = min([Decimal(0), *known]), max([floor, *known])
    span = float(hi - lo) or 1.0
    desc = "; ".join(
        f"{row_labels[r]}: "
        + ", ".join(f"month {a} {cells[r, a][1]}" for a in range(ages) if (r, a) in cells)
        for r in range(len(rows))
    )
    uid = _uid("heatmap", title, rows, value, locale, width)
    out = _open(uid, width, height, title, desc)
    for a in range(ages):
        out.append(
            f'<text x="{_px(left + cell_w * (a + 0.5))}" y="{top - 6}" text-anchor="middle" '
            f'class="tick">{a}</text>'
        )
    for r, lab in enumerate(row_labels):
        cy = top + 24 * r
        out.append(
            f'<text x="{_px(left - 6)}" y="{cy + 16}" text-anchor="end" class="label">'
            f"{_esc(lab)}</text>"
        )
        for a in range(ages):
            if (r, a) not in cells:
                continue
            v, text = cells[r, a]
            # Shade position only: a float for a colour, the label comes from the Decimal.
            fill, ink = _ramp((float(v - lo) / span) if hi != lo else 0.5)
            cx = left + cell_w * a
            out.append(
                f'<rect x="{_px(cx)}" y="{cy}" width="{_px(cell_w - 1)}" height="23" '
                f'fill="{fill}"><title>{_esc(f"{lab}, month {a}: {text}")}</title></rect>'
            )
            out.append(
                f'<text x="{_px(cx + cell_w / 2)}" y="{cy + 16}" text-anchor="middle" '
                f'fill="{ink}" font-size="10" class="value">{_esc(text)}</text>'
            )
    out.append(
        f'<text x="{_px(left)}" y="{top - 24}" class="axis">Months since first payment; '
        f"rows: cohort (customers)</text>"
    )
    out.append("</svg>")
    return "\n".join(out)
