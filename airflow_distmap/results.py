"""Reading what a Distributed Map exported to S3: ``manifest.json`` and the result files.

Layout (``docs/distributed-map-spec.md`` §3): ``s3://<Bucket>/<Prefix>/<mapRunUuid>/manifest.json`` lists
``SUCCEEDED_<n>.json``, ``FAILED_<n>.json`` and ``PENDING_<n>.json`` under ``ResultFiles``. Each result file
is a JSON array (or JSON Lines) of one entry per child execution whose ``Input`` and ``Output`` are
JSON-encoded *strings*. Files can be gigabytes, so entries are streamed (one at a time), never loaded whole.
"""

from __future__ import annotations

import codecs
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import ijson
from botocore.exceptions import ClientError

from airflow_distmap import json_codec

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

RESULT_STATUSES = ("SUCCEEDED", "FAILED", "PENDING")
"""The ``ResultFiles`` groups of a manifest, in the order AWS lists them in the docs."""

_S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(?P<key>.*))?$")


def parse_s3_uri(uri: str, *, what: str = "S3 URI") -> tuple[str, str]:
    """Split ``s3://bucket/key`` into ``(bucket, key)``.

    :param uri: The URI; the key may be empty (``s3://bucket`` or ``s3://bucket/``).
    :param what: What the URI is for (an argument name), used in the error message.
    :raises ValueError: The URI is not ``s3://<bucket>[/<key>]`` with a valid bucket name.
    """
    match = _S3_URI.match(uri) if isinstance(uri, str) else None
    if not match:
        raise ValueError(
            f"Invalid {what} {uri!r}. To fix this, pass an S3 URI like 's3://my-bucket/path/to/object': "
            "the scheme 's3://', a bucket name of 3 to 63 lowercase letters, digits, '.' or '-', then an "
            "optional key."
        )
    return match.group("bucket"), match.group("key") or ""


def s3_uri(bucket: str, key: str) -> str:
    """Build ``s3://bucket/key``.

    :param bucket: the bucket name.
    :param key: the object key (or prefix).
    """
    return f"s3://{bucket}/{key}"


def bucket_exists(s3: S3Client, bucket: str) -> bool:
    """Whether ``bucket`` exists (HeadBucket); any answer but "not found" (403...) is raised.

    :param s3: a boto3 S3 client.
    :param bucket: the bucket name.
    """
    return bucket_region(s3, bucket) is not None


def bucket_region(s3: S3Client, bucket: str) -> str | None:
    """The Region HeadBucket reports ``bucket`` in (``""`` if it names none); ``None`` if it does not exist.

    Any answer but "not found" (403...) is raised.

    :param s3: a boto3 S3 client.
    :param bucket: the bucket name.
    """
    try:
        answer = s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket", "NotFound"):
            return None
        raise
    return str(answer.get("BucketRegion") or "")


@dataclass(frozen=True)
class ResultFile:
    """One result file listed in a manifest: full object ``key`` and ``size`` in bytes."""

    key: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """A parsed ``manifest.json``.

    :param destination_bucket: ``DestinationBucket``: the bucket holding the result files.
    :param map_run_arn: ``MapRunArn``.
    :param result_files: ``ResultFiles`` by status (``SUCCEEDED``, ``FAILED``, ``PENDING``).
    """

    destination_bucket: str
    map_run_arn: str
    result_files: dict[str, list[ResultFile]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        """Build from the JSON document AWS writes."""
        files = {
            status: [
                ResultFile(key=str(entry["Key"]), size=int(entry.get("Size", 0)))
                for entry in data.get("ResultFiles", {}).get(status, []) or []
            ]
            for status in RESULT_STATUSES
        }
        return cls(
            destination_bucket=str(data["DestinationBucket"]),
            map_run_arn=str(data.get("MapRunArn", "")),
            result_files=files,
        )

    def files(self, *statuses: str) -> list[ResultFile]:
        """Result files of the given statuses (all when none given), in manifest order."""
        wanted = statuses or RESULT_STATUSES
        return [f for status in wanted for f in self.result_files.get(status, [])]

    def uri(self, result_file: ResultFile) -> str:
        """``s3://`` URI of one result file."""
        return s3_uri(self.destination_bucket, result_file.key)


@dataclass(frozen=True)
class ResultEntry:
    """One child execution's record from a result file, with ``Input``/``Output`` decoded.

    :param status: ``Status`` of the child (or the file's group when the entry has none).
    :param input: The child's input, decoded from its JSON string (``None`` when not included).
    :param output: The child's output, decoded (``None`` for failed children, which have none).
    :param error: ``Error`` of a failed child.
    :param cause: ``Cause`` of a failed child.
    :param execution_arn: ``ExecutionArn`` of the child.
    :param name: ``Name`` of the child.
    :param start_date: ``StartDate`` as AWS wrote it (ISO-8601 with ``Z``).
    :param stop_date: ``StopDate`` as AWS wrote it.
    :param raw: The entry exactly as read, for fields not listed here.
    """

    status: str
    input: Any
    output: Any
    error: str | None
    cause: str | None
    execution_arn: str | None
    name: str | None
    start_date: str | None
    stop_date: str | None
    raw: dict[str, Any]


def _decode(value: Any, details: Any) -> Any:
    """Decode a JSON-encoded ``Input``/``Output`` string; ``None`` when absent or not included."""
    if isinstance(details, dict) and details.get("Included") is False:
        return None
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def is_child_record(record: Any) -> bool:
    """Whether a result-file element is a child's record (``Transformation: NONE``), not a bare output.

    :param record: The element.
    """
    return isinstance(record, dict) and "Status" in record and ("ExecutionArn" in record or "Input" in record)


def entry_from_record(record: Any, file_status: str) -> ResultEntry:
    """Build a :class:`ResultEntry` from one element of a result file.

    Under ``Transformation: NONE`` (what a ResultWriter with a Bucket writes by default) an element is an
    object with ``ExecutionArn``/``Status``/``Input``/``Output``; under ``COMPACT``/``FLATTEN`` successful
    elements are the bare child outputs, which become ``output`` with ``input`` unknown.

    :param record: The element.
    :param file_status: The manifest group the file was listed under.
    """
    if is_child_record(record):
        return ResultEntry(
            status=str(record["Status"]),
            input=_decode(record.get("Input"), record.get("InputDetails")),
            output=_decode(record.get("Output"), record.get("OutputDetails")),
            error=record.get("Error"),
            cause=record.get("Cause"),
            execution_arn=record.get("ExecutionArn"),
            name=record.get("Name"),
            start_date=record.get("StartDate"),
            stop_date=record.get("StopDate"),
            raw=record,
        )
    return ResultEntry(
        status=file_status,
        input=None,
        output=record,
        error=None,
        cause=None,
        execution_arn=None,
        name=None,
        start_date=None,
        stop_date=None,
        raw={"Output": record},
    )


class _PeekableBody:
    """A file-like wrapper that lets us look at the first non-blank byte without consuming it.

    ijson needs a ``read(n)`` object; botocore's StreamingBody cannot seek back, so the peeked bytes are
    replayed first.
    """

    def __init__(self, body: Any) -> None:
        self._body = body
        self._buffer = b""

    def first_char(self) -> bytes:
        while True:
            chunk = self._body.read(65536)
            if not chunk:
                break
            self._buffer += chunk
            stripped = self._buffer.lstrip()
            if stripped:
                return stripped[:1]
        return b""

    def holds_json_lines(self, limit: int = 1024 * 1024) -> bool:
        """Whether the text's first line is a whole JSON value with more text after it: JSON Lines.

        A JSON array on one line, or over several whose first is not a whole value (``[`` alone), is not.
        Looked for in the first ``limit`` bytes.

        :param limit: how many bytes to read at most while looking.
        """
        while True:
            text = self._buffer.lstrip()
            end = text.find(b"\n")
            if end >= 0 and text[end:].strip():
                try:
                    json.loads(text[:end])
                except ValueError:
                    return False
                return True
            chunk = self._body.read(65536) if len(self._buffer) < limit else b""
            if not chunk:
                return False
            self._buffer += chunk

    def read(self, size: int = -1) -> bytes:
        if self._buffer:
            if size is None or size < 0:
                data = self._buffer + self._body.read()
                self._buffer = b""
                return bytes(data)
            data, self._buffer = self._buffer[:size], self._buffer[size:]
            return bytes(data)
        return bytes(self._body.read(size))


#: Bytes read at a time from a result file.
ARRAY_READ_BYTES = 1024 * 1024


def iter_records(body: Any, decode: Callable[[bytes], list[Any]] = json_codec.loads) -> Iterator[Any]:
    """Stream the elements of one result file from a binary file-like ``body``.

    Accepts a JSON array (``OutputType: JSON``) or JSON Lines (``OutputType: JSONL``, whose lines may be
    arrays: COMPACT or FLATTEN outputs); decides by the first non-blank byte and, for ``[``, by whether the
    first line is a whole value with more after it (one line of JSON Lines holding an array reads as a JSON
    array: the file does not say). Numbers come back as ``int``/``float`` (not ``Decimal``).

    :param body: the result file.
    :param decode: decoder of a JSON array's text into its elements (see :func:`iter_array_batches`),
        e.g. a typed msgspec decoder; JSON Lines are decoded by ijson whatever it is.
    """
    peekable = _PeekableBody(body)
    first = peekable.first_char()
    if not first:
        return
    if first == b"[" and not peekable.holds_json_lines():
        for batch in iter_array_batches(peekable.read, decode):
            yield from batch
    else:
        yield from ijson.items(peekable, "", multiple_values=True, use_float=True)


#: Where one object of an array ends and the next begins: ``}``, a comma, then the ``{`` (the match's end)
#: of an object starting with a key. Inside a JSON string the key's quote would be escaped, so a match
#: inside a string takes a string ending in ``},{``: :func:`iter_array_batches` proves each cut it makes.
_OBJECT_BOUNDARY = re.compile(rb'\}[ \t\n\r]*,[ \t\n\r]*(?=\{[ \t\n\r]*")')
#: Boundaries tried, last first, each time more text is read.
_CUTS_TRIED = 3
#: Bytes at the end of the text first searched for boundaries.
_TAIL_BYTES = 64 * 1024
#: Undecoded bytes from which :func:`iter_array_batches` stops looking for boundaries (elements that are
#: not objects, or huge ones) and streams the rest element by element with :func:`iter_json_array`.
BATCH_GIVE_UP_BYTES = 8 * 1024 * 1024


def iter_array_batches(
    read: Callable[[int], bytes],
    decode: Callable[[bytes], list[Any]] = json_codec.loads,
    chunk: int = ARRAY_READ_BYTES,
) -> Iterator[list[Any]]:
    """Stream a UTF-8 JSON array of objects as lists of elements, each list decoded in one call.

    The text read is cut after the last whole object it holds, and ``decode`` gets the JSON array of the
    objects before the cut: one call of a C decoder (msgspec) per megabyte instead of one per element, and
    a typed decoder can skip what it does not need. Cuts are found by pattern (:data:`_OBJECT_BOUNDARY`)
    and proven by ``decode`` succeeding (a cut inside a string leaves it unterminated). When none is found
    in :data:`BATCH_GIVE_UP_BYTES`, the rest is streamed by :func:`iter_json_array`, one element a batch.

    :param read: ``read(n)`` of the binary stream, positioned anywhere before the opening bracket.
    :param decode: decodes the text of a JSON array into its elements; raises ``ValueError`` when the text
        is not a JSON array.
    :param chunk: bytes per read.
    :raises ValueError: when the text is not a JSON array.
    """
    text = bytearray()
    while not text.lstrip():
        data = read(chunk)
        if not data:
            raise ValueError("A result file must hold a JSON array")
        text += data
    text = bytearray(text.lstrip())
    if not text.startswith(b"["):
        raise ValueError("A result file must hold a JSON array")
    scanned = 1  # text[:scanned] was searched for boundaries; text[0] is always the array's "["
    while data := read(chunk):
        text += data
        if len(text) > BATCH_GIVE_UP_BYTES:
            yield from ([element] for element in iter_json_array(_replay(bytes(text), read), chunk))
            return
        boundaries = _last_boundaries(text, max(1, scanned - 64))
        scanned = len(text)
        for boundary in reversed(boundaries[-_CUTS_TRIED:]):
            try:
                batch = decode(bytes(text[: boundary.start() + 1]) + b"]")
            except ValueError:
                continue
            yield batch
            del text[1 : boundary.end()]
            scanned = len(text)
            break
    yield decode(bytes(text))


def _last_boundaries(text: bytearray, start: int) -> list[re.Match[bytes]]:
    """The last object boundaries after ``start``, searched in tails of ``text`` twice as long each time.

    Only the last few are tried, and they are near the end: scanning the tail rather than everything
    read halves the time spent looking for them.
    """
    span = _TAIL_BYTES
    while True:
        begin = max(start, len(text) - span)
        found = list(_OBJECT_BOUNDARY.finditer(text, begin))
        if found or begin == start:
            return found
        span *= 2


def _replay(head: bytes, read: Callable[[int], bytes]) -> Callable[[int], bytes]:
    """``read`` of a stream that first gives back ``head``, bytes already read from it."""

    def replayed(size: int) -> bytes:
        nonlocal head
        if head:
            data, head = head, b""
            return data
        return read(size)

    return replayed


_BLANK = frozenset(" \t\n\r")


def iter_json_array(read: Callable[[int], bytes], chunk: int = ARRAY_READ_BYTES) -> Iterator[Any]:
    """Stream the elements of a UTF-8 JSON array, one element in memory at a time (plus a read chunk).

    Each element is decoded by the standard library's C decoder (``raw_decode``) from a text buffer that is
    refilled as it drains; an element that does not fit yet is decoded again once more text is buffered
    (the buffer grows to at least the element's size). Several times faster than an event parser for result
    files, whose entries are objects holding long strings.

    :param read: ``read(n)`` of the binary stream, positioned anywhere before the opening bracket.
    :param chunk: bytes per read.
    :raises ValueError: (``json.JSONDecodeError`` included) when the text is not a JSON array.
    """
    decode = json.JSONDecoder().raw_decode
    utf8 = codecs.getincrementaldecoder("utf-8")()
    text = ""
    position = 0
    at_end = False

    def fill(size: int) -> None:
        nonlocal text, position, at_end
        data = read(size)
        if not data:
            at_end = True
        text = text[position:] + utf8.decode(data, final=at_end)
        position = 0

    def next_char() -> str:
        """The next non-blank character (consumed by the caller), or "" at the end of the stream."""
        nonlocal position
        while True:
            while position < len(text) and text[position] in _BLANK:
                position += 1
            if position < len(text) or at_end:
                return text[position] if position < len(text) else ""
            fill(chunk)

    if next_char() != "[":
        raise ValueError("A result file must hold a JSON array")
    position += 1
    expect_comma = False
    started = False
    while True:
        char = next_char()
        if char == "":
            raise ValueError("The JSON array of the result file is not terminated")
        if char == "]" and (expect_comma or not started):
            return
        if expect_comma:
            if char != ",":
                raise ValueError(f"Expected ',' or ']' in the result file, found {char!r}")
            position += 1
            expect_comma = False
            continue
        try:
            value, end = decode(text, position)
        except json.JSONDecodeError:
            if at_end:
                raise
            fill(max(chunk, len(text)))  # the element is incomplete: buffer more, decode it again
            continue
        if (
            not at_end
            and not isinstance(value, dict | list | str)
            and (end == len(text) or (text[end] not in _BLANK and text[end] not in ",]"))
        ):
            fill(chunk)  # a number cut by the buffer's end ("-4" of "-4.5e10"): decode it again
            continue
        position = end
        started = True
        expect_comma = True
        yield value


def read_manifest(s3: S3Client, manifest_uri: str) -> Manifest:
    """Read and parse a ``manifest.json``.

    :param s3: A boto3 S3 client.
    :param manifest_uri: ``s3://bucket/<prefix>/<mapRunUuid>/manifest.json``.
    :raises ValueError: the URI is not an S3 URI, or the object is not a Map Run manifest.
    :raises ClientError: the object cannot be read.
    """
    bucket, key = parse_s3_uri(manifest_uri, what="manifest URI")
    if not key or key.endswith("/"):
        raise ValueError(
            f"{manifest_uri} names a bucket or a folder, not an object. To fix this, pass the full URI of "
            "the manifest, s3://<bucket>/<prefix>/<map run id>/manifest.json (the task's XCom manifest_uri)"
        )
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    try:
        data = json.load(body)
    except ValueError as error:  # UnicodeDecodeError included
        raise ValueError(f"{manifest_uri} is not JSON ({error}), so not a Map Run manifest.json") from None
    finally:
        body.close()
    if not isinstance(data, dict) or not isinstance(data.get("DestinationBucket"), str):
        held = (
            "an object without DestinationBucket"
            if isinstance(data, dict)
            else {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
                type(data), "a number"
            )
        )
        raise ValueError(
            f"{manifest_uri} is not a Map Run manifest.json (it holds {held}). To fix this, pass the "
            "manifest.json the ResultWriter wrote beside the result files, not a result file"
        )
    return Manifest.from_dict(data)


def manifest_uri_from_output(output: Any) -> tuple[str | None, str | None]:
    """Find a Distributed Map's ``{"MapRunArn", "ResultWriterDetails"}`` in an execution output.

    The Map's result may sit anywhere in the output (``ResultPath``), so the output is searched depth first.

    :param output: the parsed execution output.
    :return: ``(manifest_uri, map_run_arn)``; ``(None, None)`` when there is none.
    """
    stack = [output]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            details = node.get("ResultWriterDetails")
            if isinstance(details, dict) and "Bucket" in details and "Key" in details:
                return s3_uri(str(details["Bucket"]), str(details["Key"])), node.get("MapRunArn")
            stack.extend(reversed(list(node.values())))
        elif isinstance(node, list):
            stack.extend(reversed(node))
    return None, None


def manifest_uri_for_map_run(results_uri: str, map_run_arn: str) -> str:
    """Where a ResultWriter writing under ``results_uri`` puts the manifest of ``map_run_arn``.

    ``<prefix>/<mapRunUuid>/manifest.json``, the UUID being the last ``:`` segment of the Map Run ARN.

    :param results_uri: the ResultWriter's ``s3://bucket/prefix``.
    :param map_run_arn: the Map Run's ARN.
    """
    bucket, prefix = parse_s3_uri(results_uri, what="results_uri")
    run_id = map_run_arn.rsplit(":", 1)[-1]
    prefix = prefix.rstrip("/")
    key = f"{prefix}/{run_id}/manifest.json" if prefix else f"{run_id}/manifest.json"
    return s3_uri(bucket, key)


def iter_result_records(
    s3: S3Client,
    manifest: Manifest,
    statuses: Iterable[str] = RESULT_STATUSES,
    decode: Callable[[bytes], list[Any]] = json_codec.loads,
) -> Iterator[tuple[str, Any]]:
    """Stream ``(status, element)`` of the manifest's result files, file by file, in manifest order.

    :param s3: A boto3 S3 client.
    :param manifest: The parsed manifest.
    :param statuses: Which groups to read (``SUCCEEDED``, ``FAILED``, ``PENDING``).
    :param decode: decoder of a JSON array's text (see :func:`iter_records`).
    :raises ClientError: a listed file cannot be read (its message names the file).
    :raises ValueError: a listed file is not a JSON array or JSON Lines (the message names the file).
    """
    for status in statuses:
        for result_file in manifest.result_files.get(status, []):
            uri = manifest.uri(result_file)
            log.debug("Reading result file %s", uri)
            try:
                body = s3.get_object(Bucket=manifest.destination_bucket, Key=result_file.key)["Body"]
            except ClientError as error:
                answer = error.response.get("Error", {})
                problem = str(answer.get("Message") or error).rstrip(".")
                message = f"{problem}: result file {uri}, which the manifest lists"
                response: Any = {**error.response, "Error": {**answer, "Message": message}}
                raise ClientError(response, error.operation_name) from None
            try:
                for record in iter_records(body, decode):
                    yield status, record
            except (ValueError, ijson.JSONError) as error:
                raise ValueError(
                    f"Result file {uri}, listed by the manifest, is not a JSON array or JSON Lines "
                    f"({' '.join(str(error).split())})"
                ) from None
            finally:
                body.close()


def iter_result_entries(
    s3: S3Client, manifest: Manifest, statuses: Iterable[str] = RESULT_STATUSES
) -> Iterator[ResultEntry]:
    """Stream every entry of the manifest's result files, file by file, in manifest order.

    :param s3: A boto3 S3 client.
    :param manifest: The parsed manifest.
    :param statuses: Which groups to read (``SUCCEEDED``, ``FAILED``, ``PENDING``).
    """
    for status, record in iter_result_records(s3, manifest, statuses):
        yield entry_from_record(record, status)


def count_entries(s3: S3Client, manifest: Manifest) -> dict[str, int]:
    """Count the entries (child executions) of each result group by streaming the files.

    :param s3: A boto3 S3 client.
    :param manifest: The parsed manifest.
    :return: ``{"SUCCEEDED": n, "FAILED": n, "PENDING": n}``.
    """
    counts = dict.fromkeys(RESULT_STATUSES, 0)
    for status in RESULT_STATUSES:
        for _ in iter_result_entries(s3, manifest, (status,)):
            counts[status] += 1
    return counts


def sample_failed_items(s3: S3Client, manifest: Manifest, limit: int = 5) -> list[dict[str, Any]]:
    """Read the first ``limit`` failed entries of the ``FAILED`` result files, stopping when enough are read.

    ``FAILED_<n>.json`` also lists children that were ABORTED because the Map Run failed (spec §3.2); they
    did not fail on their own, so they are skipped.

    :param s3: A boto3 S3 client.
    :param manifest: The parsed manifest.
    :param limit: How many to return at most.
    :return: Small dicts ``{"error", "cause", "input", "execution_arn", "status"}``.
    """
    samples: list[dict[str, Any]] = []
    if limit <= 0:
        return samples
    for entry in iter_result_entries(s3, manifest, ("FAILED",)):
        if entry.status == "ABORTED":
            continue
        samples.append(
            {
                "status": entry.status,
                "error": entry.error,
                "cause": entry.cause,
                "input": entry.input,
                "execution_arn": entry.execution_arn,
            }
        )
        if len(samples) >= limit:
            break
    return samples


COUNT_FIELDS = ("total", "succeeded", "failed", "pending", "running", "timed_out", "aborted")
"""Keys of the summary ``counts``; ``timed_out`` is DescribeMapRun's ``timedOut``."""


def counts_from_map_run(map_run: dict[str, Any] | None) -> dict[str, int]:
    """Summary counts (snake_case) from a DescribeMapRun response's ``itemCounts``.

    :param map_run: The DescribeMapRun response, or ``None`` (all counts 0).
    """
    source = (map_run or {}).get("itemCounts") or {}
    names = {"timed_out": "timedOut"}
    return {name: int(source.get(names.get(name, name), 0) or 0) for name in COUNT_FIELDS}


def progress_message(status: str, counts: dict[str, int]) -> str:
    """One log line of a Map Run's progress, from :func:`counts_from_map_run`'s counts.

    While the Map Run runs, ``total`` counts the items read so far (the reader streams), so the line says so
    rather than give a percentage that would run ahead of the work.

    :param status: The Map Run's status.
    :param counts: Its item counts.
    """
    done = counts["succeeded"] + counts["failed"] + counts["timed_out"] + counts["aborted"]
    total = counts["total"]
    if status == "RUNNING":
        of = "the 1 item read so far is" if total == 1 else f"the {total} items read so far are"
    else:
        of = "1 item" if total == 1 else f"{total} items"
    parts = [
        f"{counts[key]} {label}"
        for key, label in (
            ("succeeded", "succeeded"),
            ("failed", "failed"),
            ("timed_out", "timed out"),
            ("aborted", "aborted"),
            ("running", "running"),
            ("pending", "pending"),
        )
        if counts[key] or key == "succeeded"
    ]
    return f"Map Run {status}: {done} of {of} done: {', '.join(parts)}"


@dataclass
class CompletedRun:
    """A finished execution and its exported Map Run, as handed to ``on_run_complete``.

    :param execution: The DescribeExecution response.
    :param state_machine_arn: The state machine's ARN.
    :param map_run: The DescribeMapRun response (``None`` when no Map Run started).
    :param manifest: The parsed manifest (``None`` when none was written).
    :param manifest_uri: Its ``s3://`` URI.
    :param counts: Item counts (see :data:`COUNT_FIELDS`).
    :param s3: A boto3 S3 client able to read the result files.
    :param results_uri: The ResultWriter location the operator configured, if any.
    """

    execution: dict[str, Any]
    state_machine_arn: str
    map_run: dict[str, Any] | None
    manifest: Manifest | None
    manifest_uri: str | None
    counts: dict[str, int]
    s3: S3Client
    results_uri: str | None = None

    @property
    def execution_arn(self) -> str:
        """ARN of the execution."""
        return str(self.execution["executionArn"])

    @property
    def map_run_arn(self) -> str | None:
        """ARN of the Map Run, if one started."""
        if self.map_run:
            return str(self.map_run["mapRunArn"])
        return self.manifest.map_run_arn if self.manifest else None

    @property
    def status(self) -> str:
        """The execution's final status."""
        return str(self.execution["status"])

    def iter_results(self, statuses: Iterable[str] = RESULT_STATUSES) -> Iterator[ResultEntry]:
        """Stream the result entries (nothing when no manifest was written).

        :param statuses: Which groups to read (``SUCCEEDED``, ``FAILED``, ``PENDING``).
        """
        if self.manifest is None:
            return iter(())
        return iter_result_entries(self.s3, self.manifest, statuses)

    def sample_failed_items(self, limit: int = 5) -> list[dict[str, Any]]:
        """A few failed items from the ``FAILED`` result files (see :func:`sample_failed_items`).

        :param limit: How many to return at most.
        """
        return sample_failed_items(self.s3, self.manifest, limit) if self.manifest else []
