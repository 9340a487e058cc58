"""ItemReader sources: S3 objects (CSV, JSON, JSONL, Parquet) and S3 prefix listings, read as streams.

Every reader is a plain (synchronous) iterator of ``($$.Map.Item.Source, items)`` segments; the Map Run
drives it from a worker thread through a bounded queue (:meth:`MapRun._items`), so a 1 GB object never sits in
memory: CSV and JSONL are read line by line, JSON with ``ijson``'s incremental parser, Parquet a record batch
at a time from a local copy (its footer is at the end). A listing with ``Transformation: LOAD_AND_FLATTEN``
reads every listed object in turn, in key order.

Rules follow ``docs/distributed-map-spec.md`` section 1. Failures raise
:class:`~airflow_distmap.local.errors.StatesError` ``States.ItemReaderFailed`` with the cause AWS reports
where it is recorded, otherwise an AWS-like cause (marked UNCONFIRMED below).
"""

from __future__ import annotations

import base64
import csv
import datetime
import decimal
import gzip
import io
import json
import math
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Final

import ijson
import zstandard
from botocore.exceptions import BotoCoreError, ClientError

from airflow_distmap.definitions.partitions import integration_api
from airflow_distmap.formats.csv_records import (
    MAX_CSV_HEADER_BYTES,
    MAX_FIELD_BYTES,
    UTF8_BOM,
    delimiter_char,
    raw_records,
    record_shaper,
)
from airflow_distmap.formats.json_pointer import PointerNotAnArray, pointed_array_items, pointer_tokens
from airflow_distmap.local.errors import StatesError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ITEM_READER_FAILED: Final = "States.ItemReaderFailed"
#: Cause of a JSON reader whose node to iterate is not an array (recorded for a top-level object).
NON_ITERABLE_CAUSE: Final = "Attempting to map over non-iterable node."
LOAD_AND_FLATTEN: Final = "LOAD_AND_FLATTEN"
#: The ``InputType`` values whose objects this runtime reads (``MANIFEST`` is refused at creation).
OBJECT_INPUT_TYPES: Final = ("CSV", "JSON", "JSONL", "PARQUET")
#: Rows of a Parquet file decoded at a time.
PARQUET_BATCH_ROWS: Final = 1024
#: "Step Functions supports reading an item of up to 8 MB from a text delimited file, JSON, or JSON Lines
#: file" (spec section 1.4). AWS's error for a larger one is UNCONFIRMED: the reader fails, as for bad input.
MAX_ITEM_BYTES: Final = MAX_FIELD_BYTES
_TOO_LARGE_CAUSE: Final = "An item is larger than the 8 MB that Step Functions reads from a file"
GZIP_MAGIC: Final = b"\x1f\x8b"
ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
_READ_CHUNK: Final = 1 << 20


class _BodyRaw(io.RawIOBase):
    """A raw binary stream over a botocore ``StreamingBody`` for ``io`` buffering, ``gzip`` and ``csv``.

    botocore's body only offers ``read(amt)``; ``io.BufferedReader`` needs ``readinto``.
    """

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._body.read(len(buffer))
        size = len(data)
        buffer[:size] = data
        return size

    def close(self) -> None:
        try:
            self._body.close()
        finally:
            super().close()


def open_body(body: Any, key: str) -> IO[bytes]:
    """Wrap an S3 body as a buffered binary stream, decompressed when it is GZIP or ZSTD.

    AWS documents both with names like ``myObject.jsonl.gz`` and ``myObject.csv.zstd``; whether it sniffs
    content is UNCONFIRMED, so both the extension and the magic bytes are honoured (the more forgiving
    choice). Either way the object is decompressed as it is read, never whole.

    :param body: a ``StreamingBody`` or any object with ``read(n)``.
    :param key: the object key (for the extension check).
    """
    buffered = io.BufferedReader(_BodyRaw(body), buffer_size=_READ_CHUNK)
    name = key.lower()
    if name.endswith(".gz") or buffered.peek(2)[:2] == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=buffered, mode="rb")  # type: ignore[return-value]
    if name.endswith((".zst", ".zstd")) or buffered.peek(4)[:4] == ZSTD_MAGIC:
        return io.BufferedReader(_ZstdReader(buffered), buffer_size=_READ_CHUNK)
    return buffered


class _ZstdReader(io.RawIOBase):
    """Decompress ZSTD frames as they are read, one after the other, as a multi-member gzip file reads.

    A file that ends inside a frame raises ``EOFError``, as ``gzip`` does (zstandard's stream reader would
    return the truncated data as if it were whole).
    """

    def __init__(self, source: IO[bytes]) -> None:
        self._source = source
        self._decompressor = zstandard.ZstdDecompressor()
        self._frame = self._decompressor.decompressobj()
        self._in_frame = False
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            data = self._source.read(_READ_CHUNK)
            if not data:
                if self._in_frame:
                    raise EOFError("Compressed file ended before the end-of-stream marker was reached")
                return 0
            self._pending = memoryview(self._decompress(data))
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def _decompress(self, data: bytes) -> bytes:
        pieces = []
        while data:
            self._in_frame = True
            pieces.append(self._frame.decompress(data))
            data = b""
            if self._frame.eof:
                data = self._frame.unused_data
                self._frame = self._decompressor.decompressobj()
                self._in_frame = False
        return b"".join(pieces)

    def close(self) -> None:
        self._source.close()
        super().close()


def s3_error_cause(error: ClientError, bucket: str, key: str | None = None) -> str:
    """An AWS-like cause for an S3 error met by the reader (exact AWS wording UNCONFIRMED).

    :param error: the botocore error.
    :param bucket: the bucket read.
    :param key: the key read, if any.
    """
    info = error.response.get("Error", {})
    code = info.get("Code", "Unknown")
    message = info.get("Message", str(error))
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400)
    request_id = error.response.get("ResponseMetadata", {}).get("RequestId", "")
    where = f"s3://{bucket}/{key}" if key is not None else f"s3://{bucket}"
    return (
        f"Amazon S3 service returned an error reading {where}: {message} "
        f"(Service: S3, Status Code: {status}, Error Code: {code}, Request ID: {request_id})"
    )


def refuse_other_region(bucket: object, region: str, error: str, doing: str) -> None:
    """Fail with ``error`` when ``bucket`` is in another Region than the state machine's.

    "S3 buckets must be in the same account and Region as the state machine" (spec section 1.4). AWS's cause
    is UNCONFIRMED: this one is S3's own answer to a request sent to another Region's endpoint. The bucket's
    Region is read from moto's in-process backend (no request per Map Run); a bucket it does not hold is left
    to the read or write, which reports it.

    :param bucket: the bucket the state reads or writes.
    :param region: the state machine's Region.
    :param error: ``States.ItemReaderFailed`` or ``States.ResultWriterFailed``.
    :param doing: ``reading`` or ``writing to``, for the cause.
    """
    from airflow_distmap.local.moto_s3 import bucket_region

    found = bucket_region(bucket) if isinstance(bucket, str) else None
    if found and found != region:
        raise StatesError(
            error,
            f"Amazon S3 service returned an error {doing} s3://{bucket}: The bucket you are attempting to "
            f"access must be addressed using the specified endpoint. The bucket is in this region: {found}. "
            "(Service: S3, Status Code: 301, Error Code: PermanentRedirect)",
        )


def refuse_other_owner(parameters: Mapping[str, Any], account_id: str) -> None:
    """Fail the reader as S3 does when ``ExpectedBucketOwner`` names another account than the bucket's.

    S3 answers such a request with 403 AccessDenied (spec section 1.2: getObject sources support
    ``ExpectedBucketOwner``; so does ListObjectsV2). Every bucket of the local endpoint belongs to its one
    account; moto's S3 does not check the parameter, so the reader does.

    :param parameters: the ItemReader's evaluated ``Parameters`` / ``Arguments``.
    :param account_id: the endpoint's account, which owns its buckets.
    """
    expected = parameters.get("ExpectedBucketOwner")
    if expected is None or expected == account_id:
        return
    where = "/".join(str(parameters[name]) for name in ("Bucket", "Key") if name in parameters)
    raise StatesError(
        ITEM_READER_FAILED,
        f"Amazon S3 service returned an error reading s3://{where}: Access Denied "
        "(Service: S3, Status Code: 403, Error Code: AccessDenied)",
    )


class SourceChangedError(StatesError):
    """``States.ItemReaderFailed`` because the object changed since the Map Run began reading it."""


@dataclass
class ObjectPin:
    """The object versions a Map Run reads its items from: reading the rest later must find the same objects.

    Spec, Redrive: when the run failed after starting children, a redrive uses "the same items as the
    original". How AWS keeps them is UNCONFIRMED; this runtime reads the object again from where it stopped,
    under ``If-Match`` on the ETag it first saw, and fails the reader when the object changed rather than mix
    two versions' items.

    :param etags: ``bucket/key`` -> the ETag (unquoted) of the object's first read.
    :param listed: the keys a flattened listing read, in order.
    """

    etags: dict[str, str] = field(default_factory=dict)
    listed: list[str] = field(default_factory=list)

    def check_listed(self, position: int, bucket: str, key: str) -> None:
        """Remember the ``position``-th object a flattened listing reads; refuse another one there later."""
        if position == len(self.listed):
            self.listed.append(key)
        elif self.listed[position] != key:
            raise SourceChangedError(
                ITEM_READER_FAILED,
                f"The objects under s3://{bucket} changed since this Map Run began reading them: the object "
                f"read after {position} others was {self.listed[position]}, now it is {key}. A redrive goes "
                "on with the same items, so restore the objects or start a new execution.",
            )

    def check_listing_end(self, position: int, bucket: str) -> None:
        """Refuse a flattened listing that ends before the ``position``-th object an earlier read found."""
        if position < len(self.listed):
            raise SourceChangedError(
                ITEM_READER_FAILED,
                f"s3://{bucket}/{self.listed[position]} was deleted since this Map Run began reading the "
                "objects listed with it. A redrive goes on with the same items, so restore the object or "
                "start a new execution.",
            )

    def etag(self, bucket: str, key: str) -> str | None:
        """The ETag the first read of ``bucket/key`` found; ``None`` before it."""
        return self.etags.get(f"{bucket}/{key}")

    def check(self, etag: str, bucket: str, key: str) -> None:
        """Remember the first read's ``etag``; refuse a later read of another version."""
        etag = etag.strip('"')
        if self.etags.setdefault(f"{bucket}/{key}", etag) != etag:
            raise SourceChangedError(ITEM_READER_FAILED, self.changed_cause(bucket, key))

    def changed_cause(self, bucket: str, key: str) -> str:
        """The cause of a read that found another version of the object."""
        return (
            f"s3://{bucket}/{key} changed since this Map Run began reading it (ETag "
            f"{self.etag(bucket, key)}); a redrive goes on with the same items, so restore the object or "
            "start a new execution."
        )


def _open_in_process(bucket: str, key: str) -> tuple[IO[bytes], str] | None:
    """Open the object straight from moto's in-process backend when the endpoint serves it from this process.

    moto's HTTP GET loads a whole object into memory; reading its spooled buffer directly keeps a 1 GB CSV
    streaming. Anything moto does not hold here falls back to a normal ``GetObject`` (and its AWS errors).
    """
    from airflow_distmap.local.moto_s3 import NoSuchObject, open_object

    try:
        return open_object(bucket, key)
    except (NoSuchObject, KeyError):
        return None


def _get_object_body(s3: S3Client, parameters: Mapping[str, Any], pin: ObjectPin) -> tuple[Any, str, str]:
    bucket = parameters.get("Bucket")
    key = parameters.get("Key")
    if not isinstance(bucket, str) or not isinstance(key, str):
        raise StatesError(ITEM_READER_FAILED, "ItemReader Parameters must contain Bucket and Key strings.")
    if "VersionId" not in parameters:
        local = _open_in_process(bucket, key)
        if local is not None:
            body, etag = local
            try:
                pin.check(etag, bucket, key)
            except StatesError:
                body.close()
                raise
            return body, bucket, key
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if isinstance(parameters.get("VersionId"), str):
        kwargs["VersionId"] = parameters["VersionId"]
    if isinstance(parameters.get("ExpectedBucketOwner"), str):
        kwargs["ExpectedBucketOwner"] = parameters["ExpectedBucketOwner"]
    pinned = pin.etag(bucket, key)
    if pinned is not None:
        kwargs["IfMatch"] = f'"{pinned}"'
    try:
        response = s3.get_object(**kwargs)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "PreconditionFailed":
            raise SourceChangedError(ITEM_READER_FAILED, pin.changed_cause(bucket, key)) from None
        raise StatesError(ITEM_READER_FAILED, s3_error_cause(error, bucket, key)) from None
    pin.check(str(response["ETag"]), bucket, key)
    return response["Body"], bucket, key


def read_csv(stream: IO[bytes], reader_config: Mapping[str, Any]) -> Iterator[dict[str, str]]:
    """Yield CSV rows as header -> string objects (spec section 1.3).

    :param stream: the object's bytes.
    :param reader_config: the evaluated ``ReaderConfig``.
    """
    try:
        delimiter = delimiter_char(str(reader_config.get("CSVDelimiter", "COMMA")))
    except ValueError as error:
        raise StatesError(ITEM_READER_FAILED, str(error)) from None
    records = raw_records(stream, delimiter)
    location = reader_config.get("CSVHeaderLocation", "FIRST_ROW")
    if location == "GIVEN":
        headers = [str(h) for h in reader_config.get("CSVHeaders") or []]
        if not headers:
            raise StatesError(
                ITEM_READER_FAILED, "CSVHeaders must be provided when CSVHeaderLocation is GIVEN."
            )
    else:
        first = next(records, None)
        if first is None:
            return
        headers = first or [""]
    # "Currently, Step Functions supports CSV headers of up to 10 KiB" (the ItemReader page). The error and
    # its wording are UNCONFIRMED: failing the reader, as the other header problems do, is the AWS-like one.
    size = len(delimiter.join(headers).encode())
    if size > MAX_CSV_HEADER_BYTES:
        raise StatesError(
            ITEM_READER_FAILED,
            f"CSV headers exceed the maximum size of 10 KiB ({size} bytes). To fix this, shorten the header "
            "or give shorter names with CSVHeaderLocation GIVEN.",
        )
    # Recorded for GIVEN headers; for a FIRST_ROW header it is UNCONFIRMED, and failing the same way is the
    # AWS-like choice (a dict would otherwise silently drop a column).
    if len(set(headers)) != len(headers):
        raise StatesError(ITEM_READER_FAILED, "CSV headers cannot contain duplicates.")
    # An empty line ([]) becomes a row of empty strings.
    yield from map(record_shaper(headers, java_hash_map_order(headers)), records)


def java_hash_map_order(keys: list[str]) -> list[int]:
    """The order in which a Java ``HashMap`` filled with ``keys`` (in order) iterates them, as positions.

    AWS's recorded CSV items keep their fields in that order, not the header's: headers ``0,True,{}`` give
    ``{"0", "{}", "True"}`` and ``H1,`` gives ``{"", "H1"}`` (conformance:
    map_item_reader_csv_headers_first_row_typed_headers, map_item_reader_csv_first_row_extra_fields). A
    default ``HashMap`` has 16 buckets, doubled while it is over 3/4 full; a key's bucket is its
    ``String.hashCode`` spread by ``h ^ (h >>> 16)``; a bucket keeps insertion order (not modelled: the tree
    Java makes of a bucket holding 8 or more keys, which needs far more columns than a CSV has).

    :param keys: the header names, in the header's order.
    :return: their positions, in the iteration order.
    """
    capacity = 16
    while len(keys) > capacity * 3 // 4:
        capacity *= 2

    def bucket(key: str) -> int:
        code, units = 0, key.encode("utf-16-be", "surrogatepass")  # Java hashes its UTF-16 code units
        for high, low in zip(units[::2], units[1::2], strict=True):
            code = (31 * code + (high << 8 | low)) & 0xFFFFFFFF
        return (code ^ (code >> 16)) & (capacity - 1)

    return sorted(range(len(keys)), key=lambda position: (bucket(keys[position]), position))


_BOM: Final = UTF8_BOM.encode()


def _without_bom(stream: IO[bytes]) -> io.BufferedReader[Any]:
    """``stream`` past a leading UTF-8 byte-order mark, if it has one.

    RFC 8259 lets a JSON parser ignore the mark, and Jackson, the JSON library of AWS's Java SDK, skips it;
    that Step Functions does is UNCONFIRMED, but refusing the file would be the less AWS-like guess.
    """
    buffered: io.BufferedReader[Any] = (
        stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(stream)  # type: ignore[arg-type,type-var]
    )
    if buffered.peek(len(_BOM)).startswith(_BOM):
        buffered.read(len(_BOM))
    return buffered


def read_json(stream: IO[bytes], reader_config: Mapping[str, Any]) -> Iterator[Any]:
    """Yield the elements of a JSON array (optionally under ``ItemsPointer``), parsed incrementally.

    :param stream: the object's bytes.
    :param reader_config: the evaluated ``ReaderConfig``.
    """
    pointer = reader_config.get("ItemsPointer")
    stream = _without_bom(stream)
    try:
        if isinstance(pointer, str) and pointer:
            try:
                tokens = pointer_tokens(pointer)
            except ValueError as error:
                raise StatesError(ITEM_READER_FAILED, f"ItemsPointer {error}") from None
            events = ijson.basic_parse(stream, use_float=True)
            try:
                yield from pointed_array_items(events, tokens)
            except PointerNotAnArray:
                # Recorded for a top-level object; used as well for a node that is absent or not an array
                # (AWS's answer for those is UNCONFIRMED; iterating nothing would hide a typo).
                raise StatesError(ITEM_READER_FAILED, NON_ITERABLE_CAUSE) from None
            return
        head = stream.peek(64).lstrip()
        if head[:1] != b"[":
            # Recorded: a top-level object fails with this cause.
            raise StatesError(ITEM_READER_FAILED, NON_ITERABLE_CAUSE)
        yield from ijson.items(stream, "item", use_float=True)
    except ijson.JSONError as error:
        raise StatesError(ITEM_READER_FAILED, f"The JSON file could not be parsed: {error}") from None


def read_jsonl(stream: IO[bytes]) -> Iterator[Any]:
    """Yield one item per JSON Lines line. Blank lines are skipped (UNCONFIRMED on AWS).

    :param stream: the object's bytes.
    """
    for number, line in enumerate(_without_bom(stream), start=1):
        if not line.strip():
            continue
        size = len(line.rstrip(b"\r\n"))
        if size > MAX_ITEM_BYTES:
            raise StatesError(ITEM_READER_FAILED, f"{_TOO_LARGE_CAUSE} (line {number} has {size} bytes)")
        try:
            yield json.loads(line)
        except ValueError:
            raise StatesError(
                ITEM_READER_FAILED, f"Line {number} of the JSONL file is not valid JSON."
            ) from None


def read_parquet(stream: IO[bytes]) -> Iterator[dict[str, Any]]:
    """Yield one object per Parquet row, column name -> JSON value.

    The object is copied to a temporary file first (Parquet's footer, which says where the rows are, is at
    its end), then decoded :data:`PARQUET_BATCH_ROWS` rows at a time. How AWS types Parquet values is
    UNCONFIRMED (spec section 1.1); this runtime writes them as a Java JSON library would: numbers, strings
    and booleans as they are, dates and times as ISO 8601 text, decimals as numbers (floats: past 15 or so
    significant digits they are rounded), durations as seconds, binary as base64, NaN and infinities as the
    strings ``"NaN"``/``"Infinity"``/``"-Infinity"``, structs and maps as objects, lists as arrays.

    :param stream: the object's bytes.
    """
    import pyarrow as pa  # imported on first use: only Parquet readers need it
    import pyarrow.parquet as pq

    with tempfile.TemporaryFile(prefix="distmap-parquet-") as copy:
        shutil.copyfileobj(stream, copy, _READ_CHUNK)
        copy.seek(0)
        try:
            for batch in pq.ParquetFile(copy).iter_batches(batch_size=PARQUET_BATCH_ROWS):
                for row in batch.to_pylist(maps_as_pydicts="lossy"):
                    yield {name: _json_value(value) for name, value in row.items()}
        except pa.ArrowException as error:
            raise OSError(f"it is not a Parquet file Arrow can read ({error})") from None


def _json_value(value: Any) -> Any:
    """A value decoded from Parquet as JSON can hold it (see :func:`read_parquet`)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):  # a struct, or a MAP (keys of any type become strings)
        return {str(key): _json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(item) for item in value]
    return str(value)


def list_objects(s3: S3Client, parameters: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Yield one summary per key: ``Etag, Key, LastModified (epoch seconds), Size, StorageClass``.

    :param s3: the S3 client.
    :param parameters: the evaluated ``Parameters``: ``Bucket``, ``Prefix``, ``ExpectedBucketOwner``.
    """
    bucket = parameters.get("Bucket")
    if not isinstance(bucket, str):
        raise StatesError(ITEM_READER_FAILED, "ItemReader Parameters must contain a Bucket string.")
    kwargs: dict[str, Any] = {"Bucket": bucket}
    for name in ("Prefix", "ExpectedBucketOwner"):
        if isinstance(parameters.get(name), str):
            kwargs[name] = parameters[name]
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(**kwargs):
            for entry in page.get("Contents", []):
                # In the order AWS's recorded run gives the fields (conformance:
                # map_item_reader_base_list_objects_v2), which is not its documentation example's.
                yield {
                    "Etag": entry.get("ETag", ""),
                    "LastModified": int(entry["LastModified"].timestamp()),
                    "Key": entry["Key"],
                    "Size": entry.get("Size", 0),
                    "StorageClass": entry.get("StorageClass", "STANDARD"),
                }
    except ClientError as error:
        raise StatesError(ITEM_READER_FAILED, s3_error_cause(error, bucket)) from None


def iter_reader_items(
    s3: S3Client,
    resource: str,
    parameters: Mapping[str, Any],
    reader_config: Mapping[str, Any],
    pin: ObjectPin | None = None,
) -> Iterator[tuple[str, Iterator[Any]]]:
    """Open an ItemReader source: its items as ``($$.Map.Item.Source, item iterator)`` segments.

    One segment for an object or a listing's summaries; one per listed object for a listing with
    ``Transformation: LOAD_AND_FLATTEN``, whose items' Source is their object ("otherwise the object URI",
    spec section 1.6). An object read is opened here, so its S3 errors raise at once.

    :param s3: the S3 client.
    :param resource: ``ItemReader.Resource``.
    :param parameters: the evaluated ``Parameters`` / ``Arguments``.
    :param reader_config: the evaluated ``ReaderConfig`` (MaxItems is applied by the caller).
    :param pin: the object versions an earlier read of this Map Run found (see :class:`ObjectPin`).
    """
    pin = pin or ObjectPin()
    api = integration_api(resource)  # in any partition
    if api == "s3:listObjectsV2":
        bucket = str(parameters.get("Bucket", ""))
        listing = list_objects(s3, parameters)
        if reader_config.get("Transformation", "NONE") == LOAD_AND_FLATTEN:
            return _flattened(s3, parameters, listing, reader_config, pin)
        return iter([(f"S3://{bucket}", listing)])
    if api != "s3:getObject":
        raise StatesError(ITEM_READER_FAILED, f"ItemReader Resource {resource!r} is not supported.")
    items = _object_items(s3, parameters, reader_config, pin)
    return iter([(f"S3://{parameters.get('Bucket')}/{parameters.get('Key')}", items)])


def _flattened(
    s3: S3Client,
    parameters: Mapping[str, Any],
    listing: Iterator[dict[str, Any]],
    reader_config: Mapping[str, Any],
    pin: ObjectPin,
) -> Iterator[tuple[str, Iterator[Any]]]:
    """The items of every listed object in turn (``LOAD_AND_FLATTEN``), each read with ``reader_config``.

    An object without bytes holds no records and is passed over, whatever the ``InputType``: a folder marker
    (``key/``) or Spark's ``_SUCCESS`` file (AWS's handling of either is UNCONFIRMED). The keys read are
    pinned in order: a redrive, which lists the prefix again and skips the items read before, fails the
    reader when an object among those the first read listed was added or removed, rather than run items
    twice or never.
    """
    bucket = str(parameters.get("Bucket", ""))
    owner = {name: parameters[name] for name in ("ExpectedBucketOwner",) if name in parameters}
    position = 0
    for entry in listing:
        key = entry["Key"]
        if not entry.get("Size"):
            continue
        pin.check_listed(position, bucket, key)
        position += 1
        yield (
            f"S3://{bucket}/{key}",
            _object_items(s3, {"Bucket": bucket, "Key": key, **owner}, reader_config, pin),
        )
    pin.check_listing_end(position, bucket)


def _object_items(
    s3: S3Client, parameters: Mapping[str, Any], reader_config: Mapping[str, Any], pin: ObjectPin
) -> Iterator[Any]:
    """Open the object now (so its S3 errors raise here) and return a generator of its items."""
    input_type = reader_config.get("InputType")
    if input_type not in OBJECT_INPUT_TYPES:
        raise StatesError(ITEM_READER_FAILED, f"ReaderConfig InputType {input_type!r} is not supported.")
    if input_type == "PARQUET" and "VersionId" in parameters:
        # Spec section 1.2: "Parquet files are the one exception which does not support VersionId."
        raise StatesError(ITEM_READER_FAILED, "VersionId is not supported for InputType PARQUET.")
    body, bucket, key = _get_object_body(s3, parameters, pin)
    # Parquet compresses its pages itself ("no extension needed"): the file is read as it is.
    stream = body if input_type == "PARQUET" else open_body(body, key)

    def generate() -> Iterator[Any]:
        try:
            if input_type == "CSV":
                yield from read_csv(stream, reader_config)
            elif input_type == "JSONL":
                yield from read_jsonl(stream)
            elif input_type == "PARQUET":
                yield from read_parquet(stream)
            else:
                yield from read_json(stream, reader_config)
        except (OSError, EOFError, UnicodeDecodeError, zstandard.ZstdError, BotoCoreError) as error:
            # BotoCoreError: the body's stream cut (IncompleteReadError, ResponseStreamingError...).
            raise StatesError(ITEM_READER_FAILED, f"Could not read s3://{bucket}/{key}: {error}") from None
        except csv.Error as error:  # "field larger than field limit": over the 8 MB an item may have
            what = _TOO_LARGE_CAUSE if "field limit" in str(error) else "Could not read the CSV file"
            raise StatesError(ITEM_READER_FAILED, f"{what} (s3://{bucket}/{key}: {error})") from None
        finally:
            stream.close()

    return generate()
