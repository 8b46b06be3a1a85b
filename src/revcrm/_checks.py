"""Small checks shared by the record modules."""

from __future__ import annotations

import enum
from typing import TypeVar

from revcrm.errors import ValidationError

_E = TypeVar("_E", bound=enum.Enum)


def as_enum(cls: type[_E], value: object, field: str) -> _E:
    """``cls(value)``, but an unknown value is a :class:`ValidationError` naming ``field``.

    ValidationError is a ValueError, so callers catching the enum's own ValueError still do.
    """
    try:
        return cls(value)
    except ValueError:
        choices = ", ".join(str(m.value) for m in cls)
        raise ValidationError(field, value, f"expected one of {choices}") from None
