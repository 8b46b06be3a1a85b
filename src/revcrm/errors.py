"""The one exception hierarchy of revcrm.

Every error revcrm raises derives from :class:`RevcrmError`, so a host application
can catch everything from the library with a single ``except``. Storage backends
convert their driver's errors into these classes and chain the original with
``raise ... from e``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConflictError",
    "CurrencyMismatchError",
    "DuplicateError",
    "MissingExtraError",
    "MissingRateError",
    "NotFoundError",
    "PolicyError",
    "RevcrmError",
    "StorageError",
    "TransientError",
    "TransitionNotAllowed",
    "UnknownReferenceError",
    "ValidationError",
    "WrongTypeError",
    "ZeroDivisorError",
]


#: Longest rendering of an offending value in a message: a hostile value (a 100k-character
#: string, an int of 10**5 digits) must not make the error itself slow or fail.
_REPR_LIMIT = 200


def _shown(value: object) -> str:
    """``repr(value)`` cut to a readable length; never raises."""
    try:
        text = repr(value)
    except Exception:  # an int over the str-conversion limit, a broken __repr__
        text = f"<{type(value).__name__} that cannot be shown>"
    if len(text) > _REPR_LIMIT:
        text = f"{text[: _REPR_LIMIT - 30]}...<{len(text)} characters>"
    return text


class RevcrmError(Exception):
    """Base class of every error revcrm raises."""


class ValidationError(RevcrmError, ValueError):
    """A value was rejected; names the field and the offending value."""

    def __init__(self, field: str, value: Any, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"{field}={_shown(value)}: {reason}")


class WrongTypeError(ValidationError, TypeError):
    """A value of the wrong type (a float amount, ``None`` for a name): a ValidationError
    naming the field that is also a ``TypeError``, for callers who catch that."""


class ZeroDivisorError(ValidationError, ZeroDivisionError):
    """Money divided by zero: a ValidationError that is also a ``ZeroDivisionError``."""


class CurrencyMismatchError(RevcrmError, ValueError):
    """Two amounts in different currencies were combined."""

    def __init__(self, left: str, right: str, operation: str) -> None:
        self.left = left
        self.right = right
        self.operation = operation
        super().__init__(f"cannot {operation} {left} and {right}: convert through FxRates first")


class MissingRateError(RevcrmError, LookupError):
    """No exchange rate exists for a currency pair on or before a date."""

    def __init__(self, source: str, target: str, on: object) -> None:
        self.source = source
        self.target = target
        self.on = on
        super().__init__(f"no exchange rate {source}->{target} on or before {on}")


class MissingExtraError(RevcrmError, ImportError):
    """An optional dependency is not installed; names the extra that installs it."""

    def __init__(self, module: str, extra: str, feature: str) -> None:
        self.module = module
        self.extra = extra
        super().__init__(
            f"{feature} needs {module}, which is not installed: pip install 'revcrm[{extra}]'"
        )


class PolicyError(RevcrmError, ValueError):
    """A metrics policy setting is inconsistent or unsupported."""


class NotFoundError(RevcrmError, LookupError):
    """A record looked up by id does not exist."""

    def __init__(self, kind: str, key: object) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} {_shown(key)} not found")


class UnknownReferenceError(RevcrmError, ValueError):
    """A record refers to another record that does not exist (an invoice for a missing customer)."""

    def __init__(self, field: str, value: object, kind: str) -> None:
        self.field = field
        self.value = value
        self.kind = kind
        super().__init__(f"{field}={_shown(value)}: no such {kind}")


class DuplicateError(RevcrmError, ValueError):
    """A record with the same unique key already exists."""

    def __init__(self, kind: str, key: object) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} with key {_shown(key)} already exists")


class ConflictError(RevcrmError):
    """A lost update: the record changed since it was read (version mismatch)."""

    def __init__(self, kind: str, key: object, expected: int, actual: int | None) -> None:
        self.kind = kind
        self.key = key
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"{kind} {_shown(key)}: expected version {_shown(expected)}, store has {_shown(actual)};"
            " reload and retry"
        )


class StorageError(RevcrmError):
    """A storage backend failed; the driver's error is chained as ``__cause__``."""


class TransientError(StorageError):
    """A unit of work lost a race (deadlock, serialisation failure): nothing it wrote was kept.

    Running the whole unit of work again is safe; revcrm's own multi-step operations (a
    merge, a credit spend) retry a bounded number of times before letting this escape.
    """


class TransitionNotAllowed(RevcrmError):
    """A state machine refused a move; names the record, its stage and the move."""

    def __init__(self, record: object, stage: object, move: object) -> None:
        self.record = record
        self.stage = stage
        self.move = move
        super().__init__(f"{record}: cannot move from {stage} to {move}")
