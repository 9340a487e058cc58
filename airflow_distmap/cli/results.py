"""``airflow-distmap results s3://.../manifest.json``: summarise a finished Distributed Map run.

Streams the result files listed by the manifest (never loads them whole) and prints: child executions
per status, items/rows succeeded and failed, failures grouped by error, and a few failed rows or items
with their input. Rows are counted from ``row_handler`` outputs (``{"rows": [...]}``), so a batch's row
errors show up even though its child execution succeeded.

Works against AWS and the local endpoint alike: credentials come from boto3's default chain, the
endpoint from ``--endpoint-url``, ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``. With an endpoint and no
credentials configured, the local endpoint's test credentials are used (it accepts any).

Rows of child executions that never started (``PENDING_n.json``, after a failed or aborted Map Run) count
as failed with ``States.ItemNotStarted``, as in the CSV operator's failed-rows ledger.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from airflow_distmap.cli.options import non_negative_int
from airflow_distmap.results import parse_s3_uri, read_manifest, s3_uri

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from airflow_distmap.csv_processing.collector import ChildEntry

_PREVIEW_CHARS = 200


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's options."""
    parser.add_argument(
        "manifest_uri",
        help="s3://bucket/prefix/<map run id>/manifest.json, or a prefix holding one run's manifest",
    )
    parser.add_argument(
        "--endpoint-url",
        # As boto3 reads them: the S3-specific variable first.
        default=os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"),
        help="S3 endpoint, e.g. http://127.0.0.1:4566 for the local endpoint (default: $AWS_ENDPOINT_URL_S3, "
        "else $AWS_ENDPOINT_URL)",
    )
    parser.add_argument("--region", default=None, help="AWS region (default: boto3's configuration)")
    parser.add_argument("--samples", type=non_negative_int, default=5, help="failed rows to show (default 5)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def _preview(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= _PREVIEW_CHARS else text[: _PREVIEW_CHARS - 3] + "..."


def _items(child_input: Any) -> list[Any]:
    if isinstance(child_input, dict) and isinstance(child_input.get("Items"), list):
        return list(child_input["Items"])
    return [] if child_input is None else [child_input]


def _indexed_rows(child_input: Any) -> Iterator[tuple[int | None, Any]]:
    """``(index, row)`` of each item of a child's input, numbered as ``row_handler`` numbers them.

    An ``{"index", "row"}`` envelope gives its index; a plain item (the row itself) its position in its batch,
    or ``None`` alone.
    """
    batched = isinstance(child_input, dict) and isinstance(child_input.get("Items"), list)
    for position, item in enumerate(_items(child_input)):
        if (
            isinstance(item, dict)
            and isinstance(item.get("row"), dict)
            and isinstance(item.get("index"), int)
        ):
            yield item["index"], item["row"]
        else:
            yield (position if batched else None), item


def _contract_rows(output: Any) -> list[Any] | None:
    """The rows of an output in ``row_handler``'s shape (a batch's or one item's), else ``None``."""
    rows = output.get("rows") if isinstance(output, dict) else None
    if rows is None and isinstance(output, dict) and "index" in output:
        rows = [output]
    return rows if isinstance(rows, list) else None


class _Tally:
    """Counters filled entry by entry; only ``samples`` failures are kept."""

    def __init__(self, samples: int) -> None:
        self.samples = samples
        self.children: Counter[str] = Counter()
        self.rows: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.failed: list[dict[str, Any]] = []
        self.bare_outputs = 0  # COMPACT or FLATTEN outputs without the row contract: no rows to count

    def _sample(self, **fields: Any) -> None:
        if len(self.failed) < self.samples:
            self.failed.append(fields)

    def add(self, entry: ChildEntry) -> None:
        if entry.bare_output and _contract_rows(entry.output) is None:
            # A COMPACT output of another shape, or a FLATTEN element: no rows to count.
            self.bare_outputs += 1
            return
        self.children[entry.status] += 1
        if entry.status != "SUCCEEDED":
            from airflow_distmap.csv_processing.collector import child_failure

            error, message = child_failure(entry.status, entry.error, entry.cause)  # as the CSV ledger says
            items = _items(entry.input)
            self.rows["failed"] += len(items) or 1
            self.errors[error] += len(items) or 1
            for index, row in list(_indexed_rows(entry.input))[: max(self.samples - len(self.failed), 0)]:
                self._sample(index=index, error=error, message=_preview(message), input=row)
            return
        rows = _contract_rows(entry.output)
        if rows is None:
            self.rows["succeeded"] += len(_items(entry.input)) or 1
            return
        needs_input = False
        for row in rows:
            if not isinstance(row, dict) or row.get("skipped"):
                continue
            if "error" in row:
                details = row["error"] if isinstance(row["error"], dict) else {"message": row["error"]}
                kind = str(details.get("type") or "Error")
                self.rows["failed"] += 1
                self.errors[kind] += 1
                if len(self.failed) < self.samples:
                    needs_input = True
                    self._sample(
                        index=row.get("index"), error=kind, message=_preview(details.get("message", ""))
                    )
            else:
                self.rows["succeeded"] += 1
        if needs_input:  # decode the batch's input only when one of its rows is shown
            by_index = dict(_indexed_rows(entry.input))
            for sample in self.failed:
                if "input" not in sample and sample.get("index") in by_index:
                    sample["input"] = by_index[sample["index"]]


def summarise(s3: S3Client, manifest_uri: str, samples: int = 5) -> dict[str, Any]:
    """Stream a run's result files and return its summary.

    :param s3: a boto3 S3 client.
    :param manifest_uri: ``s3://.../manifest.json``.
    :param samples: how many failed rows to include.
    :return: ``{"manifest_uri", "map_run_arn", "result_files", "children", "counts", "bare_outputs",
        "failures_by_error", "failed_samples"}``; ``counts`` holds rows (``total``, ``succeeded``,
        ``failed``), as the operators' summaries do. Under WriterConfig's COMPACT or FLATTEN the succeeded
        children's records are not written: an output in ``row_handler``'s shape still counts as a child and
        its rows; ``bare_outputs`` counts the others, whose rows are unknown (``total`` and ``succeeded`` are
        then ``None``).
    """
    # Imported here: it imports Airflow, whose logging would write to stdout (see run).
    from airflow_distmap.csv_processing.collector import iter_child_entries

    manifest = read_manifest(s3, manifest_uri)
    tally = _Tally(samples)
    for entry in iter_child_entries(s3, manifest):
        tally.add(entry)
    return {
        "manifest_uri": manifest_uri,
        "map_run_arn": manifest.map_run_arn,
        "result_files": {
            status: {"count": len(files), "bytes": sum(f.size for f in files)}
            for status, files in manifest.result_files.items()
        },
        "children": dict(tally.children),
        "counts": {
            # Unknown when the succeeded children's records were not written (COMPACT or FLATTEN).
            "total": None if tally.bare_outputs else tally.rows["succeeded"] + tally.rows["failed"],
            "succeeded": None if tally.bare_outputs else tally.rows["succeeded"],
            "failed": tally.rows["failed"],
        },
        "bare_outputs": tally.bare_outputs,
        "failures_by_error": dict(tally.errors.most_common()),
        "failed_samples": tally.failed,
    }


def _print(summary: dict[str, Any]) -> None:
    rows = summary["counts"]
    print(f"Manifest:  {summary['manifest_uri']}")
    print(f"Map Run:   {summary['map_run_arn']}")
    files = ", ".join(f"{s} {v['count']} ({v['bytes']:,} B)" for s, v in summary["result_files"].items())
    print(f"Files:     {files}")
    children = ", ".join(f"{k.lower()} {v:,}" for k, v in sorted(summary["children"].items())) or "none"
    if summary["bare_outputs"]:
        print(
            f"Children:  {children}, and {summary['bare_outputs']:,} outputs written with WriterConfig's "
            "COMPACT or FLATTEN without their records or a row_handler shape"
        )
        print(
            f"Rows:      {rows['failed']:,} failed; the succeeded ones are not in the results "
            "(DescribeMapRun counts them)"
        )
    else:
        print(f"Children:  {children}")
        print(
            f"Rows:      {rows['total']:,} total, {rows['succeeded']:,} succeeded, {rows['failed']:,} failed"
        )
    if summary["failures_by_error"]:
        print("Failures by error:")
        for error, count in summary["failures_by_error"].items():
            print(f"  {count:>10,}  {error}")
    if summary["failed_samples"]:
        print("Sample failed rows:")
        for sample in summary["failed_samples"]:
            index = sample.get("index")
            where = f"row item {index}" if index is not None else "item"
            print(f"  {where}: {sample['error']}: {sample['message']}")
            if "input" in sample:
                print(f"      input: {_preview(sample['input'])}")


#: Manifests listed in the error when a prefix holds several.
_MANIFESTS_SHOWN = 5
#: Pages of a listing (1,000 keys each) searched for a manifest under a prefix.
_PAGES_SEARCHED = 10


def find_manifest(s3: S3Client, uri: str) -> str:
    """``uri`` when it names a ``manifest.json``; else the one manifest under that prefix.

    A Map Run's folder, or a task run's results prefix that holds one run, names its manifest.

    :param s3: a boto3 S3 client.
    :param uri: a manifest's URI, or a prefix above it.
    :raises ValueError: the prefix holds no manifest or several (the message lists them).
    """
    bucket, key = parse_s3_uri(uri, what="manifest URI")
    if key.endswith(".json"):  # a file: read as the manifest it should be
        return uri
    prefix = f"{key.rstrip('/')}/" if key.strip("/") else ""
    found: list[str] = []
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    for number, page in enumerate(pages, start=1):
        found += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith("/manifest.json")]
        if len(found) > _MANIFESTS_SHOWN:
            break
        if number == _PAGES_SEARCHED and page.get("IsTruncated"):
            raise ValueError(
                f"{s3_uri(bucket, prefix)} holds more than {number * 1000:,} objects, too many to look for a "
                "manifest in. To fix this, pass the manifest's URI, or a narrower prefix (the Map Run's "
                "folder)."
            )
    if len(found) == 1:
        return s3_uri(bucket, found[0])
    if not found:
        raise ValueError(
            f"No manifest.json under {s3_uri(bucket, prefix)}. To fix this, pass the full URI of the "
            "manifest, s3://<bucket>/<prefix>/<map run id>/manifest.json (the task's XCom manifest_uri)."
        )
    listed = ", ".join(s3_uri(bucket, k) for k in found[:_MANIFESTS_SHOWN])
    more = " and more" if len(found) > _MANIFESTS_SHOWN else ""
    raise ValueError(
        f"{s3_uri(bucket, prefix)} holds the manifests of several Map Runs ({listed}{more}). To fix this, "
        "pass one of them."
    )


def _s3_client(endpoint_url: str | None, region: str | None) -> S3Client:
    """boto3's S3 client; against an endpoint with no credentials configured, the local endpoint's."""
    session = boto3.session.Session(region_name=region)
    if endpoint_url and session.get_credentials() is None:
        from airflow_distmap.local.endpoint import TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY

        session = boto3.session.Session(
            aws_access_key_id=TEST_ACCESS_KEY_ID,
            aws_secret_access_key=TEST_SECRET_ACCESS_KEY,
            region_name=region or "us-east-1",
        )
    # Standard retries (3 attempts): botocore's legacy default spends about 9 s on an endpoint that is down.
    config = Config(retries={"mode": "standard", "max_attempts": 3})
    return session.client("s3", endpoint_url=endpoint_url or None, config=config)


def run(args: argparse.Namespace) -> int:
    """Print the summary; return 0, or 1 when the manifest cannot be read."""
    # Importing Airflow (for the result readers) sends log lines to stdout, botocore's "Found credentials"
    # among them: they go to stderr, so stdout holds the summary alone and --json can be piped.
    try:
        with contextlib.redirect_stdout(sys.stderr):
            s3 = _s3_client(args.endpoint_url, args.region)
            summary = summarise(s3, find_manifest(s3, args.manifest_uri), samples=max(args.samples, 0))
    except (ClientError, BotoCoreError, ValueError) as error:
        problem = str(error).rstrip(".")
        if " To fix this" in problem:
            fix = ""
        elif "which the manifest lists" in problem or "listed by the manifest" in problem:
            # The manifest was read: one of its result files was not.
            fix = (
                " To fix this, check that the Map Run's result files are still in S3 (a lifecycle rule or a "
                "cleanup may have removed them) and that the credentials may read them."
            )
        else:
            fix = (
                " To fix this, check the URI (a manifest.json, or a prefix holding one), the credentials, "
                "and --endpoint-url for the local endpoint."
            )
        print(f"error: cannot summarise {args.manifest_uri}: {problem}.{fix}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False, default=str))
    else:
        _print(summary)
    return 0
