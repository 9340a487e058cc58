"""CSV records exactly as the Distributed Map ItemReader splits them.

One module is shared by the local runtime's ItemReader and by the CSV operator's collector, so a row's
``$$.Map.Item.Index`` means the same record on both sides.

Rules (``docs/distributed-map-spec.md`` section 1.3, AWS "CSV parsing" page):

- fields are separated by ``CSVDelimiter``; quoted fields may hold the delimiter and newlines; ``""``
  is a literal ``"``, inside quotes and in an unquoted field alike ("You can preserve double quotes by
  repeating them"; AWS's own example reads the unquoted field ``{""MyKey"":""MyValue""}`` as
  ``{"MyKey":"MyValue"}``);
- a backslash escapes a backslash, a double quote or the delimiter; before any other character the
  backslash is dropped and the character kept (Python's ``escapechar`` does exactly this), a line break
  and the end of the file included (:class:`LineBreakEscapes`: the line break still ends the record);
- every field is a string: no null, number or boolean conversion;
- a trailing newline at the end of the file yields no record.

UNCONFIRMED on AWS: an empty line in the middle of a file. AWS keeps a whitespace-only line as a record of
empty strings, so an empty line is kept the same way (one record whose fields are all empty), which keeps
row indexes aligned with line-oriented tools.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from operator import itemgetter
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


#: "Currently, Step Functions supports CSV headers of up to 10 KiB" (the ItemReader page).
MAX_CSV_HEADER_BYTES: Final = 10 * 1024

#: AWS reads an item of up to 8 MB from a delimited file (ItemSelector may then shrink it under 256 KiB);
#: Python's csv module refuses fields over 128 KiB unless told otherwise.
MAX_FIELD_BYTES: Final = 8 * 1024 * 1024


def delimiter_char(name: str) -> str:
    """Return the character for a ``CSVDelimiter`` name, or raise ``ValueError`` naming the valid ones.

    :param name: ``COMMA``, ``PIPE``, ``SEMICOLON``, ``SPACE`` or ``TAB``.
    """
    try:
        return CSV_DELIMITERS[name]
    except KeyError:
        valid = ", ".join(CSV_DELIMITERS)
        raise ValueError(f"Unsupported CSVDelimiter {name!r}: use one of {valid}.") from None


class LineBreakEscapes(io.RawIOBase):
    r"""A byte stream without the backslashes that would escape a line break or end the file.

    AWS: "A backslash followed by any other character is silently removed" (spec section 1.3), so a field
    ``abc\`` at the end of a line reads ``abc`` and the line break still ends the record. CSV
    parsers (Python's ``escapechar``, pyarrow's ``escape_char``) would instead keep an escaped line break
    in the field and join two records. A backslash is dropped when an odd run of them meets ``\n``, ``\r``
    or the end of the stream; an even run is escaped backslashes and stays.

    :param raw: the binary stream to read.
    """

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._held = b""  # backslashes that ended the last read: what follows them decides

    def readable(self) -> bool:
        """Always readable."""
        return True

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes (all when negative); ``b""`` only at the end."""
        while True:
            data = self._raw.read(-1 if size is None else size)
            if not self._held and b"\\" not in data:  # one memchr: most files hold no backslash
                return data
            if not data:  # the end: an odd run of backslashes there escapes nothing, and its last one goes
                data, self._held = self._held, b""
                return data[:-1] if (len(data) - len(data.rstrip(b"\\"))) % 2 else data
            data = self._held + data
            kept = data.rstrip(b"\\")
            self._held = data[len(kept) :]
            if kept:  # else only backslashes so far: read on to see what follows them
                return _drop_line_break_escapes(kept)

    read1 = read

    def close(self) -> None:
        """Close this stream and the one it reads."""
        self._raw.close()
        super().close()


_LINE_BREAK_ESCAPE: Final = re.compile(rb"(\\+)(?=[\r\n])")


def _drop_line_break_escapes(data: bytes) -> bytes:
    if b"\\\n" not in data and b"\\\r" not in data:
        return data
    parts, start = [], 0
    for match in _LINE_BREAK_ESCAPE.finditer(data):
        if len(match.group(1)) % 2:  # odd: the last backslash would escape the line break
            parts.append(data[start : match.end() - 1])
            start = match.end()
    parts.append(data[start:])
    return b"".join(parts)


def _csv_reader(lines: Iterable[str], delimiter: str) -> Iterator[list[str]]:
    return csv.reader(
        lines, delimiter=delimiter, quotechar='"', doublequote=True, escapechar="\\", strict=False
    )


def raw_records(binary: IO[bytes], delimiter: str = ",", encoding: str = "utf-8") -> Iterator[list[str]]:
    """Like :func:`iter_records`, but an empty line comes out as ``[]`` (the csv module's own reader).

    :param binary: a readable binary stream.
    :param delimiter: the single delimiter character.
    :param encoding: text encoding of the stream.
    """
    if csv.field_size_limit() < MAX_FIELD_BYTES:
        csv.field_size_limit(MAX_FIELD_BYTES)
    text = io.TextIOWrapper(LineBreakEscapes(binary), encoding=encoding, newline="")  # type: ignore[type-var]
    record_lines: list[str] = []

    def lines() -> Iterator[str]:
        for line in text:
            record_lines.append(line)
            yield line

    for record in _csv_reader(lines(), delimiter):
        # The csv module keeps an unquoted field's "" as it is; such a record (rare) is read again. A field
        # read from quotes ("{""k"":""""}" is {"k":""}) is not in the record's text as it is, unlike an
        # unquoted one: without a backslash in the text, that tells them apart cheaply.
        if '""' in "\0".join(record):
            raw = "".join(record_lines)
            if "\\" in raw or any(_maybe_unquoted(field, raw) for field in record if '""' in field):
                escaped = _escape_unquoted_doubled_quotes(raw, delimiter)
                record = next(_csv_reader(io.StringIO(escaped, newline=""), delimiter))
        record_lines.clear()
        yield record


def _maybe_unquoted(field: str, raw: str) -> bool:
    """Whether ``field`` may hold an unquoted ``""``: it is in the record's text as is, or not wholly quoted.

    A field read from quotes is in the text with each quote doubled and quotes around it; one that starts
    quoted and goes on unquoted (``"ab"cd""ef``) is neither as it is nor wholly quoted.

    :param field: a field of the record, as the csv module read it.
    :param raw: the record's text (without backslashes, which take the exact reading anyway).
    """
    return field in raw or '"' + field.replace('"', '""') + '"' not in raw


_START, _UNQUOTED, _QUOTED, _QUOTE_IN_QUOTED = range(4)


def _escape_unquoted_doubled_quotes(text: str, delimiter: str) -> str:
    r"""One record's text with each ``""`` of an unquoted field written ``\"``, read as one ``"``.

    The states follow the csv module's own (``strict=False``), so nothing else in the record changes.
    """
    out: list[str] = []
    state, i = _START, 0
    while i < len(text):
        char = text[i]
        if char == "\\" and state != _QUOTE_IN_QUOTED:  # an escape: the next character is taken as it is
            out.append(text[i : i + 2])
            i += 2
            state = _QUOTED if state == _QUOTED else _UNQUOTED
            continue
        if state == _UNQUOTED and text.startswith('""', i):
            out.append('\\"')
            i += 2
            continue
        out.append(char)
        i += 1
        ends_field = char == delimiter or char in "\r\n"
        if state == _QUOTED:
            state = _QUOTE_IN_QUOTED if char == '"' else _QUOTED
        elif state == _QUOTE_IN_QUOTED:
            state = _QUOTED if char == '"' else _START if ends_field else _UNQUOTED
        elif ends_field:
            state = _START
        elif state == _START:
            state = _QUOTED if char == '"' else _UNQUOTED
    return "".join(out)


def iter_records(binary: IO[bytes], delimiter: str = ",", encoding: str = "utf-8") -> Iterator[list[str]]:
    """Yield each record of a CSV byte stream as a list of strings, reading it as a stream.

    :param binary: a readable binary stream (an S3 body, a gzip stream, a local file).
    :param delimiter: the single delimiter character (see :func:`delimiter_char`).
    :param encoding: text encoding of the stream.
    """
    for record in raw_records(binary, delimiter, encoding):
        yield record if record else [""]


def duplicate_names(headers: Sequence[str]) -> list[str]:
    """The names that appear more than once in ``headers``, sorted.

    :param headers: the header names.
    """
    return sorted(name for name, count in Counter(headers).items() if count > 1)


def shape_record(headers: list[str], record: list[str]) -> dict[str, str]:
    """Map a record onto headers as AWS does: missing fields become ``""``, extra fields are dropped.

    :param headers: the header names.
    :param record: the record's fields.
    """
    width = len(headers)
    if len(record) == width:
        return dict(zip(headers, record, strict=True))
    if len(record) < width:
        record = record + [""] * (width - len(record))
    return dict(zip(headers, record[:width], strict=True))


def record_shaper(
    headers: list[str], order: Sequence[int] | None = None
) -> Callable[[list[str]], dict[str, str]]:
    """:func:`shape_record` for one header list, with the common case (a full record) first.

    :param headers: the header names.
    :param order: the positions of the fields in the order the dict's keys take (default: the header's).
    """
    width = len(headers)
    if order is None or list(order) == list(range(width)):

        def shape(record: list[str]) -> dict[str, str]:
            if len(record) == width:  # checked here, so zip's own check (twice the cost per row) is left out
                return dict(zip(headers, record))  # noqa: B905
            return shape_record(headers, record)

        return shape
    keys = [headers[i] for i in order]
    pick = itemgetter(*order)  # at least two fields: one field has one order

    def shape_in_order(record: list[str]) -> dict[str, str]:
        if len(record) == width:
            return dict(zip(keys, pick(record)))  # noqa: B905
        shaped = shape_record(headers, record)
        return {key: shaped[key] for key in keys}

    return shape_in_order
