"""ItemReader sources: S3 objects (CSV, JSON, JSONL) and S3 prefix listings, read as streams.

Every reader is a plain (synchronous) generator of ``(item, source)`` pairs; the Map Run drives it from a
worker thread through a bounded queue (:meth:`MapRun._items`), so a 1 GB object never sits in memory: CSV and
JSONL are read line by line, JSON with ``ijson``'s incremental parser.

Rules follow ``docs/distributed-map-spec.md`` section 1. Failures raise
:class:`~airflow_distmap.local.errors.StatesError` ``States.ItemReaderFailed`` with the cause AWS reports
where it is recorded, otherwise an AWS-like cause (marked UNCONFIRMED below).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Final

import ijson
import zstandard
from botocore.exceptions import BotoCoreError, ClientError

from airflow_distmap.formats.csv_records import MAX_FIELD_BYTES, delimiter_char, raw_records, record_shaper
from airflow_distmap.formats.json_pointer import PointerNotAnArray, pointed_array_items, pointer_tokens
from airflow_distmap.local.errors import StatesError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ITEM_READER_FAILED: Final = "States.ItemReaderFailed"
#: Cause of a JSON reader whose node to iterate is not an array (recorded for a top-level object).
NON_ITERABLE_CAUSE: Final = "Attempting to map over non-iterable node."
GET_OBJECT: Final = "arn:aws:states:::s3:getObject"
LIST_OBJECTS_V2: Final = "arn:aws:states:::s3:listObjectsV2"
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


class SourceChangedError(StatesError):
    """``States.ItemReaderFailed`` because the object changed since the Map Run began reading it."""


@dataclass
class ObjectPin:
    """The object version a Map Run reads its items from: reading the rest later must find the same object.

    Spec, Redrive: when the run failed after starting children, a redrive uses "the same items as the
    original". How AWS keeps them is UNCONFIRMED; this runtime reads the object again from where it stopped,
    under ``If-Match`` on the ETag it first saw, and fails the reader when the object changed rather than mix
    two versions' items.

    :param etag: the ETag of the first read (unquoted), ``None`` before it.
    """

    etag: str | None = None

    def check(self, etag: str, bucket: str, key: str) -> None:
        """Remember the first read's ``etag``; refuse a later read of another version."""
        etag = etag.strip('"')
        if self.etag is None:
            self.etag = etag
        elif etag != self.etag:
            raise SourceChangedError(ITEM_READER_FAILED, self.changed_cause(bucket, key))

    def changed_cause(self, bucket: str, key: str) -> str:
        """The cause of a read that found another version of the object."""
        return (
            f"s3://{bucket}/{key} changed since this Map Run began reading it (ETag {self.etag}); a redrive "
            "goes on with the same items, so restore the object or start a new execution."
        )


def _open_in_process(bucket: str, key: str) -> tuple[IO[bytes], str] | None:
    """Open the object straight from moto's in-process backend when the endpoint serves it from this process.

    moto's HTTP GET loads a whole object into memory; reading its spooled buffer directly keeps a 1 GB CSV
    streaming. Anything moto does not hold here falls back to a normal ``GetObject`` (and its AWS errors).
    """
    try:
        from airflow_distmap.local.moto_s3 import NoSuchObject, open_object
    except ImportError:
        return None
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
    if pin.etag is not None:
        kwargs["IfMatch"] = f'"{pin.etag}"'
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
    # Recorded for GIVEN headers; for a FIRST_ROW header it is UNCONFIRMED, and failing the same way is the
    # AWS-like choice (a dict would otherwise silently drop a column).
    if len(set(headers)) != len(headers):
        raise StatesError(ITEM_READER_FAILED, "CSV headers cannot contain duplicates.")
    yield from map(record_shaper(headers), records)  # an empty line ([]) becomes a row of empty strings


def read_json(stream: IO[bytes], reader_config: Mapping[str, Any]) -> Iterator[Any]:
    """Yield the elements of a JSON array (optionally under ``ItemsPointer``), parsed incrementally.

    :param stream: the object's bytes.
    :param reader_config: the evaluated ``ReaderConfig``.
    """
    pointer = reader_config.get("ItemsPointer")
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
        buffered = stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(stream)  # type: ignore[arg-type,type-var]
        head = buffered.peek(64).lstrip()
        if head[:1] != b"[":
            # Recorded: a top-level object fails with this cause.
            raise StatesError(ITEM_READER_FAILED, NON_ITERABLE_CAUSE)
        yield from ijson.items(buffered, "item", use_float=True)
    except ijson.JSONError as error:
        raise StatesError(ITEM_READER_FAILED, f"The JSON file could not be parsed: {error}") from None


def read_jsonl(stream: IO[bytes]) -> Iterator[Any]:
    """Yield one item per JSON Lines line. Blank lines are skipped (UNCONFIRMED on AWS).

    :param stream: the object's bytes.
    """
    for number, line in enumerate(stream, start=1):
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


def list_objects(s3: S3Client, parameters: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Yield one summary per key: ``Etag, Key, LastModified (epoch seconds), Size, StorageClass``.

    :param s3: the S3 client.
    :param parameters: the evaluated ``Parameters`` (``Bucket``, optional ``Prefix``).
    """
    bucket = parameters.get("Bucket")
    if not isinstance(bucket, str):
        raise StatesError(ITEM_READER_FAILED, "ItemReader Parameters must contain a Bucket string.")
    kwargs: dict[str, Any] = {"Bucket": bucket}
    if isinstance(parameters.get("Prefix"), str):
        kwargs["Prefix"] = parameters["Prefix"]
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(**kwargs):
            for entry in page.get("Contents", []):
                yield {
                    "Etag": entry.get("ETag", ""),
                    "Key": entry["Key"],
                    "LastModified": int(entry["LastModified"].timestamp()),
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
) -> tuple[str, Iterator[Any]]:
    """Open an ItemReader source: return ``($$.Map.Item.Source, item iterator)``.

    :param s3: the S3 client.
    :param resource: ``ItemReader.Resource``.
    :param parameters: the evaluated ``Parameters`` / ``Arguments``.
    :param reader_config: the evaluated ``ReaderConfig`` (MaxItems is applied by the caller).
    :param pin: the object version an earlier read of this Map Run found (see :class:`ObjectPin`).
    """
    if resource == LIST_OBJECTS_V2:
        bucket = str(parameters.get("Bucket", ""))
        return f"S3://{bucket}", list_objects(s3, parameters)
    if resource != GET_OBJECT:
        raise StatesError(ITEM_READER_FAILED, f"ItemReader Resource {resource!r} is not supported.")
    input_type = reader_config.get("InputType")
    if input_type not in ("CSV", "JSON", "JSONL"):
        raise StatesError(ITEM_READER_FAILED, f"ReaderConfig InputType {input_type!r} is not supported.")
    body, bucket, key = _get_object_body(s3, parameters, pin or ObjectPin())
    stream = open_body(body, key)

    def generate() -> Iterator[Any]:
        try:
            if input_type == "CSV":
                yield from read_csv(stream, reader_config)
            elif input_type == "JSONL":
                yield from read_jsonl(stream)
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

    return f"S3://{bucket}/{key}", generate()
