"""ReferralSource: named constructors, validation and the text form."""

from __future__ import annotations

import pytest
from hypothesis import given

from revcrm.errors import ValidationError
from revcrm.leads import ReferralKind, ReferralSource
from revcrm.testing.strategies import referral_sources


def test_named_constructors_and_text_form() -> None:
    assert str(ReferralSource.direct()) == "direct"
    assert str(ReferralSource.referral("cus-42")) == "referral:cus-42"
    assert ReferralSource.referral("cus-42").referrer_id == "cus-42"
    assert ReferralSource.custom("podcast").referrer_id is None
    assert str(ReferralSource.campaign()) == "campaign"
    assert str(ReferralSource.campaign(" spring ")) == "campaign:spring"
    assert str(ReferralSource.social("mastodon")) == "social:mastodon"
    assert str(ReferralSource.search()) == "search"
    assert str(ReferralSource.custom("podcast")) == "custom:podcast"


def test_parse_is_lenient_about_case_and_spaces() -> None:
    assert ReferralSource.parse(" Referral:cus-1 ") == ReferralSource.referral("cus-1")
    assert ReferralSource.parse("SEARCH") == ReferralSource.search()
    assert ReferralSource.parse("custom:a:b") == ReferralSource.custom("a:b")
    assert ReferralSource.parse("campaign:") == ReferralSource.campaign()


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("", "source"),
        ("  ", "source"),
        ("word of mouth", "source.kind"),
        ("referral", "source.detail"),
        ("custom:  ", "source.detail"),
        ("direct:homepage", "source.detail"),
    ],
)
def test_bad_sources_name_the_field(text: str, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        ReferralSource.parse(text)
    assert info.value.field == field


def test_detail_must_be_text() -> None:
    with pytest.raises(ValidationError):
        ReferralSource(kind=ReferralKind.CUSTOM, detail=3)
    with pytest.raises(ValidationError):
        ReferralSource.parse(None)  # type: ignore[arg-type]


@given(source=referral_sources())
def test_the_text_form_round_trips(source: ReferralSource) -> None:
    assert ReferralSource.parse(str(source)) == source
    assert str(source).split(":", 1)[0] == source.kind.value
