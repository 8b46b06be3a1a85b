"""The columnar MRR ledger: invoice lines as arrays (``_columns.LineColumns``) and the engine over them."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from revcrm.metrics._engine import analyse_lines as analyse_lines


def __getattr__(name: str) -> object:
    # analyse_lines lives with MrrAnalysis in revcrm.metrics._engine, which imports this
    # package's modules: resolved on first use, so importing either first is no cycle.
    if name == "analyse_lines":
        from revcrm.metrics._engine import analyse_lines

        return analyse_lines
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
