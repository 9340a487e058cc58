"""ResultWriter: AWS's S3 export layout, streamed (spec section 3).

Layout: ``<Prefix>/<mapRunUuid>/manifest.json`` plus ``SUCCEEDED_<n>.json``, ``FAILED_<n>.json`` (failed,
timed-out and aborted children) and ``PENDING_<n>.json`` (children never started), written only for statuses
that occur, rolling over to ``_1``, ``_2`` ... past :data:`MAX_RESULT_FILE_BYTES`. Each file is a JSON array,
or JSON Lines for ``OutputType: JSONL`` (file names keep ``.json``: the JSONL extension is UNCONFIRMED and one
emulator of two keeps ``.json``). Entries are written in child (input) order; AWS's order is UNCONFIRMED.

Files go to S3 as a stream: a multipart upload in :data:`PART_SIZE` parts once a file outgrows one part.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from airflow_distmap.definitions.partitions import integration_api
from airflow_distmap.json_codec import dumps_standard
from airflow_distmap.local.errors import StatesError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

RESULT_WRITER_FAILED: Final = "States.ResultWriterFailed"
#: AWS rolls result files over at 5 GB.
MAX_RESULT_FILE_BYTES: Final = 5 * 1024**3
#: S3's minimum multipart part size is 5 MiB; 8 MiB keeps memory small and requests few.
PART_SIZE: Final = 8 * 1024 * 1024
TRANSFORMATIONS: Final = ("NONE", "COMPACT", "FLATTEN")
OUTPUT_TYPES: Final = ("JSON", "JSONL")


class S3StreamWriter:
    """Write one S3 object from chunks: a single PutObject when small, else a multipart upload.

    :param s3: the S3 client.
    :param bucket: destination bucket.
    :param key: destination key.
    :param part_size: multipart part size in bytes.
    """

    def __init__(self, s3: S3Client, bucket: str, key: str, part_size: int = PART_SIZE) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.key = key
        self.part_size = part_size
        self.size = 0
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    def write(self, data: bytes) -> None:
        """Append bytes, uploading a part whenever a full part is buffered."""
        self._buffer += data
        self.size += len(data)
        while len(self._buffer) >= self.part_size:
            self._upload_part(bytes(self._buffer[: self.part_size]))
            del self._buffer[: self.part_size]

    def _upload_part(self, data: bytes) -> None:
        if self._upload_id is None:
            self._upload_id = self.s3.create_multipart_upload(Bucket=self.bucket, Key=self.key)["UploadId"]
        number = len(self._parts) + 1
        response = self.s3.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self._upload_id, PartNumber=number, Body=data
        )
        self._parts.append({"ETag": response["ETag"], "PartNumber": number})

    def close(self) -> None:
        """Finish the object."""
        if self._upload_id is None:
            self.s3.put_object(
                Bucket=self.bucket, Key=self.key, Body=bytes(self._buffer), ContentType="application/json"
            )
        else:
            if self._buffer:
                self._upload_part(bytes(self._buffer))
            self.s3.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},  # type: ignore[typeddict-item]
            )
        self._buffer = bytearray()

    def abort(self) -> None:
        """Abandon a started multipart upload (best effort)."""
        if self._upload_id is not None:
            with contextlib.suppress(ClientError, BotoCoreError):
                self.s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id)


class InProcessWriter:
    """Write one object straight into moto's in-process S3 backend, in chunks, without holding it in memory.

    The local endpoint serves S3 from moto in this process. moto keeps every multipart part in memory and
    joins them into one more in-memory copy on completion, so a multi-GB result file sent through the S3 API
    would cost several times its size in RAM. Writing into the key's own spooled buffer (memory up to 16 MB,
    then disk) keeps memory flat; this mirrors :mod:`airflow_distmap.local.moto_s3`, which reads the same way.

    :param fake_key: the moto ``FakeKey`` created empty by :func:`open_in_process_writer`.
    :param key: the object key.
    """

    def __init__(self, fake_key: Any, key: str) -> None:
        self._fake_key = fake_key
        self.key = key
        self.size = 0
        self._digest = hashlib.md5(usedforsecurity=False)

    def write(self, data: bytes) -> None:
        """Append bytes to the object."""
        with self._fake_key.lock:
            buffer = self._fake_key._value_buffer
            buffer.seek(0, io.SEEK_END)
            buffer.write(data)
            self.size += len(data)
            self._fake_key.contentsize = self.size
            self._digest.update(data)
            self._fake_key._etag = None

    def close(self) -> None:
        """Finish the object (its ETag is the MD5 of the content, as for a single PutObject)."""
        with self._fake_key.lock:
            self._fake_key._etag = self._digest.hexdigest()

    def abort(self) -> None:
        """Nothing to undo beyond leaving a partial object, which the manifest never lists."""


def open_in_process_writer(bucket: str, key: str) -> InProcessWriter | None:
    """An :class:`InProcessWriter` when moto's in-process backend holds ``bucket``, else ``None``."""
    from airflow_distmap.local.moto_s3 import backend_holding

    try:
        backend = backend_holding(bucket)
        if backend is None:
            return None
        fake_key = backend.put_object(bucket, key, b"")
        if not hasattr(fake_key, "_value_buffer") or not hasattr(fake_key, "lock"):
            return None
    except Exception:  # any moto-internal surprise: use the S3 API instead
        log.debug("In-process S3 write unavailable for s3://%s/%s", bucket, key, exc_info=True)
        return None
    return InProcessWriter(fake_key, key)


@dataclass(frozen=True)
class WriterConfig:
    """A resolved ``ResultWriter``: where to export (``bucket`` ``None`` = state output only) and how."""

    bucket: str | None
    prefix: str
    transformation: str
    output_type: str

    def run_folder(self, run_id: str) -> str:
        """``<Prefix>/<mapRunUuid>``; a missing ``/`` after the prefix is inserted (spec 3.2)."""
        prefix = self.prefix.rstrip("/")
        return f"{prefix}/{run_id}" if prefix else run_id


def parse_writer(
    result_writer: Mapping[str, Any] | None, parameters: Mapping[str, Any] | None
) -> WriterConfig:
    """Resolve ``ResultWriter`` (``parameters`` = its evaluated ``Parameters``/``Arguments``).

    Without a ResultWriter the default is COMPACT into the state output; with an S3 export it is NONE.
    """
    if not result_writer:
        return WriterConfig(None, "", "COMPACT", "JSON")
    config = result_writer.get("WriterConfig") or {}
    exporting = integration_api(result_writer.get("Resource")) == "s3:putObject"  # in any partition
    transformation = str(config.get("Transformation", "NONE" if exporting else "COMPACT"))
    output_type = str(config.get("OutputType", "JSON"))
    if not exporting:
        return WriterConfig(None, "", transformation, output_type)
    params = parameters or {}
    bucket = params.get("Bucket")
    if not isinstance(bucket, str) or not bucket:
        raise StatesError(RESULT_WRITER_FAILED, "ResultWriter Parameters must contain a Bucket string.")
    prefix = params.get("Prefix", "")
    return WriterConfig(bucket, str(prefix or ""), transformation, output_type)


def transform_entry(entry: Mapping[str, Any], transformation: str) -> list[Any]:
    """What one child contributes: its NONE entry, its output, or its output's elements.

    "If a child workflow execution fails, Step Functions returns its execution result unchanged" (NONE form).
    """
    if transformation == "NONE" or entry.get("Status") != "SUCCEEDED":
        return [dict(entry)]
    output = json.loads(entry["Output"]) if entry.get("Output") is not None else None
    if transformation == "FLATTEN" and isinstance(output, list):
        return output
    return [output]


def write_result_files(
    s3: S3Client,
    config: WriterConfig,
    run_id: str,
    map_run_arn: str,
    groups: Mapping[str, Iterable[Mapping[str, Any] | bytes]],
    max_file_bytes: int = MAX_RESULT_FILE_BYTES,
    in_process: bool = True,
) -> dict[str, Any]:
    """Write the result files and ``manifest.json``; return the ``ResultWriterDetails``.

    :param s3: the S3 client.
    :param config: the writer configuration (``bucket`` set).
    :param run_id: the Map Run UUID (folder name).
    :param map_run_arn: the Map Run ARN (manifest).
    :param groups: ``SUCCEEDED`` / ``FAILED`` / ``PENDING`` -> entries in order (iterated once, streamed);
        an entry may be its compact JSON bytes.
    :param max_file_bytes: roll-over threshold.
    :param in_process: write into moto's in-process backend when it holds the bucket (the local endpoint).
    """
    assert config.bucket is not None
    folder = config.run_folder(run_id)
    files: dict[str, list[dict[str, Any]]] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
    try:
        for status in ("SUCCEEDED", "FAILED", "PENDING"):
            files[status] = _write_group(
                s3, config, folder, status, groups.get(status, ()), max_file_bytes, in_process
            )
        manifest = {"DestinationBucket": config.bucket, "MapRunArn": map_run_arn, "ResultFiles": files}
        key = f"{folder}/manifest.json"
        s3.put_object(
            Bucket=config.bucket,
            Key=key,
            Body=json.dumps(manifest, separators=(",", ":")).encode(),
            ContentType="application/json",
        )
    except ClientError as error:
        info = error.response.get("Error", {})
        raise StatesError(
            RESULT_WRITER_FAILED,
            f"Amazon S3 service returned an error writing to s3://{config.bucket}/{folder}: "
            f"{info.get('Message', str(error))} (Service: S3, Error Code: {info.get('Code', 'Unknown')})",
        ) from None
    except BotoCoreError as error:
        raise StatesError(RESULT_WRITER_FAILED, f"Could not write results: {error}") from None
    return {"Bucket": config.bucket, "Key": key}


def _encoded(entries: Iterable[Mapping[str, Any] | bytes], transformation: str) -> Iterator[bytes]:
    for entry in entries:
        if isinstance(entry, bytes):
            if transformation == "NONE":
                yield entry  # already the compact NONE entry
                continue
            entry = json.loads(entry)
        for value in transform_entry(entry, transformation):
            yield dumps_standard(value).encode()


#: Bytes of entries gathered before one write to the object: one write per entry was a per-child cost.
WRITE_CHUNK_BYTES: Final = 1024 * 1024


def _write_group(
    s3: S3Client,
    config: WriterConfig,
    folder: str,
    status: str,
    entries: Iterable[Mapping[str, Any] | bytes],
    max_file_bytes: int,
    in_process: bool,
) -> list[dict[str, Any]]:
    assert config.bucket is not None
    bucket = config.bucket
    jsonl = config.output_type == "JSONL"
    separator, opening, closing = (b"\n", b"", b"\n") if jsonl else (b",", b"[", b"]")
    written: list[dict[str, Any]] = []
    writer: S3StreamWriter | InProcessWriter | None = None
    size = 0  # of the current file, counting the entries gathered but not written yet
    gathered: list[bytes] = []
    gathered_bytes = 0

    def flush(current: S3StreamWriter | InProcessWriter) -> None:
        nonlocal gathered_bytes
        if gathered:
            data = separator.join(gathered)
            # The file's first entries follow its opening without a separator.
            current.write(data if current.size == len(opening) else separator + data)
        gathered.clear()
        gathered_bytes = 0

    def finish(current: S3StreamWriter | InProcessWriter) -> None:
        flush(current)
        current.write(closing)
        current.close()
        written.append({"Key": current.key, "Size": current.size})

    try:
        for data in _encoded(entries, config.transformation):
            if writer is not None and size + len(data) + 2 > max_file_bytes:
                finish(writer)
                writer = None
            if writer is None:
                key = f"{folder}/{status}_{len(written)}.json"
                local = open_in_process_writer(bucket, key) if in_process else None
                writer = local if local is not None else S3StreamWriter(s3, bucket, key)
                writer.write(opening)
                size = len(opening)
            gathered.append(data)
            gathered_bytes += len(data)
            size += len(data) + (1 if size > len(opening) else 0)
            if gathered_bytes >= WRITE_CHUNK_BYTES:
                flush(writer)
        if writer is not None:
            finish(writer)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return written
