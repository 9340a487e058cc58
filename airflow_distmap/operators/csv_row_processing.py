"""``df[column].apply(f)`` at Distributed Map scale: an S3 CSV in, a processed dataset in input order out."""

from __future__ import annotations

import ast
import contextlib
import copy
import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from botocore.exceptions import ClientError

from airflow_distmap.csv_processing import row_sizes
from airflow_distmap.csv_processing.collector import CollectSummary, collect, iter_child_entries
from airflow_distmap.csv_processing.preflight import (
    CsvLayout,
    OutputTarget,
    check_column_arguments,
    check_csv_input,
    check_output_location,
    resolve_delimiter,
    split_input_uri,
    split_output_uri,
)
from airflow_distmap.csv_processing.rerun import (
    INDEX_FIELD,
    LedgerMissingError,
    Rerun,
    RunState,
    load_state,
    rerun_items_uri,
    save_state,
    write_rerun_items,
)
from airflow_distmap.definitions import LAMBDA_RETRY, LambdaItemProcessor, check_function_name
from airflow_distmap.definitions._checks import check_int
from airflow_distmap.definitions.processors import check_timeout
from airflow_distmap.exceptions import (
    CsvInputError,
    InputChangedError,
    MissingResultsError,
    OutputLocationError,
    RowThresholdExceededError,
    UnsupportedInputError,
)
from airflow_distmap.hooks.distributed_map import EXECUTION_SUCCESS_STATES
from airflow_distmap.json_codec import dumps_bytes
from airflow_distmap.naming import (
    default_state_machine_name,
    definition_scoped_name,
    suffixed_name,
    task_run_results_key,
)
from airflow_distmap.operators.distributed_map import (
    UNSET_TEXTS,
    DistributedMapOperator,
    check_json,
    refused_arguments,
    rendered_number,
    resolved_later,
    task_run_owner,
)
from airflow_distmap.results import parse_s3_uri, read_manifest, s3_uri

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_distmap.results import CompletedRun

#: Rows per Lambda invocation when ``batch_size`` is not given (or a template renders to nothing).
DEFAULT_BATCH_SIZE = 100
#: Bytes of a child's input kept for ``BatchInput`` (``function_config``) and the batch's JSON envelope.
BATCH_INPUT_RESERVE = 16 * 1024
#: Byte cap of one batch's items: under the 256 KiB child-input quota, leaving :data:`BATCH_INPUT_RESERVE`
#: (whether AWS counts ``BatchInput`` in MaxInputBytesPerBatch is UNCONFIRMED: it fits either way).
CSV_BATCH_INPUT_BYTES = 256 * 1024 - BATCH_INPUT_RESERVE

#: Retried besides the recommended Lambda service-error retrier: an invocation that crashed, hung past
#: the function timeout or ran out of memory (a handler built on ``row_handler`` never raises for a row,
#: so these are infrastructure failures that a second attempt often survives).
CRASH_RETRY: dict[str, Any] = {
    "ErrorEquals": ["Lambda.Unknown", "Sandbox.Timedout", "Runtime.ExitError", "Runtime.OutOfMemory"],
    "IntervalSeconds": 1,
    "MaxAttempts": 2,
    "BackoffRate": 2,
}


#: DistributedMapOperator's building blocks: this operator builds the Map from its own arguments.
_BUILT_FROM_ITS_OWN_ARGUMENTS = frozenset(
    {"definition", "item_reader", "item_processor", "item_selector", "item_batcher", "execution_input"}
)


def _holds_late_values(value: Any) -> bool:
    """Whether ``value`` holds, at any depth, a value Airflow resolves only when the task runs (XComArg)."""
    if isinstance(value, dict):
        return any(_holds_late_values(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_late_values(item) for item in value)
    return not isinstance(value, str) and resolved_later(value)


def column_names(value: Any) -> list[str] | None:
    """Column names from a list, or from the text a template renders to: a JSON or Python list, or ``a,b``.

    Text meaning unset (``""``, ``"None"``, ``"null"``: an optional param) is ``None``, all columns. Any other
    single value is one name as written: ``"2024"`` is the column ``2024``, ``"1.50"`` the column ``1.50``.

    :param value: ``columns`` or ``csv_headers``, as given or rendered.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        if isinstance(value, Iterable) and not isinstance(value, (bytes, dict)):
            return [str(c) for c in value]
        return [str(value)]  # a number, from a template rendered as a native object
    text = value.strip()
    if text.lower() in UNSET_TEXTS:
        return None
    try:  # numbers as written: a header "1.50" is not "1.5"
        parsed = json.loads(text, parse_float=str, parse_int=str)
    except ValueError:
        if not text.startswith(("[", "(")):
            return [c.strip() for c in text.split(",")]
        try:
            parsed = ast.literal_eval(text)  # a Python list's repr, as a template renders one
        except (ValueError, SyntaxError):
            return [c.strip() for c in text.split(",")]
    if isinstance(parsed, str):
        return [parsed]
    if isinstance(parsed, (list, tuple)):
        return [str(c) for c in parsed]
    return [text]


class CsvRowProcessingOperator(DistributedMapOperator):
    """Apply a Lambda function to every row of an S3 CSV; write the rows plus its output, in input order.

    The function must be built on :func:`airflow_distmap.lambda_runtime.row_handler` (each row arrives as
    ``{column: string}`` with only ``columns``). Before anything is created in AWS the input is checked
    (object, header read with ranged GETs, delimiter, byte-order mark, duplicate or empty names,
    columns) and so are ``output_uri`` and ``results_uri``. After the run the output and a failed-rows
    ledger (``<output stem>.failed.csv``/``.parquet``) are written, then the row failure threshold is
    applied: past it the task fails, naming the ledger.

    Rows are read with Step Functions' CSV rules, by the Map and by the collector alike: a backslash
    escapes the character after it (a Windows path loses its backslashes), a short row gets empty fields
    and a long row loses its extra fields; the pre-flight scan (``check_row_sizes``) warns in the log when
    the file holds either. The output keeps the input's delimiter.

    The Map itself tolerates every failure (``ToleratedFailurePercentage: 100``): a row that raises is
    reported by ``row_handler`` and never fails its child, and a child that fails after its retries
    fails only its batch's rows. ``tolerated_failure_count``/``tolerated_failure_percentage`` count
    failed **rows** (default: none tolerated).

    Retries: an execution that failed is redriven (``DistributedMapOperator``); after a task that failed
    on its row threshold, the retry runs only the ledger's rows again and merges their new results into
    the output (:mod:`airflow_distmap.csv_processing.rerun`); rows that succeeded never run twice.

    The input and results locations travel in the execution input, not the definition, so concurrent
    runs (backfills) share one state machine per CSV layout and operator settings and never race on its
    definition.

    :param input_uri: ``s3://bucket/key.csv`` to process (templated), uncompressed: the output is written in
        input order by reading the file again.
    :param function_name: Lambda function name or ARN, built on ``row_handler`` (templated). The pre-flight
        checks that it exists (``lambda:GetFunction``; without that permission it logs a warning).
    :param columns: columns sent to the function; default all (templated). A template renders to text: a JSON
        or Python list, ``a,b``, or one name (``"2024"`` is the column ``2024``); ``""``, ``"None"`` or
        ``"null"`` (an unset param) means all columns.
    :param output_uri: ``s3://.../name.csv`` or ``.parquet`` (templated); default
        ``<results_uri>/output.csv``. Must not exist unless an earlier try of this task run wrote it; the
        output and the ledger are written with a conditional write, so a task run sharing a fixed
        ``output_uri`` never overwrites what another one wrote meanwhile (it fails, naming the fix). In a
        mapped task, template it with ``{{ ti.map_index }}`` as well.
    :param output_column: name of the column holding the function's output (strings as returned,
        other JSON values as JSON text, empty for failed rows); templated. Default ``output``.
    :param delimiter: ``COMMA`` (the default), ``PIPE``, ``SEMICOLON``, ``SPACE``, ``TAB`` or the character
        itself; templated.
    :param csv_headers: column names for a file without a header line (the ItemReader's ``GIVEN``), one
        per field: a file whose first row has more fields than names is refused (they would be dropped).
        Templated, read like ``columns``; a template rendering to ``""`` or ``"None"`` means the file has a
        header line.
    :param function_config: JSON object handed to ``f(row, config)`` functions (templated; a template that
        renders as text, such as ``"{{ params.config }}"``, is read back as JSON or as a Python dict).
    :param batch_size: rows per Lambda invocation (``MaxItemsPerBatch``; bytes capped under 256 KiB);
        templated. Default 100 (a template rendering to nothing too).
    :param results_uri: where the Map Run exports its results (templated); default
        ``s3://<input bucket>/distmap-results/<dag>/<task>/<run>[/<map index>]/``. One prefix per task
        run: a prefix that holds another task run's results is refused, so template your own with
        ``{{ run_id }}`` (and ``{{ ti.map_index }}`` in a mapped task).
    :param state_machine_name: name of the state machine (templated); default derived from the dag, the
        task and a digest of the definition (the CSV layout and the operator's settings). A name of yours
        shared by runs whose CSV layouts differ is updated by each in turn (see
        :class:`DistributedMapOperator`).
    :param role_arn: IAM role Step Functions assumes (templated).
    :param max_concurrency: parallel child executions, 0 to 10000 (0: Step Functions' maximum); templated.
        Default unset, which Step Functions reads as 0.
    :param tolerated_failure_count: failed rows tolerated before the task fails; templated. Default unset:
        none, unless ``tolerated_failure_percentage`` allows some.
    :param tolerated_failure_percentage: failed rows tolerated, in percent of all rows; templated.
    :param execution_type: ``STANDARD`` (the default) or ``EXPRESS`` child executions.
    :param lambda_timeout_seconds: ``TimeoutSeconds`` of the Lambda task in each child; templated. Default
        unset: the function's own timeout bounds it.
    :param map_label: name of the Map state and label of its Map Run; default ``ProcessRows``.
    :param check_row_sizes: stream the input once before starting, refusing it when a row's selected
        columns exceed what a child execution can receive (256 KiB, less 16 KiB kept for
        ``function_config``); ``False`` skips that pass.
    :param deferrable: wait on the triggerer instead of holding a worker slot; ``True`` by default (a CSV job
        runs for minutes to hours), ``False`` polls in the worker with the same semantics.

    Other arguments (``aws_conn_id``, ``region_name``, ``verify``, ``botocore_config``, ``waiter_delay``,
    ``waiter_max_attempts``, ``execution_name`` (templated), ``stop_on_kill``, ``check_functions``,
    ``failed_items_sample``) are those of
    :class:`~airflow_distmap.operators.distributed_map.DistributedMapOperator`; its building blocks
    (``definition``, ``item_reader``, ``item_processor``, ``item_selector``, ``item_batcher``,
    ``execution_input``) are refused, as this operator builds the Map from its own arguments.

    :return: the summary of ``DistributedMapOperator`` with ``counts`` in rows, plus ``output_uri``,
        ``failed_rows_uri``, ``rows_total``, ``rows_succeeded``, ``rows_failed``, ``errors_by_type``,
        ``input_uri``, ``collect_seconds``; after a retry that re-ran the failed rows (and in a later try that
        only collects again), also ``rerun`` (its number) and ``rows_rerun``, and then the Map Run fields
        (``manifest_uri``, ``item_counts``, ``execution_counts``, ``result_files``, the dates) describe that
        re-run's Map Run while ``counts`` and ``rows_*`` cover every row. The summary is also pushed under the
        XCom key ``summary``, even when the task fails on its row threshold.
    """

    template_fields: Sequence[str] = aws_template_fields(
        "input_uri",
        "function_name",
        "columns",
        "output_uri",
        "function_config",
        "batch_size",
        "results_uri",
        "state_machine_name",
        "role_arn",
        "execution_name",
        "max_concurrency",
        "tolerated_failure_count",
        "tolerated_failure_percentage",
        "output_column",
        "delimiter",
        "csv_headers",
        "lambda_timeout_seconds",
    )
    template_fields_renderers = {"function_config": "json"}
    numeric_template_fields: ClassVar[tuple[str, ...]] = (
        *DistributedMapOperator.numeric_template_fields,
        "batch_size",
        "lambda_timeout_seconds",
    )
    ui_color = "#c9e7f5"

    def __init__(
        self,
        *,
        input_uri: str,
        function_name: str,
        columns: Sequence[str] | str | None = None,
        output_uri: str | None = None,
        output_column: str = "output",
        delimiter: str = "COMMA",
        csv_headers: Sequence[str] | str | None = None,
        function_config: dict[str, Any] | None = None,
        batch_size: int | str = DEFAULT_BATCH_SIZE,
        results_uri: str | None = None,
        state_machine_name: str | None = None,
        role_arn: str | None = None,
        max_concurrency: int | str | None = None,
        tolerated_failure_count: int | str | None = None,
        tolerated_failure_percentage: float | str | None = None,
        execution_type: str = "STANDARD",
        lambda_timeout_seconds: int | str | None = None,
        map_label: str = "ProcessRows",
        check_row_sizes: bool = True,
        deferrable: bool = True,
        **kwargs: Any,
    ) -> None:
        if "check_item_sizes" in kwargs:
            raise TypeError(
                "CsvRowProcessingOperator takes check_row_sizes, not check_item_sizes. To fix this, rename "
                "the argument."
            )
        ignored = sorted(_BUILT_FROM_ITS_OWN_ARGUMENTS & kwargs.keys())
        if ignored:
            raise TypeError(
                "CsvRowProcessingOperator builds its Distributed Map from its own arguments, so it does not "
                f"take {', '.join(ignored)}. To fix this, use batch_size, columns, function_config and the "
                "other arguments it documents, or DistributedMapOperator for a Map of your own."
            )
        super().__init__(
            function_name=function_name,
            results_uri=results_uri,
            state_machine_name=state_machine_name,
            role_arn=role_arn,
            max_concurrency=max_concurrency,
            tolerated_failure_count=tolerated_failure_count,
            tolerated_failure_percentage=tolerated_failure_percentage,
            execution_type=execution_type,
            map_label=map_label,
            deferrable=deferrable,
            **kwargs,
        )
        self.input_uri = input_uri
        self.columns = columns
        self.output_uri = output_uri
        self.output_column = output_column
        self.delimiter = delimiter
        if csv_headers is not None and not isinstance(csv_headers, str) and not resolved_later(csv_headers):
            csv_headers = list(csv_headers)  # text (a template) is read once rendered, by column_names()
        self.csv_headers: Sequence[str] | str | None = csv_headers
        self.function_config = function_config
        self.lambda_timeout_seconds: int | str | None = lambda_timeout_seconds
        self.check_row_sizes = check_row_sizes
        self.batch_size: int | str = batch_size
        with refused_arguments():
            # A template ("{{ params.batch_size }}") is checked once rendered (_check_rendered_settings).
            self._check_csv_settings(given=True)
            if isinstance(function_config, dict) and not _holds_late_values(function_config):
                check_json(function_config, "function_config")  # a template inside renders to JSON text
        self._layout: CsvLayout | None = None
        self._target: OutputTarget | None = None
        self._rerun: Rerun | None = None
        self._settings_digest: str | None = None
        self._reusable_execution: str | None = None

    def _check_building_blocks(self) -> None:
        """Nothing to check: the definition is built from this operator's own arguments."""

    def _check_csv_settings(self, *, given: bool = False) -> None:
        """Check ``batch_size``, ``output_column``, ``delimiter`` and ``lambda_timeout_seconds``.

        :param given: Whether these are the constructor's arguments: a template's value is not known yet.
        """

        def known(value: Any) -> bool:
            return not (given and resolved_later(value))

        if known(self.function_name):
            check_function_name(str(self.function_name))
        if known(self.batch_size):
            self.batch_size = self._batch_size()
        if known(self.output_column) and (not isinstance(self.output_column, str) or not self.output_column):
            raise ValueError(
                f"output_column={self.output_column!r} is not a column name. To fix this, pass a non-empty "
                "name, e.g. output_column='result'."
            )
        if known(self.delimiter):
            try:
                resolve_delimiter(self.delimiter)
            except UnsupportedInputError as error:
                raise ValueError(str(error)) from None
        try:
            if known(self.input_uri):
                split_input_uri(self.input_uri)
            if self.output_uri is not None and known(self.output_uri):
                split_output_uri(self.output_uri, self.input_uri if known(self.input_uri) else None)
            if known(self.columns) and known(self.csv_headers) and known(self.delimiter):
                delimiter_char = resolve_delimiter(self.delimiter)[1]
                check_column_arguments(self._columns(), self._csv_headers(), delimiter_char)
        except CsvInputError as error:
            if not given:
                raise
            raise ValueError(str(error)) from None  # refused when the DAG is parsed, as other arguments
        if known(self.lambda_timeout_seconds):
            self.lambda_timeout_seconds = rendered_number(self.lambda_timeout_seconds)
            if self.lambda_timeout_seconds is not None:
                check_timeout(self.lambda_timeout_seconds, self.execution_type, "lambda_timeout_seconds")

    def _check_rendered_settings(self) -> None:
        """Checks of rendered arguments that read nothing from S3: a typo fails before the input is read.

        :raises ValueError: an argument rendered to a bad value.
        :raises OutputLocationError: ``output_uri`` rendered to an empty string.
        """
        super()._check_rendered_settings()
        check_function_name(str(self.function_name))
        if self.output_uri is not None and not str(self.output_uri).strip():
            raise OutputLocationError(
                "output_uri rendered to an empty string. To fix this, check its template (the params or "
                "variables it reads), or leave output_uri unset to write <results_uri>/output.csv."
            )
        self._check_function_config()
        self._check_csv_settings()

    def explain_counts(self, manifest_uri: str | None) -> None:
        """Nothing to add: this operator's ``counts`` are rows, read from the results.

        :param manifest_uri: The run's manifest.
        """

    # -- helpers ---------------------------------------------------------------------------------------

    def _columns(self) -> list[str] | None:
        return column_names(self.columns)

    def _csv_headers(self) -> list[str] | None:
        return column_names(self.csv_headers)

    def _function_config(self) -> dict[str, Any]:
        """``function_config`` as a dict; a templated one renders as text (JSON, or a Python dict's repr)."""
        config: Any = self.function_config if self.function_config is not None else {}
        if isinstance(config, str):
            try:
                config = json.loads(config) or {}  # "null" from '{{ params.config | tojson }}': not given
            except ValueError:
                with contextlib.suppress(ValueError, SyntaxError):
                    config = ast.literal_eval(config)
        if not isinstance(config, dict):
            raise ValueError(
                f"function_config must be a JSON object (a dict), not {type(config).__name__} "
                f"{str(config)[:80]!r}. To fix this, pass a dict, or render its template to JSON with "
                "'{{ params.config | tojson }}' (or set render_template_as_native_obj=True on the DAG)."
            )
        return config

    def _check_function_config(self) -> None:
        """``function_config`` travels in every batch's input: it must fit the room kept for it."""
        config = self.function_config = self._function_config()
        check_json(config, "function_config")
        size = len(dumps_bytes({"config": config, "skip": [0]})) + 64  # + the batch envelope
        if size > BATCH_INPUT_RESERVE:
            raise ValueError(
                f"function_config is {size // 1024} KiB as JSON; it is sent with every batch, in a child "
                f"input that Step Functions limits to 256 KiB, of which this operator keeps "
                f"{BATCH_INPUT_RESERVE // 1024} KiB for it. To fix this, put large data in S3 and pass its "
                "URI in function_config."
            )

    def _batch_size(self) -> int:
        size = rendered_number(self.batch_size)
        if size is None:  # a template rendered to nothing ("", "None"): the default, as other unset numbers
            return DEFAULT_BATCH_SIZE
        return check_int(size, "batch_size", 1)

    def _output_uri(self, context: Context) -> str:
        if self.output_uri:
            return str(self.output_uri)
        results = self._results_uri(context)
        return f"{str(results).rstrip('/')}/output.csv"

    def _check_input(self, announce: bool = True) -> CsvLayout:
        s3 = self.s3_hook.get_conn()
        return check_csv_input(
            s3,
            str(self.input_uri),
            delimiter=self.delimiter,
            columns=self._columns(),
            csv_headers=self._csv_headers(),
            output_column=self.output_column,
            announce=announce,
        )

    # -- extension points of DistributedMapOperator -------------------------------------------------

    def _results_uri(self, context: Context) -> str:
        """``results_uri`` or the task run's default: the Map's own ResultWriter reads it from the input."""
        return str(self.results_uri or self.default_results_uri(context))

    def default_results_uri(self, context: Context) -> str:
        """``s3://<input bucket>/distmap-results/<dag>/<task>/<run>[/<map index>]/``: one prefix per task run.

        :param context: The task context.
        """
        bucket, _ = parse_s3_uri(str(self.input_uri), what="input_uri")
        ti = context["ti"]
        return s3_uri(
            bucket, task_run_results_key(ti.dag_id, ti.task_id, ti.run_id, getattr(ti, "map_index", None))
        )

    def preflight(self, context: Context) -> None:
        """Check the input, the function, the output and the results prefix before anything is created in AWS.

        :param context: The task context.
        :raises CsvInputError: a subclass naming the problem and the fix.
        :raises FunctionNotFoundError: Lambda answers that the function does not exist.
        :raises ResultsPrefixInUseError: another task run claimed ``results_uri``.
        :raises InvalidTaskArgumentsError: an argument rendered to a bad value (see
            :meth:`_check_rendered_settings`), or ``role_arn`` is missing while the state machine does not
            exist: both before the input is read whole.
        """
        self._check_rendered_settings()
        owner = task_run_owner(context)
        s3 = self.s3_hook.get_conn()
        self._layout = self._check_input()
        self.check_functions_exist(self._definition(self._layout))
        results_uri = self._results_uri(context)
        # Not the output's: the worker writes it, from any region.
        for uri, use in ((self._layout.uri, "holds the input"), (results_uri, "the results go to")):
            self.check_bucket_region(parse_s3_uri(uri)[0], use)
        self.check_results_prefix(context, results_uri)  # first: output_uri defaults to a place under it
        self._target = check_output_location(
            s3, self._output_uri(context), input_uri=self._layout.uri, owner=owner
        )
        stored = load_state(s3, results_uri)
        state = stored.for_input(self._layout.etag)
        if state is not stored:
            self.log.info(
                "%s was replaced since the last try: processing it from the start", self._layout.uri
            )
        self._settings_digest = self._row_settings_digest(self._layout)
        # Before the scan, which reads the whole file; a re-run (of failed rows) has a definition of its own.
        rerun_planned = (
            bool(state.manifest_uri) and state.failed_rows > 0 and self._same_settings(state, unknown=True)
        )
        self.check_role(self._csv_machine_name(context, self._layout, rerun=rerun_planned))
        if self.check_row_sizes and not state.manifest_uri:  # last: it reads the whole file once
            largest = row_sizes.check_row_sizes(s3, self._layout, CSV_BATCH_INPUT_BYTES)
            self.log.info("Largest row sends about %d bytes to the function", largest)
        self._reusable_execution = self._collected_execution(state)
        if self._reusable_execution is None:
            self._rerun = self._plan_rerun(context, s3, results_uri, owner, state)
        self.state_machine_name = self._csv_machine_name(context, self._layout, rerun=self._rerun is not None)

    def _row_settings_digest(self, layout: CsvLayout) -> str:
        """A digest of what decides each row's result: the function, ``function_config`` and what it is sent.

        Settings that only change how rows are run (``batch_size``, ``max_concurrency``, the timeouts, the
        child type) are left out: a retry with fewer rows at once or a longer timeout re-runs only the failed
        rows.
        """
        state = self._definition(layout, rerun=False)["States"][self.map_label]
        settings = {
            "function": str(self.function_name),
            "config": self._function_config(),
            "reader": state["ItemReader"]["ReaderConfig"],
            "row": state["ItemSelector"],
        }
        return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()

    def _same_settings(self, state: RunState, *, unknown: bool) -> bool:
        """Whether the rows collected so far were computed under this try's settings.

        :param state: the task run's state.
        :param unknown: the answer for a state saved before the digest was recorded.
        """
        if state.settings_digest is None:
            return unknown
        return state.settings_digest == self._settings_digest

    def _collected_execution(self, state: RunState) -> str | None:
        """The task run's last collected execution, when every row is collected under this try's settings.

        That is the last re-run of failed rows, if any (so the summary is the one of the try that completed
        the rows), else the whole-file run. The settings may differ from that run's own (a try re-ran failed
        rows after the DAG changed): its execution is then on another state machine than this try's, where the
        lookup by name cannot find it.
        """
        if not (state.manifest_uri and state.failed_rows == 0 and state.execution_arn):
            return None
        if not self._same_settings(state, unknown=False):
            return None  # the settings changed since: a new whole-file run computes every row again
        last = state.reruns[-1] if state.reruns else None
        execution_arn = last.execution_arn if last is not None and last.execution_arn else state.execution_arn
        try:
            status = self._retrying(self.hook.describe_execution, execution_arn).get("status")
        except ClientError as error:
            self.log.warning("Could not describe execution %s: %s", execution_arn, error)
            return None
        return execution_arn if status in EXECUTION_SUCCESS_STATES else None

    def reusable_execution(self, context: Context) -> str | None:
        """The execution whose results this try collects again (see :meth:`_collected_execution`).

        :param context: The task context.
        """
        return self._reusable_execution

    def _csv_machine_name(self, context: Context, layout: CsvLayout, *, rerun: bool) -> str:
        """``state_machine_name``, or the task's name plus a digest of the definition (a re-run's, or not)."""
        if self.state_machine_name is not None:
            return str(self.state_machine_name)
        ti = context["ti"]
        base = default_state_machine_name(ti.dag_id, ti.task_id)
        return definition_scoped_name(base, self._definition(layout, rerun=rerun))

    def _plan_rerun(
        self, context: Context, s3: Any, results_uri: str, owner: str, state: RunState
    ) -> Rerun | None:
        """After a collection that left failed rows, run only those again (see :mod:`.rerun`).

        Not after a change of the function or another setting: re-running only the failed rows would mix two
        functions' results in one output, so the whole file runs again on the new definition.
        """
        if not state.manifest_uri or state.failed_rows <= 0 or self._layout is None or self._target is None:
            return None
        if not self._same_settings(state, unknown=True):
            self.log.info(
                "The function or its settings changed since the run that left %d failed rows: processing the "
                "whole file again, so that every row's result comes from the new settings",
                state.failed_rows,
            )
            return None
        rerun = state.pending_rerun()
        if rerun is None:
            number = len(state.reruns) + 1
            items_uri = rerun_items_uri(results_uri, number)
            ledger_uri = state.ledger_uri or self._target.ledger_uri  # states saved before it was recorded
            try:
                rows = write_rerun_items(s3, self._layout, ledger_uri, items_uri, owner)
            except LedgerMissingError:
                self.log.warning(
                    "The failed-rows file %s of an earlier try is gone, so its %d failed rows cannot be "
                    "re-run from it: this try collects the recorded results again, which writes it again (a "
                    "later try re-runs them)",
                    ledger_uri,
                    state.failed_rows,
                )
                return None
            rerun = Rerun(number=number, items_uri=items_uri, rows=rows)
            state.reruns.append(rerun)
        state.settings_digest = self._settings_digest  # the settings the task run now goes on with
        save_state(s3, results_uri, state, owner)
        self.execution_name = suffixed_name(self._execution_name(context), f"-r{rerun.number}")
        self.log.info(
            "An earlier try left %d failed rows: re-running only them (re-run %d, %s)",
            rerun.rows,
            rerun.number,
            rerun.items_uri,
        )
        return rerun

    def _definition(self, layout: CsvLayout, *, rerun: bool | None = None) -> dict[str, Any]:
        reader_config: dict[str, Any]
        if rerun is None:  # the definition of the run this try plans
            rerun = self._rerun is not None
        if rerun:
            # Re-run items carry their index in the input: {"_distmap_item_index": <item index>, ...}.
            reader_config = {"InputType": "JSONL"}
            index_path = f"$$.Map.Item.Value.{INDEX_FIELD}"
            skip: list[int] = []
        else:
            reader_config = {"InputType": "CSV", "CSVHeaderLocation": layout.header_location}
            if layout.header_location == "GIVEN":
                reader_config["CSVHeaders"] = layout.reader_headers
            if layout.delimiter_name != "COMMA":
                reader_config["CSVDelimiter"] = layout.delimiter_name
            index_path = "$$.Map.Item.Index"
            skip = layout.skipped_items
        row = {f"{column}.$": f"$$.Map.Item.Value.{layout.reader_name(column)}" for column in layout.columns}
        processor = LambdaItemProcessor(
            function_name=str(self.function_name),
            execution_type=self.execution_type,
            timeout_seconds=rendered_number(self.lambda_timeout_seconds),
            retry=[*copy.deepcopy(LAMBDA_RETRY), copy.deepcopy(CRASH_RETRY)],
            state_name="ProcessBatch",
        ).to_asl()
        state: dict[str, Any] = {
            "Type": "Map",
            "Label": self.map_label,
            "ItemReader": {
                "Resource": "arn:aws:states:::s3:getObject",
                "ReaderConfig": reader_config,
                "Parameters": {"Bucket.$": "$.input.bucket", "Key.$": "$.input.key"},
            },
            "ItemSelector": {"index.$": index_path, "row": row},
            "ItemBatcher": {
                "MaxItemsPerBatch": self._batch_size(),
                "MaxInputBytesPerBatch": CSV_BATCH_INPUT_BYTES,
                "BatchInput": {
                    "config.$": "$.function_config",
                    "skip": skip,
                },
            },
            "ItemProcessor": processor,
            "ToleratedFailurePercentage": 100,
            "ResultWriter": {
                "Resource": "arn:aws:states:::s3:putObject",
                "Parameters": {"Bucket.$": "$.results.bucket", "Prefix.$": "$.results.prefix"},
            },
            "End": True,
        }
        if self.max_concurrency is not None:
            state["MaxConcurrency"] = self.max_concurrency
        return {
            "Comment": "airflow-distmap CsvRowProcessingOperator: one Lambda invocation per batch of rows",
            "StartAt": self.map_label,
            "States": {self.map_label: state},
        }

    def build_definition(self, context: Context) -> dict[str, Any]:
        """The Distributed Map over the CSV.

        :mod:`airflow_distmap.csv_processing.preflight` explains when the ItemReader reads ``FIRST_ROW``
        and when ``GIVEN`` synthetic headers.

        :param context: The task context.
        """
        if self._layout is None:
            self._layout = self._check_input()
        return self._definition(self._layout)

    def build_execution_input(self, context: Context) -> dict[str, Any]:
        """Where this run reads and writes: the input object (and its ETag) and the results prefix.

        :param context: The task context.
        """
        layout = self._layout or self._check_input()
        results_bucket, results_prefix = parse_s3_uri(self._results_uri(context), what="results_uri")
        execution_input: dict[str, Any] = {
            "input": {"bucket": layout.bucket, "key": layout.key},
            "source_etag": layout.etag,
            "results": {"bucket": results_bucket, "prefix": results_prefix.rstrip("/")},
            "function_config": self.function_config if self.function_config is not None else {},
        }
        if self._rerun is not None:
            items_bucket, items_key = parse_s3_uri(self._rerun.items_uri)
            execution_input["input"] = {"bucket": items_bucket, "key": items_key}
            execution_input["rerun"] = self._rerun.number
        return execution_input

    def on_run_complete(self, context: Context, run: CompletedRun) -> dict[str, Any]:
        """Write the output and the ledger, then apply the row failure threshold.

        :param context: The task context.
        :param run: The finished execution and its manifest.
        :raises RowThresholdExceededError: more rows failed than tolerated (after the ledger is written).
        """
        summary = super().on_run_complete(context, run)
        owner = task_run_owner(context)
        # Resumed after the trigger, this is a new operator: it checks the input again, quietly.
        layout = self._layout or self._check_input(announce=False)
        started_with = json.loads(run.execution.get("input") or "{}")
        etag = started_with.get("source_etag")
        if etag and layout.etag and etag != layout.etag:
            raise InputChangedError(
                f"{layout.uri} changed while it was processed (ETag {etag} -> {layout.etag}). "
                "To fix this, leave the input unchanged during the run and clear the task."
            )
        # Checked again, not taken from the pre-flight: another task run may have written it meanwhile.
        target = check_output_location(run.s3, self._output_uri(context), input_uri=layout.uri, owner=owner)
        if run.manifest is None:  # DistributedMapOperator only calls this with a manifest
            raise MissingResultsError(
                f"Execution {run.execution_arn} exported no manifest. To fix this, check that the role can "
                "write to the results bucket."
            )
        results_uri = self._results_uri(context)
        state = load_state(run.s3, results_uri)
        number = started_with.get("rerun")
        if isinstance(number, int) and state.manifest_uri:
            base = read_manifest(run.s3, state.manifest_uri)
            for rerun in state.reruns:
                if rerun.number == number:
                    rerun.manifest_uri, rerun.execution_arn = run.manifest_uri, run.execution_arn
        else:  # the whole-file run; re-runs left by an input since replaced do not apply to it
            base = run.manifest
            state = state.for_input(layout.etag)
            if state.manifest_uri != run.manifest_uri:
                # A new whole-file run (say, after the function or its settings changed) computed every row:
                # the re-runs that repaired an earlier run's rows must not overwrite its results.
                state.reruns = []
            state.manifest_uri = run.manifest_uri
            state.execution_arn = run.execution_arn
            state.settings_digest = self._settings_digest or self._row_settings_digest(layout)
        state.source_etag = layout.etag
        # Every collected re-run's results replace the first run's, oldest first.
        rerun_manifests = [read_manifest(run.s3, r.manifest_uri) for r in state.reruns if r.manifest_uri]
        collected = collect(
            run.s3,
            iter_child_entries(run.s3, base),
            layout,
            target,
            self.output_column,
            owner=owner,
            overrides=(
                entry for manifest in rerun_manifests for entry in iter_child_entries(run.s3, manifest)
            ),
        )
        state.failed_rows = collected.rows_failed
        state.ledger_uri = target.ledger_uri
        save_state(run.s3, results_uri, state, owner)
        summary.update(self._row_summary(layout, collected))
        if isinstance(number, int):
            summary["rerun"] = number
            summary["rows_rerun"] = next((r.rows for r in state.reruns if r.number == number), None)
        self._enforce_threshold(context, summary, collected)
        return summary

    def _row_summary(self, layout: CsvLayout, collected: CollectSummary) -> dict[str, Any]:
        return {
            "input_uri": layout.uri,
            "output_uri": collected.output_uri,
            "failed_rows_uri": collected.failed_rows_uri,
            "counts": {
                "total": collected.rows_total,
                "succeeded": collected.rows_succeeded,
                "failed": collected.rows_failed,
            },
            "rows_total": collected.rows_total,
            "rows_succeeded": collected.rows_succeeded,
            "rows_failed": collected.rows_failed,
            "errors_by_type": collected.errors_by_type,
            "collect_seconds": collected.duration_seconds,
        }

    def _enforce_threshold(
        self, context: Context, summary: dict[str, Any], collected: CollectSummary
    ) -> None:
        failed, total = collected.rows_failed, collected.rows_total
        if not failed:
            return
        count_limit = rendered_number(self.tolerated_failure_count)
        percent_limit = rendered_number(self.tolerated_failure_percentage)
        if count_limit is None and percent_limit is None:
            count_limit = 0  # like AWS's default ToleratedFailurePercentage 0: any failure fails
        over_count = count_limit is not None and failed > count_limit
        over_percent = percent_limit is not None and total > 0 and failed * 100.0 / total > percent_limit
        if not (over_count or over_percent):
            self.log.warning(
                "%d of %d rows failed (within tolerance); see %s", failed, total, collected.failed_rows_uri
            )
            return
        self.push_failure_summary(context, summary)
        # Either limit exceeded fails the run, as in Step Functions: name the ones that were.
        limits = []
        if over_count:
            limits.append(f"tolerated_failure_count={count_limit}")
        if over_percent:
            limits.append(f"tolerated_failure_percentage={percent_limit}")
        by_type = ", ".join(f"{name}: {count}" for name, count in collected.errors_by_type.items())
        raise RowThresholdExceededError(
            f"{failed} of {total} rows failed ({by_type}), more than {' and '.join(limits)} "
            f"allow{'s' if len(limits) == 1 else ''}. "
            f"The failed rows, with their errors, are in {collected.failed_rows_uri}; the other rows are in "
            f"{collected.output_uri}. To fix this, fix the function or the data and clear the task, or raise "
            "the tolerance."
        )
