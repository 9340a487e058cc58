"""Re-running only the failed rows when a CSV task is retried after failing on its row threshold.

Rows that ``row_handler`` reports as failed leave the execution SUCCEEDED, so there is nothing for Step
Functions to redrive. Instead the retry turns the failed-rows ledger into a JSON Lines file of items
``{"_distmap_item_index": <item index in the input>, <column>: ...}`` (columns named as the CSV
ItemReader names them), runs a Distributed Map over it whose ItemSelector sends that field as the row's
index, and collects again: the first run's results, with each re-run row's latest result replacing its
first one. Rows that already succeeded never run twice, and the output ends complete and in input order.

What has been collected and re-run is recorded in ``_distmap_state.json`` under the task run's results
prefix, so each retry knows which results to combine, and a retry interrupted mid-way attaches to its
own re-run instead of starting another.
"""

from __future__ import annotations

import json
import posixpath
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from botocore.exceptions import ClientError

from airflow_distmap.csv_processing.ledger import LedgerColumns
from airflow_distmap.csv_processing.preflight import (
    OUTPUT_FORMATS,
    RERUN_INDEX_FIELD,
    CsvLayout,
)
from airflow_distmap.ownership import OWNER_METADATA_KEY
from airflow_distmap.results import parse_s3_uri, s3_uri

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

STATE_OBJECT: Final = "_distmap_state.json"
#: Key of an item's index in the re-run items file (FIRST_ROW layouts never have a column of that name).
INDEX_FIELD: Final = RERUN_INDEX_FIELD


@dataclass
class Rerun:
    """One re-run of failed rows.

    :param number: 1 for the first re-run, 2 for the next...
    :param items_uri: the JSON Lines file of the rows to re-run.
    :param rows: how many rows it holds.
    :param manifest_uri: its results' manifest, once collected.
    :param execution_arn: its execution, once collected.
    """

    number: int
    items_uri: str
    rows: int
    manifest_uri: str | None = None
    execution_arn: str | None = None


@dataclass
class RunState:
    """What a task run has collected so far (``_distmap_state.json``).

    :param manifest_uri: manifest of the first, whole-file run.
    :param failed_rows: rows in the ledger after the last collection.
    :param reruns: re-runs of failed rows, oldest first.
    :param source_etag: ETag of the input these runs read; another ETag means the input was replaced since.
    :param ledger_uri: where the last collection wrote the failed-rows ledger (a re-run reads it from there,
        even if ``output_uri`` changed since).
    :param execution_arn: the whole-file run's execution.
    :param settings_digest: a digest of the settings that decide each row's result (the function, its
        ``function_config``, how the file is read and what each row sends) the task run last went on with:
        its run's, or a later try's that re-ran failed rows. A try with the same settings reuses what was
        collected or re-runs only the failed rows, even when the whole-file run ran on an earlier definition's
        state machine.
    """

    manifest_uri: str | None = None
    failed_rows: int = 0
    reruns: list[Rerun] = field(default_factory=list)
    source_etag: str | None = None
    ledger_uri: str | None = None
    execution_arn: str | None = None
    settings_digest: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunState:
        """Build from the stored JSON."""
        return cls(
            manifest_uri=data.get("manifest_uri"),
            failed_rows=int(data.get("failed_rows", 0)),
            reruns=[Rerun(**r) for r in data.get("reruns", [])],
            source_etag=data.get("source_etag"),
            ledger_uri=data.get("ledger_uri"),
            execution_arn=data.get("execution_arn"),
            settings_digest=data.get("settings_digest"),
        )

    def for_input(self, etag: str | None) -> RunState:
        """The state if it was collected from the input with ``etag``, else an empty one (start over)."""
        if self.source_etag is not None and etag is not None and etag != self.source_etag:
            return RunState()
        return self

    def pending_rerun(self) -> Rerun | None:
        """A re-run started but not collected yet (a retry attaches to it)."""
        if self.reruns and self.reruns[-1].manifest_uri is None:
            return self.reruns[-1]
        return None


def _state_key(results_uri: str) -> tuple[str, str]:
    bucket, prefix = parse_s3_uri(results_uri, what="results_uri")
    prefix = prefix.rstrip("/")
    return bucket, f"{prefix}/{STATE_OBJECT}" if prefix else STATE_OBJECT


def load_state(s3: S3Client, results_uri: str) -> RunState:
    """Read the task run's state; an empty state when there is none yet.

    :param s3: a boto3 S3 client.
    :param results_uri: the task run's results prefix.
    """
    bucket, key = _state_key(results_uri)
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return RunState()
        raise
    try:
        return RunState.from_dict(json.loads(body.read()))
    finally:
        body.close()


def save_state(s3: S3Client, results_uri: str, state: RunState, owner: str) -> None:
    """Write the task run's state.

    :param s3: a boto3 S3 client.
    :param results_uri: the task run's results prefix.
    :param state: what to record.
    :param owner: the task run's owner token.
    """
    bucket, key = _state_key(results_uri)
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=json.dumps(asdict(state), indent=1).encode(),
        ContentType="application/json",
        Metadata={OWNER_METADATA_KEY: owner},
    )


def _ledger_batches(path: Path, file_format: str, schema: pa.Schema, delimiter: str) -> Any:
    if file_format == "parquet":
        return pq.ParquetFile(path).iter_batches(batch_size=8192)
    # The ledger was written by pyarrow's CSV writer: standard quoting, no backslash escapes. Its header is
    # skipped as a record (skip_rows would skip a line, and a header name may hold a newline).
    return pa_csv.open_csv(
        path,
        read_options=pa_csv.ReadOptions(column_names=schema.names, skip_rows_after_names=1),
        parse_options=pa_csv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
        convert_options=pa_csv.ConvertOptions(
            column_types={f.name: f.type for f in schema},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )


class LedgerMissingError(Exception):
    """The failed-rows ledger a re-run reads is gone (deleted since the try that wrote it)."""


def write_rerun_items(s3: S3Client, layout: CsvLayout, ledger_uri: str, items_uri: str, owner: str) -> int:
    """Turn a failed-rows ledger into the items file of a re-run.

    :param s3: a boto3 S3 client.
    :param layout: the input as the pre-flight saw it.
    :param ledger_uri: the ledger the last collection wrote (``.csv`` or ``.parquet``).
    :param items_uri: where to write the JSON Lines items.
    :param owner: the task run's owner token.
    :return: the number of rows to re-run.
    :raises LedgerMissingError: the ledger is not there.
    """
    columns = LedgerColumns.for_headers(layout.headers)
    schema = columns.schema(layout.headers)
    ledger_bucket, ledger_key = parse_s3_uri(ledger_uri)
    ledger_format = OUTPUT_FORMATS[posixpath.splitext(ledger_key)[1].lower()]
    items_bucket, items_key = parse_s3_uri(items_uri)
    rows = 0
    with tempfile.TemporaryDirectory(prefix="distmap-rerun-") as tmp:
        ledger_path = Path(tmp) / f"ledger.{ledger_format}"
        items_path = Path(tmp) / "items.jsonl"
        try:
            s3.download_file(ledger_bucket, ledger_key, str(ledger_path))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise LedgerMissingError(ledger_uri) from None
            raise
        batches = _ledger_batches(ledger_path, ledger_format, schema, layout.delimiter)
        names = [layout.reader_name(header) for header in layout.headers]
        with items_path.open("w", encoding="utf-8") as out:
            for batch in batches:
                data = batch.to_pydict()
                for position, row_index in enumerate(data[columns.row_index]):
                    item: dict[str, Any] = {INDEX_FIELD: int(row_index) + layout.first_data_item}
                    for name, header in zip(names, layout.headers, strict=True):
                        item[name] = data[header][position]
                    out.write(json.dumps(item, ensure_ascii=False) + "\n")
                    rows += 1
        s3.upload_file(
            str(items_path),
            items_bucket,
            items_key,
            ExtraArgs={"ContentType": "application/x-ndjson", "Metadata": {OWNER_METADATA_KEY: owner}},
        )
    return rows


def rerun_items_uri(results_uri: str, number: int) -> str:
    """``<results>/rerun-<n>/items.jsonl``."""
    bucket, prefix = parse_s3_uri(results_uri, what="results_uri")
    prefix = prefix.rstrip("/")
    key = f"{prefix}/rerun-{number}/items.jsonl" if prefix else f"rerun-{number}/items.jsonl"
    return s3_uri(bucket, key)
