"""JSON Schemas of exported results, generated from the result types' own annotations.

One schema per result type, never written by hand, so it cannot drift from the type:
a field added to a result appears in its schema (and a test validates every exported
result against the schema of its type).
"""

from __future__ import annotations

import collections.abc
import enum
import functools
import importlib
import types
import typing
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final, TypeVar
from zoneinfo import ZoneInfo

import attrs

from revcrm._cycles import BillingCycle
from revcrm._money import FxRates, Money
from revcrm.errors import ValidationError
from revcrm.leads import Pipeline
from revcrm.metrics import MrrAnalysis

__all__ = ["DECIMAL_PATTERN", "json_schema"]

#: What a decimal string looks like: optional minus, digits, optional fraction; no exponent.
DECIMAL_PATTERN: Final = r"^-?[0-9]+(\.[0-9]+)?$"

_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
_DECIMAL: Final = {"type": "string", "pattern": DECIMAL_PATTERN}
_MONEY: Final = {
    "type": "object",
    "description": "An amount rounded to the currency's CLDR minor units (exact=True: exact)",
    "properties": {
        "amount": _DECIMAL,
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "display": {"type": "string"},
    },
    "required": ["amount", "currency"],
    "additionalProperties": False,
}


def json_schema(result_type: type) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``to_jsonable`` of a ``result_type`` instance.

    Nested result types are ``$defs`` referenced by name; ``Money`` is one of them.
    """
    if not isinstance(result_type, type):
        raise ValidationError("result_type", result_type, "expected a class")
    defs: dict[str, Any] = {}
    root = _Builder(defs).schema(result_type)
    if root.get("$ref") == f"#/$defs/{result_type.__name__}":
        root = dict(defs[result_type.__name__])  # the type itself at the top, not a reference
    return {"$schema": _DIALECT, "title": result_type.__name__, **root, "$defs": defs}


@attrs.define
class _Builder:
    defs: dict[str, Any]

    def ref(self, cls: type, build: typing.Callable[[], dict[str, Any]]) -> dict[str, Any]:
        name = cls.__name__
        if name not in self.defs:
            self.defs[name] = {}  # placeholder: recursive types refer to themselves
            self.defs[name] = build()
        return {"$ref": f"#/$defs/{name}"}

    def schema(self, tp: Any) -> dict[str, Any]:
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if tp is type(None) or tp is None:
            return {"type": "null"}
        if tp is Any or isinstance(tp, TypeVar):
            return {}
        if origin in (typing.Union, types.UnionType):
            return {"anyOf": [self.schema(a) for a in args]}
        if origin is typing.Literal:
            return {"enum": list(args)}
        if origin is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                return {"type": "array", "items": self.schema(args[0])}
            return {
                "type": "array",
                "prefixItems": [self.schema(a) for a in args],
                "minItems": len(args),
                "maxItems": len(args),
            }
        if origin in (list, collections.abc.Sequence):
            return {"type": "array", "items": self.schema(args[0]) if args else {}}
        if origin in (set, frozenset, collections.abc.Set):
            return {
                "type": "array",
                "uniqueItems": True,
                "items": self.schema(args[0]) if args else {},
            }
        if origin in (dict, collections.abc.Mapping):
            out: dict[str, Any] = {"type": "object"}
            if args:
                out["additionalProperties"] = self.schema(args[1])
                key = args[0]
                if isinstance(key, type) and issubclass(key, enum.Enum):
                    out["propertyNames"] = {"enum": [str(m.value) for m in key]}
            return out
        if not isinstance(tp, type):
            raise ValidationError("result_type", tp, "no JSON schema for this annotation")
        return self.of_class(tp)

    def of_class(self, tp: type) -> dict[str, Any]:
        if issubclass(tp, enum.Enum):
            values = [m.value for m in tp]
            kind = "string" if all(isinstance(v, str) for v in values) else "integer"
            return self.ref(tp, lambda: {"type": kind, "enum": values})
        if tp is bool:
            return {"type": "boolean"}
        if tp is int:
            return {"type": "integer"}
        if tp is float:
            return {"type": "number"}
        if tp is str:
            return {"type": "string"}
        if tp is Decimal:
            return dict(_DECIMAL)
        if tp is Money:
            return self.ref(tp, lambda: dict(_MONEY))
        if tp is datetime:
            return {"type": "string", "format": "date-time"}
        if tp is date:
            return {"type": "string", "format": "date"}
        if tp is timedelta:
            return {"type": "string", "format": "duration"}
        if tp is ZoneInfo:
            return {"type": "string", "description": "an IANA time zone name: UTC, Europe/Berlin"}
        if tp is BillingCycle:
            return {"type": "string", "description": "a billing cycle: monthly, annual, 2 weeks"}
        if tp is FxRates:
            return self.ref(tp, _fx_schema)
        if tp is Pipeline:
            return self.ref(
                tp,
                lambda: {
                    "type": "object",
                    "properties": {"leads": {"type": "array", "items": self.schema(_lead())}},
                    "required": ["leads"],
                    "additionalProperties": False,
                },
            )
        if tp is MrrAnalysis:
            raise ValidationError("result_type", tp.__name__, "an analysis is not a result")
        if attrs.has(tp):
            return self.ref(tp, lambda: self.attrs_class(tp))
        if typing.is_typeddict(tp):
            return self.ref(tp, lambda: self.typed_dict(tp))
        raise ValidationError("result_type", tp.__qualname__, "no JSON schema for this type")

    def attrs_class(self, tp: type) -> dict[str, Any]:
        hints = type_hints(tp)
        names = [f.name for f in attrs.fields(tp) if not f.name.startswith("_")]
        out: dict[str, Any] = {
            "type": "object",
            "properties": {n: self.schema(hints[n]) for n in names},
            "required": names,
            "additionalProperties": False,
        }
        doc = (tp.__doc__ or "").strip().split("\n\n")[0]
        if doc:
            out["description"] = " ".join(doc.split())
        return out

    def typed_dict(self, tp: type) -> dict[str, Any]:
        hints = type_hints(tp)
        return {
            "type": "object",
            "properties": {n: self.schema(h) for n, h in hints.items()},
            "required": sorted(getattr(tp, "__required_keys__", hints)),
            "additionalProperties": False,
        }


def type_hints(tp: type) -> dict[str, Any]:
    """``tp``'s resolved annotations; names a module imports only for type checking are
    looked up among revcrm's public names."""
    try:
        return typing.get_type_hints(tp)
    except NameError:
        return typing.get_type_hints(tp, localns=_public_names())


@functools.cache
def _public_names() -> dict[str, Any]:
    names: dict[str, Any] = {}
    for package in (
        "revcrm",
        "revcrm.metrics",
        "revcrm.storage",
        "revcrm.segments",
        "revcrm.crm",
        "revcrm.leads",
        "revcrm.sync",
    ):
        module = importlib.import_module(package)
        names.update({n: getattr(module, n) for n in module.__all__})
    return names


def _fx_schema() -> dict[str, Any]:
    return {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "day": {"type": "string", "format": "date"},
                "source": {"type": "string"},
                "target": {"type": "string"},
                "rate": dict(_DECIMAL),
            },
            "required": ["day", "source", "target", "rate"],
            "additionalProperties": False,
        },
    }


def _lead() -> type:
    from revcrm.leads import Lead

    return Lead
