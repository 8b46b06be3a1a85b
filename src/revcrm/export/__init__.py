"""Results out: JSON values, pandas DataFrames, matplotlib charts and inline SVG charts of
revcrm results.

``to_jsonable``, ``json_schema``, the ``svg_*`` charts and the report (``build_report``,
``render_html``, ``write_csv``) need nothing beyond revcrm itself; ``to_frame`` needs
the ``revcrm[pandas]`` extra and the charts the ``revcrm[charts]`` extra, imported only
when called (a :class:`MissingExtraError` names the extra to install). See docs/export.md.
"""

from revcrm.export._charts import (
    breakdown_chart,
    churn_chart,
    cohort_heatmap,
    revenue_by_billing_cycle_chart,
    revenue_by_payment_method_chart,
    revenue_by_product_chart,
    revenue_trend_chart,
    waterfall_chart,
)
from revcrm.export._extras import MissingExtraError
from revcrm.export._frames import COHORT_VALUES, minor_units, to_frame
from revcrm.export._json import Json, decimal_text, duration_text, money_text, to_jsonable
from revcrm.export._report import (
    Report,
    ReportBreakdown,
    ReportCard,
    build_report,
    render_html,
    render_text,
    report_tables,
    write_csv,
)
from revcrm.export._schema import DECIMAL_PATTERN, json_schema
from revcrm.export._svg import (
    month_label,
    svg_bar_chart,
    svg_heatmap,
    svg_line_chart,
    svg_lines_chart,
    svg_waterfall_chart,
)

__all__ = [
    "COHORT_VALUES",
    "DECIMAL_PATTERN",
    "Json",
    "MissingExtraError",
    "Report",
    "ReportBreakdown",
    "ReportCard",
    "breakdown_chart",
    "build_report",
    "churn_chart",
    "cohort_heatmap",
    "decimal_text",
    "duration_text",
    "json_schema",
    "minor_units",
    "money_text",
    "month_label",
    "render_html",
    "render_text",
    "report_tables",
    "revenue_by_billing_cycle_chart",
    "revenue_by_payment_method_chart",
    "revenue_by_product_chart",
    "revenue_trend_chart",
    "svg_bar_chart",
    "svg_heatmap",
    "svg_line_chart",
    "svg_lines_chart",
    "svg_waterfall_chart",
    "to_frame",
    "to_jsonable",
    "waterfall_chart",
    "write_csv",
]
