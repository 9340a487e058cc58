"""Collect a CSV Map Run: the input rows plus the function's output, in input order, and a failed-rows ledger.

Steps, each streaming so memory stays flat however many rows there are:

1. stream the result files (``airflow_distmap.results.iter_records``, msgspec) and park each row's result
   in a :class:`~airflow_distmap.csv_processing.result_store.ResultStore` keyed by item index;
2. re-read the input CSV from S3 in column chunks (:mod:`~airflow_distmap.csv_processing.input_reader`:
   the ItemReader's splitting rules, so item ``i`` is record ``i``) and merge it with the stored results;
3. write the output and the ledger with pyarrow in record batches to temporary files, then upload them
   (boto3's managed transfer switches to multipart uploads for big files), tagged with the task run's
   owner token so a retry of the same task run may replace them and nobody else's are overwritten.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from airflow_distmap import json_codec
from airflow_distmap.csv_processing.input_reader import IrregularRowsError, arrow_chunks, python_chunks
from airflow_distmap.csv_processing.ledger import CONTRACT_ERROR, NOT_PROCESSED, LedgerColumns
from airflow_distmap.csv_processing.preflight import OWN_OUTPUT_URI_FIX, CsvLayout, OutputTarget
from airflow_distmap.csv_processing.result_store import (
    ResultRun,
    ResultStore,
    RowError,
    contiguous_runs,
    utf8_safe,
)
from airflow_distmap.csv_processing.writers import TableWriter, string_schema
from airflow_distmap.exceptions import OutputLocationError
from airflow_distmap.ownership import OWNER_METADATA_KEY, upload_unless_replaced
from airflow_distmap.results import RESULT_STATUSES, Manifest, is_child_record, iter_result_records

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from airflow_distmap.results import ResultEntry

log = logging.getLogger(__name__)

#: Longest error message kept in the ledger.
MAX_MESSAGE_CHARS: Final = 2000
#: Error type of the rows of a child execution that never started (``PENDING_n.json``: the Map Run failed or
#: was aborted first).
ITEM_NOT_STARTED: Final = "States.ItemNotStarted"
#: Distinct error types counted in the summary (the rest are grouped under "other").
MAX_ERROR_TYPES: Final = 50
_RAW_NULL: Final = msgspec.Raw(b"null")


@dataclass
class CollectSummary:
    """What the collector wrote.

    :param output_uri: the dataset written.
    :param failed_rows_uri: the ledger written beside it (always written, possibly with no rows).
    :param rows_total: data rows in the input.
    :param rows_succeeded: rows with an output.
    :param rows_failed: rows in the ledger.
    :param errors_by_type: failed rows per error type.
    :param duration_seconds: time spent collecting.
    """

    output_uri: str
    failed_rows_uri: str
    rows_total: int = 0
    rows_succeeded: int = 0
    rows_failed: int = 0
    errors_by_type: dict[str, int] = field(default_factory=dict)
    duration_seconds: float = 0.0


def _short(message: Any) -> str:
    text = "" if message is None else utf8_safe(str(message))
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 3] + "..."


def _input_indexes(child_input: Any) -> list[int]:
    """Item indexes a child execution was given (``{"Items": [...]}`` or one item)."""
    if isinstance(child_input, dict):
        items = child_input.get("Items")
        if isinstance(items, list):
            return [i["index"] for i in items if isinstance(i, dict) and isinstance(i.get("index"), int)]
        if isinstance(child_input.get("index"), int):
            return [child_input["index"]]
    return []


def child_failure(status: str, error: str | None, cause: str | None) -> tuple[str, str]:
    """Error type and message of a child that did not succeed, as the ledger and ``results`` name them.

    A Lambda error object in ``Cause`` is unpacked to its ``errorMessage``; a child with no ``Error`` (an
    ABORTED one) is reported under its status, and a never-started (PENDING) one as :data:`ITEM_NOT_STARTED`.

    :param status: the result entry's ``Status``.
    :param error: its ``Error``.
    :param cause: its ``Cause``.
    """
    if status == "PENDING":
        return ITEM_NOT_STARTED, "The child execution was not started: the Map Run failed or was aborted."
    message = cause or ""
    try:
        decoded = json.loads(message) if message.startswith("{") else None
    except ValueError:
        decoded = None
    if isinstance(decoded, dict) and "errorMessage" in decoded:
        message = str(decoded["errorMessage"])
    return error or status, _short(message or f"The child execution ended {status}.")


class ChildRecord(msgspec.Struct):
    """The fields of a result-file element the collector reads (msgspec skips the others).

    ``Input`` is kept as its undecoded JSON text: a succeeded batch's ``Input`` repeats its rows and is not
    needed, and decoding it would cost as much as decoding the output.
    """

    ExecutionArn: str  # every entry AWS writes in the default (NONE) shape has one; bare outputs do not fit
    Status: str | None = None
    Input: msgspec.Raw = _RAW_NULL
    InputDetails: dict[str, Any] | None = None
    Output: str | None = None
    OutputDetails: dict[str, Any] | None = None
    Error: str | None = None
    Cause: str | None = None


_CHILD_RECORDS: Final = msgspec.json.Decoder(list[ChildRecord])


def decode_child_records(text: bytes) -> list[Any]:
    """Decode the text of a JSON array of result-file elements, as :class:`ChildRecord` when they fit.

    Elements of other shapes or types (and texts msgspec refuses) are decoded as plain JSON values.

    :param text: a JSON array.
    :raises ValueError: when ``text`` is not JSON.
    """
    try:
        return _CHILD_RECORDS.decode(text)
    except msgspec.DecodeError:  # ValidationError included: valid JSON of another shape
        return list(json_codec.loads(text))


class _OutputRow(msgspec.Struct, forbid_unknown_fields=True):
    """A row that succeeded, as ``row_handler`` returns it: its index and its output, nothing else."""

    index: int
    output: Any


class _OutputRows(msgspec.Struct):
    rows: list[_OutputRow]


_OUTPUT_ROWS: Final = msgspec.json.Decoder(_OutputRows)


class ChildEntry:
    """One child execution of a result file, decoding ``Input``/``Output`` only when asked.

    A succeeded batch's ``Input`` is decoded only for failed or pending children, or when a succeeded
    output does not follow the row contract.

    :param record: the element as read from the result file (a :class:`ChildRecord` or a dict).
    :param file_status: the manifest group the file is listed under.
    :param bare_output: whether the element is a succeeded child's output as WriterConfig's COMPACT or
        FLATTEN writes it, not the child's record (a FLATTEN output is one element of the child's array).
    """

    __slots__ = ("_record", "bare_output", "status")

    def __init__(
        self, record: dict[str, Any] | ChildRecord, file_status: str, *, bare_output: bool = False
    ) -> None:
        self._record = msgspec.structs.asdict(record) if isinstance(record, ChildRecord) else record
        self.status = str(self._record.get("Status") or file_status)
        self.bare_output = bare_output

    def _decoded(self, field_name: str) -> Any:
        value = self._record.get(field_name)
        details = self._record.get(f"{field_name}Details")
        if isinstance(details, dict) and details.get("Included") is False:
            return None
        if isinstance(value, msgspec.Raw):
            value = json_codec.loads(memoryview(value))
        if isinstance(value, str) and value:
            try:
                return json_codec.loads(value)
            except ValueError:
                return value
        return value

    def succeeded_rows(self) -> tuple[list[int], list[Any]] | None:
        """Indexes and outputs of a batch whose rows all succeeded (the usual case), else ``None``.

        Decoded by msgspec straight into typed rows (no dict per row); a batch with a failed or skipped row,
        or an output of any other shape, gives ``None`` and is read from :attr:`output` instead.
        """
        value = self._record.get("Output")
        details = self._record.get("OutputDetails")
        if not isinstance(value, str) or (isinstance(details, dict) and details.get("Included") is False):
            return None
        try:
            rows = _OUTPUT_ROWS.decode(value).rows
        except msgspec.DecodeError:
            return None
        return [row.index for row in rows], [row.output for row in rows]

    @property
    def input(self) -> Any:
        """The child's input, decoded."""
        return self._decoded("Input")

    @property
    def output(self) -> Any:
        """The child's output, decoded."""
        return self._decoded("Output")

    @property
    def error(self) -> str | None:
        """``Error`` of a failed child."""
        value = self._record.get("Error")
        return None if value is None else str(value)

    @property
    def cause(self) -> str | None:
        """``Cause`` of a failed child."""
        value = self._record.get("Cause")
        return None if value is None else str(value)


def iter_child_entries(s3: S3Client, manifest: Manifest) -> Iterator[ChildEntry]:
    """Stream every child execution listed by ``manifest`` (all statuses) as :class:`ChildEntry`.

    :param s3: a boto3 S3 client able to read the result files.
    :param manifest: the Map Run's manifest.
    """
    for status, record in iter_result_records(s3, manifest, RESULT_STATUSES, decode_child_records):
        if isinstance(record, ChildRecord) or is_child_record(record):
            yield ChildEntry(record, status)
        else:
            # WriterConfig Transformation COMPACT or FLATTEN writes a succeeded child's bare output, of any
            # JSON type (failed children keep the default shape; spec, ResultWriter).
            bare = {"Status": status, "Output": json_codec.dumps(record), "InputDetails": {"Included": False}}
            yield ChildEntry(bare, status, bare_output=True)


def _store_failed(
    store: ResultStore | OverrideStore, indexes: list[int], error_type: str, message: str
) -> None:
    ordered = sorted(set(indexes))
    for start, begin, end in contiguous_runs(ordered):
        run = ordered[begin:end]
        store.add_run(start, [None] * len(run), [(i, error_type, message) for i in run], succeeded=False)


def store_entry(store: ResultStore | OverrideStore, entry: ChildEntry | ResultEntry) -> None:
    """Park the row results of one child execution's entry.

    :param store: where results go.
    :param entry: a result-file entry (a batch or a single item, succeeded or not).
    """
    if entry.status != "SUCCEEDED":
        error_type, message = child_failure(entry.status, entry.error, entry.cause)
        _store_failed(store, _input_indexes(entry.input), error_type, message)
        return
    succeeded = entry.succeeded_rows() if isinstance(entry, ChildEntry) else None
    if succeeded is not None:
        indexes, values = succeeded
        if indexes and indexes == list(range(indexes[0], indexes[0] + len(indexes))):  # the usual batch
            store.add_run(indexes[0], values)
            return
    output = entry.output
    rows = output.get("rows") if isinstance(output, dict) else None
    if rows is None and isinstance(output, dict) and isinstance(output.get("index"), int):
        rows = [output]
    try:
        if not isinstance(rows, list) or not rows:  # a child always has items, so it owes row results
            raise TypeError("no rows")
        indexes = [row["index"] for row in rows]
        first = indexes[0]
        # The usual batch is consecutive indexes: one list comparison (in C) proves they are all ints.
        consecutive = type(first) is int and indexes == list(range(first, first + len(indexes)))
        if not consecutive and not all(type(index) is int for index in indexes):
            raise TypeError("index")
    except (TypeError, KeyError):
        _store_failed(
            store,
            _input_indexes(entry.input),
            CONTRACT_ERROR,
            "The function's output does not follow the row contract: decorate the handler with "
            "airflow_distmap.lambda_runtime.row_handler.",
        )
        return
    if not consecutive and indexes != sorted(indexes):
        by_index = {row["index"]: row for row in rows}
        indexes = sorted(by_index)
        rows = [by_index[index] for index in indexes]
    runs = [(first, 0, len(indexes))] if consecutive else contiguous_runs(indexes)
    for start, begin, end in runs:
        run = rows[begin:end]
        values = [row.get("output") for row in run]
        errors = [_row_error(row) for row in run if "output" not in row and not row.get("skipped")]
        store.add_run(start, values, errors)


def _row_error(row: dict[str, Any]) -> tuple[int, str, str]:
    if "error" not in row:
        return row["index"], CONTRACT_ERROR, "The row's result has neither output nor error."
    error = row["error"] if isinstance(row["error"], dict) else {"message": row["error"]}
    return row["index"], utf8_safe(str(error.get("type") or "Error")), _short(error.get("message"))


_MISSING: Final = (NOT_PROCESSED, "The Map Run's result files hold no result for this row.")


class OverrideStore:
    """Results of re-run rows, which replace the first run's results for the same rows.

    Each row is kept on its own (re-runs hold few rows, and their batches need not line up with the first
    run's), and a later re-run's result replaces an earlier one, whether it succeeded or not.

    :param store: the store the rows go to.
    """

    def __init__(self, store: ResultStore) -> None:
        self.store = store

    def add_run(
        self,
        start: int,
        values: Sequence[Any],
        errors: Sequence[tuple[int, str, str]] = (),
        *,
        succeeded: bool = True,
    ) -> None:
        """Store each row of the run on its own, replacing what an earlier re-run stored.

        :param start: first item index.
        :param values: one output per item.
        :param errors: ``(index, error_type, error_message)`` of the run's failed items.
        :param succeeded: not used: a later re-run's result replaces an earlier one either way.
        """
        by_index = {index: (index, kind, message) for index, kind, message in errors}
        for offset, value in enumerate(values):
            index = start + offset
            row_errors = [by_index[index]] if index in by_index else []
            self.store.add_run(index, [value], row_errors, succeeded=True)


class _Merger:
    """Walk the stored runs in index order alongside the input, one chunk of rows at a time.

    :param store: the first run's results.
    :param overrides: re-run rows (one run per row) that replace the first run's results.
    """

    def __init__(self, store: ResultStore, overrides: ResultStore | None = None) -> None:
        self._runs = store.iter_runs()
        self._run: ResultRun | None = next(self._runs, None)
        self._overrides = overrides.iter_runs() if overrides is not None else iter(())
        self._override: ResultRun | None = next(self._overrides, None)

    def _overlay(
        self, first: int, count: int, pieces: list[pa.Array], failures: list[tuple[int, RowError]]
    ) -> tuple[pa.ChunkedArray, list[tuple[int, RowError]]]:
        stop = first + count
        if self._override is None or self._override.start >= stop:
            return pa.chunked_array(pieces, type=pa.string()), failures
        values = pa.chunked_array(pieces, type=pa.string()).to_pylist()
        by_offset = dict(failures)
        while self._override is not None and self._override.start < stop:
            run = self._override
            if run.start >= first:
                offset = run.start - first
                values[offset] = run.values[0].as_py()
                if run.start in run.errors:
                    by_offset[offset] = run.errors[run.start]
                else:
                    by_offset.pop(offset, None)
            self._override = next(self._overrides, None)
        return pa.chunked_array([pa.array(values, type=pa.string())]), sorted(by_offset.items())

    def values_for(self, first: int, count: int) -> tuple[pa.ChunkedArray, list[tuple[int, RowError]]]:
        """Output texts of items ``first .. first + count - 1``, and the failed ones as ``(offset, error)``.

        :param first: first item index.
        :param count: number of items.
        """
        pieces: list[pa.Array] = []
        failures: list[tuple[int, RowError]] = []
        item, stop = first, first + count
        while item < stop:
            while self._run is not None and self._run.stop <= item:
                self._run = next(self._runs, None)
            run = self._run
            if run is None or run.start > item:
                gap_end = stop if run is None else min(run.start, stop)
                failures.extend((i - first, _MISSING) for i in range(item, gap_end))
                pieces.append(pa.nulls(gap_end - item, type=pa.string()))
                item = gap_end
                continue
            end = min(run.stop, stop)
            pieces.append(run.values.slice(item - run.start, end - item))
            if run.errors:
                failures.extend((i - first, run.errors[i]) for i in range(item, end) if i in run.errors)
            item = end
        return self._overlay(first, count, pieces, failures)


def merge(
    chunks: Iterator[list[pa.Array]],
    store: ResultStore,
    first_item: int,
    output: TableWriter,
    ledger: TableWriter,
    overrides: ResultStore | None = None,
) -> tuple[int, int, Counter[str]]:
    """Write the input's rows with their outputs, and the failed ones to the ledger, in input order.

    :param chunks: the input's data rows as string columns (see :mod:`.input_reader`).
    :param store: the parked results.
    :param first_item: item index of data row 0.
    :param output: writer of the output (the input's columns + the output column).
    :param ledger: writer of the ledger (row index, the input's columns, error type, error message).
    :param overrides: results of re-run rows, replacing ``store``'s.
    :return: ``(rows, failed rows, failed rows by error type)``.
    """
    merger = _Merger(store, overrides)
    rows = failed = 0
    errors: Counter[str] = Counter()
    for columns in chunks:
        count = len(columns[0])
        values, failures = merger.values_for(first_item + rows, count)
        output.write_arrays([*columns, values])
        if failures:
            positions = pa.array([offset for offset, _ in failures], type=pa.int64())
            ledger.write_arrays(
                [
                    pc.add(positions, rows),
                    *(column.take(positions) for column in columns),
                    pa.array([error[0] for _, error in failures], type=pa.string()),
                    pa.array([error[1] for _, error in failures], type=pa.string()),
                ]
            )
            for _, (error_type, _message) in failures:
                if error_type in errors or len(errors) < MAX_ERROR_TYPES:
                    errors[error_type] += 1
                else:
                    errors["other"] += 1
        rows += count
        failed += len(failures)
    return rows, failed, errors


def _write_files(
    s3: S3Client,
    stores: tuple[ResultStore, ResultStore],
    layout: CsvLayout,
    paths: tuple[Path, Path],
    schemas: tuple[pa.Schema, pa.Schema],
    file_format: str,
    fast: bool,
) -> tuple[int, int, Counter[str]]:
    body = s3.get_object(Bucket=layout.bucket, Key=layout.key, IfMatch=layout.etag)["Body"]
    try:
        with (
            TableWriter(paths[0], schemas[0], file_format, layout.delimiter) as out_writer,
            TableWriter(paths[1], schemas[1], file_format, layout.delimiter) as ledger_writer,
        ):
            chunks = arrow_chunks(body, layout) if fast else python_chunks(body, layout)
            return merge(chunks, stores[0], layout.first_data_item, out_writer, ledger_writer, stores[1])
    finally:
        body.close()


def _upload(s3: S3Client, path: Path, uri: str, target: OutputTarget, owner: str | None) -> None:
    content_type = "text/csv; charset=utf-8" if target.format == "csv" else "application/vnd.apache.parquet"
    extra: dict[str, Any] = {"ContentType": content_type}
    if owner:
        extra["Metadata"] = {OWNER_METADATA_KEY: owner}
    seen_etag = target.seen_etags[uri]
    if not upload_unless_replaced(s3, str(path), uri, seen_etag=seen_etag, owner=owner, extra_args=extra):
        raise OutputLocationError(
            f"{uri} was written by someone else while this task run collected its results; it was left as "
            f"it is. To fix this, {OWN_OUTPUT_URI_FIX} and clear the task."
        )


def collect(
    s3: S3Client,
    entries: Iterable[ChildEntry | ResultEntry],
    layout: CsvLayout,
    target: OutputTarget,
    output_column: str,
    *,
    owner: str | None = None,
    workdir: str | Path | None = None,
    overrides: Iterable[ChildEntry | ResultEntry] = (),
) -> CollectSummary:
    """Write ``target`` (input rows + ``output_column``, input order) and its ledger from a run's results.

    :param s3: a boto3 S3 client for the input and the output.
    :param entries: the run's child executions, any status, any order (:func:`iter_child_entries`).
    :param layout: the input as the pre-flight saw it.
    :param target: the output and ledger locations and format.
    :param output_column: name of the added column.
    :param owner: the task run's owner token, stored as S3 metadata on what is written.
    :param workdir: where temporary files go (default: the system's temporary directory).
    :param overrides: child executions of re-runs of failed rows, oldest first: a row's latest re-run
        result replaces its first result.
    :return: the counts and locations written.
    """
    started = time.monotonic()
    ledger_columns = LedgerColumns.for_headers(layout.headers)
    output_schema = string_schema([*layout.headers, output_column])
    with tempfile.TemporaryDirectory(prefix="distmap-collect-", dir=workdir) as tmp:
        tmp_path = Path(tmp)
        with (
            ResultStore(tmp_path / "results.sqlite") as store,
            ResultStore(tmp_path / "overrides.sqlite") as override_store,
        ):
            children = 0
            for entry in entries:
                store_entry(store, entry)
                children += 1
            replacing = OverrideStore(override_store)
            for entry in overrides:
                store_entry(replacing, entry)
                children += 1
            log.info("Read the results of %d child executions", children)
            stores = (store, override_store)
            output_path = tmp_path / f"output.{target.format}"
            ledger_path = tmp_path / f"ledger.{target.format}"
            paths = (output_path, ledger_path)
            schemas = (output_schema, ledger_columns.schema(layout.headers))
            try:
                rows, failed, errors = _write_files(s3, stores, layout, paths, schemas, target.format, True)
            except IrregularRowsError as stop:
                log.info("The fast reader stopped on %s (%s): re-reading it row by row", layout.uri, stop)
                rows, failed, errors = _write_files(s3, stores, layout, paths, schemas, target.format, False)
        _upload(s3, output_path, target.uri, target, owner)
        _upload(s3, ledger_path, target.ledger_uri, target, owner)
    summary = CollectSummary(
        output_uri=target.uri,
        failed_rows_uri=target.ledger_uri,
        rows_total=rows,
        rows_succeeded=rows - failed,
        rows_failed=failed,
        errors_by_type=dict(errors.most_common()),
        duration_seconds=round(time.monotonic() - started, 3),
    )
    log.info(
        "Wrote %s (%d rows, %d failed) and %s in %.1f s",
        target.uri,
        rows,
        failed,
        target.ledger_uri,
        summary.duration_seconds,
    )
    return summary
