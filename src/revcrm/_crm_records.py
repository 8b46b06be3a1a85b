"""The CRM record rules the segments read: a tag's identity and a custom attribute's type.

They live below both :mod:`revcrm.crm` (whose records are built with them) and
:mod:`revcrm.segments` (whose facts and predicates compare tags and attributes), so that
the segments never import the CRM layer, which sits above them (a customer profile shows
its segments). :mod:`revcrm.crm` re-exports every public name.
"""

from __future__ import annotations

import enum
import re
from decimal import Decimal
from typing import Final

from revcrm._checks import check_text
from revcrm._records import check_attribute_value
from revcrm.errors import ValidationError

__all__ = [
    "MAX_TAG_LENGTH",
    "AttributeType",
    "attribute_type",
    "required_text",
    "tag_key",
    "tag_name",
]

#: Longest tag name accepted (characters).
MAX_TAG_LENGTH: Final = 50

_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


def required_text(field: str, value: object, *, max_length: int | None = None) -> str:
    """A non-empty string, stripped, of at most ``max_length`` characters."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(field, value, "must be a non-empty string")
    text = check_text(value.strip(), field)
    if max_length is not None and len(text) > max_length:
        raise ValidationError(field, value, f"longer than {max_length} characters")
    return text


def tag_name(v: object) -> str:
    """A tag name as stored: stripped, no control characters, one space between words."""
    name = required_text("name", v, max_length=MAX_TAG_LENGTH)
    if _CONTROL.search(name):
        raise ValidationError("name", v, "control characters are not allowed")
    return " ".join(name.split())  # one space between words, so "vip  client" == "vip client"


def tag_key(name: str) -> str:
    """The identity of a tag name: case-folded with single spaces ("VIP", "vip" are one)."""
    return tag_name(name).casefold()


class AttributeType(enum.StrEnum):
    STRING = "string"
    NUMBER = "number"  # int or Decimal, never float
    BOOLEAN = "boolean"
    DATE = "date"


def attribute_type(value: object, field: str = "value") -> AttributeType:
    """The type of a custom attribute value; floats and other types are rejected."""
    # One rule for the accepted values (types and ranges): the customer record's.
    check_attribute_value(value, field)
    # bool first: it is an int subclass.
    if isinstance(value, bool):
        return AttributeType.BOOLEAN
    if isinstance(value, int | Decimal):
        return AttributeType.NUMBER
    if isinstance(value, str):
        return AttributeType.STRING
    return AttributeType.DATE
