"""CSV records exactly as the Distributed Map ItemReader splits them.

One module is shared by the local runtime's ItemReader and by the CSV operator's collector, so a row's
``$$.Map.Item.Index`` means the same record on both sides.

Rules (``docs/distributed-map-spec.md`` section 1.3, AWS "CSV parsing" page):

- fields are separated by ``CSVDelimiter``; quoted fields may hold the delimiter and newlines; ``""``
  inside quotes is a literal ``"``;
- a backslash escapes a backslash, a double quote or the delimiter; before any other character the
  backslash is dropped and the character kept (Python's ``escapechar`` does exactly this);
- every field is a string: no null, number or boolean conversion;
- a trailing newline at the end of the file yields no record.

UNCONFIRMED on AWS: an empty line in the middle of a file. AWS keeps a whitespace-only line as a record of
empty strings, so an empty line is kept the same way (one record whose fields are all empty), which keeps
row indexes aligned with line-oriented tools.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from typing import IO, Final

#: ``ReaderConfig.CSVDelimiter`` values and the character each stands for.
CSV_DELIMITERS: Final[dict[str, str]] = {
    "COMMA": ",",
    "PIPE": "|",
    "SEMICOLON": ";",
    "SPACE": " ",
    "TAB": "\t",
}

UTF8_BOM: Final = "\ufeff"

#: AWS reads an item of up to 8 MB from a delimited file (ItemSelector may then shrink it under 256 KiB);
#: Python's csv module refuses fields over 128 KiB unless told otherwise.
MAX_FIELD_BYTES: Final = 8 * 1024 * 1024


def delimiter_char(name: str) -> str:
    """Return the character for a ``CSVDelimiter`` name, or raise ``ValueError`` naming the valid ones."""
    try:
        return CSV_DELIMITERS[name]
    except KeyError:
        valid = ", ".join(CSV_DELIMITERS)
        raise ValueError(f"Unsupported CSVDelimiter {name!r}: use one of {valid}.") from None


def raw_records(binary: IO[bytes], delimiter: str = ",", encoding: str = "utf-8") -> Iterator[list[str]]:
    """Like :func:`iter_records`, but an empty line comes out as ``[]`` (the csv module's own reader)."""
    if csv.field_size_limit() < MAX_FIELD_BYTES:
        csv.field_size_limit(MAX_FIELD_BYTES)
    text = io.TextIOWrapper(binary, encoding=encoding, newline="")
    return csv.reader(
        text, delimiter=delimiter, quotechar='"', doublequote=True, escapechar="\\", strict=False
    )


def iter_records(binary: IO[bytes], delimiter: str = ",", encoding: str = "utf-8") -> Iterator[list[str]]:
    """Yield each record of a CSV byte stream as a list of strings, reading it as a stream.

    :param binary: a readable binary stream (an S3 body, a gzip stream, a local file).
    :param delimiter: the single delimiter character (see :func:`delimiter_char`).
    :param encoding: text encoding of the stream.
    """
    for record in raw_records(binary, delimiter, encoding):
        yield record if record else [""]


def shape_record(headers: list[str], record: list[str]) -> dict[str, str]:
    """Map a record onto headers as AWS does: missing fields become ``""``, extra fields are dropped."""
    width = len(headers)
    if len(record) == width:
        return dict(zip(headers, record, strict=True))
    if len(record) < width:
        record = record + [""] * (width - len(record))
    return dict(zip(headers, record[:width], strict=True))


def record_shaper(headers: list[str]) -> Callable[[list[str]], dict[str, str]]:
    """:func:`shape_record` for one header list, with the common case (a full record) first."""
    width = len(headers)

    def shape(record: list[str]) -> dict[str, str]:
        if len(record) == width:  # checked here, so zip's own check (twice the cost per row) is left out
            return dict(zip(headers, record))  # noqa: B905
        return shape_record(headers, record)

    return shape
