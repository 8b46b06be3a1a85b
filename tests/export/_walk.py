"""The public result types of revcrm and the types a value holds."""

from __future__ import annotations

import enum
import importlib
import inspect
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from revcrm.leads import Pipeline

PACKAGES = (
    "revcrm",
    "revcrm.metrics",
    "revcrm.storage",
    "revcrm.segments",
    "revcrm.crm",
    "revcrm.leads",
    "revcrm.sync",
)


def public_attrs_classes() -> dict[str, type]:
    """Every attrs class a public package exports, by qualified public name."""
    out: dict[str, type] = {}
    for name in PACKAGES:
        module = importlib.import_module(name)
        for attr in module.__all__:
            obj = getattr(module, attr)
            if inspect.isclass(obj) and attrs.has(obj):
                out.setdefault(f"{obj.__module__}.{obj.__qualname__}", obj)
    return out


def types_in(value: Any) -> Iterator[type]:
    """The classes of ``value`` and of everything its public fields hold."""
    seen: set[int] = set()
    stack = [value]
    while stack:
        v = stack.pop()
        if id(v) in seen or v is None or isinstance(v, str | int | float | enum.Enum):
            continue
        seen.add(id(v))
        yield type(v)
        if isinstance(v, Mapping):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, tuple | list | set | frozenset | Pipeline):
            stack.extend(v)
        elif attrs.has(type(v)):
            stack.extend(
                getattr(v, f.name) for f in attrs.fields(type(v)) if not f.name.startswith("_")
            )
