"""examples/notebook_export.ipynb runs top to bottom (no Jupyter kernel: each code cell is
executed in order in one namespace, as a kernel would)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

NOTEBOOK = Path(__file__).parents[2] / "examples" / "notebook_export.ipynb"


def run_notebook(path: Path) -> dict[str, Any]:
    """Execute the code cells of ``path`` in order; return the namespace they built."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    namespace: dict[str, Any] = {"__name__": "__notebook__"}
    for i, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        exec(compile(source, f"{path.name}[cell {i}]", "exec"), namespace)
    return namespace


def test_notebook_goes_from_a_book_to_frames_and_charts() -> None:
    ns = run_notebook(NOTEBOOK)
    assert isinstance(ns["series"], pd.DataFrame)
    assert len(ns["series"]) == 13
    assert ns["triangle"].columns.name == "age"
    assert ns["churn"]["customer_churn_rate"].dtype == "Float64"
    for name in ("trend", "bridge", "heat", "products"):
        assert isinstance(ns[name], Figure)
