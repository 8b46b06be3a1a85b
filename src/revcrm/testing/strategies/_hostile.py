"""Hostile inputs: values a public revcrm call must refuse with a revcrm error, or accept.

Re-exported from :mod:`revcrm.testing.strategies`. None of these values is guaranteed to
be *invalid* (an RTL mark is a fine name, ``2**64`` a fine position for some fields): they
are the values that break code which assumes well-behaved callers. A fuzz test feeds one
of them into an otherwise valid call and asserts that only a
:class:`~revcrm.errors.RevcrmError` escapes and that nothing is half-written.

Every strategy here is pure and cheap to draw (long strings are built by repetition,
never drawn character by character), so hundreds of examples run in well under a second.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from typing import Final

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

__all__ = [
    "HOSTILE_CHARACTERS",
    "LONG_TEXT_LENGTH",
    "forged_cursors",
    "hostile_dates",
    "hostile_decimals",
    "hostile_ints",
    "hostile_mappings",
    "hostile_numbers",
    "hostile_text",
    "hostile_text_or_wrong_type",
    "hostile_values",
    "wrong_types",
]

#: Single characters that break naive text handling: a NUL, C0/C1 controls, lone
#: surrogates (not encodable as UTF-8), bidirectional overrides and marks, zero-width
#: characters, a byte-order mark, a non-character, a combining mark without a base, and
#: quote, escape and wildcard characters of SQL ``LIKE`` and of format strings.
HOSTILE_CHARACTERS: Final[tuple[str, ...]] = (
    "\x00",
    "\x01",
    "\x07",
    "\x1b",
    "\x7f",
    "\x85",
    "\x9f",
    "\t",
    "\n",
    "\r",
    "\x0b",
    "\x0c",
    "\ud800",
    "\udfff",
    "\udc80",
    "\u200e",  # left-to-right mark
    "\u200f",  # right-to-left mark
    "\u202e",  # right-to-left override
    "\u2066",  # left-to-right isolate
    "\u200b",  # zero-width space
    "\u200d",  # zero-width joiner
    "\ufeff",  # byte-order mark
    "\uffff",  # a non-character
    "\U0010ffff",
    "\u0301",  # a combining accent with nothing to combine with
    "'",
    '"',
    "\\",
    "%",
    "_",
    "{",
    "}",
    ";",
)

#: Length of the "very long" strings :func:`hostile_text` draws: past SQLite's and most
#: drivers' small-buffer paths, and past every documented length limit of revcrm.
LONG_TEXT_LENGTH: Final = 100_000

_PAYLOADS: Final[tuple[str, ...]] = (
    "",
    " ",
    "   \t\n",
    "'; DROP TABLE revcrm_customer; --",
    "' OR '1'='1",
    '" OR ""="',
    "%",
    "%%",
    "_",
    "\\",
    "\\'",
    "1; SELECT pg_sleep(10)",
    "$1",
    ":name",
    "?",
    "{0}",
    "{}",
    "{__class__}",
    "{0.__class__.__mro__}",
    "%s%s%s%n",
    "%(name)s",
    "%d",
    "${jndi:ldap://127.0.0.1/x}",
    "<script>alert(1)</script>",
    "../../etc/passwd",
    "null",
    "None",
    "NaN",
    "true",
    "[]",
    "{}",
    '{"a": 1}',
    "0",
    "-1",
    "1e999999",
    "\u202egnp.exe",
    "Ǆ",  # a titlecase digraph: case mappings differ in length
    "ß",
    "İ",  # lower() grows it to two code points
    "ﬁ",
    "e\u0301",  # decomposed é
    "\u00e9",  # composed é
    "😀",
    "👩‍👩‍👧",
    "a\x00b",
    "abc\ud800",
    "\ud83d",  # half a surrogate pair
)


def _repeated(parts: SearchStrategy[str], length: int) -> SearchStrategy[str]:
    return parts.map(lambda s: (s * (length // max(len(s), 1) + 1))[:length])


def hostile_text(*, long: bool = True) -> SearchStrategy[str]:
    """Strings only: payloads (SQL-ish, format strings, JSON-ish, ``"NaN"``, empty and
    blank), single :data:`HOSTILE_CHARACTERS` alone or inside ordinary text, random text
    mixed with them, and, unless ``long=False``, strings of :data:`LONG_TEXT_LENGTH`
    characters (plain, or repeating a hostile character)."""
    char = st.sampled_from(HOSTILE_CHARACTERS)
    options: list[SearchStrategy[str]] = [
        st.sampled_from(_PAYLOADS),
        char,
        st.tuples(st.sampled_from(("", "name ", "cus_")), char, st.sampled_from(("", " x"))).map(
            "".join
        ),
        st.lists(st.one_of(char, st.text(max_size=4)), min_size=1, max_size=6).map("".join),
        st.text(
            alphabet=st.characters(codec=None, categories=("Cc", "Cf", "Cs", "Co", "Zs")),
            min_size=1,
            max_size=8,
        ),
    ]
    if long:
        options.append(
            _repeated(st.sampled_from(("x", "é", "😀", "\x00", "\ud800", "%_")), LONG_TEXT_LENGTH)
        )
    return st.one_of(options)


class _Opaque:
    """An arbitrary object of a class revcrm has never heard of."""

    def __repr__(self) -> str:
        return "<opaque>"


class _StrLike:
    """Not a str, but converts to one (``str(x)`` works): must not be taken for text."""

    def __str__(self) -> str:
        return "cus_1"

    def __repr__(self) -> str:
        return "<str-like 'cus_1'>"


def _function() -> None:
    """A callable, where a value was expected."""


def wrong_types() -> SearchStrategy[object]:
    """Values of the wrong type for any scalar field: None, bools, ints (also beyond 64
    bits), floats (finite and not), complex, bytes and bytearrays, lists, tuples, sets,
    dicts, a type, a function, an arbitrary object and one that merely converts to a str."""
    return st.one_of(
        st.none(),
        st.booleans(),
        st.sampled_from((0, 1, -1, 2**63, 2**64 + 1, -(2**63) - 1, 10**100)),
        st.sampled_from((0.0, 1.5, -0.0, float("nan"), float("inf"), float("-inf"), 1e308)),
        st.just(complex(1, 1)),
        st.sampled_from((b"", b"cus_1", b"\xff\xfe", bytearray(b"x"))),
        st.sampled_from(([], ["x"], [1, 2], (), ("x",), set(), frozenset({"x"}))),
        st.sampled_from(({}, {"a": 1}, {1: 2})),
        st.sampled_from((str, object, int)),
        st.just(_function),
        st.builds(_Opaque),
        st.builds(_StrLike),
    )


def hostile_text_or_wrong_type(*, long: bool = True) -> SearchStrategy[object]:
    """:func:`hostile_text` or :func:`wrong_types`: what a text or id field must survive."""
    return st.one_of(hostile_text(long=long), wrong_types())


_BIG_DIGITS: Final = "9" * LONG_TEXT_LENGTH


def hostile_decimals() -> SearchStrategy[Decimal]:
    """Decimals only: NaN, signalling NaN, negative NaN, ±Infinity, negative zero, huge
    and tiny exponents (``1e999999``, ``1e-999999``), the context's extremes, many
    digits (100,000 nines, as an integer and as a fraction), and values with a huge
    exponent but few digits (``9E+400``), among ordinary amounts."""
    return st.one_of(
        st.sampled_from(
            (
                Decimal("NaN"),
                Decimal("sNaN"),
                Decimal("-NaN"),
                Decimal("NaN123"),
                Decimal("Infinity"),
                Decimal("-Infinity"),
                Decimal("-0"),
                Decimal("-0.00"),
                Decimal("1e999999"),
                Decimal("-1e999999"),
                Decimal("1e-999999"),
                Decimal("9E+400"),
                Decimal("1E+28"),
                Decimal("1E-28"),
                Decimal("0E-1000"),
                Decimal("5.10472031E+11"),
                Decimal(_BIG_DIGITS),
                Decimal("0." + _BIG_DIGITS),
                Decimal(2**64),
                Decimal("0.1") + Decimal("0.2"),
            )
        ),
        st.decimals(allow_nan=True, allow_infinity=True),
    )


def hostile_numbers() -> SearchStrategy[object]:
    """Anything a numeric field might be handed: :func:`hostile_decimals`, floats (NaN,
    ±inf, 1.5, -0.0, subnormal, 1e308), bools, ints beyond 64 bits, Fractions, complex,
    and numeric-looking strings (``"NaN"``, ``"1e999999"``, 100,000 digits, ``"1_000"``,
    ``" 1 "``, Arabic-Indic digits, hex) that ``Decimal()`` or ``int()`` might swallow."""
    return st.one_of(
        hostile_decimals(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from((float("nan"), float("inf"), -float("inf"), 1.5, -0.0, 5e-324, 1e308)),
        st.booleans(),
        st.sampled_from((2**63, 2**64, -(2**63) - 1, 10**100, -(10**100), 10**4300)),
        st.sampled_from((Fraction(1, 3), Fraction(-7, 2), complex(1, 0))),
        st.sampled_from(
            (
                "NaN",
                "sNaN",
                "-Infinity",
                "inf",
                "1e999999",
                "1e-999999",
                "1E+1000",
                _BIG_DIGITS,
                "-" + _BIG_DIGITS,
                "1_000",
                " 1 ",
                "1,5",
                "\u0663",  # Arabic-Indic three
                "\uff11",  # fullwidth one
                "0x10",
                "",
                "--1",
                "1.2.3",
            )
        ),
    )


def hostile_ints() -> SearchStrategy[object]:
    """What an integer field (a quantity, a limit, a version, a number of months) might
    be handed: 0, negatives, huge ints, bools, floats, Decimals, numeric strings, None."""
    return st.one_of(
        st.sampled_from((0, -1, -(2**31), 2**31, 2**63, 2**64, 10**6, 10**9, 10**100)),
        st.integers(),
        st.booleans(),
        st.sampled_from((1.0, 1.5, float("nan"), float("inf"))),
        st.sampled_from((Decimal(1), Decimal("1.5"), Decimal("NaN"))),
        st.sampled_from(("1", "0", "-1", "\u0663", "1e3")),
        st.none(),
    )


_TZ_EXTREMES: Final = (
    timezone(timedelta(hours=23, minutes=59)),
    timezone(timedelta(hours=-23, minutes=-59)),
    timezone(timedelta(seconds=1)),
)


def hostile_dates() -> SearchStrategy[object]:
    """What a moment or day field might be handed: naive datetimes, aware datetimes at
    the edges of the calendar (year 1, year 9999, with extreme offsets that push them past
    either end when converted to UTC), plain dates where a datetime is expected and
    datetimes where a date is, a ``time``, a ``timedelta``, ISO strings, epoch numbers,
    and wrong types."""
    aware_edges = st.sampled_from(
        (
            datetime(1, 1, 1, tzinfo=UTC),
            datetime(1, 1, 1, 0, 0, tzinfo=_TZ_EXTREMES[0]),
            datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
            datetime(9999, 12, 31, 23, 59, tzinfo=_TZ_EXTREMES[1]),
            datetime(1970, 1, 1, tzinfo=UTC),
            datetime(2024, 2, 29, tzinfo=_TZ_EXTREMES[2]),
            datetime(2024, 11, 3, 1, 30, fold=1, tzinfo=UTC),
        )
    )
    return st.one_of(
        st.datetimes(),  # naive
        st.datetimes(timezones=st.sampled_from((UTC, *_TZ_EXTREMES))),
        aware_edges,
        st.sampled_from((date(1, 1, 1), date(9999, 12, 31), date(2024, 2, 29))),
        st.dates(),
        st.sampled_from((time(12, 0), time(0, 0, tzinfo=UTC), timedelta(days=1))),
        st.sampled_from(("2024-01-01", "2024-01-01T00:00:00Z", "yesterday", "")),
        st.sampled_from((0, 1_700_000_000, 1.7e9, -1)),
        st.none(),
    )


def hostile_mappings() -> SearchStrategy[object]:
    """What a mapping field (custom attributes, details) might be handed: non-str keys
    (ints, None, tuples, bytes, bools), hostile text keys, values that are bytes, NaN,
    infinities, nested dicts and lists, sets, objects and huge ints; and non-mappings
    (a list of pairs, a list, a string, None)."""
    keys: SearchStrategy[object] = st.one_of(
        st.sampled_from((1, 0, None, ("a", 1), b"k", True, 1.5)),
        hostile_text(long=False),
    )
    values: SearchStrategy[object] = st.one_of(
        st.sampled_from(
            (
                b"\x00\xff",
                Decimal("NaN"),
                Decimal("sNaN"),
                Decimal("Infinity"),
                Decimal("1e999999"),
                float("nan"),
                float("inf"),
                2**64,
                10**100,
                None,
                {"nested": {"deeper": b"x"}},
                ["a", 1, None],
                {"x"},
                ("t", 1),
                complex(1, 1),
                date(1, 1, 1),
                datetime(2024, 1, 1),  # naive
                time(1, 2),
            )
        ),
        st.builds(_Opaque),
        hostile_text(long=False),
    )
    good_key = st.sampled_from(("plan_tier", "seats"))
    good_value = st.sampled_from(("gold", 3, True))
    one_bad = st.one_of(
        st.dictionaries(keys, good_value, min_size=1, max_size=3),
        st.dictionaries(good_key, values, min_size=1, max_size=2),
        st.dictionaries(keys, values, min_size=1, max_size=3),
    )
    not_mappings: SearchStrategy[object] = st.sampled_from(
        ([("a", 1)], [1, 2], "a=1", None, 0, b"{}", {"a"})
    )
    return st.one_of(one_bad, not_mappings)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


_JSON: Final[SearchStrategy[object]] = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False),
        st.text(max_size=8),
        st.sampled_from(("NaN", "1e999999", "Infinity", "9999-12-31T23:59:59", "0001-01-01")),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


def _dumps(value: object) -> bytes:
    return json.dumps(value).encode()


def forged_cursors() -> SearchStrategy[str]:
    """Cursors no store issued: base64 of arbitrary bytes and of arbitrary JSON (lists of
    a sort value and an id, with huge numbers, NaN strings and wrong types), invalid
    base64, padding games and :func:`hostile_text`. A store must refuse each with a
    :class:`~revcrm.errors.ValidationError` (or, by luck, read it as a valid position)."""
    return st.one_of(
        st.binary(max_size=48).map(_b64),
        _JSON.map(_dumps).map(_b64),
        st.tuples(
            st.text(max_size=6),
            st.one_of(
                st.sampled_from(
                    ("1e999999", "NaN", "-Infinity", "9" * 5000, "0001-01-01T00:00:00")
                ),
                st.integers(),
                st.none(),
                st.lists(st.integers(), max_size=2),
            ),
            st.one_of(st.text(max_size=6), st.integers(), st.none()),
        )
        .map(list)
        .map(_dumps)
        .map(_b64),
        st.sampled_from(("", "=", "====", "!!!!", "a", "abc=", "YQ", "W10", "bnVsbA", "e30")),
        hostile_text(long=False),
    )


def hostile_values() -> SearchStrategy[object]:
    """Any of the hostile strategies here: text, wrong types, numbers, dates, mappings."""
    return st.one_of(
        hostile_text(),
        wrong_types(),
        hostile_numbers(),
        hostile_dates(),
        hostile_mappings(),
    )
