"""Which task run owns an S3 location: owner tokens, and the claim on a results prefix.

Objects the provider writes for a task run carry its token as S3 user metadata (``x-amz-meta-distmap-owner``),
so a retry may replace its own objects and nothing else. A results prefix is claimed by a small object,
``<prefix>/_distmap_owner.json``, written once every check has passed and before anything starts.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import TYPE_CHECKING, Any, Final

from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from airflow_distmap.exceptions import ResultsLocationError, ResultsPrefixInUseError
from airflow_distmap.results import parse_s3_uri, s3_uri

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

#: S3 user metadata (``x-amz-meta-distmap-owner``) marking objects this provider wrote for one task run.
OWNER_METADATA_KEY: Final = "distmap-owner"
#: Object written under a results prefix to say which task run owns it.
RESULTS_OWNER_OBJECT: Final = "_distmap_owner.json"

_MISSING_CODES: Final = ("404", "NoSuchKey", "NotFound", "NoSuchBucket")
#: A conditional write lost: 412 the condition failed; 409 another conditional write to the key raced it.
_CONDITION_FAILED_CODES: Final = ("PreconditionFailed", "412", "ConditionalRequestConflict")
#: The requests that create an object in a managed upload (single part, or the end of a multipart one).
_OBJECT_WRITES: Final = ("PutObject", "CompleteMultipartUpload")
#: boto3's own transfer client: the CRT one builds its requests without botocore's events.
_CLASSIC_TRANSFER: Final = TransferConfig(preferred_transfer_client="classic")
_PER_RUN_FIX: Final = (
    "To fix this, leave results_uri unset (each task run then gets its own prefix) or template it per run, "
    "e.g. with {{ run_id }} (and {{ ti.map_index }} in a mapped task)."
)


def owner_token(dag_id: str, task_id: str, run_id: str, map_index: int | None = None) -> str:
    """A short ASCII token naming one task run (stable across its tries), stored as S3 metadata.

    :param dag_id: The DAG id.
    :param task_id: The task id.
    :param run_id: The DAG run id.
    :param map_index: The map index (``None`` or ``-1`` when unmapped).
    """
    index = None if map_index is None or map_index < 0 else map_index
    payload = json.dumps([dag_id, task_id, run_id, index], separators=(",", ":")).encode()
    return hashlib.sha256(payload).hexdigest()[:32]


def head_object(s3: S3Client, bucket: str, key: str) -> dict[str, Any] | None:
    """HeadObject, or ``None`` when the object does not exist.

    :param s3: a boto3 S3 client.
    :param bucket: the bucket name.
    :param key: the object key.
    """
    try:
        return dict(s3.head_object(Bucket=bucket, Key=key))
    except ClientError as exc:
        # A missing bucket answers 404 too (moto: NoSuchBucket); callers tell the two apart with HeadBucket.
        if exc.response.get("Error", {}).get("Code") in _MISSING_CODES:
            return None
        raise


def owned_by(head: dict[str, Any] | None, owner: str | None) -> bool:
    """Whether a HeadObject answer carries ``owner``'s token.

    :param head: a :func:`head_object` answer (``None``: no object).
    :param owner: the task run's :func:`owner_token`.
    """
    return (
        head is not None and owner is not None and head.get("Metadata", {}).get(OWNER_METADATA_KEY) == owner
    )


def _results_owner_key(prefix: str) -> str:
    prefix = prefix.rstrip("/")
    return f"{prefix}/{RESULTS_OWNER_OBJECT}" if prefix else RESULTS_OWNER_OBJECT


def foreign_claim_above(s3: S3Client, bucket: str, path: str, *, owner: str | None) -> str | None:
    """The mark of another task run's results prefix that holds ``path``, if there is one.

    Checks every prefix above ``path`` (the bucket's root included) for a ``_distmap_owner.json``: one HEAD
    request per level. A mark the connection may not read counts as no mark.

    :param s3: a boto3 S3 client.
    :param bucket: the bucket.
    :param path: a key or a prefix in ``bucket``.
    :param owner: :func:`owner_token` of this task run (its own marks are not foreign).
    :return: ``s3://`` URI of the other task run's mark, or ``None``.
    """
    if not path.strip("/"):
        return None  # the whole bucket: nothing is above it
    parts = path.strip("/").split("/")[:-1]
    for depth in range(len(parts) + 1):
        mark_key = _results_owner_key("/".join(parts[:depth]))
        try:
            mark = head_object(s3, bucket, mark_key)
        except ClientError as exc:
            log.debug("Could not read %s (%s)", s3_uri(bucket, mark_key), exc)
            continue
        if mark is not None and not owned_by(mark, owner):
            return s3_uri(bucket, mark_key)
    return None


def check_results_prefix(s3: S3Client, results_uri: str, *, owner: str) -> None:
    """Refuse a ``results_uri`` that already holds another task run's results, or lies inside them.

    A prefix is free when it holds nothing, or when its ``_distmap_owner.json`` names this task run
    (an Airflow retry reuses its own prefix).

    :param s3: a boto3 S3 client.
    :param results_uri: ``s3://bucket/prefix``.
    :param owner: :func:`owner_token` of this task run.
    :raises ResultsPrefixInUseError: the prefix holds objects of someone else, or lies inside another task
        run's results prefix.
    :raises ResultsLocationError: ``results_uri`` is not an S3 URI, or its bucket does not exist.
    """
    try:
        bucket, prefix = parse_s3_uri(results_uri, what="results_uri")
    except ValueError as exc:
        raise ResultsLocationError(str(exc)) from None
    listing_prefix = prefix.rstrip("/") + "/" if prefix.rstrip("/") else ""
    try:
        listing = s3.list_objects_v2(Bucket=bucket, Prefix=listing_prefix, MaxKeys=3)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchBucket":
            raise ResultsLocationError(
                f"Bucket {bucket!r} of results_uri does not exist. To fix this, create it or use "
                "another bucket."
            ) from None
        raise
    claim = foreign_claim_above(s3, bucket, prefix, owner=owner)
    if claim is not None:
        raise ResultsPrefixInUseError(
            f"results_uri {results_uri} lies inside another task run's results prefix (claimed by {claim}): "
            f"its results would mix with that run's. {_PER_RUN_FIX}"
        )
    # A console "folder" (an empty object named like the prefix) holds nothing.
    keys = [str(entry["Key"]) for entry in listing.get("Contents", []) if entry["Key"] != listing_prefix]
    if not keys:
        return
    owner_key = _results_owner_key(prefix)
    mark = head_object(s3, bucket, owner_key)
    if owned_by(mark, owner):
        return
    if mark is not None:
        raise ResultsPrefixInUseError(
            f"results_uri {results_uri} already holds another run's results: another task run claimed it "
            f"({s3_uri(bucket, owner_key)}), and nothing is overwritten. {_PER_RUN_FIX}"
        )
    raise ResultsPrefixInUseError(
        f"results_uri {results_uri} already holds another run's results, or other objects (for example "
        f"{s3_uri(bucket, keys[0])}), and nothing is overwritten. {_PER_RUN_FIX}"
    )


def claim_results_prefix(s3: S3Client, results_uri: str, *, owner: str) -> None:
    """Mark ``results_uri`` as this task run's (after :func:`check_results_prefix`, before starting).

    The mark is written only if there is none yet (a conditional write, ``If-None-Match: *``): of task runs
    that passed the check at the same time (a backfill with a fixed ``results_uri``), one wins.

    :param s3: a boto3 S3 client.
    :param results_uri: ``s3://bucket/prefix``.
    :param owner: :func:`owner_token` of this task run.
    :raises ResultsPrefixInUseError: another task run claimed the prefix first.
    """
    bucket, prefix = parse_s3_uri(results_uri, what="results_uri")
    key = _results_owner_key(prefix)
    try:
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=json.dumps({"owner": owner}).encode(),
            ContentType="application/json",
            Metadata={OWNER_METADATA_KEY: owner},
            IfNoneMatch="*",
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in _CONDITION_FAILED_CODES:
            raise
        if not owned_by(head_object(s3, bucket, key), owner):
            raise ResultsPrefixInUseError(
                f"results_uri {results_uri} was just claimed by another task run. {_PER_RUN_FIX}"
            ) from None


def upload_unless_replaced(
    s3: S3Client, path: str, uri: str, *, seen_etag: str | None, owner: str | None, extra_args: dict[str, Any]
) -> bool:
    """Upload a file to ``uri`` only if the object there is still the one the caller saw.

    ``seen_etag`` ``None`` means the key was free: the write then carries ``If-None-Match: *``; otherwise
    ``If-Match: <seen_etag>`` (a retry replacing its own earlier output). Two task runs that found the same
    key free do not overwrite each other: the second write is refused. A write whose condition failed because
    of this task run's own object (botocore retried a write whose answer was lost) counts as done; an object
    seen and since deleted is written as to a free key.

    boto3's managed transfer (multipart for big files) takes no conditional arguments, so the condition is
    added to its PutObject or CompleteMultipartUpload request with botocore's ``before-parameter-build``
    event, for this key only, while the upload runs; the classic transfer client is asked for, as the CRT one
    builds its own requests. (moto, and so the local endpoint, checks ``If-Match`` on PutObject only.)

    :param s3: a boto3 S3 client.
    :param path: the local file.
    :param uri: ``s3://bucket/key``.
    :param seen_etag: the ETag the caller found at ``uri``, or ``None`` when nothing was there.
    :param owner: :func:`owner_token` of this task run, also in ``extra_args``' metadata (``None``: none).
    :param extra_args: ``ExtraArgs`` of ``upload_file`` (content type, metadata).
    :return: ``False`` when someone else's object is there now (nothing was written).
    """
    bucket, key = parse_s3_uri(uri)
    code = _conditional_upload(s3, path, bucket, key, seen_etag, extra_args)
    if code is None:
        return True
    if code in _MISSING_CODES and seen_etag is not None:  # If-Match on an object deleted meanwhile
        code = _conditional_upload(s3, path, bucket, key, None, extra_args)
    return code is None or owned_by(head_object(s3, bucket, key), owner)


def _conditional_upload(
    s3: S3Client, path: str, bucket: str, key: str, seen_etag: str | None, extra_args: dict[str, Any]
) -> str | None:
    """``upload_file`` under ``If-None-Match: *`` or ``If-Match``; the error code if its condition failed."""
    condition = {"IfNoneMatch": "*"} if seen_etag is None else {"IfMatch": seen_etag}

    def add_condition(params: dict[str, Any], **_: Any) -> None:
        if params.get("Bucket") == bucket and params.get("Key") == key:
            params.update(condition)

    events = s3.meta.events
    # botocore keeps one registration per unique id, whatever the event: one id per operation.
    handler_ids = {op: f"distmap-if-match-{op}-{id(add_condition)}" for op in _OBJECT_WRITES}
    for operation, handler_id in handler_ids.items():
        events.register(f"before-parameter-build.s3.{operation}", add_condition, unique_id=handler_id)
    try:
        s3.upload_file(path, bucket, key, ExtraArgs=extra_args, Config=_CLASSIC_TRANSFER)
    except (ClientError, S3UploadFailedError) as exc:
        # upload_file re-raises a ClientError as S3UploadFailedError, raised while handling it.
        error = exc if isinstance(exc, ClientError) else exc.__context__
        code = error.response.get("Error", {}).get("Code") if isinstance(error, ClientError) else None
        if code in _CONDITION_FAILED_CODES or (seen_etag is not None and code in _MISSING_CODES):
            return str(code)
        raise
    finally:
        for operation, handler_id in handler_ids.items():
            events.unregister(f"before-parameter-build.s3.{operation}", unique_id=handler_id)
    return None
