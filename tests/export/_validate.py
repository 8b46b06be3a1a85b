"""A small JSON Schema checker for the subset revcrm.export.json_schema generates."""

from __future__ import annotations

import re
from typing import Any

_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "null": type(None),
}


def problems(
    value: Any, schema: dict[str, Any], root: dict[str, Any], path: str = "$"
) -> list[str]:
    """What is wrong with ``value`` under ``schema`` (empty when it conforms)."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        return problems(value, root["$defs"][name], root, path)
    if "anyOf" in schema:
        if any(not problems(value, s, root, path) for s in schema["anyOf"]):
            return []
        return [f"{path}: {value!r} matches no alternative"]
    out: list[str] = []
    kind = schema.get("type")
    if kind is not None:
        expected = _TYPES[kind]
        if isinstance(value, bool) and kind in ("integer", "number"):
            return [f"{path}: bool is not {kind}"]
        if not isinstance(value, expected):
            return [f"{path}: {type(value).__name__} is not {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{path}: {value!r} not in {schema['enum']}")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        out.append(f"{path}: {value!r} does not match {schema['pattern']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                out.append(f"{path}: missing {name}")
        extra = schema.get("additionalProperties", True)
        for k, v in value.items():
            if k in props:
                out += problems(v, props[k], root, f"{path}.{k}")
            elif extra is False:
                out.append(f"{path}: unexpected {k}")
            elif isinstance(extra, dict):
                out += problems(v, extra, root, f"{path}.{k}")
        if "propertyNames" in schema:
            out += [f"{path}: key {k!r}" for k in value if k not in schema["propertyNames"]["enum"]]
    if isinstance(value, list):
        if "prefixItems" in schema:
            if len(value) != len(schema["prefixItems"]):
                out.append(f"{path}: {len(value)} items")
            for i, (v, s) in enumerate(zip(value, schema["prefixItems"], strict=False)):
                out += problems(v, s, root, f"{path}[{i}]")
        elif "items" in schema:
            for i, v in enumerate(value):
                out += problems(v, schema["items"], root, f"{path}[{i}]")
    return out
