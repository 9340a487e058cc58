"""Re-read the input CSV in column chunks, record for record as the ItemReader split it.

Two readers give the same records:

- :func:`arrow_chunks`: pyarrow's C++ streaming CSV reader configured with the ItemReader's rules
  (delimiter, ``"`` quoting with ``""``, backslash escapes, newlines inside quotes, empty lines kept, every
  field a string, a leading BOM skipped). It hands back Arrow columns directly, which is what lets the
  collector reach its throughput target (Python's ``csv`` alone reads ~200,000 rows/s of typical text).
  It has no way to pad short rows or cut long ones, so a row whose field count differs from the header
  stops it with :class:`IrregularRowsError`;
- :func:`python_chunks`: :func:`airflow_distmap.formats.csv_records.iter_records`, the splitter the local
  ItemReader uses, with the AWS shaping of short and long rows. The collector falls back to it (from the
  start of the file) when the fast reader stops.

``tests/csv_processing/test_input_reader.py`` checks both readers give identical records on the CSV
correctness cases (quotes, delimiters and newlines in quoted fields, escapes, BOM, CRLF, non-ASCII).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain, islice
from typing import TYPE_CHECKING, Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from airflow_distmap.formats.csv_records import MAX_FIELD_BYTES, LineBreakEscapes, iter_records

if TYPE_CHECKING:
    from airflow_distmap.csv_processing.preflight import CsvLayout

#: Bytes per block of the Arrow reader. It reads about 14 blocks ahead, so this bounds its memory.
ARROW_BLOCK_BYTES: Final = 512 * 1024
#: Rows per chunk of the Python reader, at most.
PYTHON_CHUNK_ROWS: Final = 32_768
#: Field text per chunk of the Python reader, at most (wide rows make smaller chunks).
PYTHON_CHUNK_CHARS: Final = 64 * 1024 * 1024
#: Rows the Python reader takes at a time while it fills a chunk.
_PYTHON_STEP_ROWS: Final = 1024


class IrregularRowsError(Exception):
    """Raised by the Arrow reader at a record it cannot give as the ItemReader reads it.

    That is a row whose field count differs from the header's, or a value holding ``""`` after parsing: Arrow
    keeps an unquoted field's ``""`` as it is, where the ItemReader reads one ``"`` (a value read from quotes
    can hold ``""`` too, which only the Python reader tells apart).
    """


@dataclass
class IrregularRows:
    """What :func:`python_chunks` saw of rows whose field count differs from the header's.

    :param limit: count only the rows before this one (the ItemReader's ``MaxItems``; ``None``: all).
    :param count: how many such rows were read.
    :param first: the first one's index (0-based, header not counted); -1 while none was seen.
    """

    limit: int | None = None
    count: int = 0
    first: int = -1


class FieldTooLargeError(ValueError):
    """Raised by the Python reader for a field over :data:`MAX_FIELD_BYTES`, more than AWS reads as an item.

    :param row: the field's data row (0-based, header not counted).
    """

    def __init__(self, row: int) -> None:
        super().__init__(f"row {row} holds a field over {MAX_FIELD_BYTES} characters")
        self.row = row


class NotUtf8Error(ValueError):
    """Raised by either reader when the file holds bytes that are not UTF-8 past the start checked earlier."""


def arrow_chunks(body: Any, layout: CsvLayout) -> Iterator[list[pa.Array]]:
    """Yield the input's data rows as lists of string columns, in file order (header line dropped).

    :param body: a binary file-like object positioned at the start of the file.
    :param layout: the input as the pre-flight saw it.
    :raises IrregularRowsError: a row is shorter or longer than the header, or a field holds ``""``.
    :raises NotUtf8Error: the file holds bytes that are not UTF-8.
    """
    names = layout.reader_headers

    def on_invalid_row(row: Any) -> str:
        return "error"  # stop at once: the caller re-reads with the Python reader

    skip = 1 if layout.header_in_file else 0
    try:
        reader = pa_csv.open_csv(
            LineBreakEscapes(body),
            read_options=pa_csv.ReadOptions(
                column_names=names, block_size=ARROW_BLOCK_BYTES, encoding="utf8", use_threads=False
            ),
            parse_options=pa_csv.ParseOptions(
                delimiter=layout.delimiter,
                quote_char='"',
                double_quote=True,
                escape_char="\\",
                newlines_in_values=True,
                ignore_empty_lines=False,
                invalid_row_handler=on_invalid_row,
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
                null_values=[],
                check_utf8=True,
            ),
        )
        for batch in reader:
            if skip:
                batch = batch.slice(skip)
                skip = 0
            if batch.num_rows:
                columns = list(batch.columns)
                if any(_holds_doubled_quote(column) for column in columns):
                    # From quotes ("{""k"":""""}") or not (ab""cd, one quote): only the exact reader knows.
                    raise IrregularRowsError(
                        'a value holds a doubled quote (""): re-reading with the exact reader'
                    )
                yield columns
    except pa.ArrowInvalid as exc:
        if "invalid UTF8" in str(exc):
            raise NotUtf8Error(str(exc)) from exc
        raise IrregularRowsError(str(exc)) from exc


_DOUBLED_QUOTE: Final = re.compile(b'""')


def _holds_doubled_quote(column: pa.Array) -> bool:
    """Whether a string column holds a value with ``""``.

    First one scan of its data buffer (the values end to end, so two values may join into a false match),
    then value by value only when that scan finds one.
    """
    data = column.buffers()[2]
    if data is None or _DOUBLED_QUOTE.search(data) is None:  # type: ignore[call-overload]
        return False
    return bool(pc.any(pc.match_substring(column, '""')).as_py())


def python_chunks(
    body: Any, layout: CsvLayout, irregular: IrregularRows | None = None
) -> Iterator[list[pa.Array]]:
    """Same as :func:`arrow_chunks` with :func:`~airflow_distmap.formats.csv_records.iter_records`.

    Short rows are padded with ``""`` and long rows cut to the header's width, as AWS shapes items.

    :param body: a binary file-like object positioned at the start of the file.
    :param layout: the input as the pre-flight saw it.
    :param irregular: where to count the rows padded or cut (none: they are not counted).
    :raises NotUtf8Error: the file holds bytes that are not UTF-8.
    :raises FieldTooLargeError: a field is longer than AWS reads.
    """
    width = len(layout.headers)
    records = iter_records(body, delimiter=layout.delimiter, encoding="utf-8-sig")
    if layout.header_in_file:
        next(records, None)
    rows = 0
    while True:
        chunk = _take_chunk(records, rows)
        rows += len(chunk)
        if not chunk:
            return
        if any(len(record) != width for record in chunk):
            if irregular is not None:
                _count_irregular(chunk, rows - len(chunk), width, irregular)
            chunk = [
                record[:width] if len(record) >= width else record + [""] * (width - len(record))
                for record in chunk
            ]
        yield [pa.array(column, type=pa.string()) for column in zip(*chunk, strict=True)]


def _count_irregular(chunk: list[list[str]], first_row: int, width: int, irregular: IrregularRows) -> None:
    end = len(chunk) if irregular.limit is None else max(0, min(len(chunk), irregular.limit - first_row))
    for position in range(end):
        if len(chunk[position]) != width:
            irregular.count += 1
            if irregular.first < 0:
                irregular.first = first_row + position


def _take_chunk(records: Iterator[list[str]], rows_before: int) -> list[list[str]]:
    """The next records, up to :data:`PYTHON_CHUNK_ROWS` rows or :data:`PYTHON_CHUNK_CHARS` of field text."""
    chunk: list[list[str]] = []
    chars = 0
    try:
        while len(chunk) < PYTHON_CHUNK_ROWS and chars < PYTHON_CHUNK_CHARS:
            start = len(chunk)
            chunk.extend(islice(records, _PYTHON_STEP_ROWS))  # keeps the rows read before an error
            if len(chunk) == start:
                break
            chars += sum(map(len, chain.from_iterable(chunk[start:])))
    except UnicodeDecodeError as exc:
        raise NotUtf8Error(f"{exc.reason}: {exc.object[exc.start : exc.start + 4]!r}") from exc
    except csv.Error as exc:
        if "field larger than field limit" not in str(exc):
            raise
        raise FieldTooLargeError(rows_before + len(chunk)) from exc
    return chunk
