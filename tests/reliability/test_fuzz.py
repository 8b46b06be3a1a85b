"""Fuzz: one hostile argument at a time into otherwise valid public calls (issue 12).

Every public record and value constructor, the value objects' named constructors and
methods, every method of the Store protocol (in memory, SQLite, and a few examples on
PostgreSQL) and every public method of the CRM facade (in memory) is called with valid
arguments, one of which is replaced by a value from :mod:`revcrm.testing.strategies`'
hostile strategies. Each call must either succeed or raise a
:class:`~revcrm.errors.RevcrmError`:

* anything else escaping fails the example, re-raised as itself with a note naming the
  call and the hostile value (so hypothesis reports each distinct escape separately);
* a record built from a hostile value must hold the types its fields declare (a
  ``Customer`` whose name is ``None`` is a hole even if nothing raised yet);
* after a failed write the store holds exactly what it held before (nothing half
  written); after an accepted write the store still reads (its book, its customer list,
  its dashboard) and the written record reads back equal.

Examples run per test are counted in ``FUZZ_COUNTS`` and printed (``-s``) at the end of
the module; with ``REVCRM_FUZZ_COUNTS=path`` they are also written there as JSON.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import json
import os
import shutil
import types
import typing
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from revcrm import CRM, Book, Money
from revcrm.errors import RevcrmError
from revcrm.storage import InMemoryCRMStore, InMemoryStore, SQLCRMStore, SQLStore
from revcrm.testing import strategies as S

from . import _fuzz_cases as C

FUZZ_COUNTS: Final[collections.Counter[str]] = collections.Counter()

_SLOW: Final = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]


@pytest.fixture(scope="module", autouse=True)
def _report_counts() -> Iterator[None]:
    yield
    total = sum(FUZZ_COUNTS.values())
    lines = [f"  {k}: {v}" for k, v in sorted(FUZZ_COUNTS.items())]
    print(f"\nfuzz counts ({total} examples):\n" + "\n".join(lines))
    path = os.environ.get("REVCRM_FUZZ_COUNTS")
    if path:
        Path(path).write_text(json.dumps(dict(FUZZ_COUNTS), indent=1, sort_keys=True))


# -- drawing hostile arguments ----------------------------------------------------------------


def _short(value: object) -> str:
    try:
        text = repr(value)
    except Exception as e:  # a hostile object may not even repr
        text = f"<unrepresentable {type(value).__name__}: {type(e).__name__}>"
    return text if len(text) <= 160 else f"{text[:120]}... ({len(text)} chars)"


def _hostile_money() -> SearchStrategy[object]:
    """Valid Money that is wrong for the call: other currencies, negative, zero, huge,
    below the minor unit (whatever Money itself accepts today)."""
    made: list[object] = []
    for amount, currency in [
        ("10.00", "EUR"),
        ("1000", "JPY"),
        ("1.234", "KWD"),
        ("-10.00", "USD"),
        ("0", "USD"),
        ("0.0000001", "USD"),
        ("1E+15", "USD"),
        ("999999999999999999", "USD"),
    ]:
        with contextlib.suppress(RevcrmError):
            made.append(Money(Decimal(amount), currency))
    return st.sampled_from(made)


_HOSTILE: Final[Mapping[str, SearchStrategy[object]]] = {
    "text": S.hostile_text_or_wrong_type(),
    "int": st.one_of(S.hostile_ints(), S.wrong_types()),
    "date": S.hostile_dates(),
    "number": st.one_of(S.hostile_numbers(), _hostile_money(), S.wrong_types()),
    "money": st.one_of(_hostile_money(), S.hostile_numbers(), S.wrong_types()),
    "mapping": S.hostile_mappings(),
    "cursor": S.forged_cursors(),
    "any": S.hostile_values(),
}


def _kind(name: str, value: object) -> str:
    if name in C.KINDS:
        return C.KINDS[name]
    if isinstance(value, Money):
        return "money"
    if isinstance(value, bool):
        return "any"
    if isinstance(value, int):
        return "int"
    if isinstance(value, (date, datetime)):
        return "date"
    if isinstance(value, Decimal):
        return "number"
    if isinstance(value, str) or value is None:
        return "text"
    if isinstance(value, Mapping):
        return "mapping"
    return "any"


def _record_variant(base: object, draw: st.DrawFn) -> object:
    """``base`` with one field hostile: the record if its class accepts the value,
    else the hostile value itself (passed where the record was expected)."""
    kwargs = C.init_kwargs(base)
    if not kwargs:
        return draw(_HOSTILE["any"], label="value")
    name = draw(st.sampled_from(sorted(kwargs)), label="field")
    value = draw(_argument(name, kwargs[name]), label="value")
    try:
        return type(base)(**{**kwargs, name: value})
    except RevcrmError:
        return value


def _sequence_variant(base: list[object] | tuple[object, ...], draw: st.DrawFn) -> object:
    items = list(base)
    how = draw(st.sampled_from(("append", "replace", "hostile")), label="how")
    if how == "hostile" or not items:
        return draw(_HOSTILE["any"], label="sequence")
    if how == "append":
        return [*items, draw(_HOSTILE["any"], label="item")]
    return [
        _record_variant(items[0], draw)
        if attrs.has(type(items[0]))
        else draw(_HOSTILE["any"], label="item"),
        *items[1:],
    ]


@st.composite
def _variant_of(draw: st.DrawFn, name: str, base: object) -> object:
    if attrs.has(type(base)) and not isinstance(base, Book):
        if draw(st.booleans(), label="whole value"):
            return draw(_HOSTILE["any"], label="value")
        return _record_variant(base, draw)
    if isinstance(base, Book):
        kind = draw(
            st.sampled_from(
                (
                    "customers",
                    "products",
                    "plans",
                    "subscriptions",
                    "invoices",
                    "transactions",
                    "credits",
                )
            )
        )
        donor = {
            "customers": C.CUSTOMER,
            "products": C.PRODUCT,
            "plans": C.PLAN,
            "subscriptions": C.SUBSCRIPTION,
            "invoices": C.INVOICE,
            "transactions": C.TRANSACTION,
            "credits": C.CREDIT,
        }[kind]
        record = _record_variant(donor, draw)
        try:
            return Book.of(**{kind: [record]})  # type: ignore[arg-type]
        except RevcrmError:
            return record
    if isinstance(base, (list, tuple)) and not isinstance(base, str):
        return _sequence_variant(base, draw)
    return draw(_HOSTILE[_kind(name, base)], label=name)


def _argument(name: str, base: object) -> SearchStrategy[object]:
    """A hostile stand-in for argument ``name`` whose valid value is ``base``."""
    return st.one_of(_variant_of(name, base), _HOSTILE["any"])


# -- checking outcomes ------------------------------------------------------------------------


def _attempt(label: str, name: str, value: object, fn: Callable[[], object]) -> tuple[bool, object]:
    """Run ``fn``: (True, result), (False, the RevcrmError); anything else re-raised with
    a note naming the call and the hostile argument."""
    try:
        return True, fn()
    except RevcrmError as e:
        return False, e
    except Exception as e:
        e.add_note(f"fuzz escape: {label} with {name}={_short(value)}")
        e.add_note("only revcrm.errors.RevcrmError subclasses may leave the public API")
        raise


def _type_ok(value: object, hint: object) -> bool:
    """Whether ``value`` is of the declared type ``hint`` (the simple cases only; an
    unknown hint is taken as satisfied)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint is Decimal:
        return isinstance(value, Decimal) and value.is_finite()
    if hint is datetime:
        return isinstance(value, datetime) and value.tzinfo is not None
    if hint is date:
        return isinstance(value, date) and not isinstance(value, datetime)
    if origin is tuple:
        return isinstance(value, tuple)
    if origin in (Mapping, dict):
        key = typing.get_args(hint)[:1]
        return isinstance(value, Mapping) and (
            key != (str,) or all(isinstance(k, str) for k in value)
        )
    if isinstance(hint, type) and (issubclass(hint, enum.Enum) or attrs.has(hint)):
        return isinstance(value, hint)
    return True


def _check_types(record: object, label: str, name: str, value: object) -> None:
    hints = typing.get_type_hints(type(record))
    for f in attrs.fields(type(record)):  # type: ignore[arg-type]
        if (
            not f.name.startswith("_")
            and f.name in hints
            and not _type_ok(getattr(record, f.name), hints[f.name])
        ):
            raise AssertionError(
                f"{label} accepted {name}={_short(value)}: field {f.name} now holds "
                f"{_short(getattr(record, f.name))}, not a {hints[f.name]}"
            )


# -- constructors and value methods -----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(C.RECORDS))
def test_valid_records_rebuild(name: str) -> None:
    # The base of every constructor case is valid, so a refusal below is the hostile
    # value's doing.
    base = C.RECORDS[name]
    assert type(base)(**C.init_kwargs(base)) == base


@pytest.mark.parametrize("name", sorted(C.RECORDS))
@given(data=st.data())
def test_constructors_refuse_hostile_fields(name: str, data: st.DataObject) -> None:
    FUZZ_COUNTS["constructors"] += 1
    base = C.RECORDS[name]
    kwargs = C.init_kwargs(base)
    field = data.draw(st.sampled_from(sorted(kwargs)), label="field")
    value = data.draw(_argument(field, kwargs[field]), label="value")
    ok, made = _attempt(
        f"{name}(...)", field, value, lambda: type(base)(**{**kwargs, field: value})
    )
    if ok:
        _check_types(made, f"{name}(...)", field, value)


_VALUE_CALLS: Final = {c.label: c for c in C.value_calls()}


@pytest.mark.parametrize("label", sorted(_VALUE_CALLS))
def test_valid_value_calls_succeed(label: str) -> None:
    _VALUE_CALLS[label]()


@pytest.mark.parametrize("label", sorted(_VALUE_CALLS))
@given(data=st.data())
def test_value_methods_refuse_hostile_arguments(label: str, data: st.DataObject) -> None:
    FUZZ_COUNTS["value methods"] += 1
    call = _VALUE_CALLS[label]
    name = data.draw(st.sampled_from(list(call.args)), label="argument")
    value = data.draw(_argument(name, call.args[name]), label="value")
    ok, made = _attempt(label, name, value, lambda: call({name: value}))
    if ok and attrs.has(type(made)) and not isinstance(made, Book):
        _check_types(made, label, name, value)


# -- stores -----------------------------------------------------------------------------------

_LABELS_STORE = InMemoryStore()
_READ_LABELS: Final = [c.label for c in C.read_calls(_LABELS_STORE)]
_WRITE_LABELS: Final = [c.label for c in C.write_calls(_LABELS_STORE)]


def _by_label(calls: list[C.Call], label: str) -> C.Call:
    return next(c for c in calls if c.label == label)


def _memory_store() -> InMemoryStore:
    store = InMemoryStore()
    store.import_book(C.BOOK)
    return store


@pytest.fixture(scope="module")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file holding ``BOOK``: each write example works on a fresh copy."""
    path = tmp_path_factory.mktemp("fuzz") / "template.db"
    store = SQLStore(f"sqlite:///{path}")
    store.create_schema()
    store.import_book(C.BOOK)
    store.close()
    return path


class _SQLiteCopies:
    def __init__(self, template: Path) -> None:
        self._template = template
        self._made = 0

    def fresh(self) -> SQLStore:
        self._made += 1
        path = self._template.with_name(f"copy{self._made}.db")
        shutil.copyfile(self._template, path)
        return SQLStore(f"sqlite:///{path}")


@pytest.fixture(scope="module")
def sqlite_copies(sqlite_template: Path) -> _SQLiteCopies:
    return _SQLiteCopies(sqlite_template)


@pytest.fixture(scope="module", params=["memory", "sqlite"])
def read_store(request: pytest.FixtureRequest, sqlite_template: Path) -> Iterator[Any]:
    """One store per backend for the read fuzz: reads must not change it."""
    if request.param == "memory":
        store: Any = _memory_store()
    else:
        store = SQLStore(f"sqlite:///{sqlite_template}")
    yield store
    store.close()


def _cursor_mutations(store: Any) -> SearchStrategy[object]:
    """Real cursors of ``store`` edited: truncated, a character changed, padded."""
    real = [
        store.customers.page(as_of=C.AS_OF, currency="USD", limit=1).next_cursor,
        store.invoices.page(limit=1).next_cursor,
        store.subscriptions.page(limit=1).next_cursor,
    ]
    cursors = [c for c in real if c]

    def mutate(args: tuple[str, int, str, str]) -> str:
        cursor, at, char, how = args
        at %= len(cursor)
        if how == "cut":
            return cursor[:at]
        if how == "pad":
            return cursor + "=" * (at % 4 + 1)
        return cursor[:at] + char + cursor[at + 1 :]

    if not cursors:
        return S.forged_cursors()
    return st.tuples(
        st.sampled_from(cursors),
        st.integers(0, 10_000),
        st.sampled_from("AZaz09-_=+/\x00\ud800é"),
        st.sampled_from(("cut", "pad", "swap")),
    ).map(mutate)


def _read_argument(call: C.Call, name: str, store: Any) -> SearchStrategy[object]:
    if name == "cursor":
        return st.one_of(S.forged_cursors(), _cursor_mutations(store))
    return _argument(name, call.args[name])


@pytest.mark.parametrize("label", _READ_LABELS)
def test_valid_reads_succeed(label: str, read_store: Any) -> None:
    _by_label(C.read_calls(read_store), label)()


@pytest.mark.parametrize("label", _READ_LABELS)
@settings(max_examples=12, suppress_health_check=_SLOW)
@given(data=st.data())
def test_reads_refuse_hostile_arguments(label: str, read_store: Any, data: st.DataObject) -> None:
    FUZZ_COUNTS[f"store reads [{type(read_store).__name__}]"] += 1
    call = _by_label(C.read_calls(read_store), label)
    if not call.args:
        return
    name = data.draw(st.sampled_from(list(call.args)), label="argument")
    value = data.draw(_read_argument(call, name, read_store), label="value")
    _attempt(f"{type(read_store).__name__}.{label}", name, value, lambda: call({name: value}))


def _written_id(call: C.Call, value: object, name: str) -> tuple[str, str] | None:
    """(repository, id) of the record an accepted upsert wrote, to read it back."""
    repo = call.label.split(".")[0]
    if name == "record" and call.label.startswith(f"{repo}.upsert") and "many" not in call.label:
        record_id = getattr(value, "id", None)
        if isinstance(record_id, str):
            return repo, record_id
    return None


def _probe(store: Any, label: str, name: str, value: object) -> None:
    """After an accepted write, the store still reads."""
    for probe in (
        store.book,
        lambda: store.customers.page(as_of=C.AS_OF, currency="USD", limit=50),
        lambda: store.dashboard(as_of=C.AS_OF, currency="USD", trend_months=2),
        lambda: store.segment_counts(as_of=C.AS_OF, currency="USD"),
    ):
        _attempt(f"a read after {label} accepted it", name, value, probe)


def _fuzz_write(store: Any, label: str, data: st.DataObject) -> None:
    call = _by_label(C.write_calls(store), label)
    name = data.draw(st.sampled_from(list(call.args)), label="argument")
    value = data.draw(_argument(name, call.args[name]), label="value")
    before = C.store_state(store)
    ok, _ = _attempt(f"{type(store).__name__}.{label}", name, value, lambda: call({name: value}))
    if not ok:
        assert C.store_state(store) == before, (
            f"{label} with {name}={_short(value)} failed but changed the store"
        )
        return
    _probe(store, label, name, value)
    written = _written_id(call, value, name)
    if written is not None:
        repo, record_id = written
        back = getattr(store, repo).get(record_id)
        assert back == value, (
            f"{label} accepted {name}={_short(value)} but reads back {_short(back)}"
        )


@pytest.mark.parametrize("label", _WRITE_LABELS)
def test_valid_writes_succeed(label: str, sqlite_copies: _SQLiteCopies) -> None:
    for store in (_memory_store(), sqlite_copies.fresh()):
        _by_label(C.write_calls(store), label)()
        store.close()


@pytest.mark.parametrize("label", _WRITE_LABELS)
@settings(max_examples=25)
@given(data=st.data())
def test_memory_writes_refuse_hostile_arguments(label: str, data: st.DataObject) -> None:
    FUZZ_COUNTS["store writes [InMemoryStore]"] += 1
    _fuzz_write(_memory_store(), label, data)


@settings(max_examples=30, suppress_health_check=_SLOW)
@given(data=st.data())
def test_sqlite_writes_refuse_hostile_arguments(
    sqlite_copies: _SQLiteCopies, data: st.DataObject
) -> None:
    FUZZ_COUNTS["store writes [SQLStore sqlite]"] += 1
    label = data.draw(st.sampled_from(_WRITE_LABELS), label="call")
    store = sqlite_copies.fresh()
    try:
        _fuzz_write(store, label, data)
    finally:
        store.close()


@pytest.fixture(scope="module")
def postgres_store(postgres_url: str) -> Iterator[SQLStore]:
    store = SQLStore(postgres_url, prefix=f"fz{uuid.uuid4().hex[:10]}_")
    store.create_schema()
    store.import_book(C.BOOK)
    yield store
    store.drop_schema()
    store.close()


@pytest.mark.postgres
@settings(max_examples=40, suppress_health_check=_SLOW)
@given(data=st.data())
def test_postgres_reads_refuse_hostile_arguments(
    postgres_store: SQLStore, data: st.DataObject
) -> None:
    FUZZ_COUNTS["store reads [SQLStore postgresql]"] += 1
    calls = C.read_calls(postgres_store)
    call = data.draw(st.sampled_from([c for c in calls if c.args]), label="call")
    name = data.draw(st.sampled_from(list(call.args)), label="argument")
    value = data.draw(_read_argument(call, name, postgres_store), label="value")
    _attempt(f"SQLStore(postgresql).{call.label}", name, value, lambda: call({name: value}))


@pytest.mark.postgres
@settings(max_examples=25, suppress_health_check=_SLOW)
@given(data=st.data())
def test_postgres_writes_refuse_hostile_arguments(
    postgres_store: SQLStore, data: st.DataObject
) -> None:
    # One shared store (a schema per example would be slow): an accepted write stays,
    # which is fine, since each example compares the store with itself just before.
    FUZZ_COUNTS["store writes [SQLStore postgresql]"] += 1
    label = data.draw(st.sampled_from(_WRITE_LABELS), label="call")
    call = _by_label(C.write_calls(postgres_store), label)
    name = data.draw(st.sampled_from(list(call.args)), label="argument")
    value = data.draw(_argument(name, call.args[name]), label="value")
    before = C.store_state(postgres_store)
    ok, _ = _attempt(f"SQLStore(postgresql).{label}", name, value, lambda: call({name: value}))
    if not ok:
        assert C.store_state(postgres_store) == before, (
            f"{label} with {name}={_short(value)} failed but changed the store"
        )
    else:
        _probe(postgres_store, label, name, value)


@given(
    busy_timeout=st.one_of(S.hostile_numbers(), S.wrong_types()),
    prefix=st.one_of(st.just("revcrm_"), S.hostile_text_or_wrong_type(long=False)),
)
def test_sqlstore_options_refuse_hostile_values(busy_timeout: object, prefix: object) -> None:
    FUZZ_COUNTS["SQLStore options"] += 1

    def open_store() -> None:
        SQLStore("sqlite://", prefix=prefix, busy_timeout=busy_timeout).close()  # type: ignore[arg-type]

    _attempt(
        "SQLStore('sqlite://', ...)", "busy_timeout/prefix", (busy_timeout, prefix), open_store
    )


def test_create_schema_in_a_missing_folder_is_a_revcrm_error(tmp_path: Path) -> None:
    store = SQLStore(f"sqlite:///{tmp_path}/no/such/folder/revcrm.db")
    with pytest.raises(RevcrmError):
        store.create_schema()


# -- the CRM facade ---------------------------------------------------------------------------


def _crm() -> Any:
    return C.seeded_crm(InMemoryStore(), InMemoryCRMStore())


_FACADE_LABELS: Final = [c.label for c in C.facade_calls(_crm())]


@pytest.mark.parametrize("label", _FACADE_LABELS)
def test_valid_facade_calls_succeed(label: str) -> None:
    crm = _crm()
    _by_label(C.facade_calls(crm), label)()


@pytest.mark.parametrize("label", _FACADE_LABELS)
@settings(max_examples=15)
@given(data=st.data())
def test_facade_refuses_hostile_arguments(label: str, data: st.DataObject) -> None:
    FUZZ_COUNTS["CRM facade [memory]"] += 1
    crm = _crm()
    call = _by_label(C.facade_calls(crm), label)
    if not call.args:
        return
    name = data.draw(st.sampled_from(list(call.args)), label="argument")
    value = data.draw(_argument(name, call.args[name]), label="value")
    before = C.crm_state(crm)
    ok, _ = _attempt(f"CRM.{label}", name, value, lambda: call({name: value}))
    if not ok:
        assert C.crm_state(crm) == before, (
            f"CRM.{label} with {name}={_short(value)} failed but changed the stores"
        )
    else:
        _attempt(
            f"a read after CRM.{label} accepted it",
            name,
            value,
            lambda: crm.customers.list(as_of=C.AS_OF),
        )


@given(
    option=st.sampled_from(
        ("reporting_currency", "clock", "policy", "allow_negative_credit", "segment_config")
    ),
    value=S.hostile_values(),
)
def test_crm_options_refuse_hostile_values(option: str, value: object) -> None:
    FUZZ_COUNTS["CRM options"] += 1
    valid: dict[str, object] = {"reporting_currency": "USD", "clock": lambda: C.AS_OF}

    def build() -> object:
        crm = CRM(InMemoryStore(), InMemoryCRMStore(), **{**valid, option: value})  # type: ignore[arg-type]
        return crm.metrics.dashboard(trend_months=1)

    _attempt("CRM(...).metrics.dashboard()", option, value, build)


# -- the CRM stores, called directly ----------------------------------------------------------
#
# A host may use the CRM stores without the facade (they are public): every repository
# method gets one hostile argument into an otherwise valid call, on a store seeded with
# one record of each kind.

_CRM_STORE_LABELS: Final = [c.label for c in C.crm_store_calls(InMemoryCRMStore())]


def _sqlite_crm_store() -> SQLCRMStore:
    store = SQLCRMStore("sqlite://")
    store.create_schema()
    return store


def _fuzz_crm_store(store: Any, label: str, data: st.DataObject, backend: str) -> None:
    call = _by_label(C.crm_store_calls(store), label)
    if not call.args:
        return
    name = data.draw(st.sampled_from(list(call.args)), label="argument")
    value = data.draw(_argument(name, call.args[name]), label="value")
    before = C.crm_store_state(store)
    where = f"{backend}.{label}"
    ok, _ = _attempt(where, name, value, lambda: call({name: value}))
    if not ok:
        assert C.crm_store_state(store) == before, (
            f"{where} with {name}={_short(value)} failed but changed the store"
        )
    else:
        _attempt(f"a read after {where} accepted it", name, value, lambda: C.crm_store_state(store))


@pytest.mark.parametrize("label", _CRM_STORE_LABELS)
def test_valid_crm_store_calls_succeed(label: str) -> None:
    for store in (InMemoryCRMStore(), _sqlite_crm_store()):
        _by_label(C.crm_store_calls(C.seed_crm_store(store)), label)()


@pytest.mark.parametrize("label", _CRM_STORE_LABELS)
@settings(max_examples=8)
@given(data=st.data())
def test_memory_crm_store_refuses_hostile_arguments(label: str, data: st.DataObject) -> None:
    FUZZ_COUNTS["CRM store [InMemoryCRMStore]"] += 1
    _fuzz_crm_store(C.seed_crm_store(InMemoryCRMStore()), label, data, "InMemoryCRMStore")


@settings(max_examples=60, suppress_health_check=_SLOW)
@given(data=st.data())
def test_sqlite_crm_store_refuses_hostile_arguments(data: st.DataObject) -> None:
    FUZZ_COUNTS["CRM store [SQLCRMStore sqlite]"] += 1
    label = data.draw(st.sampled_from(_CRM_STORE_LABELS), label="call")
    store = C.seed_crm_store(_sqlite_crm_store())
    try:
        _fuzz_crm_store(store, label, data, "SQLCRMStore(sqlite)")
    finally:
        store.close()


@pytest.fixture(scope="module")
def postgres_crm_store(postgres_url: str) -> Iterator[SQLCRMStore]:
    store = SQLCRMStore(postgres_url, prefix=f"fc{uuid.uuid4().hex[:10]}_")
    store.create_schema()
    C.seed_crm_store(store)
    yield store
    store.drop_schema()
    store.close()


@pytest.mark.postgres
@settings(max_examples=20, suppress_health_check=_SLOW)
@given(data=st.data())
def test_postgres_crm_store_refuses_hostile_arguments(
    postgres_crm_store: SQLCRMStore, data: st.DataObject
) -> None:
    # One shared store, as for the billing store: an accepted write stays, and each
    # example compares the store with itself just before.
    FUZZ_COUNTS["CRM store [SQLCRMStore postgresql]"] += 1
    label = data.draw(st.sampled_from(_CRM_STORE_LABELS), label="call")
    _fuzz_crm_store(postgres_crm_store, label, data, "SQLCRMStore(postgresql)")
