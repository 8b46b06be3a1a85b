"""Run the ```python blocks of one markdown page with only the extras each block names.

``python tests/_docs_runner.py PAGE.md`` runs the page's blocks in order in one namespace
(as a reader types them), in a fresh interpreter where the modules of every optional
extra of revcrm are hidden unless the block declares the extra on the line before it::

    <!-- extras: sql, test -->
    ```python
    from revcrm.storage import SQLStore
    ```

A block without the line runs on the core install (``pip install revcrm``). An import of
a hidden module fails with a message naming the extra, so a page that imports
``revcrm.testing.contract`` (which needs pytest) without ``test`` fails here, as it would
for a reader who installed only ``revcrm[sql]``. Run by tests/test_docs.py.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.metadata
import json
import os
import re
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
#: A block, with the extras line before it when there is one.
BLOCK = re.compile(
    r"^(?:<!--\s*extras:\s*(?P<extras>[\w\s,-]*?)\s*-->\n)?```python\n(?P<code>.*?)^```",
    re.DOTALL | re.MULTILINE,
)


def _requirement_name(spec: str) -> str:
    return re.split(r"[\s\[<>=!~;]", spec, maxsplit=1)[0].lower().replace("_", "-")


def extra_modules() -> tuple[dict[str, set[str]], set[str]]:
    """Top-level module names each extra brings, and those of the core dependencies."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    by_dist: dict[str, set[str]] = {}
    for module, dists in importlib.metadata.packages_distributions().items():
        for d in dists:
            by_dist.setdefault(d.lower().replace("_", "-"), set()).add(module)
    core = {m for spec in project["dependencies"] for m in by_dist.get(_requirement_name(spec), ())}
    extras = {
        name: {m for spec in specs for m in by_dist.get(_requirement_name(spec), ())} - core
        for name, specs in project["optional-dependencies"].items()
    }
    return extras, core


class _Hide(importlib.abc.MetaPathFinder):
    """Makes the modules of the extras a block did not name unimportable."""

    def __init__(self, extras: dict[str, set[str]]) -> None:
        self.extras = extras
        self.hidden: dict[str, str] = {}

    def allow(self, names: Sequence[str]) -> None:
        allowed = {m for n in names for m in self.extras[n]}
        # A module several extras bring is named by the smallest of them (pandas: pandas).
        by_size = sorted(self.extras.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        self.hidden = {m: extra for extra, ms in by_size for m in ms if m not in allowed}

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        top = fullname.partition(".")[0]
        if top in self.hidden:
            raise ModuleNotFoundError(
                f"No module named {top!r}: it comes with revcrm[{self.hidden[top]}], which "
                "this block does not name (add '<!-- extras: ... -->' before it)",
                name=top,
            )
        return None


#: The extras' modules as JSON (``{extra: [module, ...]}``), when the caller has them: they
#: are the same for every page, and working them out reads every installed distribution.
EXTRAS_ENV = "REVCRM_DOCS_EXTRAS"


def extras_json() -> str:
    """:func:`extra_modules`' extras, as :data:`EXTRAS_ENV` takes them."""
    return json.dumps({name: sorted(ms) for name, ms in extra_modules()[0].items()})


def run(page: Path) -> None:
    given = os.environ.get(EXTRAS_ENV)
    if given:
        extras = {name: set(ms) for name, ms in json.loads(given).items()}
    else:
        extras, _ = extra_modules()
    hide = _Hide(extras)
    sys.meta_path.insert(0, hide)
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for i, m in enumerate(BLOCK.finditer(page.read_text(encoding="utf-8"))):
        names = [n.strip() for n in (m["extras"] or "").split(",") if n.strip()]
        unknown = sorted(set(names) - set(extras))
        if unknown:
            raise SystemExit(f"{page.name}[block {i}]: unknown extras {unknown}")
        hide.allow(names)
        exec(compile(m["code"], f"{page.name}[block {i}]", "exec"), namespace)


if __name__ == "__main__":
    run(Path(sys.argv[1]))
