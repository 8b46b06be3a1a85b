"""``read_lines``: invoice lines from a CSV file or a table straight into :class:`LineColumns`.

No object is built per line. Each column is dictionary-encoded (pyarrow when installed,
else the ``csv`` module in chunks into integer code arrays); every *distinct* cell is
parsed once, by the very :class:`~revcrm.io._columns.Cells` rules ``read_csv`` uses, and
the row checks are array operations. A row any check flags is replayed through
``read_csv``'s own row builder, so its error (row, column, value, reason) is exactly the
one ``read_csv`` gives; an invoice with text no store can hold, or with a credit line that
breaks a credit's rules, is rebuilt through ``read_csv``'s invoice builder, so its lines
and errors match too. Credit lines (negative amounts) are read in columns like any line:
a recurring credit is a negative line of its own stream, a one-off credit lowers the
invoice only. Money is parsed exactly to integers at a common scale (never through a float).
"""

from __future__ import annotations

import csv
import gc
import importlib
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from itertools import islice
from typing import Any, Final, Literal

import attrs
import numpy as np
import numpy.typing as npt

from revcrm._checks import storable_text
from revcrm._ledger._columns import EPOCH, MAX_SCALE, LineColumns, micros
from revcrm._money import Money
from revcrm._records import InvoiceStatus, LineKind
from revcrm.errors import ValidationError
from revcrm.io._columns import Cells, RowError, Zone
from revcrm.io._csv import OnError, _Builder, _open, _Options, _status

__all__ = ["LinesReport", "read_lines"]

Engine = Literal["auto", "arrow", "python"]

_CHUNK: Final = 65_536
_I64MAX: Final = int(np.iinfo(np.int64).max)
_POW10: Final = np.array([10**k for k in range(MAX_SCALE + 1)], dtype=np.int64)
_STATUSES: Final = tuple(InvoiceStatus)
_NOT_COUNTED: Final = (
    _STATUSES.index(InvoiceStatus.VOID),
    _STATUSES.index(InvoiceStatus.DRAFT),
)
_DAY_US: Final = 86_400_000_000
_EPOCH_ORDINAL: Final = EPOCH.date().toordinal()


@attrs.frozen(kw_only=True, eq=False)
class LinesReport:
    """What :func:`read_lines` read: the counted recurring lines as columns, the rows left
    out (``on_error="collect"``), the number of data rows and the reader that ran."""

    lines: LineColumns
    errors: tuple[RowError, ...] = ()
    rows: int = 0
    engine: str = "python"

    @property
    def ok(self) -> bool:
        return not self.errors


# -- encoded input ---------------------------------------------------------------------------


@attrs.define
class _Column:
    """A column's distinct cells and each row's code, encoded on first use."""

    _codes: npt.NDArray[np.int64] | None = None
    _uniques: list[Any] | None = None  # raw cells: str (CSV), typed (frames), None (missing)
    arrow: Any = None  # the Arrow array it came from, if any

    @property
    def codes(self) -> npt.NDArray[np.int64]:
        self._encode()
        assert self._codes is not None
        return self._codes

    @property
    def uniques(self) -> list[Any]:
        self._encode()
        assert self._uniques is not None
        return self._uniques

    def _encode(self) -> None:
        if self._codes is not None:
            return
        # One memo over the chunks: every chunk's codes index the last chunk's dictionary
        # (a CSV's columns come dictionary-encoded and unified: one dictionary for all).
        pa = importlib.import_module("pyarrow")
        if pa.types.is_dictionary(self.arrow.type):
            chunks = self.arrow.chunks
        else:
            chunks = self.arrow.dictionary_encode().chunks
        uniques = chunks[-1].dictionary.to_pylist() if chunks else []
        parts = [_numpy_ints(c.indices) for c in chunks]
        codes = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        if any(c.indices.null_count for c in chunks):
            codes[np.concatenate([_nulls(c.indices) for c in chunks])] = len(uniques)
            uniques.append(None)
        self._codes = codes
        self._uniques = uniques
        self.arrow = None  # the text is no longer needed

    def nul_rows(self) -> npt.NDArray[np.bool_] | None:
        """Rows whose text holds a NUL, straight from an Arrow string column (whose text is
        valid UTF-8: no lone surrogates); None when the codes must say."""
        if self._codes is not None or self.arrow is None:
            return None
        pa = importlib.import_module("pyarrow")
        arrays = self.arrow.chunks
        if pa.types.is_dictionary(self.arrow.type):
            # Unified: every chunk's dictionary is the one of all distinct cells.
            arrays = [c.dictionary for c in arrays[-1:]]
            if not arrays or not pa.types.is_string(arrays[0].type):
                return None
        elif not pa.types.is_string(self.arrow.type) and not pa.types.is_large_string(
            self.arrow.type
        ):
            return None
        for arr in arrays:
            offsets, data = arr.buffers()[1:3]
            if data is None or not len(arr):
                continue
            kind = np.int64 if pa.types.is_large_string(arr.type) else np.int32
            bounds = np.frombuffer(offsets, dtype=kind, count=len(arr) + 1,
                                   offset=arr.offset * np.dtype(kind).itemsize)  # fmt: skip
            text = np.frombuffer(data, dtype=np.uint8)[int(bounds[0]) : int(bounds[-1])]
            if (text == 0).any():
                return None  # some text holds a NUL: the distinct cells say which
        return np.zeros(sum(len(c) for c in self.arrow.chunks), dtype=np.bool_)


# Arrow buffers read directly: pyarrow's own conversions (to_numpy, compute) import pandas.
def _numpy_ints(array: Any) -> npt.NDArray[np.int64]:
    width = array.type.bit_width // 8
    kind = {1: np.int8, 2: np.int16, 4: np.int32, 8: np.int64}[width]
    data = array.buffers()[1]
    values = np.frombuffer(data, dtype=kind, count=len(array), offset=array.offset * width)
    return values.astype(np.int64)


def _nulls(array: Any) -> npt.NDArray[np.bool_]:
    bitmap = array.buffers()[0]
    if bitmap is None:
        return np.zeros(len(array), dtype=np.bool_)
    bits = np.unpackbits(np.frombuffer(bitmap, dtype=np.uint8), bitorder="little")
    valid: npt.NDArray[np.bool_] = bits[array.offset : array.offset + len(array)].astype(np.bool_)
    return ~valid


@attrs.define
class _Table:
    header: list[str]
    rows: int
    columns: dict[str, _Column]  # by the export's column name
    first_row: int  # the number of row 0 (2 for a CSV file, 0 for a frame)
    engine: str

    def values(self, i: int) -> dict[str, Any]:
        return {name: c.uniques[int(c.codes[i])] for name, c in self.columns.items()}


def _encode_python(rows: Iterator[list[str]], header: list[str], wanted: list[str]) -> _Table:
    where = {name: i for i, name in enumerate(header)}  # a repeated name: the last, as DictReader
    picks = [(name, where[name]) for name in wanted if name in where]
    width = max((j for _, j in picks), default=-1) + 1
    maps: list[dict[str | None, int]] = [{} for _ in picks]
    codes: list[list[npt.NDArray[np.int64]]] = [[] for _ in picks]
    count = 0
    collecting = gc.isenabled()
    gc.disable()  # millions of short-lived cells: collections would scan the growing tables
    try:
        while True:
            chunk = [r for r in islice(rows, _CHUNK) if r]  # DictReader skips empty rows
            if not chunk:
                break
            count += len(chunk)
            full = min(map(len, chunk)) >= width
            columns = list(zip(*chunk, strict=False)) if full else []  # rows may run longer
            for (_, j), seen, out in zip(picks, maps, codes, strict=True):
                cells = columns[j] if full else [r[j] if j < len(r) else None for r in chunk]
                for v in dict.fromkeys(cells):  # the chunk's distinct cells, in order
                    if v not in seen:
                        seen[v] = len(seen)
                out.append(np.fromiter(map(seen.__getitem__, cells), np.int64, len(cells)))
    finally:
        if collecting:
            gc.enable()
    table = {
        name: _Column(np.concatenate(out) if out else np.zeros(0, np.int64), list(seen))
        for (name, _), seen, out in zip(picks, maps, codes, strict=True)
    }
    return _Table(header, count, table, 2, "python")


def _arrow() -> Any:
    try:
        return importlib.import_module("pyarrow")
    except ImportError:
        return None


def _encode_arrow_table(
    pa: Any, table: Any, wanted: list[str], first_row: int, engine: str, keep: bool = False
) -> _Table:
    """``keep``: dictionary columns are the CSV reader's own, of strings and unified (a
    table's may hold other values, and are read as their values)."""
    header = [str(n) for n in table.column_names]
    columns: dict[str, _Column] = {}
    for name in wanted:
        if name not in header:
            continue
        col = table.column(name)
        if pa.types.is_dictionary(col.type) and not keep:
            col = col.cast(col.type.value_type)
        columns[name] = _Column(arrow=col)
    return _Table(header, int(table.num_rows), columns, first_row, engine)


def _read_header(path: str | os.PathLike[str], encoding: str, delimiter: str) -> list[str]:
    with open(path, newline="", encoding=encoding) as f:
        return next(csv.reader(f, delimiter=delimiter), [])


def _cpus() -> int:
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


def _has_quotes(path: str | os.PathLike[str]) -> bool:
    """Whether the file quotes anything (only then may a value hold a line break)."""
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            if b'"' in block:
                return True
    return False


def _encode_csv_arrow(
    pa: Any, path: str | os.PathLike[str], wanted: list[str], delimiter: str, encoding: str
) -> _Table | None:
    pacsv = importlib.import_module("pyarrow.csv")
    try:
        header = _read_header(path, encoding, delimiter)
    except OSError as e:
        raise ValidationError("source", str(path), f"cannot open: {e.strerror}") from None
    except (csv.Error, UnicodeDecodeError):
        return None  # let the csv module report it
    if len(set(header)) != len(header) or not header:
        return None  # repeated or no names: DictReader's rules, not Arrow's
    include = [n for n in wanted if n in header]
    try:
        table = pacsv.read_csv(
            os.fspath(path),
            # Threads only help with a CPU to spare (pinned to one, they only contend).
            read_options=pacsv.ReadOptions(block_size=1 << 24, use_threads=_cpus() > 1),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter, newlines_in_values=_has_quotes(path)
            ),
            # Dictionary-encoded while parsing (each distinct cell is what is parsed),
            # unified below: no second pass, no pyarrow.compute (a costly import).
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.dictionary(pa.int32(), pa.string()) for n in include},
                include_columns=include,
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None  # ragged rows and the like: the csv module reads them as DictReader does
    out = _encode_arrow_table(pa, table.unify_dictionaries(), wanted, 2, "arrow", keep=True)
    out.header = header
    return out


def _encode_csv(
    source: Any, wanted: list[str], delimiter: str, encoding: str, engine: Engine
) -> _Table:
    pa = _arrow() if engine != "python" else None
    if engine == "arrow" and pa is None:
        raise ValidationError("engine", engine, "pyarrow is not installed")
    if (
        pa is not None
        and isinstance(source, str | os.PathLike)
        and encoding.lower().replace("_", "-") in ("utf-8", "utf-8-sig", "utf8")
        and len(delimiter) == 1
    ):
        table = _encode_csv_arrow(pa, source, wanted, delimiter, encoding)
        if table is not None:
            return table
    handle, owned = _open(source, encoding)
    reader = csv.reader(handle, delimiter=delimiter)
    try:
        header = next(reader, [])
        return _encode_python(reader, header, wanted)
    except (csv.Error, UnicodeDecodeError) as e:
        raise ValidationError(
            "source", f"line {reader.line_num}", f"not readable CSV: {e}"
        ) from None
    finally:
        if owned:
            handle.close()


def _encode_frame(frame: Any, wanted: list[str]) -> _Table | None:
    pa = _arrow()
    if pa is None:
        return None
    try:
        if hasattr(frame, "__arrow_c_stream__") or isinstance(frame, pa.Table):
            table = pa.table(frame)
        elif hasattr(frame, "itertuples") and hasattr(frame, "columns"):
            table = pa.Table.from_pandas(frame, preserve_index=False)
        else:
            return None
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
        return None  # a column Arrow cannot type (mixed objects): the row reader handles it
    return _encode_arrow_table(pa, table, wanted, 0, "arrow")


# -- per distinct cell -------------------------------------------------------------------------


class _Parse:
    """Parses each distinct cell of a column once, with the row reader's rules."""

    def __init__(self, opts: _Options, table: _Table) -> None:
        self.opts = opts
        self.table = table

    def column(self, field: str) -> _Column | None:
        return self.table.columns.get(self.opts.columns[field])

    def cells(self, field: str, value: Any) -> Cells:
        return self.opts.cells(0, {self.opts.columns[field]: value})

    def each(
        self,
        field: str,
        parse: Callable[[Cells], Any],
        fast: Callable[[Any], Any] | None = None,
    ) -> tuple[npt.NDArray[np.int64], list[Any], npt.NDArray[np.bool_]]:
        """Codes per row, the parsed value of each distinct cell, and which ones failed."""
        codes, uniques = self.raw(field)
        values: list[Any] = []
        bad = np.zeros(len(uniques), dtype=np.bool_)
        defaulted = field in self.opts.defaults
        for k, u in enumerate(uniques):
            if fast is not None and not defaulted and type(u) is str:
                v = fast(u)
                if v is not _SLOW:
                    values.append(v)
                    continue
            values.append(self.one(field, parse, u, bad, k))
        return codes, values, bad

    def ids(
        self, field: str
    ) -> tuple[npt.NDArray[np.int64], list[Any], npt.NDArray[np.bool_], bool]:
        """:meth:`each` for an id column, and whether each value is its cell unchanged (then
        the codes already key the values: distinct cells, distinct ids)."""
        codes, uniques = self.raw(field)
        bad = np.zeros(len(uniques), dtype=np.bool_)
        if field in self.opts.defaults:
            odd = list(range(len(uniques)))
        elif _plain_ids(uniques):
            odd = []
        else:
            odd = [
                k
                for k, u in enumerate(uniques)
                if u.__class__ is not str or not u or u.strip() != u
            ]
        values = list(uniques)
        parse = _REQUIRED_TEXT[field]
        for k in odd:
            values[k] = self.one(field, parse, uniques[k], bad, k)
        return codes, values, bad, not odd

    def unstorable(self, field: str) -> npt.NDArray[np.bool_]:
        """Rows whose text in ``field`` no store can hold."""
        col = self.column(field)
        if col is None:
            return np.zeros(self.table.rows, dtype=np.bool_)
        direct = col.nul_rows()
        if direct is not None:
            return direct
        codes, values, _ = self.each(field, lambda c: c.text(field))
        out: npt.NDArray[np.bool_] = _unstorable(values)[codes]
        return out

    def raw(self, field: str) -> tuple[npt.NDArray[np.int64], list[Any]]:
        col = self.column(field)
        if col is None:
            return np.zeros(self.table.rows, dtype=np.int64), [None]
        return col.codes, col.uniques

    def one(
        self, field: str, parse: Callable[[Cells], Any], u: Any, bad: npt.NDArray[np.bool_], k: int
    ) -> Any:
        try:
            return parse(self.cells(field, u))
        except RowError:
            bad[k] = True
            return None


_SPACE: Final = re.compile(r"\s")
_ASCII_BLANKS: Final = tuple(chr(c) for c in range(128) if chr(c).isspace())
_EDGE: Final = re.compile(r"\s\x00|\x00\s")


def _plain_ids(values: list[Any]) -> bool:
    """Every value a non-empty text without surrounding blanks or NULs (checked at once)."""
    if set(map(type, values)) != {str}:
        return False
    text = "\x00".join(values)
    if text.count("\x00") != len(values) - 1 or "\x00\x00" in text:
        return False  # a NUL in an id, or an empty one
    if not text or text[0] == "\x00" or text[-1] == "\x00":
        return False
    if not (text.isascii() or _encodes(text)):
        return False  # a lone surrogate
    if text.isascii():
        spaced = any(blank in text for blank in _ASCII_BLANKS)  # a few fast scans, no regex
    else:
        spaced = _SPACE.search(text) is not None
    if not spaced:
        return True
    return not (text[0].isspace() or text[-1].isspace()) and _EDGE.search(text) is None


_REQUIRED_TEXT: Final[Mapping[str, Callable[[Cells], Any]]] = {
    "invoice_id": lambda c: c.required_text("invoice_id"),
    "customer_id": lambda c: c.required_text("customer_id"),
}
_SLOW: Final = object()


def _fast_amount(u: str) -> Any:
    whole, point, frac = u.partition(".")
    digits = whole[1:] if whole[:1] == "-" else whole
    if not (digits.isdigit() and digits.isascii() and len(digits) <= 18):
        return _SLOW
    if point and not (frac.isdigit() and frac.isascii() and len(frac) <= MAX_SCALE):
        return _SLOW
    if not point:
        return (int(whole), 0)
    v = int(digits + frac)
    return (-v if whole[:1] == "-" else v, len(frac))


def _fast_whole(u: str) -> Any:
    return _SLOW if "." in u else _fast_amount(u)


def _mantissa(d: Decimal) -> tuple[int, int]:
    exponent = d.as_tuple().exponent
    assert isinstance(exponent, int)  # amounts are finite
    return int(d.scaleb(-exponent)), -exponent


def _opt_mantissa(d: Decimal | None) -> tuple[int, int] | None:
    return None if d is None else _mantissa(d)


# -- the reader ------------------------------------------------------------------------------


class _Reader:
    def __init__(self, opts: _Options, table: _Table) -> None:
        self.opts = opts
        self.table = table
        self.n = table.rows
        self.p = _Parse(opts, table)

    def number(self, i: int) -> int:
        return i + self.table.first_row

    def replay_row(self, i: int) -> RowError | None:
        """``read_csv``'s own verdict on row ``i`` alone."""
        try:
            _Builder(self.opts, None).add(self.opts.cells(self.number(i), self.table.values(i)))
        except RowError as e:
            return e
        return None

    def run(self, collect: bool) -> tuple[LineColumns, list[RowError]]:
        n = self.n
        p = self.p
        flag = np.zeros(n, dtype=np.bool_)

        def take(
            field: str, parse: Callable[[Cells], Any], fast: Any = None
        ) -> tuple[npt.NDArray[np.int64], list[Any]]:
            codes, values, bad = p.each(field, parse, fast)
            flag[:] |= bad[codes]
            return codes, values

        inv_c, inv_v, inv_bad, inv_same = p.ids("invoice_id")
        cus_c, cus_v, cus_bad, cus_same = p.ids("customer_id")
        flag |= inv_bad[inv_c] | cus_bad[cus_c]
        cur_c, cur_v = take("currency", lambda c: c.currency())
        iss_c, iss_v = take("issued_at", lambda c: c.moment("issued_at", required=True))
        sta_c, sta_v = take("status", lambda c: _status(c, "status", InvoiceStatus))
        beg_c, beg_v = take("period_start", lambda c: c.moment("period_start"))
        end_c, end_v = take("period_end", lambda c: c.moment("period_end", end=True))
        amt_c, amt_v = take(
            "amount",
            lambda c: _opt_mantissa(c.decimal("amount", "JPY", required=True)),
            _fast_whole if self.opts.minor else _fast_amount,
        )
        kind_c, kind_v = take(
            "kind", lambda c: None if c.text("kind") is None else _status(c, "kind", LineKind)
        )
        dis_c, dis_v = take("discount", lambda c: _opt_mantissa(c.decimal("discount", "JPY")))
        tax_c, tax_v = take("tax", lambda c: _opt_mantissa(c.decimal("tax", "JPY")))
        take("quantity", lambda c: c.count("quantity", 1))
        take("subscription_id", lambda c: c.text("subscription_id"))

        # Canonical keys: equal parsed values, equal keys.
        inv_key, inv_names = (inv_c, inv_v) if inv_same else _canon(inv_c, inv_v)
        cus_key, cus_names = (cus_c, cus_v) if cus_same else _canon(cus_c, cus_v)
        cur_key, cur_names = _canon(cur_c, cur_v)
        sta = _lookup(sta_c, [(-1 if v is None else _STATUSES.index(v)) for v in sta_v])
        issued = _lookup(iss_c, [0 if v is None else micros(v) for v in iss_v])
        has_beg = _lookup(beg_c, [v is not None for v in beg_v], np.bool_)
        has_end = _lookup(end_c, [v is not None for v in end_v], np.bool_)
        beg = _lookup(beg_c, [0 if v is None else micros(v) for v in beg_v])
        end = _lookup(end_c, [0 if v is None else micros(v) for v in end_v])
        kind = _lookup(kind_c, [-1 if v is None else int(v is LineKind.RECURRING) for v in kind_v])

        # Row checks, in the row reader's terms (a flagged row is replayed for its error).
        flag |= has_beg != has_end
        flag |= has_beg & has_end & (end <= beg)
        flag |= (kind == 1) & ~has_beg
        recurring = np.where(kind == -1, has_beg, kind == 1)

        minor = np.array([Money.zero(c).minor_units for c in cur_names] or [0], dtype=np.int64)
        row_minor = minor[np.maximum(cur_key, 0)] if self.opts.minor else np.zeros(n, np.int64)
        amt_m, amt_p, amt_s, amt_big = _mantissas(amt_v)
        dis_m, dis_p, dis_s, dis_big = _mantissas(dis_v)
        _, _, tax_s_v, _ = _mantissas(tax_v)
        tax_s = tax_s_v[tax_c]
        places = np.maximum(amt_p[amt_c], dis_p[dis_c]) + row_minor
        scale = min(MAX_SCALE, max(int(places.max(initial=0)), int(minor.max(initial=0))))
        amount, a_big = _at_scale(amt_m[amt_c], amt_p[amt_c] + row_minor, scale)
        discount, d_big = _at_scale(dis_m[dis_c], dis_p[dis_c] + row_minor, scale)
        amount_sign = amt_s[amt_c]
        flag |= amt_big[amt_c] | dis_big[dis_c] | a_big | d_big  # compared exactly on replay
        flag |= dis_s[dis_c] < 0
        flag |= (tax_s < 0) & (amount_sign >= 0)
        flag |= (amount_sign >= 0) & (discount > amount)
        # A credit line's own rules (InvoiceLine's): its tax zero or negative, its discount
        # no larger than the credit. read_csv checks them when it builds the invoice, so a
        # flagged credit row that passes alone has its invoice rebuilt below for the error.
        credit = amount_sign < 0
        flag |= credit & ((tax_s > 0) | (discount > -amount))

        # Invoices: the first row with each id registers it; later rows must agree with it.
        m = len(inv_names)
        slot = np.where(inv_key >= 0, inv_key, m)
        first, is_first = _firsts(slot, m, ordered=inv_same)
        pay_c, _, pay_bad = p.each("paid_at", lambda c: c.moment("paid_at"))
        due_c, due_v, due_bad = p.each("due_date", lambda c: c.day("due_date"))
        num_c, num_v, num_bad = p.each("number", lambda c: c.text("number"))
        flag |= is_first & (pay_bad[pay_c] | due_bad[due_c] | num_bad[num_c])

        f = np.minimum(first[slot], max(n - 1, 0))
        later = (inv_key >= 0) & ~is_first
        differs = np.zeros(n, dtype=np.int8)  # 1..4: the first field that differs
        for code, a in enumerate((cus_key, cur_key, issued, sta), start=1):
            differs = np.where((differs == 0) & later & (a != a[f]), code, differs)

        errors: dict[int, RowError] = {}
        for i in np.flatnonzero(flag | (differs > 0)).tolist():
            if errors and not collect:
                break
            if flag[i]:
                e = self.replay_row(i)
                if e is not None:
                    errors[i] = e
                    continue
            if differs[i] and int(f[i]) not in errors:
                errors[i] = self.differs(i, int(differs[i]), int(f[i]))
        if errors and not collect:
            raise errors[min(errors)]
        # A bad first row leaves a placeholder that every later row of its invoice differs from.
        bad_first = np.zeros(m + 1, dtype=np.bool_)
        bad_first[[int(slot[i]) for i in errors if is_first[i]]] = True
        for i in np.flatnonzero(later & bad_first[slot]).tolist():
            if i not in errors:
                errors[i] = self.differs(i, 1, int(f[i]))
        bad_inv = np.zeros(m + 1, dtype=np.bool_)
        id_column = self.opts.columns["invoice_id"]
        for i in errors:
            if inv_key[i] >= 0 and isinstance(self.table.values(i).get(id_column), str):
                bad_inv[inv_key[i]] = True
        row_err = np.zeros(n, dtype=np.bool_)
        row_err[list(errors)] = True

        # Invoices rebuilt by read_csv's own builder: with text no store holds, or with a
        # flagged row that passed (an amount beyond an int64 at the scale).
        rebuild = np.zeros(m + 1, dtype=np.bool_)
        odd = flag & ~row_err
        for same, values, codes in ((cus_same, cus_v, cus_c), (inv_same, inv_v, inv_c)):
            if not same:  # plain ids are storable text
                odd |= _unstorable(values)[codes]
        odd |= p.unstorable("description")
        odd |= is_first & _unstorable(num_v)[num_c]
        rebuild[slot[odd]] = True
        rebuild[m] = False
        due_day = _lookup(due_c, [-1 if d is None else d.toordinal() for d in due_v])
        early = is_first & (due_day >= 0) & (due_day < issued // _DAY_US + _EPOCH_ORDINAL)
        late: list[tuple[int, list[RowError]]] = []
        extra: list[_Extra] = []
        redo = rebuild & ~bad_inv
        rows_of = _rows_by_key(slot, redo)
        for k in np.flatnonzero(redo).tolist():
            errs, lines = self.rebuild(rows_of[k], inv_names[k])
            late.append((int(first[k]), errs))
            bad_inv[k] |= bool(errs)
            extra.extend(lines)
        due_column = self.opts.columns["due_date"]
        for i in np.flatnonzero(early & ~rebuild[slot] & ~bad_inv[slot]).tolist():
            day = due_v[int(due_c[i])]
            late.append(
                (i, [RowError(self.number(i), due_column, day, "is before the issue date")])
            )
            bad_inv[slot[i]] = True
        late.sort(key=lambda t: t[0])
        later_errors = [e for _, es in late for e in es]
        if later_errors and not collect:
            raise later_errors[0]

        good = ~row_err & ~flag & (inv_key >= 0) & ~bad_inv[slot] & ~rebuild[slot]
        # A credit's discount lowers the credit (build_lines gives it the credit's sign).
        # Credits beyond the charges go to the customer's balance in a one-off line after
        # the invoice's own lines: no recurring line, no line index changes.
        net = np.where(credit, amount + discount, amount - discount)
        keep = good & recurring & (sta != _NOT_COUNTED[0]) & (sta != _NOT_COUNTED[1])
        ks = np.flatnonzero(keep)
        # A line's index among its invoice's lines.
        rows = np.flatnonzero(good)
        index = np.zeros(n, dtype=np.int64)
        index[rows] = _line_index(inv_key[rows], rows.size)
        index = index[ks]
        suffix = [f"#{j}" for j in range(int(index.max(initial=0)) + 1)]
        names = list(
            map(
                str.__add__,
                map(inv_names.__getitem__, inv_key[ks].tolist()),
                map(suffix.__getitem__, index.tolist()),
            )
        )
        cols = _assemble(
            names=names,
            customers=cus_key[ks],
            cus_names=cus_names,
            currencies=cur_key[ks],
            cur_names=cur_names,
            start=beg[ks],
            end=end[ks],
            net=net[ks],
            places=places[ks],
            scale=scale,
            extra=extra,
        )
        return cols, [errors[i] for i in sorted(errors)] + later_errors

    def differs(self, i: int, which: int, first: int) -> RowError:
        field = ("customer_id", "currency", "issued_at", "status")[which - 1]
        c = self.opts.cells(self.number(i), self.table.values(i))
        return c.error(field, c.raw(field), f"differs from row {self.number(first)} of the invoice")

    def rebuild(self, rows: list[int], name: str) -> tuple[list[RowError], list[_Extra]]:
        """One invoice through ``read_csv``'s builder: its errors and its counted lines."""
        builder = _Builder(self.opts, None)
        for i in rows:
            builder.add(self.opts.cells(self.number(i), self.table.values(i)))
        errors: list[RowError] = []
        book = builder.book(errors, True, False)
        lines = []
        for inv in book.invoices:
            if inv.status in (InvoiceStatus.VOID, InvoiceStatus.DRAFT):
                continue
            for idx, line in enumerate(inv.lines):
                if line.kind is not LineKind.RECURRING:
                    continue
                assert line.period_start is not None
                assert line.period_end is not None
                mant, places = _mantissa(line.net.amount)
                lines.append(
                    _Extra(f"{name}#{idx}", inv.customer_id, inv.currency,
                           micros(line.period_start), micros(line.period_end), mant, places)
                )  # fmt: skip
        return errors, lines


@attrs.frozen
class _Extra:
    stream: str
    customer: str
    currency: str
    start: int
    end: int
    mantissa: int
    places: int


def _assemble(
    *,
    names: list[str],
    customers: npt.NDArray[np.int64],
    cus_names: list[str],
    currencies: npt.NDArray[np.int64],
    cur_names: list[str],
    start: npt.NDArray[np.int64],
    end: npt.NDArray[np.int64],
    net: npt.NDArray[np.int64],
    places: npt.NDArray[np.int64],
    scale: int,
    extra: list[_Extra],
) -> LineColumns:
    cus_index = {c: i for i, c in enumerate(cus_names)}
    cur_index = {c: i for i, c in enumerate(cur_names)}
    if extra:
        customers = np.r_[customers, [cus_index[e.customer] for e in extra]]
        currencies = np.r_[currencies, [cur_index[e.currency] for e in extra]]
        start = np.r_[start, [e.start for e in extra]]
        end = np.r_[end, [e.end for e in extra]]
        names = names + [e.stream for e in extra]
    used_cur, cur_code = _used(currencies, len(cur_names))
    used_cus, cus_code = _used(customers, len(cus_names))
    codes = [cur_names[int(c)] for c in used_cur]
    wanted = [int(places.max(initial=0))] + [e.places for e in extra]
    wanted += [Money.zero(c).minor_units for c in codes]
    out = max(wanted) if len(names) else 2
    if out > MAX_SCALE:
        raise ValidationError("net", out, f"more than {MAX_SCALE} decimal places")
    if out <= scale:
        nets = net // _POW10[scale - out]
    else:
        nets, big = _at_scale(net, np.full(len(net), scale, np.int64), out)
        if big.any():
            i = int(np.argmax(big))
            raise ValidationError(f"net[{i}]", int(net[i]), f"does not fit an int64 at scale {out}")
    if extra:
        tail = []
        for j, e in enumerate(extra):
            v = e.mantissa * 10 ** (out - e.places)
            if not -_I64MAX <= v <= _I64MAX:
                raise ValidationError(
                    f"net[{len(net) + j}]", e.mantissa, f"does not fit an int64 at scale {out}"
                )
            tail.append(v)
        nets = np.r_[nets, np.array(tail, dtype=np.int64)]
    return LineColumns._build(  # ids and codes as the row reader checked them
        customer_ids=tuple(cus_names[int(c)] for c in used_cus),
        stream_ids=tuple(names),
        currencies=tuple(codes),
        customer=cus_code.astype(np.int32),
        stream=np.arange(len(names), dtype=np.int32),
        currency=cur_code.astype(np.int16),
        start=start,
        end=end,
        net=nets,
        scale=out,
    )


def _used(
    codes: npt.NDArray[np.int64], size: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """``np.unique(codes, return_inverse=True)`` for codes in ``0..size-1``, by counting
    (no sort of a million codes)."""
    if codes.size == 0 or int(codes.min()) < 0 or int(codes.max()) >= size:
        used, inverse = np.unique(codes, return_inverse=True)
        return used, inverse
    used = np.flatnonzero(np.bincount(codes, minlength=size))
    remap = np.zeros(size, dtype=np.int64)
    remap[used] = np.arange(used.size, dtype=np.int64)
    out: npt.NDArray[np.int64] = remap[codes]
    return used, out


def _canon(
    codes: npt.NDArray[np.int64], values: list[Any]
) -> tuple[npt.NDArray[np.int64], list[Any]]:
    names: dict[Any, int] = {}
    mapping = np.array(
        [-1 if v is None else names.setdefault(v, len(names)) for v in values] or [-1],
        dtype=np.int64,
    )
    return mapping[codes], list(names)


def _lookup(codes: npt.NDArray[np.int64], values: Sequence[Any], dtype: Any = np.int64) -> Any:
    return np.array(list(values) or [0], dtype=dtype)[codes]


def _mantissas(values: list[Any]) -> tuple[Any, Any, Any, Any]:
    """Per distinct cell: int64 mantissa, decimal places, sign, and whether it is too big."""
    size = len(values) or 1
    m = np.zeros(size, dtype=np.int64)
    p = np.zeros(size, dtype=np.int64)
    sign = np.zeros(size, dtype=np.int8)
    big = np.zeros(size, dtype=np.bool_)
    for k, v in enumerate(values):
        if v is None:
            continue
        mant, places = v
        sign[k] = (mant > 0) - (mant < 0)
        if places > MAX_SCALE or not -_I64MAX <= mant <= _I64MAX:
            big[k] = True
        else:
            m[k], p[k] = mant, places
    return m, p, sign, big


def _firsts(
    slot: npt.NDArray[np.int64], m: int, *, ordered: bool
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Each key's first row (``n`` for none; slot ``m`` holds the rows without a key) and
    whether a row is its key's first. ``ordered``: the keys number first appearances
    0, 1, 2... (dictionary codes do), so a first row is one above every earlier key."""
    n = len(slot)
    first = np.full(m + 1, n, dtype=np.int64)
    if ordered and n:
        is_first = slot > np.maximum.accumulate(np.r_[-1, slot[:-1]])
        if int(is_first.sum()) == m and m == int(slot.max()) + 1:
            first[slot[is_first]] = np.flatnonzero(is_first)
            return first, is_first
    keys, rows = np.unique(slot, return_index=True)
    first[keys] = rows
    first[m] = n
    is_first = (slot < m) & (first[slot] == np.arange(n))
    return first, is_first


def _at_scale(m: Any, places: Any, scale: int) -> tuple[Any, Any]:
    if not places.size or (int(places.min()) == scale and int(places.max()) == scale):
        return m, np.zeros(m.shape, dtype=np.bool_)  # already at the scale: nothing to shift
    shift = np.clip(scale - places, 0, MAX_SCALE)
    mult = _POW10[shift]
    big = (places > scale) | (np.abs(m) > _I64MAX // mult)
    return np.where(big, 0, m) * mult, big


def _unstorable(values: list[Any]) -> Any:
    out = np.zeros(len(values) or 1, dtype=np.bool_)
    text = "".join([v for v in values if v.__class__ is str])
    if "\x00" not in text and (text.isascii() or _encodes(text)):
        return out  # the common case, checked at once
    for k, v in enumerate(values):
        if isinstance(v, str):
            try:
                storable_text(v, "text")
            except ValidationError:
                out[k] = True
    return out


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _rows_by_key(
    slot: npt.NDArray[np.int64], wanted: npt.NDArray[np.bool_]
) -> dict[int, list[int]]:
    """The rows (in row order) of each key ``wanted`` marks, in one pass."""
    rows = np.flatnonzero(wanted[slot])
    out: dict[int, list[int]] = {}
    for i, k in zip(rows.tolist(), slot[rows].tolist(), strict=True):
        out.setdefault(k, []).append(i)
    return out


def _line_index(inv_key: Any, n: int) -> Any:
    """Each row's position among its invoice's rows (row order)."""
    if n > 1 and bool((inv_key[1:] >= inv_key[:-1]).all()):
        # Each invoice's rows adjacent and in key order (a file written invoice by invoice):
        # a row's position is its distance from its run's first row, no sort.
        run = np.r_[True, inv_key[1:] != inv_key[:-1]]
        starts = np.flatnonzero(run)
        return np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    order = np.argsort(inv_key, kind="stable")
    sorted_keys = inv_key[order]
    starts = (
        np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        if n
        else np.zeros(0, np.int64)
    )
    pos = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    out = np.empty(n, dtype=np.int64)
    out[order] = pos
    return out


_FIELDS_READ: Final = (
    "invoice_id", "customer_id", "amount", "currency", "issued_at", "status", "due_date",
    "paid_at", "number", "description", "quantity", "discount", "tax", "period_start",
    "period_end", "kind", "subscription_id",
)  # fmt: skip


def read_lines(
    source: Any,
    *,
    columns: Mapping[str, str] | None = None,
    defaults: Mapping[str, Any] | None = None,
    timezone: Zone = None,
    amounts: Literal["major", "minor"] = "major",
    period_end_inclusive: bool = False,
    on_error: OnError = "raise",
    delimiter: str = ",",
    encoding: str = "utf-8-sig",
    engine: Engine = "auto",
) -> LinesReport:
    """Invoice lines from a CSV file (a path or an open text file) or a table (pandas,
    polars, any Arrow table) into :class:`~revcrm._ledger._columns.LineColumns`: the
    recurring lines of the invoices that count (neither void nor draft), as arrays.

    The options and the errors are :func:`read_csv`'s with ``kind="invoice_lines"``: a bad
    row is a :class:`RowError` naming the row and the column (``on_error="collect"``
    leaves out the invoices with a bad row and returns the errors); the lines equal
    ``LineColumns.from_book(read_csv(...).book)``, and each line is its own stream
    (``f"{invoice_id}#{line_index}"``), as in the book ``read_csv`` makes. pyarrow reads
    the file when it is installed (``engine="auto"``); otherwise (or ``engine="python"``)
    the ``csv`` module does, in chunks. An amount that does not fit an int64 at the common
    scale is a ValidationError (read such a file with ``read_csv``).
    """
    if on_error not in ("raise", "collect"):
        raise ValidationError("on_error", on_error, "expected 'raise' or 'collect'")
    if engine not in ("auto", "arrow", "python"):
        raise ValidationError("engine", engine, "expected 'auto', 'arrow' or 'python'")
    opts = _Options("invoice_lines", columns, defaults, timezone, amounts, period_end_inclusive)
    wanted = list(dict.fromkeys(opts.columns[f] for f in _FIELDS_READ))
    if isinstance(source, str | os.PathLike) or hasattr(source, "read"):
        table = _encode_csv(source, wanted, delimiter, encoding, engine)
    else:
        encoded = None if engine == "python" else _encode_frame(source, wanted)
        if encoded is None:
            if engine == "arrow":
                raise ValidationError("engine", engine, "pyarrow cannot read this table")
            return _by_rows(source, columns, defaults, timezone, amounts,
                            period_end_inclusive, on_error)  # fmt: skip
        table = encoded
    opts.check_header(table.header)
    lines, errors = _Reader(opts, table).run(on_error == "collect")
    return LinesReport(lines=lines, errors=tuple(errors), rows=table.rows, engine=table.engine)


def _by_rows(
    frame: Any,
    columns: Mapping[str, str] | None,
    defaults: Mapping[str, Any] | None,
    timezone: Zone,
    amounts: Literal["major", "minor"],
    period_end_inclusive: bool,
    on_error: OnError,
) -> LinesReport:
    """A table without pyarrow: through ``from_frame``'s records (one object per line)."""
    from revcrm.io._csv import from_frame

    report = from_frame(
        frame,
        kind="invoice_lines",
        columns=columns,
        defaults=defaults,
        timezone=timezone,
        amounts=amounts,
        period_end_inclusive=period_end_inclusive,
        on_error=on_error,
    )
    return LinesReport(
        lines=LineColumns.from_book(report.book),
        errors=report.errors,
        rows=report.rows,
        engine="rows",
    )
