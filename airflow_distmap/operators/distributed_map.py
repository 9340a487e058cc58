"""Operator that runs an AWS Step Functions Distributed Map and returns a summary of its results."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeVar

from airflow.providers.amazon.aws.hooks.lambda_function import LambdaHook
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import conf
from airflow.sdk.exceptions import AirflowTaskTimeout
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from airflow_distmap.definitions import (
    DistributedMap,
    ItemBatcher,
    ItemReader,
    LambdaItemProcessor,
    ensure_result_writer,
    invoked_functions,
    is_function_reference,
    iter_distributed_maps,
)
from airflow_distmap.definitions._checks import (
    MAX_CONCURRENCY,
    check_choice,
    check_int,
    check_label,
    check_percentage,
)
from airflow_distmap.definitions.distributed_map import (
    check_item_batcher,
    check_item_processor,
    check_item_reader,
)
from airflow_distmap.definitions.locations import LOCATIONS_KEY, lift_locations
from airflow_distmap.definitions.partitions import in_partition
from airflow_distmap.definitions.processors import EXECUTION_TYPES, distributed_processor
from airflow_distmap.definitions.states import map_reading_at_start
from airflow_distmap.exceptions import (
    DefinitionRaceError,
    DistributedMapError,
    DistributedMapExecutionFailed,
    DistributedMapTimeout,
    FunctionNotFoundError,
    InvalidTaskArgumentsError,
    ItemSourceContentError,
    ItemSourceNotFoundError,
    ResultsLocationError,
    ResultsNotFoundError,
)
from airflow_distmap.hooks.distributed_map import (
    EXECUTION_REDRIVE_STATES,
    EXECUTION_RUNNING_STATES,
    EXECUTION_SUCCESS_STATES,
    DistributedMapHook,
    ExecutionStart,
    error_code,
    execution_arn_for,
    inputs_differ_only_in,
    no_role_arn_message,
)
from airflow_distmap.hooks.s3 import DistributedMapS3Hook
from airflow_distmap.item_sources import check_object_items, check_prefix_items, item_size_limit
from airflow_distmap.links.distributed_map import ExecutionLink, MapRunLink, StateMachineLink
from airflow_distmap.naming import (
    DIGEST_LENGTH,
    default_state_machine_name,
    definition_scoped_name,
    execution_name,
    successor_name,
    task_results_key,
    task_run_results_key,
    validate_name,
)
from airflow_distmap.ownership import check_results_prefix, claim_results_prefix, owner_token
from airflow_distmap.results import (
    RESULT_STATUSES,
    CompletedRun,
    Manifest,
    bucket_region,
    count_entries,
    counts_from_map_run,
    manifest_uri_for_map_run,
    manifest_uri_from_output,
    parse_s3_uri,
    read_manifest,
    s3_uri,
    sample_failed_items,
)
from airflow_distmap.templating import keep_jsonata
from airflow_distmap.triggers.distributed_map import (
    KILLED_ERROR,
    DistributedMapTrigger,
    is_transient,
    kill_cause,
    killing_try,
    wait_here,
)

#: ``arn:<partition>:iam::<12-digit account>:role/<path/name>``, what CreateStateMachine's roleArn accepts.
_IAM_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")

if TYPE_CHECKING:
    from airflow.sdk import Context
    from mypy_boto3_s3 import S3Client

DEFAULT_TIMEOUT = timedelta(hours=48)
"""Default wait before giving up on an execution: long Distributed Map runs take hours."""


MAX_DEFINITION_BYTES = 1_048_576
"""CreateStateMachine's ``definition`` limit (1 MB)."""

DEFER_TIMEOUT_GRACE_SECONDS = 900
"""Seconds the defer timeout leaves after the trigger's deadline and last poll, for its ``deadline`` event."""

CLOCK_SKEW_SECONDS = 5
"""Tolerance between the triggerer's and the worker's clocks in telling the ``execution_timeout`` deadline."""

RACED_START_WAITS = (2, 4, 8, 16)
"""Seconds a task waits before deploying again after each start that ran another definition; one more such
start fails it. AWS lets StartExecution run the previous definition "within a few seconds" of an update."""

MAX_INPUT_BYTES = 262_144
"""StartExecution's ``input`` limit (256 KiB)."""

MAX_LOGGED_WARNINGS = 10
"""Definition warnings (ValidateStateMachineDefinition) logged one by one; the rest are counted."""

LAMBDA_CHECK_CONFIG = Config(
    connect_timeout=5, read_timeout=10, retries={"mode": "standard", "max_attempts": 3}
)
"""Client settings of the pre-flight's ``lambda:GetFunction`` calls: a connection that cannot reach Lambda (a
VPC with only Step Functions and S3 endpoints) costs seconds, not botocore's minute per try."""


def check_json(value: Any, what: str) -> str:
    """``value`` as compact JSON text, or a ``ValueError`` naming ``what`` and the JSON types to use.

    :param value: what Step Functions receives as JSON.
    :param what: the argument's name, for the error.
    """
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"{what} is not JSON: {error}. To fix this, use only JSON types (str, int, float, bool, None, "
            "and lists and dicts of them): a set as a list, a date or a Decimal as text, no NaN or infinity."
        ) from None


def _check_size(value: Any, what: str, limit: int) -> None:
    size = len(check_json(value, what).encode("utf-8"))
    if size > limit:
        raise ValueError(
            f"{what} is {size} bytes; Step Functions accepts at most {limit}. To fix this, put large data in "
            "S3 and pass its URI instead."
        )


def resolved_later(value: Any) -> bool:
    """Whether Airflow gives ``value`` its real value only when the task runs: a Jinja template or an XComArg.

    Constructor checks skip such a value; the same checks run once it is rendered.

    :param value: An argument as given to the constructor.
    """
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    return callable(getattr(value, "resolve", None))


#: Text that a template of an optional argument renders to when its value is unset (``{{ params.x }}``).
UNSET_TEXTS = frozenset({"", "none", "null"})


def rendered_number(value: Any) -> Any:
    """A number rendered as text (``"5"``, ``"2.5"``) as that number; text meaning unset as ``None``.

    Anything else is returned as it is, for the argument's check to refuse with its own message.

    :param value: A rendered argument.
    """
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.lower() in UNSET_TEXTS:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return value
    return int(number) if number.is_integer() else number  # "5.0", "1e3": whole numbers


def _iso(value: Any) -> str | None:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value).astimezone().isoformat()
    return None if value is None else str(value)


def _literal_reader_location(reader: dict[str, Any]) -> tuple[str | None, str | None]:
    """The ItemReader's ``Bucket`` and ``Key`` when literal, in ``Parameters`` or (JSONata) ``Arguments``.

    A JSONPath (``Bucket.$``) or a JSONata expression (``{% ... %}``) is only known at run time: ``None``.
    """
    parameters = reader.get("Parameters") or reader.get("Arguments") or {}
    if not isinstance(parameters, dict):
        return None, None

    def literal(value: Any) -> str | None:
        is_expression = isinstance(value, str) and value.strip().startswith("{%")
        return value if isinstance(value, str) and not is_expression else None

    return literal(parameters.get("Bucket")), literal(parameters.get("Key"))


def _first_literal_reader(definition: dict[str, Any]) -> tuple[str, str, str | None] | None:
    """``(state name, bucket, key)`` of the first Distributed Map whose ItemReader names a literal bucket."""
    for state_name, state, _language in iter_distributed_maps(definition):
        bucket, key = _literal_reader_location(state.get("ItemReader") or {})
        if bucket:
            return state_name, bucket, key
    return None


def _first_reader_source(definition: dict[str, Any]) -> str:
    """``The ItemReader of '<state>' reads s3://...`` for :func:`_first_literal_reader`'s reader."""
    reader = _first_literal_reader(definition)
    if reader is None:
        return "The ItemReader reads an S3 location"
    state_name, bucket, key = reader
    where = s3_uri(bucket, key) if isinstance(key, str) else f"bucket {bucket!r}"
    return f"The ItemReader of {state_name!r} reads {where}"


def _try_number(context: Context) -> int | None:
    value = getattr(context["ti"], "try_number", None)
    return value if isinstance(value, int) else None


@contextmanager
def refused_arguments(log: Any = None) -> Iterator[None]:
    """Raise a failed argument check (``ValueError``) as :class:`InvalidTaskArgumentsError`.

    A retry cannot fix a bad argument, so Airflow fails the task at once; this matters for a mapped task too,
    whose arguments are only checked when it runs. The check's own traceback goes to the debug log, so the
    task log shows the message once.

    :param log: where the original traceback goes (debug level).
    """
    try:
        yield
    except InvalidTaskArgumentsError:
        raise
    except ValueError as error:
        if log is not None:
            log.debug("Argument check failed", exc_info=error)
        raise InvalidTaskArgumentsError(str(error)) from None


def _access_denied(error: ClientError) -> bool:
    return error_code(error) in ("AccessDenied", "403", "Forbidden")


def task_run_owner(context: Context) -> str:
    """The :func:`~airflow_distmap.ownership.owner_token` of the context's task run (same for every try).

    :param context: The task context.
    """
    ti = context["ti"]
    return owner_token(ti.dag_id, ti.task_id, ti.run_id, getattr(ti, "map_index", None))


def _duration(start: Any, stop: Any) -> float | None:
    if isinstance(start, datetime) and isinstance(stop, datetime):
        return round((stop - start).total_seconds(), 3)
    return None


class DistributedMapOperator(AwsBaseOperator[DistributedMapHook]):
    """Run a Step Functions Distributed Map; return a JSON summary of the exported results (never the rows).

    Give either a full ASL ``definition`` or the building blocks (``item_reader`` plus ``function_name`` or
    ``item_processor``, batching, concurrency, failure tolerance). Results always go to S3: every Distributed
    Map without a ResultWriter gets one writing under ``results_uri``.

    The state machine is created or updated only when it changed. The execution is named after the task
    run (:func:`airflow_distmap.naming.execution_name`), so a retry attaches to the execution a previous
    try started, reuses its result when it SUCCEEDED, or redrives it when it FAILED, TIMED_OUT or was
    ABORTED (only unsuccessful items run again). A try whose execution input differs from that closed
    execution's starts a new one instead (:func:`airflow_distmap.naming.input_scoped_name`).

    Subclasses customise it through :meth:`preflight`, :meth:`build_definition`,
    :meth:`build_execution_input`, :meth:`default_results_uri` and :meth:`on_run_complete`.

    :param definition: A complete state machine definition (dict or JSON text), instead of building blocks;
        templated.
    :param state_machine_name: Name of the state machine (templated); default derived from the dag and task
        ids plus a digest of the rendered definition, so concurrent runs (backfills) whose templated fields
        render differently never race on one definition. Templated S3 locations do not count (without a given
        ``execution_name``): they travel in the execution input (see ``item_reader``). Keep other run-specific
        values in ``execution_input`` too, to share one state machine across runs. Runs that share a name but
        not a definition update it in turn; an execution that started on a definition other than this task's
        (another run's update landed between this task's deploy and start, or this task's update had not
        reached StartExecution yet) is stopped at once and started again after a wait, so prefer the default
        name for those.
    :param role_arn: IAM role Step Functions assumes; needed to create the state machine. Templated.
    :param results_uri: ``s3://bucket/prefix`` where the ResultWriter exports results (templated). Default: a
        prefix per task run in the bucket the ItemReader reads (see :meth:`default_results_uri`); required
        when no ItemReader names a bucket and a Distributed Map has no ResultWriter of its own. A prefix
        holding another task run's results is refused before anything starts: template your own per run, e.g.
        with ``{{ run_id }}``. With the building blocks and an ItemReader it reaches the definition through
        the execution input, as the ItemReader's location does, so every run shares one state machine (not
        with a given ``execution_name``).
    :param execution_input: Input of the execution (a JSON object, or its JSON text); templated.
    :param item_reader: Where items come from (:mod:`airflow_distmap.definitions` readers or ASL); templated,
        so ``JsonItemReader(uri="s3://bucket/{{ ds }}/rows.json")`` reads each run's own object. Its bucket,
        key or prefix travel in the execution input (key ``airflow_distmap``), so runs reading different
        objects share one definition and one state machine (unless ``execution_name`` is given).
    :param function_name: Lambda function (name or ARN, templated) each child invokes; builds a
        :class:`~airflow_distmap.definitions.LambdaItemProcessor`. The pre-flight checks that every function
        a Task state names exists (``lambda:GetFunction``; without that permission it logs a warning).
    :param item_processor: A :class:`~airflow_distmap.definitions.LambdaItemProcessor` or an ASL
        ItemProcessor, instead of ``function_name``; templated (a ``LambdaItemProcessor``'s ``function_name``,
        ``payload`` and ``extra_parameters``, so ``payload={"day": "{{ ds }}", "item.$": "$"}`` renders).
    :param item_selector: ItemSelector template applied to each item (templated).
    :param item_batcher: Batching (:class:`~airflow_distmap.definitions.ItemBatcher` or ASL); templated (an
        ``ItemBatcher``'s ``batch_input``).
    :param max_concurrency: Parallel children, 0 to 10000 (0: Step Functions' maximum); templated. Default
        unset, which Step Functions reads as 0.
    :param tolerated_failure_count: Failed items tolerated before the run fails (templated; default none).
        Items are what the Map Run counts: a child execution that succeeded counts its items as succeeded,
        even when a ``row_handler`` function reported some of its rows as failed.
    :param tolerated_failure_percentage: Failed items tolerated, in percent (templated; items as above).
    :param map_label: Name of the Map state and label of its Map Run (at most 40 characters); default
        ``DistributedMap``.
    :param execution_type: ``STANDARD`` or ``EXPRESS`` children (with an ASL ``item_processor``, unless its
        ``ProcessorConfig`` says; a ``LambdaItemProcessor`` carries its own).
    :param execution_name: Force an execution name (templated; default derived from the task run). It must
        differ for every task run: a try finding an execution of that name attaches to it, reuses its results
        or redrives it; a retry of the same task run keeps it. Only ``0-9A-Za-z-_`` are accepted (the
        characters CloudWatch Logs takes), so template it from the run id without the others, and the map
        index in a mapped task, e.g. ``"{{ run_id | replace(':', '') | replace('+', '') | replace('.', '')
        }}-{{ ti.map_index }}"``. A given name puts the run's results prefix, and the ItemReader's location,
        into the definition, so each run then deploys a state machine of its own (or updates a
        ``state_machine_name`` of yours): leave it unset unless you need it.
    :param waiter_delay: Seconds between status polls; default 30.
    :param waiter_max_attempts: Polls before giving up: the wait ends ``waiter_delay`` x
        ``waiter_max_attempts`` seconds after it starts; the default covers 48 hours.
    :param deferrable: Wait in the triggerer instead of a worker slot (default
        ``[operators] default_deferrable``).
    :param failed_items_sample: How many failed items to include in a failure's error; default 5.
    :param stop_on_kill: Stop the execution when the task is killed (the default).
    :param check_functions: Before anything is created, check with ``lambda:GetFunction`` that the Lambda
        functions Task states name literally exist (see :meth:`check_functions_exist`). Set ``False`` when the
        Airflow connection cannot reach Lambda.
    :param check_item_sizes: When the Map sends each CSV or JSON Lines item to its children as it is (no
        ItemSelector), read the whole object once before anything is created and refuse it when an item is
        over the 256 KiB a child execution can receive (Step Functions would fail the Map Run on it, after
        the items before it ran). Set ``False`` to skip that pass over a very large object.

    Generic AWS arguments (``aws_conn_id``, ``region_name``, ``verify``, ``botocore_config``) are those of
    :class:`~airflow.providers.amazon.aws.operators.base_aws.AwsBaseOperator`.

    :return: The summary dict: ``execution_arn``, ``map_run_arn``, ``status``, ``manifest_uri``, ``counts``
        (``total``, ``succeeded``, ``failed``, ``pending``, ``running``, ``timed_out``, ``aborted``),
        ``item_counts``, ``execution_counts``, ``results_uri``, ``result_files``, ``state_machine_arn``,
        ``execution_name``, ``start_date``, ``stop_date``, ``duration_seconds``. ``counts`` are the Map Run's
        items, by their child execution's status: rows a ``row_handler`` function reported as failed inside a
        child that succeeded count as succeeded. ``airflow-distmap results <manifest_uri>`` counts those
        rows, and :class:`~airflow_distmap.operators.csv_row_processing.CsvRowProcessingOperator` counts rows.
    """

    aws_hook_class = DistributedMapHook
    template_fields: Sequence[str] = aws_template_fields(
        "definition",
        "execution_input",
        "results_uri",
        "state_machine_name",
        "role_arn",
        "function_name",
        "execution_name",
        "item_reader",
        "item_selector",
        "item_processor",
        "item_batcher",
        "max_concurrency",
        "tolerated_failure_count",
        "tolerated_failure_percentage",
    )
    template_fields_renderers = {"definition": "json", "execution_input": "json"}
    #: Template fields holding numbers: rendered text such as ``"5"`` becomes the number.
    numeric_template_fields: ClassVar[tuple[str, ...]] = (
        "max_concurrency",
        "tolerated_failure_count",
        "tolerated_failure_percentage",
    )
    ui_color = "#f9c915"
    operator_extra_links = (StateMachineLink(), ExecutionLink(), MapRunLink())

    def __init__(
        self,
        *,
        definition: dict[str, Any] | str | None = None,
        state_machine_name: str | None = None,
        role_arn: str | None = None,
        results_uri: str | None = None,
        execution_input: dict[str, Any] | str | None = None,
        item_reader: ItemReader | dict[str, Any] | None = None,
        function_name: str | None = None,
        item_processor: LambdaItemProcessor | dict[str, Any] | None = None,
        item_selector: dict[str, Any] | None = None,
        item_batcher: ItemBatcher | dict[str, Any] | None = None,
        max_concurrency: int | str | None = None,
        tolerated_failure_count: int | str | None = None,
        tolerated_failure_percentage: float | str | None = None,
        map_label: str = "DistributedMap",
        execution_type: str = "STANDARD",
        execution_name: str | None = None,
        waiter_delay: int = 30,
        waiter_max_attempts: int | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        failed_items_sample: int = 5,
        stop_on_kill: bool = True,
        check_functions: bool = True,
        check_item_sizes: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.definition = definition
        self.state_machine_name = state_machine_name
        #: Whether the state machine is named after the task and a digest of its definition (not by the user).
        self._definition_scoped_machine = state_machine_name is None
        self.role_arn = role_arn
        self.results_uri = results_uri
        self.execution_input = execution_input
        self.item_reader = item_reader
        self.function_name = function_name
        self.item_processor = item_processor
        self.item_selector = item_selector
        self.item_batcher = item_batcher
        self.max_concurrency = max_concurrency
        self.tolerated_failure_count = tolerated_failure_count
        self.tolerated_failure_percentage = tolerated_failure_percentage
        self.map_label = map_label
        self.execution_type = execution_type
        self.execution_name = execution_name
        with refused_arguments():
            self.waiter_delay = check_int(waiter_delay, "waiter_delay", 1)
            self.waiter_max_attempts = (
                math.ceil(DEFAULT_TIMEOUT.total_seconds() / waiter_delay)
                if waiter_max_attempts is None
                else check_int(waiter_max_attempts, "waiter_max_attempts", 1)
            )
            self._check_constructor_arguments()
        self.deferrable = deferrable
        self.failed_items_sample = failed_items_sample
        self.stop_on_kill = stop_on_kill
        self.check_functions = check_functions
        self.check_item_sizes = check_item_sizes
        self._execution_arn: str | None = None
        self._bucket_regions: dict[str, str | None] = {}  # HeadBucket's answers in this try
        self._role_checked_for: str | None = None
        self._try: int | None = None
        #: The results prefix and owner token :meth:`claim` marks, once :meth:`check_results_prefix` passed.
        self._results_claim: tuple[str, str] | None = None

    def render_template_fields(self, context: Context, jinja_env: Any = None) -> None:
        """Render templates; JSONata expressions (``"{% ... %}"``) in ASL are left as they are.

        The item reader is copied first so rendering never changes the DAG's object. Numbers rendered as text
        (``"5"``) become numbers, text meaning unset (``"None"``, ``""``) ``None``; the checks that follow
        refuse anything else.
        """
        if self.item_reader is not None and not isinstance(self.item_reader, dict):
            self.item_reader = copy.copy(self.item_reader)
        self.definition = keep_jsonata(self.definition)
        self.item_reader = keep_jsonata(self.item_reader)
        self.item_selector = keep_jsonata(self.item_selector)
        self.item_processor = keep_jsonata(self.item_processor)
        self.item_batcher = keep_jsonata(self.item_batcher)
        super().render_template_fields(context, jinja_env)
        for name in self.numeric_template_fields:
            setattr(self, name, rendered_number(getattr(self, name)))

    def render_template(
        self, content: Any, context: Context, jinja_env: Any = None, seen_oids: set[int] | None = None
    ) -> Any:
        """Render ``content``; an ItemBatcher or LambdaItemProcessor renders into a copy (they are frozen).

        Airflow renders an object's ``template_fields`` by setting them, which a frozen dataclass refuses;
        a copy also leaves the DAG's object as it is. JSONata expressions in them are left as they are.

        :param content: What to render.
        :param context: The task context.
        :param jinja_env: The Jinja environment.
        :param seen_oids: Objects already rendered.
        """
        if not isinstance(content, LambdaItemProcessor | ItemBatcher):
            return super().render_template(content, context, jinja_env, seen_oids)
        rendered = {}
        for name in content.template_fields:
            value = keep_jsonata(getattr(content, name))
            rendered[name] = super().render_template(value, context, jinja_env, seen_oids) if value else value
        return dataclasses.replace(content, **rendered)

    # -- argument checks -----------------------------------------------------------------------------

    def _check_constructor_arguments(self) -> None:
        """Checks that do not depend on templates: they fail at DAG parse time.

        A template or an XComArg is checked once rendered (:meth:`_check_rendered_settings`).
        """
        self._check_building_blocks()
        self._check_block_types(given=True)
        self._check_numbers(given=True)
        self._check_rendered_arguments(given=True)
        if self.execution_type is not None:  # None: the default (an ASL item_processor's own, or STANDARD)
            check_choice(self.execution_type, "execution_type", EXECUTION_TYPES)
        if self.map_label is not None:
            check_label(self.map_label)

    def _check_block_types(self, *, given: bool = False) -> None:
        """Refuse an item reader, processor or batcher of the wrong type (a template: not when ``given``).

        :param given: Whether these are the constructor's arguments (a template's value is not known yet).
        """
        for value, check in (
            (self.item_reader, check_item_reader),
            (self.item_processor, check_item_processor),
            (self.item_batcher, check_item_batcher),
        ):
            if value is not None and not (given and resolved_later(value)):
                check(value)

    def _check_numbers(self, *, given: bool = False) -> None:
        """Check the concurrency and tolerance settings, leaving templates alone when ``given``.

        :param given: Whether these are the constructor's arguments (a template's value is not known yet): a
            number given as text (``"5"``) is taken as that number.
        """
        checks: tuple[tuple[str, Callable[[Any], Any]], ...] = (
            ("max_concurrency", lambda value: check_int(value, "max_concurrency", 0, MAX_CONCURRENCY)),
            ("tolerated_failure_count", lambda value: check_int(value, "tolerated_failure_count", 0)),
            (
                "tolerated_failure_percentage",
                lambda value: check_percentage(value, "tolerated_failure_percentage"),
            ),
        )
        for name, check in checks:
            value = getattr(self, name)
            if given and resolved_later(value):
                continue
            value = rendered_number(value) if given else value
            if value is not None:
                check(value)
            setattr(self, name, value)

    def _check_rendered_settings(self) -> None:
        """Checks of the templated building blocks and numbers once rendered, before any AWS call."""
        self._check_block_types()
        self._check_numbers()

    def check_role(self, machine_name: str) -> None:
        """Refuse a missing ``role_arn`` when the state machine does not exist yet (it cannot be created).

        :param machine_name: The state machine's name.
        :raises ValueError: no ``role_arn`` and no state machine ``machine_name``.
        """
        if self.role_arn or self._role_checked_for == machine_name:
            return
        if self._retrying(self.hook.find_state_machine, machine_name) is None:
            raise ValueError(no_role_arn_message(machine_name))
        self._role_checked_for = machine_name

    def _check_building_blocks(self) -> None:
        """A full ``definition`` or building blocks, not both and not neither.

        Subclasses that build the definition themselves from their own arguments override this.
        """
        has_blocks = self.function_name is not None or self.item_processor is not None
        if self.definition is not None:
            blocks = {
                "item_reader": self.item_reader,
                "function_name": self.function_name,
                "item_processor": self.item_processor,
                "item_selector": self.item_selector,
                "item_batcher": self.item_batcher,
                "max_concurrency": self.max_concurrency,
                "tolerated_failure_count": self.tolerated_failure_count,
                "tolerated_failure_percentage": self.tolerated_failure_percentage,
                "map_label": None if self.map_label == "DistributedMap" else self.map_label,
                "execution_type": None if self.execution_type == "STANDARD" else self.execution_type,
            }
            given = [name for name, value in blocks.items() if value is not None]
            if given:
                raise ValueError(
                    f"Both definition and building blocks ({', '.join(given)}) were given; a definition is "
                    "deployed as it is, so they would be ignored. To fix this, pass either a full ASL "
                    "definition (with those settings in it) or the building blocks, not both."
                )
        if self.definition is None and not has_blocks:
            raise ValueError(
                "Nothing to run: no definition, function_name or item_processor. To fix this, pass "
                "function_name='my-function' (with item_reader=...) or a full ASL definition."
            )
        if self.function_name is not None and self.item_processor is not None:
            raise ValueError(
                "Both function_name and item_processor were given. To fix this, pass only one: "
                "function_name builds a LambdaItemProcessor for you."
            )

    def _check_rendered_arguments(self, *, given: bool = False) -> None:
        """Checks of templated arguments, after rendering and before any AWS call.

        :param given: Whether these are the constructor's arguments: a template's value is not known yet, and
            the connection (for the role's partition) is not read at DAG parse time.
        """

        def known(value: Any) -> bool:
            return not (given and resolved_later(value))

        if self.state_machine_name is not None and known(self.state_machine_name):
            validate_name(self.state_machine_name, "state_machine_name")
        if self.execution_name is not None and known(self.execution_name):
            validate_name(self.execution_name, "execution_name")
        if self.results_uri is not None and known(self.results_uri):
            parse_s3_uri(self.results_uri, what="results_uri")
        if self.role_arn is not None and known(self.role_arn) and not _IAM_ROLE_ARN.match(str(self.role_arn)):
            raise ValueError(
                f"role_arn={self.role_arn!r} is not an IAM role ARN (arn:<partition>:iam::<12-digit account "
                "id>:role/<name>). To fix this, pass an ARN like "
                "'arn:aws:iam::123456789012:role/StepFunctionsDistributedMap'."
            )
        if self.role_arn is not None and not given:
            self._check_partition(str(self.role_arn), "role_arn", "arn:{}:iam::123456789012:role/my-role")
        if (
            self.execution_input is not None
            and known(self.execution_input)
            and not isinstance(self.execution_input, (dict, str))
        ):
            raise ValueError("execution_input must be a JSON object. To fix this, pass a dict.")

    def _check_partition(self, arn: str, what: str, example: str) -> None:
        """Refuse an ARN of another partition than the connection's: an account lives in one partition."""
        partition, ours = arn.split(":")[1], self.hook.conn_partition
        if partition != ours:
            raise ValueError(
                f"{what} {arn!r} is in partition {partition!r}, but the connection's region "
                f"{self.hook.conn_region_name} is in {ours!r}, and an AWS account (its roles, functions and "
                f"state machines) lives in one partition. To fix this, pass an ARN such as "
                f"{example.format(ours)!r}, or use a connection whose region is in {partition!r}."
            )

    # -- extension points ----------------------------------------------------------------------------

    def preflight(self, context: Context) -> None:
        """Check the user's input before anything is created or started in AWS.

        The default checks that the S3 sources the Distributed Maps read exist (the object for
        ``s3:getObject``, the bucket for ``s3:listObjectsV2``) and hold items the reader can parse, from
        their start, none too large for a child (:meth:`check_item_sources`; unless this task run's
        execution exists already, whose children may have consumed them), that the bucket results go to
        exists (otherwise every item would run before the export fails), that the results prefix holds no
        other task run's results (:meth:`check_results_prefix`), and that the Lambda functions it names
        exist (:meth:`check_functions_exist`). Subclasses raise ``ValueError`` (or
        :class:`~airflow_distmap.exceptions.DistributedMapError`) naming the problem and the fix.

        :param context: The task context.
        :raises ItemSourceNotFoundError: a bucket or object the ItemReader reads does not exist.
        :raises ItemSourceContentError: the ItemReader would read no items, fail on its source, or read an
            item too large for a child.
        :raises ValueError: the results bucket does not exist (the task fails without spending its retries).
        :raises ResultsPrefixInUseError: a given ``results_uri`` holds another task run's results.
        :raises FunctionNotFoundError: a Lambda function the definition invokes does not exist.
        """
        definition = self.build_definition(context)
        results_uri = self._results_uri(context)
        if results_uri is not None:
            results_bucket, _ = parse_s3_uri(results_uri, what="results_uri")
            if self._bucket_missing(results_bucket, "the results go to"):
                if not self.results_uri:  # the default lies in the bucket the first ItemReader reads
                    raise ItemSourceNotFoundError(
                        f"{_first_reader_source(definition)}, whose bucket {results_bucket!r} does not exist "
                        "(results would go there too, by default). To fix this, create the bucket or correct "
                        "the ItemReader's bucket; nothing was created."
                    )
                raise ValueError(
                    f"Results go to {results_uri}, but bucket {results_bucket!r} does not exist. To fix "
                    "this, create the bucket or pass another results_uri; nothing was created."
                )
            if self.results_uri:  # the default prefix is the task run's own by construction
                self.check_results_prefix(context, results_uri)
        self.check_functions_exist(definition)
        # Before the item sources, which a size check reads whole: a missing role costs no read.
        self.check_role(self._machine_name(context, self._deployment(context)[0]))
        try:
            self.check_item_sources(definition)
        except (ItemSourceNotFoundError, ItemSourceContentError) as problem:
            try:
                existing = self._task_run_execution(context)
            except (ClientError, BotoCoreError) as error:  # no permission to look: the problem stands
                self.log.warning("Could not look for this task run's execution (%s)", error)
                existing = None
            if existing is None:
                raise
            # The children may have consumed the source (moved the objects they processed): a retry still
            # attaches to, reuses or redrives the task run's execution.
            self.log.warning("%s Going on: this task run's execution %s exists.", problem, existing)

    def check_item_sources(self, definition: dict[str, Any]) -> None:
        """Check what the Distributed Maps' ItemReaders will read (:mod:`airflow_distmap.item_sources`).

        Only the top-level Map every execution reaches through Pass and Wait states alone is checked, and only
        its literal bucket, key or prefix: an earlier Task may write what a later Map reads, and a Map behind
        a Choice may not run. With ``check_item_sizes``, a CSV or JSON Lines object whose items reach the
        children as they are is read whole, for an item over the child-input quota.

        :param definition: The state machine definition.
        :raises ItemSourceNotFoundError: a bucket or object the ItemReader reads does not exist.
        :raises ItemSourceContentError: the ItemReader would read no items, fail on its source, or read an
            item too large for a child.
        """
        state_name = map_reading_at_start(definition)
        if state_name is None:
            return
        state = definition["States"][state_name]
        reader = state.get("ItemReader") or {}
        bucket, key = _literal_reader_location(reader)
        if bucket is None:  # a path ("Bucket.$") or an expression resolves only at run time
            return
        s3 = self.s3_hook.get_conn()
        resource = str(reader.get("Resource", ""))
        if resource.endswith("s3:getObject") and isinstance(key, str):
            self.check_bucket_region(bucket, f"the ItemReader of {state_name!r} reads")
            language = state.get("QueryLanguage", definition.get("QueryLanguage", "JSONPath"))
            selector = state.get("ItemSelector") if language != "JSONata" else None
            item_limit = item_size_limit(state) if self.check_item_sizes else None
            check_object_items(s3, state_name, reader, selector, bucket, key, item_limit=item_limit)
        elif resource.endswith("s3:listObjectsV2"):
            if self._bucket_missing(bucket, f"the ItemReader of {state_name!r} lists"):
                raise ItemSourceNotFoundError(
                    f"The ItemReader of {state_name!r} lists bucket {bucket!r}, which does not exist. "
                    "To fix this, create the bucket or correct its name; nothing was created."
                )
            prefix = (reader.get("Parameters") or reader.get("Arguments") or {}).get("Prefix", "")
            if isinstance(prefix, str) and not prefix.strip().startswith("{%"):
                config = reader.get("ReaderConfig") or {}
                flattened = isinstance(config, dict) and config.get("Transformation") == "LOAD_AND_FLATTEN"
                check_prefix_items(s3, state_name, bucket, prefix, reads_objects=flattened)

    def _machine_name(self, context: Context, definition: dict[str, Any]) -> str:
        """``state_machine_name``, or the task's name plus a digest of the deployable ``definition``."""
        ti = context["ti"]
        base = default_state_machine_name(ti.dag_id, ti.task_id)
        return self.state_machine_name or definition_scoped_name(base, definition)

    def reusable_execution(self, context: Context) -> str | None:
        """A SUCCEEDED execution of this task run whose results this try reuses, found in the task's records.

        ``None`` here: a try finds its task run's execution by name, on the state machine it deploys. A
        subclass that records its runs under the results prefix (the CSV operator) returns one that ran on an
        earlier definition's state machine, which that lookup cannot see. Called after :meth:`preflight`.

        :param context: The task context.
        """
        return None

    def _task_run_execution(self, context: Context) -> str | None:
        """The execution an earlier try of this task run started, when this try will not start a new one.

        That is one still running (attached to), or a closed one with this try's input that SUCCEEDED
        (reused) or can be redriven with the definition deployed now (see :meth:`_start_refusal`). Otherwise
        ``None``: this try starts an execution, on the source as it is.
        """
        definition, execution_input = self._deployment(context)
        machine_name = self._machine_name(context, definition)
        name = self._execution_name(context)
        running_elsewhere = self._running_under_another_definition(machine_name, name)
        if running_elsewhere is not None:
            return running_elsewhere
        machine_arn = self._retrying(self.hook.find_state_machine, machine_name)
        if machine_arn is None:
            return None
        execution_arn = execution_arn_for(machine_arn, name)
        try:
            execution = self._retrying(self.hook.describe_execution, execution_arn)
        except ClientError as error:
            if error_code(error) != "ExecutionDoesNotExist":
                raise
            return None
        status = str(execution.get("status"))
        if status in EXECUTION_RUNNING_STATES:
            return execution_arn
        same_input = json.loads(execution.get("input") or "{}") == execution_input
        if not same_input:
            return None
        redrivable = execution.get("redriveStatus") == "REDRIVABLE"
        closed = ExecutionStart(execution_arn, False, status, redrivable=redrivable, description=execution)
        return execution_arn if self._start_refusal(closed, definition) is None else None

    def check_functions_exist(self, definition: dict[str, Any]) -> None:
        """Check that every Lambda function the definition names literally exists (``lambda:GetFunction``).

        Without this, a misspelled function is found only when every child has failed on it. A function whose
        existence cannot be checked (no ``lambda:GetFunction`` permission, no route to Lambda, another region,
        a Task that assumes another account's role with ``Credentials``) is logged or skipped and the check
        passes: only Step Functions' role needs to invoke it. ``check_functions=False`` skips the check.

        :param definition: The state machine definition.
        :raises FunctionNotFoundError: Lambda answers that a function does not exist.
        :raises ValueError: a literal ``FunctionName`` is not a Lambda function name or ARN.
        """
        functions = invoked_functions(definition)
        for function, states in functions.items():  # a malformed name or a partition is told without Lambda
            if not is_function_reference(function):
                raise ValueError(
                    f"State(s) {states} invoke {function!r}, which is not a Lambda function name or ARN. To "
                    "fix this, name a function such as 'process-row' or "
                    "'arn:aws:lambda:us-east-1:123456789012:function:process-row'."
                )
            if function.startswith("arn:"):
                example = "arn:{}:lambda:" + f"{function.split(':')[3]}:123456789012:function:process-row"
                self._check_partition(function, f"Lambda function invoked by state(s) {states}", example)
        if not self.check_functions or not functions:
            return
        client = self.lambda_client
        region = client.meta.region_name
        for function, states in functions.items():
            function_region = function.split(":")[3] if function.startswith("arn:") else region
            if function_region != region:
                self.log.info("Not checking Lambda function %s: it is not in region %s", function, region)
                continue
            problem: object
            try:
                client.get_function(FunctionName=function)
                continue
            except ClientError as error:
                answer = error.response.get("Error", {})
                if answer.get("Code") == "ResourceNotFoundException":
                    raise FunctionNotFoundError(
                        f"Lambda function {function!r}, invoked by state(s) {states}, does not exist in "
                        f"{region} (Lambda: {answer.get('Message')}). To fix this, deploy the function or "
                        "correct its name; nothing was created."
                    ) from None
                problem = answer.get("Code")
            except BotoCoreError as error:  # no route to Lambda, for one
                problem = error
            self.log.warning(
                "Could not check that Lambda function %s exists (%s); going on", function, problem
            )

    def check_definition(self, definition: dict[str, Any]) -> None:
        """Have Step Functions check the definition (ValidateStateMachineDefinition) before anything is made.

        Catches what CreateStateMachine would refuse before the results prefix is claimed, as bad input rather
        than an error Airflow retries.
        When validation cannot run (no ``states:ValidateStateMachineDefinition`` permission, an emulator
        without it, such as moto's in-process ``mock_aws``, which raises ``NotImplementedError`` for it) a
        warning is logged and the deploy itself reports any problem.

        Warnings (such as a Parameters field whose value is a path but whose name lacks ``.$``) are logged.

        :param definition: The definition about to be deployed.
        :raises ValueError: the definition has errors; the message lists them.
        """
        try:
            diagnostics = self._retrying(self.hook.definition_diagnostics, definition)
        except (ClientError, BotoCoreError, NotImplementedError) as error:
            self.log.warning("Could not validate the state machine definition (%s); going on", error)
            return
        warnings = [d for d in diagnostics if d.get("severity") == "WARNING"]
        for warning in warnings[:MAX_LOGGED_WARNINGS]:
            self.log.warning(
                "Step Functions warns about the definition: %s at %s: %s",
                warning.get("code"),
                warning.get("location", "/"),
                warning.get("message"),
            )
        if len(warnings) > MAX_LOGGED_WARNINGS:
            self.log.warning("... and %d more warnings", len(warnings) - MAX_LOGGED_WARNINGS)
        errors = [d for d in diagnostics if d.get("severity") == "ERROR"]
        if errors:
            listed = "; ".join(
                f"{e.get('code')}{' at ' + e['location'] if e.get('location') else ''}: {e.get('message')}"
                for e in errors[:5]
            )
            more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
            raise ValueError(
                f"Step Functions refuses the state machine definition: {listed}{more}. To fix this, correct "
                "the definition (or the arguments it is built from); nothing was created."
            )

    def _bucket_missing(self, bucket: str, use: str) -> bool:
        """Whether S3 says ``bucket`` does not exist (HeadBucket 404); one in another Region is refused.

        :param bucket: The bucket name.
        :param use: What the run does with it, for the error (``"the results go to"``).
        :raises ValueError: the bucket is in another Region than the state machine's.
        """
        return self.check_bucket_region(bucket, use) is None

    def check_bucket_region(self, bucket: str, use: str) -> str | None:
        """Refuse a bucket outside the state machine's Region, which Step Functions cannot use.

        "S3 buckets must be in the same account and Region as the state machine"; a ResultWriter elsewhere
        fails with ``States.ResultWriterFailed``, once every item has run (spec §1.4). One HeadBucket per
        bucket and try; an answer but "not found" (403: the Airflow connection may not reach a bucket that
        Step Functions' role can use) is logged and the check passes: only Step Functions' role needs access.

        :param bucket: The bucket name.
        :param use: What the run does with it, for the error (``"the ItemReader reads"``).
        :return: The bucket's Region (``""`` when S3 does not say), ``None`` when it does not exist.
        :raises ValueError: the bucket is in another Region than the connection's.
        """
        if bucket not in self._bucket_regions:
            try:
                self._bucket_regions[bucket] = bucket_region(self.s3_hook.get_conn(), bucket)
            except ClientError as error:
                self.log.warning("Could not check bucket %s (%s); going on", bucket, error)
                self._bucket_regions[bucket] = ""
        region, ours = self._bucket_regions[bucket], self.hook.conn_region_name
        if region and ours and region != ours:
            raise ValueError(
                f"Bucket {bucket!r}, which {use}, is in {region}, but the state machine runs in {ours}: Step "
                "Functions reads and writes S3 only in its own Region. To fix this, use a bucket in "
                f"{ours}, or a connection whose region is {region}; nothing was created."
            )
        return region

    def build_definition(self, context: Context) -> dict[str, Any]:
        """The state machine definition to deploy: ``definition`` as given, or built from the building blocks.

        :param context: The task context.
        """
        if self.definition is not None:
            if isinstance(self.definition, str):
                try:
                    parsed = json.loads(self.definition)
                except ValueError as error:
                    # No template_ext: it would take item_reader URIs ending in .json for template files too.
                    raise ValueError(
                        f"definition is not valid JSON ({error}). To fix this, pass a dict or JSON text (a "
                        "file name is not read), e.g. definition=json.loads(Path('asl.json').read_text())."
                    ) from None
            else:
                parsed = self.definition
            if not isinstance(parsed, dict):
                raise ValueError("definition must be a JSON object with StartAt and States.")
            return parsed
        processor: LambdaItemProcessor | dict[str, Any]
        if self.function_name is not None:
            processor = LambdaItemProcessor(
                function_name=self.function_name, execution_type=self.execution_type
            )
        elif isinstance(self.item_processor, dict):
            given = None if self.execution_type == "STANDARD" else self.execution_type
            processor = distributed_processor(self.item_processor, given)
        elif self.item_processor is not None:
            processor = self.item_processor
        else:
            raise ValueError(
                "No function_name or item_processor. To fix this, pass function_name='my-function'."
            )
        return DistributedMap(
            item_processor=processor,
            item_reader=self.item_reader,
            item_selector=self.item_selector,
            item_batcher=self.item_batcher,
            max_concurrency=rendered_number(self.max_concurrency),
            tolerated_failure_count=rendered_number(self.tolerated_failure_count),
            tolerated_failure_percentage=rendered_number(self.tolerated_failure_percentage),
            label=self.map_label,
        ).build()

    def check_results_prefix(self, context: Context, results_uri: str) -> None:
        """Refuse a ``results_uri`` that holds another task run's results; :meth:`claim` then marks it ours.

        A prefix is free when empty or marked as this task run's (a retry). When the Airflow connection may
        not list the bucket (403) the check is skipped with a warning: only Step Functions' role needs access.

        :param context: The task context.
        :param results_uri: ``s3://bucket/prefix`` the run exports its results to.
        :raises ResultsPrefixInUseError: the prefix holds objects this task run did not write.
        """
        owner = task_run_owner(context)
        try:
            check_results_prefix(self.s3_hook.get_conn(), results_uri, owner=owner)
        except ClientError as error:
            if not _access_denied(error):
                raise
            self.log.warning("Could not check that %s is unused (%s); going on", results_uri, error)
            return
        self._results_claim = (results_uri, owner)

    def claim(self, context: Context) -> None:
        """Write what marks the run's locations as this task run's; called once every check has passed.

        It runs after :meth:`preflight`, the size checks and the role check, right before the state machine is
        deployed, so bad input never leaves anything behind. The default claims the results prefix checked
        by :meth:`check_results_prefix` with a conditional write: of two task runs sharing a fixed
        ``results_uri``, the second fails here.

        :param context: The task context.
        :raises ResultsPrefixInUseError: another task run claimed the prefix first.
        :raises ResultsLocationError: the mark could not be written (the connection may list the prefix, but
            not write to it).
        """
        if self._results_claim is None:
            return
        results_uri, owner = self._results_claim
        try:
            claim_results_prefix(self.s3_hook.get_conn(), results_uri, owner=owner)
        except ClientError as error:
            if not _access_denied(error):
                raise
            # Unmarked, the results would make every retry of this task run look like another run's.
            raise ResultsLocationError(
                f"Could not write the mark that makes {results_uri} this task run's ({error}). To fix this, "
                "allow the Airflow connection s3:PutObject on that prefix, or leave results_uri unset (the "
                "default prefix is the task run's own and needs no mark); nothing was started."
            ) from None

    def build_execution_input(self, context: Context) -> dict[str, Any]:
        """The execution's input; default ``execution_input`` (or ``{}``).

        :param context: The task context.
        """
        if isinstance(self.execution_input, str):
            try:
                parsed = json.loads(self.execution_input)
            except ValueError as error:
                raise ValueError(
                    f"execution_input is not valid JSON ({error}). To fix this, pass a dict or JSON object "
                    "text."
                ) from None
            if not isinstance(parsed, dict):
                raise ValueError(
                    f"execution_input is a JSON {type(parsed).__name__}, not an object. To fix this, pass a "
                    "dict or JSON object text."
                )
            return parsed
        return dict(self.execution_input or {})

    def default_results_uri(self, context: Context) -> str | None:
        """Where results go when ``results_uri`` is not given and a Distributed Map has no ResultWriter.

        ``s3://<bucket>/distmap-results/<dag>/<task>/<execution name>``, in the bucket the first Distributed
        Map's ItemReader names literally: one prefix per task run (its execution name carries the run and map
        index), so retries and backfills never mix results. The ResultWriter reads the execution name from the
        context object, so the definition, and the state machine, stay the same for every run. With a given
        ``execution_name`` it is ``.../<dag>/<task>/<run>[/<map index>]`` instead, written into the definition
        (a given name need not carry the run). ``None`` when no ItemReader names a bucket (items from the
        state input, or ``Bucket.$``): then ``results_uri`` is required.

        :param context: The task context.
        """
        base = self._default_results_base(context)
        if base is None:
            return None
        if self.execution_name:
            ti = context["ti"]
            bucket, _ = parse_s3_uri(base)
            return s3_uri(
                bucket, task_run_results_key(ti.dag_id, ti.task_id, ti.run_id, getattr(ti, "map_index", None))
            )
        return f"{base}/{self._execution_name(context)}"

    def _default_results_base(self, context: Context) -> str | None:
        """``s3://<the first ItemReader's bucket>/distmap-results/<dag>/<task>``, or ``None``."""
        reader = _first_literal_reader(self.build_definition(context))
        if reader is None:
            return None
        ti = context["ti"]
        return s3_uri(reader[1], task_results_key(ti.dag_id, ti.task_id))

    def _execution_name(self, context: Context) -> str:
        """The task run's execution name: the one waited for, else ``execution_name`` or the task run's."""
        if self._execution_arn:  # a successor (-n2) or input-scoped name once started or attached
            return self._execution_arn.rsplit(":", 1)[-1]
        if self.execution_name:
            return str(self.execution_name)
        ti = context["ti"]
        return execution_name(ti.dag_id, ti.task_id, ti.run_id, getattr(ti, "map_index", None))

    def on_run_complete(self, context: Context, run: CompletedRun) -> dict[str, Any]:
        """Build the XCom summary of a SUCCEEDED run. Subclasses call ``super()`` and add their fields.

        :param context: The task context.
        :param run: The finished execution, its Map Run and manifest, and S3 access to the result files.
        """
        map_run = run.map_run or {}
        manifest = run.manifest
        execution = run.execution
        return {
            "execution_arn": run.execution_arn,
            "execution_name": execution.get("name"),
            "state_machine_arn": run.state_machine_arn,
            "map_run_arn": run.map_run_arn,
            "status": run.status,
            "manifest_uri": run.manifest_uri,
            "results_uri": run.results_uri,
            "counts": run.counts,
            "item_counts": dict(map_run.get("itemCounts") or {}),
            "execution_counts": dict(map_run.get("executionCounts") or {}),
            "result_files": {
                status: [manifest.uri(f) for f in manifest.files(status)] for status in RESULT_STATUSES
            }
            if manifest
            else {},
            "start_date": _iso(execution.get("startDate")),
            "stop_date": _iso(execution.get("stopDate")),
            "duration_seconds": _duration(execution.get("startDate"), execution.get("stopDate")),
        }

    # -- execution -----------------------------------------------------------------------------------

    @cached_property
    def lambda_client(self) -> Any:
        """Lambda client of the pre-flight: the connection's settings, :data:`LAMBDA_CHECK_CONFIG` on top."""
        hook = LambdaHook(
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            config=self.botocore_config,
        )
        return hook.get_client_type(config=hook.config.merge(LAMBDA_CHECK_CONFIG))

    @cached_property
    def s3_hook(self) -> S3Hook:
        """S3 access with the same connection, settings and default retries as the Step Functions hook."""
        return DistributedMapS3Hook(
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            config=self.botocore_config,
        )

    def _results_uri(self, context: Context) -> str | None:
        """``results_uri``, or the default when a Distributed Map gets its ResultWriter from the operator."""
        if self.results_uri:
            return str(self.results_uri)
        maps = iter_distributed_maps(self.build_definition(context))
        if all((state.get("ResultWriter") or {}).get("Resource") for _, state, _ in maps):
            return None  # every Map exports where its own ResultWriter says
        return self.default_results_uri(context)

    def _own_writer_location(self, context: Context) -> str | None:
        """``s3://bucket/prefix`` of the one Distributed Map's own ResultWriter when both are literal.

        That is where a failed run's manifest is, which the execution's output does not say; ``None`` when the
        definition chooses it at run time or has several Distributed Maps.

        :param context: The task context.
        """
        maps = list(iter_distributed_maps(self.build_definition(context)))
        if len(maps) != 1:
            return None
        _, state, query_language = maps[0]
        writer = state.get("ResultWriter") or {}
        fields = writer.get("Arguments" if query_language == "JSONata" else "Parameters") or {}
        bucket, prefix = fields.get("Bucket"), fields.get("Prefix", "")
        if not isinstance(bucket, str) or not isinstance(prefix, str) or "{%" in bucket + prefix:
            return None  # chosen at run time
        uri = s3_uri(bucket, prefix)
        try:
            parse_s3_uri(uri)
        except ValueError:  # not a bucket name S3 accepts: the run failed on it, not on its items
            return None
        return uri

    @property
    def _locations_in_input(self) -> bool:
        """Whether a Map's S3 locations travel in the execution input (:meth:`_deployment`).

        Not for a full ``definition`` (deployed as written), nor with a given execution name, which may be the
        same in every run: a definition per run (its results prefix carries the run) keeps concurrent runs on
        state machines of their own.
        """
        return self.definition is None and not self.execution_name

    def _deployment(self, context: Context) -> tuple[dict[str, Any], dict[str, Any]]:
        """The definition to deploy and the execution input to start it with.

        A definition built from the building blocks reads its S3 locations from the execution input
        (:func:`~airflow_distmap.definitions.locations.lift_locations`): runs whose templated URIs render
        differently share one definition, so one state machine.

        :param context: The task context.
        """
        execution_input = self.build_execution_input(context)
        definition = self._deployable_definition(context)
        if not self._locations_in_input:
            return definition, execution_input
        definition, locations = lift_locations(definition)
        if locations and LOCATIONS_KEY in execution_input:
            raise ValueError(
                f"execution_input has the key {LOCATIONS_KEY!r}, which carries the S3 locations of a Map "
                "built from the building blocks. To fix this, rename that key."
            )
        return definition, {**execution_input, **locations}

    def _deployable_definition(self, context: Context) -> dict[str, Any]:
        partition = self.hook.conn_partition
        definition = self.build_definition(context)
        if self.definition is None:  # built here: its service integrations in the connection's partition
            definition = in_partition(definition, partition)
        maps = list(iter_distributed_maps(definition))
        if not maps:
            raise ValueError(
                "The definition has no Distributed Map (a Map state with ItemProcessor.ProcessorConfig.Mode "
                "'DISTRIBUTED'). To fix this, add one, or use the building blocks (function_name=...)."
            )
        # Unless results_uri or execution_name is given, the writer appends the execution name at run time.
        per_execution = not (self.results_uri or self.execution_name)
        if per_execution:
            target = self._default_results_base(context)
        else:
            target = self.results_uri or self.default_results_uri(context)
        if target is not None:  # a Map with a ResultWriter of its own keeps it
            return ensure_result_writer(
                definition, str(target), per_execution=per_execution, partition=partition
            )
        missing = [name for name, state, _ in maps if not (state.get("ResultWriter") or {}).get("Resource")]
        if missing:
            raise ValueError(
                f"Distributed Map state(s) {missing} do not export results to S3, no results_uri was given "
                "and no ItemReader names a bucket to default to. To fix this, pass "
                "results_uri='s3://bucket/prefix'."
            )
        return definition

    def execute(self, context: Context) -> dict[str, Any]:
        """Validate, deploy, start (or attach / reuse / redrive), wait, then summarise."""
        self._execution_arn = None  # set once this try starts or finds its execution
        self._try = _try_number(context)
        self._reserve_links(context)
        with refused_arguments(self.log):
            self._check_rendered_arguments()
            self._check_rendered_settings()
            self.preflight(context)
            definition, execution_input = self._deployment(context)
            _check_size(definition, "The state machine definition", MAX_DEFINITION_BYTES)
            _check_size(execution_input, "execution_input", MAX_INPUT_BYTES)
            self.check_definition(definition)
            machine_name = self._machine_name(context, definition)
            self.check_role(machine_name)
        name = self._execution_name(context)
        self.claim(context)
        reused = self.reusable_execution(context)
        if reused is not None:
            self.log.info("Execution %s of this task run already SUCCEEDED: reusing its results", reused)
            self._persist_execution_link(context, reused)
            return self._complete(context, reused)

        previous = self._running_under_another_definition(machine_name, name, report_closed=True)
        if previous is not None:
            execution_arn = self._execution_arn = previous
            min_redrive_count = 0
            self._persist_execution_link(context, execution_arn)
        else:
            try:
                started = self._retrying(
                    self._start_or_resume, context, machine_name, definition, name, execution_input
                )
            except ClientError as error:
                if error_code(error) != "InvalidDefinition":
                    raise
                raise InvalidTaskArgumentsError(
                    f"Step Functions refused the state machine definition: {error}. To fix this, correct "
                    "the definition or the arguments it is built from."
                ) from error
            if started is None:
                return self._complete(context, str(self._execution_arn))
            execution_arn, min_redrive_count = started

        return self._wait_then_complete(context, execution_arn, min_redrive_count)

    def _wait_then_complete(
        self, context: Context, execution_arn: str, min_redrive_count: int
    ) -> dict[str, Any]:
        """Defer to the trigger (``execute_complete`` follows), or run the same trigger here, then summarise.

        Waiting synchronously runs the trigger's own loop in this process, so both ways share every rule:
        eventual consistency, backoff on throttling, redrives still showing the earlier attempt, progress.
        """
        waited = self.waiter_delay * self.waiter_max_attempts
        deadline = time.time() + waited
        timeout_at = self._execution_timeout_at(context) if self.deferrable else None  # Airflow applies it
        trigger = DistributedMapTrigger(
            execution_arn=execution_arn,
            waiter_delay=self.waiter_delay,
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            botocore_config=self.botocore_config,
            stop_on_kill=self.stop_on_kill,
            min_redrive_count=min_redrive_count,
            try_number=_try_number(context),
            deadline=deadline if timeout_at is None else min(deadline, timeout_at),
            execution_timeout_at=timeout_at,
        )
        if self.deferrable:
            self.defer(
                trigger=trigger,
                method_name="execute_complete",
                kwargs={"execution_timeout_at": timeout_at},
                # Later than the trigger's own deadline, whose event names the execution and what to do.
                timeout=timedelta(seconds=waited + self.waiter_delay + DEFER_TIMEOUT_GRACE_SECONDS),
            )
        return self.execute_complete(context, wait_here(trigger))

    def _retrying(self, call: Callable[..., _T], *args: Any) -> _T:
        """``call(*args)``, again with capped exponential backoff while AWS throttles or fails transiently.

        botocore retries each call a few times; a longer outage before the execution starts would otherwise
        fail the task. The deploy and start steps are idempotent (describe first, a deterministic execution
        name, a redrive client token), so repeating them is safe. Gives up after
        :data:`TRANSIENT_RETRY_SECONDS`.
        """
        deadline = time.monotonic() + TRANSIENT_RETRY_SECONDS
        delay = 2.0
        while True:
            try:
                return call(*args)
            except Exception as error:
                if not is_transient(error) or time.monotonic() + delay > deadline:
                    raise
                self.log.warning("Transient AWS error (%s), trying again in %.0f s", error, delay)
                time.sleep(delay)
                delay = min(delay * 2, 60.0)

    def _reserve_links(self, context: Context) -> None:
        """Push the extra links' XComs empty, filled as the ARNs become known.

        When a task defers or fails, Airflow reads every extra link's XCom, and each one not pushed yet is
        logged as an ERROR ("XCom not found"), which would read as a failure in a healthy task's log.
        """
        if not self.do_xcom_push:
            return
        for link in self.operator_extra_links:
            context["ti"].xcom_push(key=link.key, value={})

    def _running_under_another_definition(
        self, machine_name: str, name: str, *, report_closed: bool = False
    ) -> str | None:
        """A retry's execution still running on the state machine of an earlier definition, if any.

        Execution names are unique per state machine, and a default state machine name carries a digest of the
        definition: after the DAG changed between tries, StartExecution on the new machine would not find the
        running execution of a try that died without stopping it (a killed worker). A first try has no
        predecessor, so only retries look (one ListStateMachines page per 1,000 state machines).

        :param report_closed: Log a warning for each closed execution found there: this try neither reuses nor
            redrives it (a redrive runs the definition an execution started with).
        """
        if not self._definition_scoped_machine or (self._try or 1) <= 1:
            return None
        try:
            found = self.hook.executions_elsewhere(machine_name[:-DIGEST_LENGTH], machine_name, name)
        except ClientError as error:  # e.g. no states:ListStateMachines permission: start as before
            self.log.warning("Could not look for the execution on other state machines: %s", error)
            return None
        for execution_arn, status in found.items():
            if status in EXECUTION_RUNNING_STATES:
                self.log.warning(
                    "Execution %s of this task run is still running on the state machine of an earlier "
                    "definition: attaching to it rather than starting a second one",
                    execution_arn,
                )
                return execution_arn
        for execution_arn, status in found.items() if report_closed else ():
            self.log.warning(
                "Execution %s of this task run ended %s on the state machine of an earlier definition; the "
                "DAG changed since, so this try neither reuses nor redrives it (a redrive runs the "
                "definition an execution started with): it starts an execution of its own on the new "
                "definition",
                execution_arn,
                status,
            )
        return None

    def _persist_execution_link(self, context: Context, execution_arn: str) -> None:
        ExecutionLink.persist(
            context=context,
            operator=self,
            region_name=self.hook.conn_region_name,
            aws_partition=self.hook.conn_partition,
            execution_arn=execution_arn,
        )

    def _start_or_resume(
        self,
        context: Context,
        machine_name: str,
        definition: dict[str, Any],
        name: str,
        execution_input: dict[str, Any],
    ) -> tuple[str, int] | None:
        """Deploy, then start, attach to or redrive the task run's execution.

        :return: the execution to wait for and the redrive count that marks its current attempt; ``None``
            when an earlier try's execution already SUCCEEDED (``self._execution_arn``: reuse its results).
        """
        ti = context["ti"]
        state_machine_arn = self.hook.create_or_update_state_machine(machine_name, definition, self.role_arn)
        StateMachineLink.persist(
            context=context,
            operator=self,
            region_name=self.hook.conn_region_name,
            aws_partition=self.hook.conn_partition,
            state_machine_arn=state_machine_arn,
        )
        # The default name is the task run's own: its earlier try's execution read locations the DAG changed.
        attach = (LOCATIONS_KEY,) if self._locations_in_input else ()
        start = self.hook.start_execution(state_machine_arn, name, execution_input, attach_despite=attach)
        base_name, number, raced = name, 1, 0
        while (reason := self._start_refusal(start, definition)) is not None:
            # AWS refuses to redrive it (closed over 14 days ago, the history quota...), a redrive would run
            # an outdated definition, or the execution runs another task's definition: the task run's next
            # execution, under a name every later try derives again.
            if start.started:
                raced += 1
                self._stop_raced_execution(start.execution_arn, machine_name, raced)
                state_machine_arn = self.hook.create_or_update_state_machine(
                    machine_name, definition, self.role_arn
                )
            number += 1
            name = successor_name(base_name, number)
            self.log.warning(
                "Execution %s of this task run is %s and cannot go on (%s): starting execution %s",
                start.execution_arn,
                "ABORTED" if start.started else start.status,
                reason,
                name,
            )
            start = self.hook.start_execution(state_machine_arn, name, execution_input, attach_despite=attach)
        execution_arn = self._execution_arn = start.execution_arn
        self._persist_execution_link(context, execution_arn)
        min_redrive_count = 0
        if start.status in EXECUTION_SUCCESS_STATES:
            self.log.info(
                "Execution %s already SUCCEEDED in an earlier try: reusing its results", execution_arn
            )
            return None
        if not start.started and start.status in EXECUTION_REDRIVE_STATES:
            self.log.info(
                "Execution %s ended %s in an earlier try: redriving it", execution_arn, start.status
            )
            min_redrive_count = int((start.description or {}).get("redriveCount") or 0) + 1
            try:
                self.hook.redrive_execution(execution_arn, client_token=f"{name[:50]}-try{ti.try_number}")
            except ClientError as error:
                # A try that died right after redriving it, while DescribeExecution still showed it closed
                # (it is eventually consistent): the execution runs again, so wait for it.
                if error_code(error) != "ExecutionNotRedrivable":
                    raise
                current = self.hook.describe_execution(execution_arn)
                if current.get("status") not in EXECUTION_RUNNING_STATES:
                    raise
                self.log.info("Execution %s is already being redriven: waiting for it", execution_arn)
                min_redrive_count = int(current.get("redriveCount") or 0)
        elif start.attached:
            self.log.info("Attached to execution %s started by an earlier try", execution_arn)
            if not self._definition_scoped_machine and self.hook.started_with_other_definition(
                execution_arn, definition
            ):
                # Waited for as it is: the DAG may have changed since that try, which is no reason to stop it.
                self.log.warning(
                    "Execution %s runs a definition of state machine %s other than this try's (the DAG "
                    "changed since the earlier try, or another run's update raced its start). To run this "
                    "try's definition instead, stop that execution and clear the task.",
                    execution_arn,
                    machine_name,
                )
        return execution_arn, min_redrive_count

    def _start_refusal(self, start: ExecutionStart, definition: dict[str, Any]) -> str | None:
        """Why the task run cannot go on with this execution; ``None`` when it can (start, attach, reuse...).

        An execution runs the definition it started with, redrives included. Only a ``state_machine_name`` of
        the user's can hold another definition than this task's (default names are definition-scoped): runs
        whose definitions differ (a backfill's dates with different CSV headers) update it in turn, and one
        may land between this task's deploy and its start; and StartExecution may run the previous
        definition for a few seconds after an update (spec, UpdateStateMachine). An execution started, or
        closed, with another definition is not this task's work. One still running from an earlier try is
        attached to as it is (its definition may be the DAG's before a change).

        :param start: What starting the task run's execution found or did.
        :param definition: The definition this try deployed.
        """
        if start.attached:
            return None
        if not start.started and start.status in EXECUTION_REDRIVE_STATES and not start.redrivable:
            return str((start.description or {}).get("redriveStatusReason") or "not redrivable")
        shared = not self._definition_scoped_machine or start.status in EXECUTION_REDRIVE_STATES
        if not shared or not self.hook.started_with_other_definition(start.execution_arn, definition):
            return None
        if start.started:
            return "it started on another definition of the state machine"
        if start.status in EXECUTION_REDRIVE_STATES:
            return "it ran another definition of the state machine, which a redrive would run again"
        return "it ran another definition of the state machine"

    def _stop_raced_execution(self, execution_arn: str, machine_name: str, raced: int) -> None:
        """Stop an execution that started on another definition, then wait to deploy again (or give up).

        The waits are :data:`RACED_START_WAITS`; once they are used, the task fails.

        :param execution_arn: The execution to stop.
        :param machine_name: The state machine's name.
        :param raced: How many of this try's starts ran another definition, this one included.
        """
        cause = (
            f"This execution started on a definition of state machine {machine_name} other than its task's: "
            "another task updated the state machine between this task's deploy and its start, or the task's "
            "own update had not reached StartExecution yet (AWS applies an update within seconds)."
        )
        self.hook.stop_execution(execution_arn, error="airflow_distmap.DefinitionRace", cause=cause)
        if raced > len(RACED_START_WAITS):
            raise DefinitionRaceError(
                f"{cause} This happened {raced} times in a row. To fix this, leave state_machine_name unset "
                "(each definition then gets a state machine of its own), or give runs whose definitions "
                "differ different names."
            )
        wait = RACED_START_WAITS[raced - 1]
        self.log.warning("%s Deploying it again in %d s.", cause, wait)
        time.sleep(wait)

    def _execution_timeout_at(self, context: Context) -> float | None:
        """When ``execution_timeout`` ends this try (seconds since the epoch), or ``None`` without one.

        Airflow 3 does not apply it while a task is deferred, so the trigger's deadline does.
        """
        if self.execution_timeout is None:
            return None
        started = getattr(context["ti"], "start_date", None)
        start = started.timestamp() if isinstance(started, datetime) else time.time()
        return start + self.execution_timeout.total_seconds()

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, execution_timeout_at: float | None = None
    ) -> dict[str, Any]:
        """Resume after the trigger fired: check the event, then summarise or raise.

        :param context: The task context.
        :param event: The trigger's event.
        :param execution_timeout_at: When ``execution_timeout`` ends the try, if it is set.
        :raises AirflowTaskTimeout: the execution was still running when ``execution_timeout`` ran out: it is
            stopped, as Airflow stops a running task that times out (unless ``stop_on_kill=False``).
        """
        if event is None:  # e.g. `airflow tasks test` of a task whose deferred run was interrupted
            raise DistributedMapError(
                "The task resumed without its trigger's event, so it does not know how its execution ended. "
                "To fix this, clear the task: it attaches to the task run's execution, or reuses its results."
            )
        validated = validate_execute_complete_event(event)
        if not validated.get("execution_arn"):
            raise DistributedMapError(
                f"The trigger's event names no execution: {validated}. To fix this, clear the task: it "
                "attaches to the task run's execution."
            )
        execution_arn = str(validated["execution_arn"])
        self._execution_arn = execution_arn
        self._try = _try_number(context)  # a stop names the try, so that the next one knows it is not its own
        if validated.get("reason") == "deadline":
            if execution_timeout_at is None:  # resume arguments lost (dag.test() keeps only the event)
                execution_timeout_at = validated.get("execution_timeout_at")
            if execution_timeout_at is not None and time.time() >= execution_timeout_at - CLOCK_SKEW_SECONDS:
                self.on_kill()
                self._execution_arn = None  # stopped: nothing left for Airflow's on_kill after a timeout
                outcome = "It was stopped" if self.stop_on_kill else "It keeps running (stop_on_kill=False)"
                raise AirflowTaskTimeout(
                    f"Execution {execution_arn} was still running when execution_timeout "
                    f"({self.execution_timeout}) ran out. {outcome}; a retry of the task redrives or "
                    "attaches to it. To fix this, raise execution_timeout (or leave it unset: "
                    "waiter_max_attempts bounds the wait)."
                )
            raise DistributedMapTimeout(self._timeout_message(execution_arn))
        if validated.get("reason") == "api_error":
            message = str(validated.get("message"))
            if "ExecutionDoesNotExist" in message:  # gone: a restarted local endpoint, another account...
                fix = (
                    "check that the AWS connection reaches the account and region it started in; clearing "
                    "the task starts the execution again (a restarted local endpoint keeps nothing)"
                )
            else:
                fix = (
                    "check the AWS connection (its region, credentials and states:DescribeExecution "
                    "permission) and that the execution exists"
                )
            raise DistributedMapError(
                f"Waiting for execution {execution_arn} failed: {message}. To fix this, {fix}."
            )
        return self._complete(context, execution_arn)

    def _timeout_message(self, execution_arn: str) -> str:
        waited = self.waiter_max_attempts * self.waiter_delay
        return (
            f"Execution {execution_arn} is still running after {waited} s. "
            "It keeps running in Step Functions; clearing the task attaches to it. To wait longer, raise "
            "waiter_max_attempts."
        )

    def _read_manifest(self, s3: S3Client, uri: str | None, *, required: bool) -> Manifest | None:
        if uri is None:
            return None
        try:
            return self._retrying(read_manifest, s3, uri)
        except ClientError as error:
            if is_transient(error):
                raise  # not a missing manifest: the task's retry reads it again
            if required:
                raise ResultsNotFoundError(
                    f"Could not read {uri}: {error}. To fix this, check that the role can write to the "
                    "results bucket and the Airflow connection can read it."
                ) from error
            return None

    def _describe_map_run(self, map_run_arn: str) -> dict[str, Any] | None:
        """DescribeMapRun, or ``None`` when it stays throttled: the counts then come from the result files.

        Its quota refills at one request per second per account, which many waiting tasks can use up.
        """
        try:
            return self.hook.describe_map_run(map_run_arn)
        except Exception as error:
            if not is_transient(error):
                raise
            self.log.warning(
                "DescribeMapRun of %s failed (%s): counting items from the result files instead",
                map_run_arn,
                error,
            )
            return None

    def _start_own_execution(
        self,
        context: Context,
        killed_arn: str,
        killer: int,
        definition: dict[str, Any],
        execution_input: dict[str, Any],
    ) -> dict[str, Any]:
        """Start this try's execution, not a redrive of one an earlier try's kill stopped on other locations.

        That execution read the S3 locations the DAG rendered before it changed (this try attached to it while
        it ran): a redrive would read them again and report them as this try's.
        """
        self.log.warning(
            "Execution %s was stopped by the kill of try %d of this task run; it read other S3 locations "
            "than this try's (the DAG changed since): starting this try's own execution instead of redriving",
            killed_arn,
            killer,
        )
        machine_name = self._machine_name(context, definition)
        name = self._execution_name(context)
        started = self._retrying(
            self._start_or_resume, context, machine_name, definition, name, execution_input
        )
        if started is None:
            return self._complete(context, str(self._execution_arn))
        execution_arn, min_redrive_count = started
        return self._wait_then_complete(context, execution_arn, min_redrive_count)

    def _complete(self, context: Context, execution_arn: str) -> dict[str, Any]:
        self._execution_arn = execution_arn
        execution = self._retrying(self.hook.describe_execution, execution_arn)
        status = str(execution["status"])
        if status in EXECUTION_RUNNING_STATES:
            # Redriven after the wait ended (from the console, or a redrive that showed late): wait again.
            self.log.info("Execution %s is %s again: waiting for it", execution_arn, status)
            return self._wait_then_complete(context, execution_arn, int(execution.get("redriveCount") or 0))
        killer, this_try = killing_try(execution), _try_number(context)
        if status == "ABORTED" and killer is not None and killer != this_try:
            # Clearing a deferred task cancels the old try's trigger (whose on_kill stops the execution) while
            # the new try starts: when the new try attached first, the stop is the old try's, not a user's.
            definition, execution_input = self._deployment(context)
            started_with = json.loads(execution.get("input") or "{}")
            if inputs_differ_only_in(started_with, execution_input, (LOCATIONS_KEY,)):
                return self._start_own_execution(context, execution_arn, killer, definition, execution_input)
            self.log.warning(
                "Execution %s was stopped by the kill of try %d of this task run, after this try attached to "
                "it: redriving it",
                execution_arn,
                killer,
            )
            name = execution_arn.rsplit(":", 1)[-1]
            self.hook.redrive_execution(execution_arn, client_token=f"{name[:45]}-kill{this_try}")
            redrives = int(execution.get("redriveCount") or 0) + 1
            return self._wait_then_complete(context, execution_arn, redrives)
        results_uri = self._results_uri(context)
        output = json.loads(execution["output"]) if execution.get("output") else None
        manifest_uri, map_run_arn = manifest_uri_from_output(output)
        if map_run_arn is None:
            map_run_arn = self.hook.latest_map_run_arn(execution_arn)
        if manifest_uri is None and map_run_arn:
            writer_uri = results_uri or self._own_writer_location(context)
            if writer_uri:
                manifest_uri = manifest_uri_for_map_run(writer_uri, map_run_arn)
        map_run = self._describe_map_run(map_run_arn) if map_run_arn else None
        if map_run_arn:
            MapRunLink.persist(
                context=context,
                operator=self,
                region_name=self.hook.conn_region_name,
                aws_partition=self.hook.conn_partition,
                map_run_arn=map_run_arn,
            )
        s3 = self.s3_hook.get_conn()
        succeeded = status in EXECUTION_SUCCESS_STATES
        manifest = self._read_manifest(s3, manifest_uri, required=succeeded)
        counts = counts_from_map_run(map_run)
        if map_run is None and manifest is not None:
            found = count_entries(s3, manifest)
            counts.update(
                total=sum(found.values()),
                succeeded=found["SUCCEEDED"],
                failed=found["FAILED"],
                pending=found["PENDING"],
            )
        if not succeeded:
            failed_items = (
                sample_failed_items(s3, manifest, self.failed_items_sample) if manifest is not None else []
            )
            failure = DistributedMapExecutionFailed(
                execution_arn=execution_arn,
                status=status,
                error=execution.get("error"),
                cause=execution.get("cause"),
                counts=counts,
                failed_items=failed_items,
                map_run_arn=map_run_arn,
                manifest_uri=manifest_uri if manifest is not None else None,
            )
            self.push_failure_summary(context, failure.summary())
            raise failure
        if manifest is None:
            raise ResultsNotFoundError(
                f"Execution {execution_arn} SUCCEEDED but its output names no ResultWriter manifest. To fix "
                "this, pass results_uri so the Distributed Map exports its results to S3."
            )
        run = CompletedRun(
            execution=execution,
            state_machine_arn=str(execution.get("stateMachineArn", "")),
            map_run=map_run,
            manifest=manifest,
            manifest_uri=manifest_uri,
            counts=counts,
            s3=s3,
            results_uri=results_uri,
        )
        summary = self.on_run_complete(context, run)
        self.log.info(
            "Execution %s SUCCEEDED: %s; manifest %s", execution_arn, summary.get("counts"), manifest_uri
        )
        self.explain_counts(manifest_uri)
        return summary

    def push_failure_summary(self, context: Context, summary: dict[str, Any]) -> None:
        """Push a failed run's summary to XCom under the key ``summary`` (for failure callbacks).

        An XCom backend that refuses it is logged: the run's own failure is what the task raises.

        :param context: The task context.
        :param summary: The summary.
        """
        try:
            context["ti"].xcom_push(key="summary", value=summary)
        except Exception as error:
            self.log.warning("Could not push the failure summary to XCom: %s", error)

    def explain_counts(self, manifest_uri: str | None) -> None:
        """Log what the summary's ``counts`` count: items by child execution, so not rows a function reports.

        :param manifest_uri: The run's manifest, which ``airflow-distmap results`` reads.
        """
        self.log.info(
            "counts are Map Run items (by child execution status): rows a row_handler function reported as "
            "failed inside a child that succeeded count as succeeded. To see row errors, run "
            "'airflow-distmap results %s', or use CsvRowProcessingOperator",
            manifest_uri,
        )

    def on_kill(self) -> None:
        """Stop the execution this task started or attached to."""
        if not self.stop_on_kill or not self._execution_arn:
            return
        try:
            self.hook.stop_execution(
                self._execution_arn,
                error=KILLED_ERROR,
                cause=kill_cause(False, self._try),
            )
        except (ClientError, BotoCoreError) as error:
            self.log.warning("Could not stop execution %s: %s", self._execution_arn, error)


#: How long the deploy and start steps keep retrying throttling and transient AWS errors.
TRANSIENT_RETRY_SECONDS: Final = 15 * 60

_T = TypeVar("_T")


def __getattr__(name: str) -> Any:
    """PEP 562: ``CsvRowProcessingOperator`` is part of this module's public contract, defined elsewhere."""
    if name == "CsvRowProcessingOperator":
        from airflow_distmap.operators.csv_row_processing import CsvRowProcessingOperator

        return CsvRowProcessingOperator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
