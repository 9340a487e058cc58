"""Pre-flight checks of a CSV row-processing task, run before anything is created or started in AWS.

The header is read with ranged GETs (64 KiB first, doubled while the first record is incomplete, never
the whole file) and split by :mod:`airflow_distmap.formats.csv_records`, the same splitter the local
ItemReader uses, so a row's index means the same record everywhere.

How the Map reads the file (decided here, used by the definition and the collector):

- ``FIRST_ROW`` (AWS's documented CSV set-up) when it is safe: the file has a header line, no UTF-8
  byte-order mark, a header under 8 KiB (a 10 KiB header limit is reported, UNCONFIRMED) and requested
  column names that a plain JSONPath can address (``[A-Za-z_][A-Za-z0-9_]*``). Data row ``i`` (0-based,
  like a pandas index) is item ``i``; the ItemSelector reads ``$$.Map.Item.Value.<name>``.
- otherwise ``GIVEN`` with synthetic names ``c0, c1, ...``, which the ItemSelector maps back to the real
  names. A BOM or names with quotes, brackets, dots or spaces then never reach a JSONPath: the real names
  only appear as keys of the ItemSelector template. Whether AWS's FIRST_ROW reader strips a BOM is
  UNCONFIRMED (spec §1.3, open question 6); with GIVEN it does not matter. The header line becomes item 0:
  ``row_handler`` answers it as skipped (``BatchInput.skip = [0]``, no function call), the collector
  ignores it, and data row ``i`` is item ``i + 1``.
- with user-given headers (``csv_headers``: the file has no header line) ``GIVEN`` with those names'
  synthetic stand-ins; data row ``i`` is item ``i``.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from botocore.exceptions import ClientError

from airflow_distmap.exceptions import (
    BadHeaderError,
    EmptyInputError,
    InputNotFoundError,
    MissingColumnError,
    OutputLocationError,
    UnsupportedInputError,
)
from airflow_distmap.formats.csv_records import (
    CSV_DELIMITERS,
    MAX_CSV_HEADER_BYTES,
    UTF8_BOM,
    duplicate_names,
    iter_records,
    raw_records,
)
from airflow_distmap.ownership import foreign_claim_above, head_object, owned_by
from airflow_distmap.results import bucket_exists, parse_s3_uri, s3_uri

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

#: First ranged GET of the header.
HEADER_PROBE_BYTES: Final = 64 * 1024
#: Largest header read before giving up: AWS reads items of up to 8 MB from a delimited file.
MAX_HEADER_BYTES: Final = 8 * 1024 * 1024
#: Output formats by extension.
OUTPUT_FORMATS: Final = {".csv": "csv", ".parquet": "parquet"}
#: Header size up to which FIRST_ROW is used (AWS reportedly reads headers up to 10 KiB, UNCONFIRMED).
FIRST_ROW_MAX_HEADER_BYTES: Final = 8 * 1024
#: Column names a plain JSONPath member (``$$.Map.Item.Value.<name>``) can address.
_PLAIN_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Field that carries an item's index in re-run items (so FIRST_ROW avoids a column of that name).
RERUN_INDEX_FIELD: Final = "_distmap_item_index"
_COMPRESSED_SUFFIXES: Final = (".gz", ".gzip", ".zst", ".zstd", ".bz2", ".zip")
_BOM_BYTES: Final = UTF8_BOM.encode()
#: Characters of a row quoted in an error message.
_PREVIEW_CHARS: Final = 120
#: How to give a task run an output of its own, for the errors about an output another task run wrote.
OWN_OUTPUT_URI_FIX: Final = (
    "give each task run its own output_uri (template it: {{ ds }} per date, {{ run_id }} when one date is "
    "processed more than once, and {{ ti.map_index }} in a mapped task)"
)


def resolve_delimiter(value: str) -> tuple[str, str]:
    """Return ``(CSVDelimiter name, character)`` for a name (``"SEMICOLON"``) or a character (``";"``).

    :param value: ``COMMA``, ``PIPE``, ``SEMICOLON``, ``SPACE``, ``TAB`` (any case) or the character.
    :raises UnsupportedInputError: anything else: AWS's ItemReader supports only these five.
    """
    if isinstance(value, str):
        upper = value.strip().upper() if value.strip() else value
        if upper in CSV_DELIMITERS:
            return upper, CSV_DELIMITERS[upper]
        for name, char in CSV_DELIMITERS.items():
            if value == char:
                return name, char
    choices = ", ".join(f"{name} ({char!r})" for name, char in CSV_DELIMITERS.items())
    raise UnsupportedInputError(
        f"Unsupported delimiter {value!r}: the Distributed Map CSV reader supports only {choices}. "
        "To fix this, pass one of these names or characters, or convert the file to one of them."
    )


@dataclass(frozen=True)
class CsvLayout:
    """What the pre-flight learned about the input CSV and how the Map reads it.

    :param bucket: input bucket.
    :param key: input key.
    :param size: object size in bytes.
    :param etag: the object's ETag when checked (the collector re-reads exactly this version).
    :param delimiter_name: ``CSVDelimiter`` value (``COMMA``...).
    :param delimiter: the delimiter character.
    :param headers: column names, BOM stripped (the output's columns before ``output_column``).
    :param columns: the columns sent to the function, in the order asked for.
    :param header_in_file: whether the file's first record is the header.
    :param has_bom: whether the file starts with a UTF-8 byte-order mark.
    :param header_location: ``FIRST_ROW`` or ``GIVEN``: how the ItemReader gets the column names.
    """

    bucket: str
    key: str
    size: int
    etag: str
    delimiter_name: str
    delimiter: str
    headers: tuple[str, ...]
    columns: tuple[str, ...]
    header_in_file: bool
    has_bom: bool
    header_location: str = "GIVEN"

    @property
    def uri(self) -> str:
        """``s3://`` URI of the input."""
        return s3_uri(self.bucket, self.key)

    @property
    def first_data_item(self) -> int:
        """Item index of data row 0 (1 when the header line is an item)."""
        return 1 if self.header_in_file and self.header_location == "GIVEN" else 0

    @property
    def skipped_items(self) -> list[int]:
        """Items that are not data (the header line read as an item under ``GIVEN``)."""
        return [0] if self.first_data_item else []

    @property
    def reader_headers(self) -> list[str]:
        """Synthetic column names ``c0, c1, ...``: the ``GIVEN`` ``CSVHeaders``, and the collector's."""
        return self.given_names(len(self.headers))

    @staticmethod
    def given_names(count: int) -> list[str]:
        """The synthetic names of ``count`` columns: ``c0, c1, ...``.

        :param count: how many columns.
        """
        return [f"c{position}" for position in range(count)]

    def reader_name(self, column: str) -> str:
        """The name an item gives a real column: itself under ``FIRST_ROW``, ``c<i>`` under ``GIVEN``."""
        if self.header_location == "FIRST_ROW":
            return column
        return f"c{self.headers.index(column)}"


@dataclass(frozen=True)
class OutputTarget:
    """Where the collector writes: the dataset and its failed-rows ledger.

    :param uri: ``output_uri``.
    :param format: ``csv`` or ``parquet``.
    :param ledger_uri: ``<output stem>.failed.<ext>`` beside it.
    :param seen_etags: the ETag of each of the two objects when they were checked (an earlier try's), or
        ``None`` when there was none: the collector writes only if that is still so.
    """

    uri: str
    format: str
    ledger_uri: str
    seen_etags: Mapping[str, str | None]


def ledger_uri_for(output_uri: str) -> str:
    """The failed-rows ledger beside an output: ``s3://b/out/data.csv`` -> ``s3://b/out/data.failed.csv``."""
    stem, extension = posixpath.splitext(output_uri)
    return f"{stem}.failed{extension}"


@dataclass(frozen=True)
class HeaderProbe:
    """The first record of a CSV object, read by :func:`probe_header`.

    :param header: the first record's fields.
    :param has_data_row: whether a second record follows (not only empty lines to the end of the file).
    :param has_bom: whether the object starts with a UTF-8 byte-order mark (not part of ``header``).
    :param first_line: the object's first line as written (up to its first line break), without the mark.
    :param bom_splits_first_field: whether the mark comes right before a quoted field holding a line break or
        the delimiter (see :func:`_quote_after_mark_splits`).
    """

    header: list[str]
    has_data_row: bool
    has_bom: bool
    first_line: str = ""
    bom_splits_first_field: bool = False


def _quote_after_mark_splits(text: str, delimiter: str) -> bool:
    """Whether ``text`` (after a byte-order mark) opens with a quoted field holding a break or delimiter.

    A reader that keeps the mark sees it as the field's first character, so the quote is literal there and
    the line break or delimiter inside ends the record or field; a reader that strips it reads one quoted
    field. The two split the file into different rows and fields.

    :param text: The object's first record (at least), decoded, without the mark.
    :param delimiter: The delimiter character.
    """
    if not text.startswith('"'):
        return False
    position = 1
    while (closing := text.find('"', position)) != -1 and text.startswith('""', closing):
        position = closing + 2
    field = text[1:] if closing == -1 else text[1:closing]
    return "\n" in field or "\r" in field or delimiter in field


def probe_header(
    s3: S3Client,
    bucket: str,
    key: str,
    size: int,
    delimiter: str,
    *,
    argument: str = "input_uri",
    start: bytes | None = None,
) -> HeaderProbe:
    """Read the first record with ranged GETs, growing the range until it is complete (never the whole file).

    :param s3: a boto3 S3 client.
    :param bucket: the object's bucket.
    :param key: the object's key.
    :param size: the object's size in bytes.
    :param delimiter: the single delimiter character.
    :param argument: what points at the object, for the messages ("input_uri").
    :param start: the object's first :data:`HEADER_PROBE_BYTES` (or all of it), when the caller read them.
    :raises CsvInputError: the object is not UTF-8, holds no record, or its first record never ends.
    """
    length = HEADER_PROBE_BYTES
    while True:
        end = min(length, size)
        if start is not None and length == HEADER_PROBE_BYTES:
            chunk = start
        else:
            chunk = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{end - 1}")["Body"].read()
        whole = end >= size
        has_bom = chunk.startswith(_BOM_BYTES)
        if has_bom:
            chunk = chunk[len(_BOM_BYTES) :]
        try:
            # final=whole: a multi-byte character cut by the range end is left out, not an error.
            text = codecs.getincrementaldecoder("utf-8")().decode(chunk, final=whole)
        except UnicodeDecodeError as exc:
            raise UnsupportedInputError(
                f"{s3_uri(bucket, key)} is not UTF-8 text ({exc.reason} at byte {exc.start}). "
                "To fix this, re-encode the file as UTF-8: the Distributed Map CSV reader reads UTF-8."
            ) from None
        records = iter_records(io.BytesIO(text.encode()), delimiter=delimiter)
        header = next(records, None)
        try:
            second = next(records, None)
        except csv.Error:  # a first row with a field beyond even the raised limit: a row is there
            second = [""]
        if header is None:
            if whole:
                raise EmptyInputError(
                    f"{s3_uri(bucket, key)} is empty. To fix this, point {argument} at a CSV with a header "
                    "line and at least one row."
                )
        elif whole or second is not None:
            # The first record is complete once a second one starts (or the file ends). A whole file whose
            # records after the header are all empty lines holds no rows to a person (nor to pandas).
            has_rows = second is not None and not (whole and _only_empty_lines_after_header(text, delimiter))
            first_line = text.split("\n", 1)[0].rstrip("\r")
            splits = has_bom and _quote_after_mark_splits(text, delimiter)
            return HeaderProbe(header, has_rows, has_bom, first_line, splits)
        if length >= MAX_HEADER_BYTES:
            raise BadHeaderError(
                f"The first record of {s3_uri(bucket, key)} is longer than {MAX_HEADER_BYTES} bytes. "
                "To fix this, check the delimiter and for an unclosed quote in the header line."
            )
        length *= 2


def _delimiter_hint(header: Sequence[str], delimiter: str) -> str:
    if len(header) != 1:
        return ""
    for name, char in CSV_DELIMITERS.items():
        if char != delimiter and char != " " and char in header[0]:
            return f" The header looks delimited by {char!r}: pass delimiter={name!r}."
    return ""


def check_column_arguments(
    columns: Sequence[str] | None, csv_headers: Sequence[str] | None, delimiter: str
) -> None:
    """The checks of ``columns`` and ``csv_headers`` that need no file (they run when the DAG is parsed too).

    :param columns: columns sent to the function; ``None`` means all.
    :param csv_headers: column names for a file that has no header line.
    :param delimiter: the delimiter character (for a hint when a name holds another one).
    :raises CsvInputError: a subclass naming the problem and the fix.
    """
    if csv_headers is not None:
        _check_header(list(csv_headers), "", delimiter, given=True)
    if columns is None:
        return
    if not columns:
        raise MissingColumnError(
            "columns is empty. To fix this, list at least one column, or pass None for all."
        )
    if len(set(columns)) != len(columns):
        raise MissingColumnError(
            f"columns lists a column twice: {list(columns)}. To fix this, list each once."
        )


def _check_header(header: Sequence[str], uri: str, delimiter: str, *, given: bool) -> tuple[str, ...]:
    source = "csv_headers" if given else f"the header line of {uri}"
    empty = [str(position + 1) for position, name in enumerate(header) if not name.strip()]
    if empty:
        raise BadHeaderError(
            f"{source} has an empty column name at position {', '.join(empty)} (1-based). "
            "To fix this, give every column a name"
            + (
                " in csv_headers."
                if given
                else " in the file's first line, or pass csv_headers for a file without a header."
            )
            + _delimiter_hint(header, delimiter)
        )
    duplicates = duplicate_names(header)
    if duplicates:
        raise BadHeaderError(
            f"{source} has duplicate column names: {', '.join(repr(d) for d in duplicates)}. "
            "To fix this, make every column name unique"
            + (" in csv_headers." if given else " in the file's first line.")
        )
    return tuple(header)


def _only_empty_lines_after_header(text: str, delimiter: str) -> bool:
    """Whether every line after the first record is empty (a quoted empty value ``""`` is a row)."""
    records = raw_records(io.BytesIO(text.encode()), delimiter=delimiter)
    next(records, None)
    return all(not record for record in records)


def _refuse_json(first_line: str, input_uri: str) -> None:
    """A first line that is a JSON object or array, or opens one: the file is JSON (Lines), not a CSV."""
    line = first_line.strip()
    if line not in ("{", "["):
        if not line.startswith(("{", "[")):
            return
        try:
            json.loads(line)
        except ValueError:
            return
    raise UnsupportedInputError(
        f"The first line of {input_uri} is JSON ({line[:60]}), not a CSV header: the file looks like JSON "
        "or JSON Lines. To fix this, point input_uri at a CSV, or run the file with DistributedMapOperator "
        "and a JsonItemReader or JsonlItemReader."
    )


def split_input_uri(input_uri: str) -> tuple[str, str]:
    """``(bucket, key)`` of an ``input_uri`` that can name an input CSV, which nothing is read from yet.

    :param input_uri: ``s3://bucket/key.csv``.
    :raises InputNotFoundError: the URI is malformed or names no object.
    :raises UnsupportedInputError: the key names a compressed file.
    """
    try:
        bucket, key = parse_s3_uri(input_uri, what="input_uri")
    except ValueError as exc:
        raise InputNotFoundError(str(exc)) from None
    if not key or key.endswith("/"):
        raise InputNotFoundError(
            f"input_uri {input_uri!r} names no object. To fix this, pass the CSV's full key, "
            "like 's3://my-bucket/path/data.csv'."
        )
    if key.lower().endswith(_COMPRESSED_SUFFIXES):
        raise UnsupportedInputError(
            f"{input_uri} is compressed. To fix this, store it uncompressed: the operator re-reads the file "
            "to write the output in input order."
        )
    return bucket, key


def check_csv_input(
    s3: S3Client,
    input_uri: str,
    *,
    delimiter: str = "COMMA",
    columns: Sequence[str] | None = None,
    csv_headers: Sequence[str] | None = None,
    output_column: str | None = None,
    announce: bool = True,
) -> CsvLayout:
    """Check the input CSV and the columns asked for; return how the Map will read it.

    :param s3: a boto3 S3 client.
    :param input_uri: ``s3://bucket/key.csv``.
    :param delimiter: a ``CSVDelimiter`` name or character.
    :param columns: columns sent to the function; ``None`` means all.
    :param csv_headers: column names for a file that has no header line (``CSVHeaderLocation: GIVEN``).
    :param output_column: the column the function's output is written to; must not be a header name.
    :param announce: log the layout found at INFO (``False``: at DEBUG, for a check the task made before).
    :raises CsvInputError: a subclass naming the problem and the fix.
    """
    bucket, key = split_input_uri(input_uri)
    delimiter_name, delimiter_char = resolve_delimiter(delimiter)
    check_column_arguments(columns, csv_headers, delimiter_char)
    try:
        head = head_object(s3, bucket, key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("403", "AccessDenied", "Forbidden"):
            raise
        # S3 answers 403, not 404, for a missing key when the caller may not list the bucket.
        raise InputNotFoundError(
            f"Access to {input_uri} was denied: the object does not exist, or the Airflow connection may not "
            "read it. To fix this, check the key, and grant the aws_conn_id's identity s3:GetObject on it "
            "(and s3:ListBucket on the bucket, so a missing key is reported as missing)."
        ) from None
    if head is None:
        if not bucket_exists(s3, bucket):
            raise InputNotFoundError(
                f"Bucket {bucket!r} of input_uri {input_uri} does not exist (or is not visible with this "
                "connection). To fix this, check the bucket name and the aws_conn_id's account and region."
            )
        raise InputNotFoundError(
            f"No object at {input_uri}. To fix this, check the key (S3 keys are case-sensitive) or make the "
            "task that writes it run first."
        )
    size = int(head.get("ContentLength", 0))
    if size == 0:
        raise EmptyInputError(
            f"{input_uri} is empty. To fix this, point input_uri at a CSV with a header line and rows."
        )
    probe = probe_header(s3, bucket, key, size, delimiter_char)
    if probe.bom_splits_first_field:
        # Whether AWS's CSV reader strips the mark is UNCONFIRMED: the output would pair rows with the results
        # of others under one of the two readings, so the file is refused rather than guessed at.
        raise UnsupportedInputError(
            f"{input_uri} starts with a UTF-8 byte-order mark right before a quoted field that holds a line "
            "break or the delimiter. A CSV reader that keeps the mark (as the local endpoint does; AWS does "
            "not document it) reads that quote literally and splits the file into other rows and fields, so "
            "results would pair with the wrong rows. To fix this, save the file as UTF-8 without a "
            "byte-order mark."
        )
    if csv_headers is not None:
        headers = _check_header(list(csv_headers), input_uri, delimiter_char, given=True)
        header_in_file = False
        if len(probe.header) > len(headers):
            # The first row is data: more fields than names means a csv_headers list that does not fit the
            # file, and Step Functions would drop the fields past the names from every such row. (Fewer fields
            # are read as empty, losing nothing: the scan of the rows warns about them.)
            raise BadHeaderError(
                f"csv_headers names {len(headers)} columns, but the first row of {input_uri} has "
                f"{len(probe.header)} fields: {probe.first_line[:_PREVIEW_CHARS]!r}; Step Functions would "
                "drop the fields past the names. To fix this, give csv_headers one name per field."
            )
    else:
        _refuse_json(probe.first_line, input_uri)
        headers = _check_header(probe.header, input_uri, delimiter_char, given=False)
        header_in_file = True
        if not probe.has_data_row and any("\n" in header for header in headers):
            raise BadHeaderError(
                f"The header of {input_uri} runs over several lines ({', '.join(map(repr, headers))}): a "
                "quote in it is probably not closed, so the rows were read as part of the header. To fix "
                'this, close the quote (a literal quote inside a quoted field is written "").'
            )
        if not probe.has_data_row:
            raise EmptyInputError(
                f"{input_uri} holds only a header line ({', '.join(headers)}) and no rows (empty lines "
                "aside). To fix this, "
                "point input_uri at a file with data (or skip the task when there is nothing to process)."
            )
    wanted = tuple(headers) if columns is None else tuple(columns)
    missing = [c for c in wanted if c not in headers]
    if missing:
        raise MissingColumnError(
            f"Column(s) {', '.join(repr(m) for m in missing)} not in the header of {input_uri}; it has "
            f"{', '.join(repr(h) for h in headers)}. To fix this, use names from the header (they are "
            "case-sensitive)." + _delimiter_hint(headers, delimiter_char)
        )
    if output_column is not None and output_column in headers:
        raise MissingColumnError(
            f"output_column {output_column!r} is already a column of {input_uri}. To fix this, choose a new "
            "name for the function's output."
        )
    first_row = (
        header_in_file
        and not probe.has_bom
        and len(delimiter_char.join(headers).encode()) <= FIRST_ROW_MAX_HEADER_BYTES
        and all(_PLAIN_NAME.match(column) for column in wanted)
        and RERUN_INDEX_FIELD not in headers
    )
    header_location = "FIRST_ROW" if first_row else "GIVEN"
    given_names = len(delimiter_char.join(CsvLayout.given_names(len(headers))).encode())
    if not first_row and given_names > MAX_CSV_HEADER_BYTES:
        raise BadHeaderError(
            f"{input_uri} has {len(headers)} columns, too many for Step Functions: it reads CSV headers of "
            f"up to 10 KiB, and even short names for them take {given_names} bytes. To fix this, write the "
            "columns the function needs (and an id column) to a file of their own and process that."
        )
    if first_row:
        reading = "the Map reads its header (FIRST_ROW)"
    elif header_in_file:
        reading = "the Map reads it with GIVEN names and skips its header line"
    else:
        reading = "no header line: GIVEN names"
    (log.info if announce else log.debug)(
        "Pre-flight of %s: %d columns, delimiter %s%s; %s",
        input_uri,
        len(headers),
        delimiter_name,
        ", UTF-8 byte-order mark" if probe.has_bom else "",
        reading,
    )
    if probe.has_bom and not header_in_file:
        # With no header line to skip, the mark is part of the first row (whether AWS strips it is
        # UNCONFIRMED; the local endpoint, like a plain UTF-8 reader, keeps it).
        log.warning(
            "%s starts with a UTF-8 byte-order mark and has no header line (csv_headers): Step Functions' "
            "reader may keep the mark in the first row's first value, so the function can see it there while "
            "the output shows the value without it. To avoid this, save the file without a byte-order mark.",
            input_uri,
        )
    return CsvLayout(
        bucket=bucket,
        key=key,
        size=size,
        etag=str(head.get("ETag", "")),
        delimiter_name=delimiter_name,
        delimiter=delimiter_char,
        headers=headers,
        columns=wanted,
        header_in_file=header_in_file,
        has_bom=probe.has_bom,
        header_location=header_location,
    )


def split_output_uri(output_uri: str, input_uri: str | None = None) -> tuple[str, str, str]:
    """``(bucket, key, extension)`` of an ``output_uri`` whose extension names an output format.

    :param output_uri: ``s3://bucket/key.csv`` or ``.parquet``.
    :param input_uri: the input, which the output must not be (``None``: not checked).
    :raises OutputLocationError: the URI is malformed, names no output format, or is the input.
    """
    if output_uri == input_uri:
        raise OutputLocationError(
            f"output_uri is the input ({input_uri}). To fix this, write the output to a new key."
        )
    try:
        bucket, key = parse_s3_uri(output_uri, what="output_uri")
    except ValueError as exc:
        raise OutputLocationError(str(exc)) from None
    extension = posixpath.splitext(key)[1].lower()
    if extension not in OUTPUT_FORMATS:
        raise OutputLocationError(
            f"output_uri {output_uri!r} must end in .csv or .parquet. To fix this, choose one of these "
            "extensions: it selects the output format."
        )
    return bucket, key, extension


def check_output_location(
    s3: S3Client, output_uri: str, *, input_uri: str, owner: str | None
) -> OutputTarget:
    """Check that ``output_uri`` and its ledger can be written without losing anything.

    An existing object is refused unless an earlier try of the same task run wrote it (its
    ``x-amz-meta-distmap-owner`` equals ``owner``): a retry may replace its own output, nothing else.

    :param s3: a boto3 S3 client.
    :param output_uri: ``s3://bucket/key.csv`` or ``.parquet``.
    :param input_uri: the input, which must not be overwritten.
    :param owner: :func:`owner_token` of this task run.
    :raises OutputLocationError: bad extension, same as the input, inside another task run's results prefix,
        or already written by someone else.
    """
    bucket, key, extension = split_output_uri(output_uri, input_uri)
    claim = foreign_claim_above(s3, bucket, key, owner=owner)
    if claim is not None:
        raise OutputLocationError(
            f"output_uri {output_uri} lies inside another task run's results prefix (claimed by {claim}). "
            f"To fix this, {OWN_OUTPUT_URI_FIX}, outside other runs' results."
        )
    ledger_uri = ledger_uri_for(output_uri)
    seen_etags: dict[str, str | None] = {}
    for uri in (output_uri, ledger_uri):
        target_bucket, target_key = parse_s3_uri(uri)
        head = head_object(s3, target_bucket, target_key)
        seen_etags[uri] = None if head is None else head.get("ETag")
        if head is not None and not owned_by(head, owner):
            raise OutputLocationError(
                f"{uri} already exists and was not written by this task run. To fix this, "
                f"{OWN_OUTPUT_URI_FIX}, or delete the object to process that input again."
            )
    if not bucket_exists(s3, bucket):
        raise OutputLocationError(
            f"Bucket {bucket!r} of output_uri does not exist. To fix this, create it or use another bucket."
        )
    return OutputTarget(
        uri=output_uri, format=OUTPUT_FORMATS[extension], ledger_uri=ledger_uri, seen_etags=seen_etags
    )
