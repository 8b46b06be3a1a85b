"""Referral sources: where a lead or a customer came from."""

from __future__ import annotations

import enum
from typing import Final

import attrs

from revcrm._checks import check_text
from revcrm.errors import ValidationError

__all__ = ["ReferralKind", "ReferralSource"]


class ReferralKind(enum.StrEnum):
    DIRECT = "direct"
    REFERRAL = "referral"  # detail: the referring customer's id (required)
    CAMPAIGN = "campaign"  # detail: the campaign name (optional)
    SOCIAL = "social"  # detail: the network (optional)
    SEARCH = "search"  # detail: the search engine (optional)
    CUSTOM = "custom"  # detail: the host's own source name (required)


_DETAIL_REQUIRED: Final = frozenset({ReferralKind.REFERRAL, ReferralKind.CUSTOM})
_DETAIL_FORBIDDEN: Final = frozenset({ReferralKind.DIRECT})
_SEPARATOR: Final = ":"


def _kind(value: object) -> ReferralKind:
    if isinstance(value, ReferralKind):
        return value
    try:
        return ReferralKind(str(value).strip().lower())
    except ValueError:
        kinds = ", ".join(k.value for k in ReferralKind)
        raise ValidationError("source.kind", value, f"expected one of {kinds}") from None


def _detail(value: object) -> str | None:
    if value is None:
        return None
    return check_text(value, "source.detail").strip() or None


@attrs.frozen(kw_only=True)
class ReferralSource:
    """A referral source: a :class:`ReferralKind` and, for some kinds, a detail.

    ``str(source)`` is the canonical text form (``"direct"``, ``"referral:cus_42"``,
    ``"campaign:spring-sale"``) and :meth:`parse` reads it back, so a storage column or
    ``Customer.referral_source`` can hold it as plain text.
    """

    kind: ReferralKind = attrs.field(converter=_kind)
    detail: str | None = attrs.field(default=None, converter=_detail)

    def __attrs_post_init__(self) -> None:
        if self.kind in _DETAIL_REQUIRED and self.detail is None:
            what = "referrer customer id" if self.kind is ReferralKind.REFERRAL else "source name"
            raise ValidationError("source.detail", self.detail, f"{self.kind} needs a {what}")
        if self.kind in _DETAIL_FORBIDDEN and self.detail is not None:
            raise ValidationError("source.detail", self.detail, f"{self.kind} takes no detail")

    # -- named constructors ------------------------------------------------------------------

    @classmethod
    def direct(cls) -> ReferralSource:
        return cls(kind=ReferralKind.DIRECT)

    @classmethod
    def referral(cls, referrer_id: str) -> ReferralSource:
        return cls(kind=ReferralKind.REFERRAL, detail=referrer_id)

    @classmethod
    def campaign(cls, name: str | None = None) -> ReferralSource:
        return cls(kind=ReferralKind.CAMPAIGN, detail=name)

    @classmethod
    def social(cls, network: str | None = None) -> ReferralSource:
        return cls(kind=ReferralKind.SOCIAL, detail=network)

    @classmethod
    def search(cls, engine: str | None = None) -> ReferralSource:
        return cls(kind=ReferralKind.SEARCH, detail=engine)

    @classmethod
    def custom(cls, name: str) -> ReferralSource:
        return cls(kind=ReferralKind.CUSTOM, detail=name)

    @classmethod
    def parse(cls, text: str) -> ReferralSource:
        """Read the canonical form written by ``str()``; the kind is case-insensitive."""
        if not isinstance(text, str) or not text.strip():
            raise ValidationError("source", text, "expected a referral source such as 'direct'")
        kind, _, detail = text.strip().partition(_SEPARATOR)
        return cls(kind=kind, detail=detail or None)

    # -- reading -----------------------------------------------------------------------------

    @property
    def referrer_id(self) -> str | None:
        """The referring customer's id for a referral, else None."""
        return self.detail if self.kind is ReferralKind.REFERRAL else None

    def __str__(self) -> str:
        return self.kind.value if self.detail is None else f"{self.kind.value}:{self.detail}"
