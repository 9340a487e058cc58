"""Pre-flight scan for rows too large to send to the function.

A child execution's input is limited to 256 KiB (spec §1.4, §6). AWS reads items of up to 8 MB and lets
the ItemSelector shrink them, so what counts is the size of the *selected* columns of each row. Finding a
too-large row needs one pass over the file; it is done with pyarrow's C++ reader (about as fast as the
download) before anything is created in AWS, so the run never fails half-way on one row.

A row's size is first estimated from the UTF-8 length of the selected values plus, per column, its name and
8 bytes of JSON punctuation, plus 32 bytes for the CSV operator's ``{"index": ..., "row": ...}``. JSON
escapes can make a value up to six times longer (a control character takes six characters), so every row
whose estimate is over a sixth of the limit is measured exactly, as its JSON item; in usual data no row is,
and the scan stays in C++. The DistributedMapOperator's pre-flight uses the same scan for CSV items sent as
they are (:mod:`airflow_distmap.item_sources`).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from airflow_distmap import json_codec
from airflow_distmap.csv_processing.input_reader import (
    FieldTooLargeError,
    IrregularRows,
    IrregularRowsError,
    NotUtf8Error,
    arrow_chunks,
    python_chunks,
)
from airflow_distmap.exceptions import RowTooLargeError, UnsupportedInputError
from airflow_distmap.formats.csv_records import MAX_FIELD_BYTES

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from airflow_distmap.csv_processing.preflight import CsvLayout

log = logging.getLogger(__name__)

#: Envelope of one item: ``{"index": <n>, "row": {...}}``.
_ITEM_OVERHEAD: Final = 32
#: JSON punctuation per column: quotes around the name and the value, ``:`` and ``,``.
_COLUMN_OVERHEAD: Final = 8
#: At most how many times longer JSON escaping makes a value (a control character takes six characters).
_MAX_ESCAPE_GROWTH: Final = 6


@dataclass
class EmptyRows:
    """Rows whose every field is empty (an empty line reads as one), seen by :func:`largest_item`.

    :param count: how many were read.
    :param first: the first one's index (0-based, header not counted); -1 while none was seen.
    """

    count: int = 0
    first: int = -1

    def add(self, columns: list[pa.Array], offset: int) -> None:
        """Count the empty rows of a chunk whose first row is data row ``offset``."""
        empty = pc.equal(pc.binary_length(columns[0]), 0)
        for column in columns[1:]:
            empty = pc.and_(empty, pc.equal(pc.binary_length(column), 0))
        found = pc.sum(empty).as_py() or 0
        if found and self.first < 0:
            self.first = offset + pc.index(empty, True).as_py()
        self.count += found


def _largest_row(
    chunks: Any,
    positions: list[int],
    names: Sequence[str],
    fixed: int,
    limit: int,
    envelope: bool,
    empty_rows: EmptyRows,
) -> tuple[int, int]:
    """``(size, data row index)`` of the largest row of selected columns (the index only past ``limit``)."""
    largest, where, offset = 0, -1, 0
    suspect = (limit - fixed) // _MAX_ESCAPE_GROWTH  # a row estimated under this fits however it is escaped
    for columns in chunks:
        sizes: pa.Array = pc.binary_length(columns[positions[0]])
        for position in positions[1:]:
            sizes = pc.add(sizes, pc.binary_length(columns[position]))
        if len(sizes):
            low, top = (value.as_py() or 0 for value in pc.min_max(sizes).values())
            if low == 0:  # only then can a row be empty in every column, not just the selected ones
                empty_rows.add(columns, offset)
            if top <= suspect:
                largest = max(largest, top + fixed)
            else:  # rare: measure the rows that might not fit
                for row in pc.indices_nonzero(pc.greater(sizes, suspect)).to_pylist():
                    values = {
                        name: columns[position][row].as_py()
                        for name, position in zip(names, positions, strict=True)
                    }
                    item = {"index": offset + row, "row": values} if envelope else values
                    exact = len(json_codec.dumps_bytes(item))
                    largest = max(largest, exact)
                    if exact > limit:
                        return exact, offset + row
        offset += len(columns[0])
    return largest, where


class _CharCounter(io.RawIOBase):
    """A read-only stream over an S3 body that counts the backslashes and quotes going through it."""

    def __init__(self, body: Any) -> None:
        self._body = body
        self.backslashes = 0
        self.quotes = 0  # quote characters not escaped by a backslash (a pair split by a read is missed)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._body.read(len(buffer))
        backslashes = data.count(b"\\")
        self.backslashes += backslashes
        self.quotes += data.count(b'"') - (data.count(b'\\"') if backslashes else 0)
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._body.close()
        super().close()


def check_row_sizes(s3: S3Client, layout: CsvLayout, limit: int) -> int:
    """Stream the input once and refuse it when a row's selected columns exceed ``limit`` bytes.

    The same pass warns, in the task log, about what Step Functions' CSV reader does differently from
    pandas: rows wider or narrower than the header, and backslashes (escapes to AWS).

    :param s3: a boto3 S3 client.
    :param layout: the input as the pre-flight saw it.
    :param limit: the largest item allowed, in bytes.
    :return: the size of the largest item, in bytes.
    :raises RowTooLargeError: naming the row and how to fix it.
    :raises UnsupportedInputError: the file holds bytes that are not UTF-8.
    """
    largest, where = largest_item(s3, layout, limit, envelope=True)
    if largest > limit:
        raise RowTooLargeError(
            f"Row {where} (0-based, header not counted) of {layout.uri} sends about {largest // 1024} KiB "
            f"to the function, over the {limit // 1024} KiB a row may take: a child execution's input is "
            "limited to 256 KiB, and the operator keeps the rest for function_config and the batch's "
            "envelope. To fix this, send fewer columns (columns=[...]) or shorten that row."
        )
    return largest


def largest_item(
    s3: S3Client, layout: CsvLayout, limit: int, *, envelope: bool, max_rows: int | None = None
) -> tuple[int, int]:
    """Stream the input once and find its largest item; warn where AWS reads the CSV unlike pandas.

    :param s3: a boto3 S3 client.
    :param layout: the input as the pre-flight saw it; ``layout.columns`` make the item.
    :param limit: the largest item allowed, in bytes: the scan stops at the first row past it.
    :param envelope: whether an item is the CSV operator's ``{"index": n, "row": {...}}`` (else ``{...}``).
    :param max_rows: read at most this many rows (the ItemReader's ``MaxItems``).
    :return: ``(size of the largest item in bytes, its row index)``; the index is ``-1`` unless the size
        is past ``limit``. Rows count from the first data row (from the first line without a header line).
    :raises UnsupportedInputError: the file holds bytes that are not UTF-8.
    """
    positions = [layout.headers.index(column) for column in layout.columns]
    fixed = (_ITEM_OVERHEAD if envelope else 2) + sum(
        len(column.encode()) + _COLUMN_OVERHEAD for column in layout.columns
    )
    body = _open(s3, layout)
    last: list[list[pa.Array]] = []
    empty_rows = EmptyRows()
    try:
        try:
            chunks = _keep_last(_first_rows(arrow_chunks(body, layout), max_rows), last)
            largest, where = _largest_row(
                chunks, positions, layout.columns, fixed, limit, envelope, empty_rows
            )
        except IrregularRowsError:
            # Arrow stops at a row whose width differs from the header's, at one wider than its blocks, or at
            # a doubled quote outside quotes.
            body.close()
            body = _open(s3, layout)
            irregular = IrregularRows(limit=max_rows)
            empty_rows = EmptyRows()
            chunks = _keep_last(_first_rows(python_chunks(body, layout, irregular), max_rows), last)
            largest, where = _largest_row(
                chunks, positions, layout.columns, fixed, limit, envelope, empty_rows
            )
            _warn_irregular(layout, irregular)
    except FieldTooLargeError as error:  # over the 8 MB AWS reads, so over any limit
        if max_rows is not None and error.row >= max_rows:  # past where the reader stops
            return 0, -1
        return MAX_FIELD_BYTES + 1, error.row
    except NotUtf8Error as error:
        if max_rows is not None:  # the reader may stop before these bytes
            log.warning("Could not check every item of %s (%s); going on", layout.uri, error)
            return 0, -1
        raise UnsupportedInputError(
            f"{layout.uri} holds bytes that are not UTF-8 text past its start ({error}). To fix this, "
            "re-encode the file as UTF-8: the Distributed Map CSV reader reads UTF-8."
        ) from None
    finally:
        body.close()
    if body.quotes % 2 and max_rows is None and last and _ends_in_multiline_value(last[0]):
        log.warning(
            "%s holds an odd number of quote characters: a quoted value is probably not closed, and Step "
            "Functions' CSV reader then reads every line after its opening quote, to the end of the file, as "
            "part of that one value (the rows there are not processed as rows). To fix this, close the quote "
            '(a literal quote inside a quoted value is written "").',
            layout.uri,
        )
    if empty_rows.count:
        log.warning(
            "Rows of %s with every field empty: %d (the first is row %d, 0-based, header not counted). An "
            "empty line is read as such a row (AWS does not document empty lines; the local endpoint reads "
            "them so), and each becomes an item the function is called with. To leave them out, remove the "
            "empty lines from the file.",
            layout.uri,
            empty_rows.count,
            empty_rows.first,
        )
    if body.backslashes:
        log.warning(
            "%s holds %d backslashes. Step Functions' CSV reader treats a backslash as an escape: it keeps "
            "the backslash, quote or delimiter after it, and drops the backslash before any other character "
            "(C:\\Users reads as C:Users). The items hold these fields that way. To keep a backslash, double "
            "it in the file.",
            layout.uri,
            body.backslashes,
        )
    return largest, where


def _warn_irregular(layout: CsvLayout, irregular: IrregularRows) -> None:
    if irregular.count:
        log.warning(
            "Rows of %s with more or fewer fields than the header: %d (the first is row %d, 0-based, header "
            "not counted). As Step Functions' CSV reader does, missing fields are read as empty and extra "
            "fields are dropped. To keep every value, give those rows the header's number of fields.",
            layout.uri,
            irregular.count,
            irregular.first,
        )


def _first_rows(chunks: Iterator[list[pa.Array]], limit: int | None) -> Iterator[list[pa.Array]]:
    """Pass ``chunks`` on up to ``limit`` rows in all (all of them when ``limit`` is ``None``)."""
    if limit is None:
        yield from chunks
        return
    left = limit
    for chunk in chunks:
        if left <= 0:
            return
        rows = len(chunk[0]) if chunk else 0
        yield chunk if rows <= left else [column.slice(0, left) for column in chunk]
        left -= rows


def _keep_last(chunks: Iterator[list[pa.Array]], last: list[list[pa.Array]]) -> Iterator[list[pa.Array]]:
    """Pass ``chunks`` on, keeping the latest in ``last``."""
    for chunk in chunks:
        last[:] = [chunk]
        yield chunk


def _ends_in_multiline_value(columns: list[pa.Array]) -> bool:
    """Whether the file's last row holds a line break: what a quote left open to the end of the file does."""
    return any(len(column) and "\n" in (column[-1].as_py() or "") for column in columns)


def _open(s3: S3Client, layout: CsvLayout) -> _CharCounter:
    return _CharCounter(s3.get_object(Bucket=layout.bucket, Key=layout.key, IfMatch=layout.etag)["Body"])
