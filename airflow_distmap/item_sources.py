"""Pre-flight checks of what a Distributed Map's ItemReader will read, before anything is created in AWS.

Without them an empty file "succeeds" with no items, and a file the reader cannot parse (a JSON text that is
not an array, a bad JSON Lines line, duplicate CSV headers) or an ItemSelector column the CSV lacks fails the
execution only after the state machine, the execution and the results prefix exist. The checks read the
start of the object with ranged GETs (64 KiB, more for a long CSV header), so the parts of a large file past
that are left to the reader. Compressed objects are only checked for existence and size.

When a CSV or JSON Lines item is the child execution's input as it is (no ItemSelector), one streamed pass
over the whole object also looks for an item over the 256 KiB child-input quota, on which Step Functions
fails the Map Run after the items before it ran (which error it names is UNCONFIRMED; the local endpoint
says ``States.DataLimitExceeded``, AWS's payload-quota error). With an ItemSelector AWS reads items of up to
8 MB and lets the selector shrink them, which only running the selector would tell, so the pass is skipped.
So it is for a JSON array, which would need a streaming JSON parser.
"""

from __future__ import annotations

import codecs
import logging
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from airflow_distmap import json_codec
from airflow_distmap.csv_processing.preflight import HEADER_PROBE_BYTES, CsvLayout, probe_header
from airflow_distmap.csv_processing.row_sizes import largest_item
from airflow_distmap.exceptions import CsvInputError, ItemSourceContentError, ItemSourceNotFoundError
from airflow_distmap.formats import json_pointer
from airflow_distmap.formats.csv_records import UTF8_BOM, delimiter_char, duplicate_names
from airflow_distmap.ownership import head_object
from airflow_distmap.results import s3_uri

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

#: Bytes of a JSON or JSON Lines object read to check it.
PROBE_BYTES: Final = HEADER_PROBE_BYTES
#: A child execution's input quota (spec section 6): an item sent as it is must fit in it.
CHILD_INPUT_LIMIT: Final = 256 * 1024
#: ``{"Items":[]}``: what a batch adds around its items.
_BATCH_ENVELOPE: Final = 12
#: Bytes per read of the JSON Lines size scan.
_SCAN_CHUNK_BYTES: Final = 1024 * 1024
#: The largest item Step Functions reads from a file (spec section 1.4: 8 MB, for an ItemSelector to shrink).
MAX_ITEM_READ_BYTES: Final = 8 * 1024 * 1024
#: Object names the ItemReader decompresses (spec section 1.3); their content is not probed.
COMPRESSED_SUFFIXES: Final = (".gz", ".gzip", ".zst", ".zstd")
_COMPRESSED_MAGIC: Final = (b"\x1f\x8b", b"\x28\xb5\x2f\xfd")
UTF8_BOM_BYTES: Final = UTF8_BOM.encode()
#: ``$$.Map.Item.Value.<column>`` in a JSONPath ItemSelector: the column a CSV item must have.
_ITEM_COLUMN: Final = re.compile(r"^\$\$\.Map\.Item\.Value\.([A-Za-z_][A-Za-z0-9_]*)(?:$|[.\[])")
_JSON_TYPES: Final[dict[type, str]] = {
    dict: "object",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}
_NOTHING_CREATED: Final = "; nothing was created."
#: Keys listed to find an object with bytes under a prefix whose objects' records are read (LOAD_AND_FLATTEN).
PREFIX_PROBE_KEYS: Final = 100
#: The bytes every Parquet file starts (and ends) with.
PARQUET_MAGIC: Final = b"PAR1"
_SKIP_HINT: Final = "(or skip the task when there is nothing to process, e.g. with a ShortCircuitOperator)"


def check_object_items(
    s3: S3Client,
    state_name: str,
    reader: Mapping[str, Any],
    item_selector: Any,
    bucket: str,
    key: str,
    *,
    item_limit: int | None = None,
) -> None:
    """Check an ``s3:getObject`` ItemReader's object: it exists, is not empty, and its start parses.

    :param s3: a boto3 S3 client.
    :param state_name: the Distributed Map state, for the messages.
    :param reader: the ItemReader (its literal ``ReaderConfig`` is read).
    :param item_selector: the state's JSONPath ItemSelector (``None`` when absent or JSONata).
    :param bucket: the literal bucket.
    :param key: the literal key.
    :param item_limit: the largest item the children can receive as it is, in bytes (see
        :func:`item_size_limit`): a CSV or JSON Lines object is then read whole, and refused when an item
        exceeds it. ``None`` skips that pass.
    :raises ItemSourceNotFoundError: the object does not exist.
    :raises ItemSourceContentError: the reader would find no items, or fail on the object.
    """
    uri = s3_uri(bucket, key)
    where = f"The ItemReader of {state_name!r} reads {uri}"
    try:
        head = head_object(s3, bucket, key)
    except ClientError as error:  # 403: the connection may not read what Step Functions' role can
        log.warning("Could not check %s (%s); going on", uri, error)
        return
    if head is None:
        raise ItemSourceNotFoundError(
            f"{where}, which does not exist. To fix this, upload the object or correct the bucket and key"
            + _NOTHING_CREATED
        )
    size = int(head.get("ContentLength", 0))
    if size == 0:
        raise ItemSourceContentError(
            f"{where}, which is empty: the Map would run no items. To fix this, point it at an object with "
            f"items {_SKIP_HINT}{_NOTHING_CREATED}"
        )
    parameters = reader.get("Parameters") or reader.get("Arguments") or {}
    config = reader.get("ReaderConfig") or {}
    if isinstance(config, Mapping) and config.get("InputType") == "PARQUET" and "ManifestType" not in config:
        _check_parquet(s3, where, bucket, key, parameters)
        return
    if (
        "VersionId" in parameters  # another version than the one HeadObject saw
        or not isinstance(config, Mapping)  # known at run time
        or config.get("InputType") not in ("CSV", "JSON", "JSONL")
        or "ManifestType" in config  # the object lists the data files (an Athena manifest)
        or key.lower().endswith(COMPRESSED_SUFFIXES)
    ):
        return
    try:
        start = _read_start(s3, bucket, key, size)
        if start.startswith(_COMPRESSED_MAGIC):  # compressed, whatever its name
            return
        whole = len(start) >= size
        max_items = _literal_max_items(config)
        if "MaxItemsPath" in config or (max_items is None and config.get("MaxItems")):
            item_limit = None  # how far the reader reads is known at run time only
        etag = str(head.get("ETag", ""))
        if config["InputType"] == "CSV":
            layout = _check_csv(s3, where, bucket, key, size, etag, start, config, item_selector)
            if layout is not None and item_limit is not None:
                _check_csv_item_sizes(s3, where, layout, item_limit, max_items)
            return
        _check_utf8(where, start, whole=whole)
        if start.startswith(UTF8_BOM_BYTES):  # whether AWS accepts one is UNCONFIRMED: leave it to the reader
            start = start[len(UTF8_BOM_BYTES) :]
        if config["InputType"] == "JSON":
            _check_json(where, start, whole=whole, items_pointer=config.get("ItemsPointer"))
        else:
            _check_jsonl(where, start, whole=whole)
            if item_limit is not None:
                _check_jsonl_item_sizes(s3, where, bucket, key, etag, item_limit, max_items)
    except (ClientError, BotoCoreError) as error:  # a read cut short, no permission: the reader will tell
        log.warning("Could not read %s (%s); going on", uri, error)


def _check_parquet(s3: S3Client, where: str, bucket: str, key: str, parameters: Mapping[str, Any]) -> None:
    if "VersionId" in parameters or "VersionId.$" in parameters:
        raise ItemSourceContentError(
            f"{where} with a VersionId, which Step Functions does not read for Parquet files. To fix this, "
            "drop VersionId" + _NOTHING_CREATED
        )
    try:
        magic = s3.get_object(Bucket=bucket, Key=key, Range="bytes=0-3")["Body"].read()
    except (ClientError, BotoCoreError) as error:  # no permission, a read cut short: the reader will tell
        log.warning("Could not read %s (%s); going on", s3_uri(bucket, key), error)
        return
    if magic != PARQUET_MAGIC:
        raise ItemSourceContentError(
            f"{where}, which is not a Parquet file (it does not start with {PARQUET_MAGIC!r}). To fix this, "
            "point it at a Parquet file, or read the object with the ItemReader of its format"
            + _NOTHING_CREATED
        )


def item_size_limit(state: Mapping[str, Any]) -> int | None:
    """The largest item a Distributed Map's children receive as it is, or ``None`` when a selector shapes it.

    :param state: the Map state.
    :return: 256 KiB, less the batch envelope with an ItemBatcher; ``None`` with an ItemSelector (or the
        legacy ``Parameters``), whose output only running it would tell.
    """
    if "ItemSelector" in state or "Parameters" in state:
        return None
    return CHILD_INPUT_LIMIT - (_BATCH_ENVELOPE if "ItemBatcher" in state else 0)


def _literal_max_items(config: Mapping[str, Any]) -> int | None:
    """A literal positive ``MaxItems`` (``0`` or none: every item; an expression: ``None`` too)."""
    value = config.get("MaxItems")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _too_large(where: str, index: int, size: int, limit: int) -> ItemSourceContentError:
    measure = f"{size:,} bytes" if size <= MAX_ITEM_READ_BYTES else f"over {MAX_ITEM_READ_BYTES:,} bytes"
    return ItemSourceContentError(
        f"{where}, whose item {index} (0-based, as $$.Map.Item.Index counts) is {measure} as JSON: a child "
        f"execution receives at most 256 KiB ({limit:,} bytes for an item here), and Step "
        "Functions fails the Map Run on that item after the items before it ran. To fix this, shorten that "
        "item, or add an ItemSelector that sends only the fields the processor needs (AWS reads items of up "
        "to 8 MB when an ItemSelector shrinks them)" + _NOTHING_CREATED
    )


def _check_csv_item_sizes(
    s3: S3Client, where: str, layout: CsvLayout, limit: int, max_items: int | None
) -> None:
    try:
        largest, index = largest_item(s3, layout, limit, envelope=False, max_rows=max_items)
    except CsvInputError as error:  # not UTF-8 past the start
        raise ItemSourceContentError(f"{where}: {error}".rstrip(".") + _NOTHING_CREATED) from None
    if largest > limit:
        raise _too_large(where, index, largest, limit)
    log.info("Largest item of %s: about %d bytes as JSON", layout.uri, largest)


def _check_jsonl_item_sizes(
    s3: S3Client, where: str, bucket: str, key: str, etag: str, limit: int, max_items: int | None
) -> None:
    """Read a JSON Lines object once; refuse it when an item, written as compact JSON, exceeds ``limit``."""
    body = s3.get_object(Bucket=bucket, Key=key, IfMatch=etag)["Body"]
    index, number, largest, pending = 0, 0, 0, bytearray()
    try:
        while max_items is None or index < max_items:
            chunk = body.read(_SCAN_CHUNK_BYTES)
            if chunk and b"\n" not in chunk:  # a long line goes on: append, never re-split it
                pending += chunk
                if len(pending) > MAX_ITEM_READ_BYTES:  # more than AWS reads for one item, whatever it holds
                    raise _too_large(where, index, len(pending), limit)
                continue
            lines = (bytes(pending) + chunk).split(b"\n")
            pending = bytearray(lines.pop() if chunk else b"")
            for line in lines:
                number += 1
                if not line.strip():
                    continue  # the reader skips blank lines
                size = len(line)
                if size > limit:  # spaces may shrink away: measure it as the item it makes
                    try:
                        size = len(json_codec.dumps_bytes(json_codec.loads(line)))
                    except ValueError:
                        raise _bad_line(where, number, line) from None
                    if size > limit:
                        raise _too_large(where, index, size, limit)
                largest = max(largest, size)
                index += 1
                if max_items is not None and index >= max_items:
                    break
            if not chunk:
                break
    finally:
        body.close()
    log.info("Largest item of %s: about %d bytes as JSON", s3_uri(bucket, key), largest)


def check_prefix_items(
    s3: S3Client, state_name: str, bucket: str, prefix: str, *, reads_objects: bool = False
) -> None:
    """Check that an ``s3:listObjectsV2`` ItemReader's prefix holds at least one object.

    :param s3: a boto3 S3 client.
    :param state_name: the Distributed Map state, for the messages.
    :param bucket: the literal bucket.
    :param prefix: the literal prefix (``""`` for the whole bucket).
    :param reads_objects: the reader reads the objects' records (``LOAD_AND_FLATTEN``): objects without bytes
        (folder markers, ``_SUCCESS`` files) hold none, so one object with bytes must be among the first
        :data:`PREFIX_PROBE_KEYS` listed.
    :raises ItemSourceContentError: nothing is listed there.
    """
    try:
        listed = s3.list_objects_v2(
            Bucket=bucket, Prefix=prefix, MaxKeys=PREFIX_PROBE_KEYS if reads_objects else 1
        )
    except ClientError as error:  # 403 or 404: the bucket check before this one reports a missing bucket
        log.warning("Could not list s3://%s/%s (%s); going on", bucket, prefix, error)
        return
    found = listed.get("KeyCount", 0)
    if reads_objects and not listed.get("IsTruncated"):
        found = sum(1 for entry in listed.get("Contents", []) if entry.get("Size"))
    if not found:
        what = "no objects with any bytes" if reads_objects else "no objects"
        raise ItemSourceContentError(
            f"The ItemReader of {state_name!r} lists {s3_uri(bucket, prefix)}, which holds {what}: the "
            "Map would run no items. To fix this, correct the prefix or upload the objects first "
            f"{_SKIP_HINT}" + _NOTHING_CREATED
        )


def _read_start(s3: S3Client, bucket: str, key: str, size: int) -> bytes:
    end = min(size, PROBE_BYTES) - 1
    return bytes(s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{end}")["Body"].read())


def _check_csv(
    s3: S3Client,
    where: str,
    bucket: str,
    key: str,
    size: int,
    etag: str,
    start: bytes,
    config: Mapping[str, Any],
    item_selector: Any,
) -> CsvLayout | None:
    """Check the CSV's first records; return its layout for the size scan (``None`` when unknown)."""
    delimiter_name = str(config.get("CSVDelimiter", "COMMA"))
    try:
        delimiter = delimiter_char(delimiter_name)
    except ValueError:
        return None  # ValidateStateMachineDefinition names a delimiter AWS does not know
    try:
        probe = probe_header(s3, bucket, key, size, delimiter, argument="the ItemReader", start=start)
    except CsvInputError as error:  # not UTF-8, no record, a first record that never ends
        raise ItemSourceContentError(f"{where}: {error}".rstrip(".") + _NOTHING_CREATED) from None
    given = config.get("CSVHeaderLocation") == "GIVEN"
    if given:
        headers = config.get("CSVHeaders")
        if not isinstance(headers, list) or not headers:  # ValidateStateMachineDefinition names it
            return None
        headers = [str(h) for h in headers]
        source = "CSVHeaders"
    else:
        headers, source = probe.header, "its header line"
        if not probe.has_data_row:
            raise ItemSourceContentError(
                f"{where}, which holds only a header line ({', '.join(headers)}) and no rows (empty lines "
                "aside, each of which the Map would run as an item whose fields are all empty). To fix "
                f"this, point it at a file with data {_SKIP_HINT}{_NOTHING_CREATED}"
            )
    duplicates = duplicate_names(headers)
    if duplicates:
        # Step Functions fails the Map Run with States.ItemReaderFailed ("CSV headers cannot contain
        # duplicates.", recorded for GIVEN headers).
        raise ItemSourceContentError(
            f"{where}; {source} has duplicate column names ({', '.join(map(repr, duplicates))}), which Step "
            "Functions' CSV reader refuses. To fix this, make every column name unique"
            + (" in CSVHeaders" if given else " in the file's first line")
            + _NOTHING_CREATED
        )
    missing = sorted({column for column in _item_columns(item_selector) if column not in headers})
    if missing:
        raise ItemSourceContentError(
            f"{where}, whose columns are {', '.join(map(repr, headers))}, but the ItemSelector reads "
            f"{', '.join('$$.Map.Item.Value.' + m for m in missing)}: every item would fail "
            "(States.Runtime). To fix this, use column names from the header (they are case-sensitive)"
            + _NOTHING_CREATED
        )
    # The object as the ItemReader reads it, each item holding every column.
    return CsvLayout(
        bucket=bucket,
        key=key,
        size=size,
        etag=etag,
        delimiter_name=delimiter_name,
        delimiter=delimiter,
        headers=tuple(headers),
        columns=tuple(headers),
        header_in_file=not given,  # under GIVEN every line is an item
        has_bom=probe.has_bom,
        header_location="GIVEN" if given else "FIRST_ROW",
    )


def _item_columns(template: Any) -> Iterator[str]:
    """The columns a JSONPath ItemSelector template reads with plain ``$$.Map.Item.Value.<column>`` paths."""
    if isinstance(template, Mapping):
        for field, value in template.items():
            if isinstance(field, str) and field.endswith(".$") and isinstance(value, str):
                match = _ITEM_COLUMN.match(value)
                if match:
                    yield match.group(1)
            else:
                yield from _item_columns(value)
    elif isinstance(template, list):
        for value in template:
            yield from _item_columns(value)


def _check_json(where: str, data: bytes, *, whole: bool, items_pointer: Any) -> None:
    if whole:
        try:
            value = json_codec.loads(data)
        except ValueError as error:
            raise ItemSourceContentError(
                f"{where}, which is not valid JSON ({error}), and Step Functions fails the Map Run on it "
                "(States.ItemReaderFailed). To fix this, correct or re-export the file" + _NOTHING_CREATED
            ) from None
        if isinstance(items_pointer, str) and items_pointer:
            value = json_pointer.follow(value, json_pointer.pointer_tokens(items_pointer))
            what = f"ItemsPointer {items_pointer!r}"
            if value is None:
                raise ItemSourceContentError(
                    f"{where}, where {what} finds nothing. To fix this, point ItemsPointer at the array of "
                    f"items" + _NOTHING_CREATED
                )
        else:
            what = "the file"
        if not isinstance(value, list):
            raise ItemSourceContentError(
                f"{where}; {what} holds a JSON {_JSON_TYPES.get(type(value), 'value')}, not an array, and "
                "Step Functions fails on it ('Attempting to map over non-iterable node.'). To fix this, put "
                "the items in a JSON array"
                + (" or set ItemsPointer to the array" if what == "the file" else "")
                + _NOTHING_CREATED
            )
        if not value:
            raise ItemSourceContentError(
                f"{where}; {what} holds an empty array: the Map would run no items. To fix this, point it at "
                f"data {_SKIP_HINT}{_NOTHING_CREATED}"
            )
        return
    if isinstance(items_pointer, str) and items_pointer:
        return  # the node may start anywhere in the file
    text = data.lstrip(b" \t\r\n")
    if not text.startswith(b"["):
        raise ItemSourceContentError(
            f"{where}, which does not start with a JSON array ('[' expected, found {text[:20]!r}). To fix "
            "this, put the items in a JSON array, or set ItemsPointer to the array" + _NOTHING_CREATED
        )


def _check_utf8(where: str, data: bytes, *, whole: bool) -> None:
    try:
        # final=whole: a multi-byte character cut by the range end is left out, not an error.
        codecs.getincrementaldecoder("utf-8")().decode(data, final=whole)
    except UnicodeDecodeError as error:
        raise ItemSourceContentError(
            f"{where}, which is not UTF-8 text ({error.reason} at byte {error.start}). To fix this, "
            "re-encode it as UTF-8" + _NOTHING_CREATED
        ) from None


def _check_jsonl(where: str, data: bytes, *, whole: bool) -> None:
    lines = data.split(b"\n")
    if not whole:
        lines.pop()  # cut by the range
    found = False
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        found = True
        try:
            json_codec.loads(line)
        except ValueError:
            raise _bad_line(where, number, line) from None
    if whole and not found:
        raise ItemSourceContentError(
            f"{where}, which holds no JSON lines: the Map would run no items. To fix this, point it at data "
            f"{_SKIP_HINT}{_NOTHING_CREATED}"
        )


def _bad_line(where: str, number: int, line: bytes) -> ItemSourceContentError:
    return ItemSourceContentError(
        f"{where}; its line {number} is not valid JSON ({line[:60]!r}), and Step Functions fails the Map Run "
        "on it (States.ItemReaderFailed). To fix this, write one JSON value per line" + _NOTHING_CREATED
    )
