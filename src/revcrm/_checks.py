"""Small checks shared by the record modules: one definition of each field rule.

Every check takes the value and the field name to report, returns the accepted value and
raises :class:`ValidationError` naming the field otherwise, so a record never holds a value
of the wrong type (a store would otherwise fail on it with a raw driver error).
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TypeVar, cast

from revcrm.errors import RevcrmError, ValidationError, WrongTypeError

_E = TypeVar("_E", bound=enum.Enum)
_T = TypeVar("_T")


def as_enum(cls: type[_E], value: object, field: str) -> _E:
    """``cls(value)``, but an unknown value is a :class:`ValidationError` naming ``field``.

    ValidationError is a ValueError, so callers catching the enum's own ValueError still do.
    """
    try:
        return cls(value)
    except (ValueError, TypeError):
        choices = ", ".join(str(m.value) for m in cls)
        raise ValidationError(field, value, f"expected one of {choices}") from None


def storable_text(value: str, field: str) -> str:
    """Reject text no backend can store faithfully: NUL characters and lone surrogates.

    PostgreSQL refuses NUL in text and no UTF-8 database holds a lone surrogate. (Custom
    attribute values and subscription details are stored escaped and accept any text.)
    """
    if "\x00" in value:
        raise ValidationError(field, value, "NUL characters cannot be stored")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError(field, value, "not valid Unicode text (lone surrogate)") from None
    return value


def check_text(value: object, field: str) -> str:
    """A ``str`` (possibly empty) that every backend can store."""
    if type(value) is not str:
        if not isinstance(value, str):
            raise WrongTypeError(field, value, "expected a string")
        value = str.__str__(value)  # a str subclass (an enum member) stored as plain text
    return storable_text(value, field)


def optional_text(value: object, field: str) -> str | None:
    """``None`` or a storable ``str``."""
    return None if value is None else check_text(value, field)


def check_id(value: object, field: str) -> str:
    """A record id or reference: a non-blank storable ``str`` (kept exactly as given)."""
    text = check_text(value, field)
    if not text.strip():
        raise ValidationError(field, value, "must be a non-empty string")
    return text


def optional_id(value: object, field: str) -> str | None:
    """``None`` or an id (see :func:`check_id`)."""
    return None if value is None else check_id(value, field)


def check_instance(value: object, cls: type[_T], field: str) -> _T:
    if not isinstance(value, cls):
        raise WrongTypeError(field, value, f"expected a {cls.__name__}")
    return value


def optional_instance(value: object, cls: type[_T], field: str) -> _T | None:
    return None if value is None else check_instance(value, cls, field)


def check_bool(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise WrongTypeError(field, value, "expected True or False")
    return value


def check_mapping(value: object, field: str) -> Mapping[Any, Any]:
    """A mapping (``None`` means empty); a list of pairs or any other value is refused."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise WrongTypeError(field, value, "expected a mapping")
    return value


def check_items(value: object, field: str) -> tuple[Any, ...]:
    """The items of a list or tuple (a string, a mapping or a lone value is refused)."""
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise WrongTypeError(field, value, "expected a list or tuple")
    return tuple(value)


def check_records(value: object, cls: type[_T], field: str) -> tuple[_T, ...]:
    """The items of a list or tuple, each a ``cls`` (the first that is not names its
    index: ``tickets[2]``)."""
    items = check_items(value, field)
    for i, item in enumerate(items):
        check_instance(item, cls, f"{field}[{i}]")
    return items


#: The largest whole number a count field (a quantity, a position, a revision, a duration
#: in seconds) may hold: what a 32-bit INTEGER column of every backend stores.
MAX_COUNT: Final = 2**31 - 1


def check_count(value: object, field: str, *, minimum: int = 0) -> int:
    """A whole number (not a bool) from ``minimum`` to :data:`MAX_COUNT`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise WrongTypeError(field, value, "expected a whole number")
    if not minimum <= value <= MAX_COUNT:
        raise ValidationError(field, value, f"must be from {minimum} to {MAX_COUNT}")
    return value


_F = TypeVar("_F", bound=Callable[..., Any])


def reads_record(method: _F) -> _F:
    """For ``from_record`` classmethods: a row that is no mapping, lacks a column or holds
    a value of the wrong shape is a :class:`ValidationError` on ``record``, not a raw
    ``KeyError`` or ``TypeError``. (Apply below ``@classmethod``.)"""

    @functools.wraps(method)
    def read(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except RevcrmError:
            raise
        except (KeyError, TypeError, AttributeError, IndexError, ValueError) as e:
            record = args[1] if len(args) > 1 else kwargs.get("record")
            reason = f"not a valid record ({type(e).__name__}: {e})"
            raise ValidationError("record", record, reason) from e

    return cast(_F, read)
