"""Hook for AWS Step Functions state machines that run Distributed Maps."""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Final

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from airflow_distmap.exceptions import ExecutionNameConflict, StateMachineTypeMismatch
from airflow_distmap.naming import input_scoped_name

if TYPE_CHECKING:
    from botocore.config import _RetryDict
    from mypy_boto3_stepfunctions import SFNClient

EXECUTION_SUCCESS_STATES = frozenset({"SUCCEEDED"})
"""Execution statuses that mean the run finished successfully."""

EXECUTION_FAILURE_STATES = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})
"""Execution statuses the provider treats as terminal failures."""

EXECUTION_REDRIVE_STATES = EXECUTION_FAILURE_STATES
"""Closed statuses from which RedriveExecution can restart an execution (when ``redriveStatus`` allows)."""

EXECUTION_RUNNING_STATES = frozenset({"RUNNING", "PENDING_REDRIVE"})
"""Statuses of an execution that is still in progress.

``PENDING_REDRIVE`` means a redrive was accepted and the execution waits to run again (spec: ListExecutions,
DescribeExecution; children waiting for concurrency after a redrive show it too), so it is waited on, never
reported as an end; the task's ``execution_timeout`` and the waiter's attempts still bound the wait."""

DEFAULT_RETRIES: _RetryDict = {"mode": "standard", "total_max_attempts": 10}
"""botocore retries of every Step Functions call unless the hook's ``botocore_config`` or the connection's
``config_kwargs`` set ``retries``: throttling (CreateStateMachine, UpdateStateMachine and DescribeMapRun
refill at one request per second), 5xx answers and connection errors are retried with jittered exponential
backoff (up to 20 s between attempts), so a backfill deploying many tasks at once does not fail on quotas."""


def with_default_retries(configured: Config | None) -> Config:
    """``configured`` with :data:`DEFAULT_RETRIES` when it sets no ``retries`` of its own.

    :param configured: the botocore configuration of a hook (``botocore_config`` or the connection's).
    """
    if configured is None:
        return Config(retries=DEFAULT_RETRIES)
    if getattr(configured, "retries", None) is None:  # set at runtime by Config's own options
        return configured.merge(Config(retries=DEFAULT_RETRIES))
    return configured


def no_role_arn_message(name: str) -> str:
    """The error for a state machine that must be created without a role.

    :param name: The state machine name.
    """
    return (
        f"State machine {name!r} does not exist and no role_arn was given. To fix this, pass role_arn: "
        "the ARN of an IAM role Step Functions can assume to invoke the Lambda function and read/write S3."
    )


#: A StartExecution answer whose ``startDate`` is older than this is AWS's idempotent answer for a running
#: execution (an earlier try's), not a new one. The log's wording depends on it, and whether the operator
#: checks the definition a new execution started with under a ``state_machine_name`` of the user's (an earlier
#: try's is attached to as it is): short enough for a retry seconds after a killed worker, long enough for the
#: clock skew between Airflow and AWS.
_IDEMPOTENT_ANSWER_AGE: Final = timedelta(seconds=5)


@dataclass(frozen=True)
class ExecutionStart:
    """What :meth:`DistributedMapHook.start_execution` found or did.

    :param execution_arn: ARN of the execution this task run owns.
    :param started: ``True`` when this call started it (or AWS answered idempotently for a running one).
    :param status: ``RUNNING`` for a started or attached execution, else the closed execution's status.
    :param redrivable: Whether the closed execution can be redriven (``redriveStatus == REDRIVABLE``).
    :param description: The DescribeExecution response for an existing execution, else ``None``.
    :param same_input: Whether an existing execution has the input this try computed.
    """

    execution_arn: str
    started: bool
    status: str
    redrivable: bool = False
    description: dict[str, Any] | None = None
    same_input: bool = True

    @property
    def attached(self) -> bool:
        """``True`` when an execution with this name was already running and is reused."""
        return not self.started and self.status in EXECUTION_RUNNING_STATES


def awaits_redrive(description: Mapping[str, Any], min_redrive_count: int) -> bool:
    """Whether a DescribeExecution answer predates the redrive this task asked for.

    RedriveExecution is eventually consistent (spec, Redrive): right after it, DescribeExecution may still
    show the closed attempt. Until ``redriveCount`` reaches the count the redrive gives, a closed status is
    the old one and the execution counts as restarting.

    :param description: a DescribeExecution response.
    :param min_redrive_count: the ``redriveCount`` after this task's redrive (0: no redrive asked).
    """
    status = str(description.get("status"))
    return (
        status in EXECUTION_REDRIVE_STATES and int(description.get("redriveCount") or 0) < min_redrive_count
    )


def execution_arn_for(state_machine_arn: str, name: str) -> str:
    """The ARN StartExecution gives ``name`` on ``state_machine_arn``.

    :param state_machine_arn: ``arn:<partition>:states:<region>:<account>:stateMachine:<sm>``.
    :param name: The execution name.
    """
    head, _, machine = state_machine_arn.partition(":stateMachine:")
    if not machine:
        raise ValueError(
            f"Invalid state machine ARN {state_machine_arn!r}. To fix this, pass an ARN like "
            "'arn:aws:states:us-east-1:123456789012:stateMachine:my-machine'."
        )
    return f"{head}:execution:{machine.split(':', 1)[0]}:{name}"


def _logging_with_defaults(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """A ``loggingConfiguration`` with AWS's defaults filled in, to tell a real change from a default."""
    config = config or {}
    return {
        "level": config.get("level", "OFF"),
        "includeExecutionData": bool(config.get("includeExecutionData", False)),
        "destinations": list(config.get("destinations") or []),
    }


def error_code(error: BaseException) -> str:
    """The AWS error code of a ``ClientError`` (``""`` for any other exception).

    :param error: The exception a call raised.
    """
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return ""


def latest_map_run_arn(runs: list[dict[str, Any]]) -> str:
    """The ARN of the most recently started of ``runs`` (ListMapRuns entries; at least one).

    :param runs: ListMapRuns' ``mapRuns``.
    """
    return str(max(runs, key=lambda run: run.get("startDate") or 0)["mapRunArn"])


def _as_json(value: dict[str, Any] | str | None) -> Any:
    if value is None:
        return None
    return json.loads(value) if isinstance(value, str) else value


def inputs_differ_only_in(started_with: Any, wanted: Any, keys: Collection[str]) -> bool:
    """Whether two execution inputs differ, and only in some of the top-level ``keys``.

    :param started_with: The input an execution started with.
    :param wanted: The input a try computes now.
    :param keys: Top-level keys of those JSON objects in which they may differ.
    """
    if started_with == wanted or not isinstance(started_with, dict) or not isinstance(wanted, dict):
        return False
    return {k: v for k, v in started_with.items() if k not in keys} == {
        k: v for k, v in wanted.items() if k not in keys
    }


class DistributedMapHook(AwsBaseHook):
    """Interact with AWS Step Functions for Distributed Map runs: a thin layer over its client.

    Additional arguments (such as ``aws_conn_id``) are passed down to the underlying AwsBaseHook.

    .. seealso::
        - :class:`airflow.providers.amazon.aws.hooks.base_aws.AwsBaseHook`
        - :external+boto3:py:class:`boto3.client("stepfunctions") <SFN.Client>`
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["client_type"] = "stepfunctions"
        super().__init__(*args, **kwargs)

    @property
    def config(self) -> Config:
        """The botocore configuration, with :data:`DEFAULT_RETRIES` when nothing configured retries."""
        return with_default_retries(super().config)

    @property
    def client(self) -> SFNClient:
        """The (cached) boto3 Step Functions client."""
        return self.conn  # type: ignore[no-any-return]

    # -- state machines ------------------------------------------------------------------------------

    def find_state_machine(self, name: str) -> str | None:
        """The ARN of the state machine called ``name``, or ``None``.

        Builds the ARN from the caller's account (STS GetCallerIdentity, cached) and describes it, which is
        one strongly addressed call; lists state machines only when the account cannot be determined or that
        call is refused (``AccessDeniedException``, ``InvalidArn``).

        .. seealso::
            - :external+boto3:py:meth:`SFN.Client.describe_state_machine`
            - :external+boto3:py:meth:`SFN.Client.list_state_machines`

        :param name: The state machine name.
        """
        try:
            account = self.account_id
        except (ClientError, BotoCoreError) as error:
            self.log.debug("Could not determine the AWS account (%s); listing state machines", error)
        else:
            arn = f"arn:{self.conn_partition}:states:{self.conn_region_name}:{account}:stateMachine:{name}"
            try:
                self.client.describe_state_machine(stateMachineArn=arn)
            except ClientError as error:
                if error_code(error) == "StateMachineDoesNotExist":
                    return None
                if error_code(error) not in ("InvalidArn", "AccessDeniedException"):
                    raise
            else:
                return arn
        for page in self.client.get_paginator("list_state_machines").paginate():
            for machine in page.get("stateMachines", []):
                if machine["name"] == name:
                    return str(machine["stateMachineArn"])
        return None

    def create_or_update_state_machine(
        self,
        name: str,
        definition: dict[str, Any] | str,
        role_arn: str | None,
        *,
        type: str = "STANDARD",
        logging_configuration: dict[str, Any] | None = None,
        tracing_configuration: dict[str, Any] | None = None,
    ) -> str:
        """Create the state machine ``name``, or update it when its definition, role or settings differ.

        Describes first: an unchanged deploy makes no write call. Definitions are compared as parsed JSON,
        so formatting and key order do not count as changes.

        .. seealso::
            - :external+boto3:py:meth:`SFN.Client.describe_state_machine`
            - :external+boto3:py:meth:`SFN.Client.create_state_machine`
            - :external+boto3:py:meth:`SFN.Client.update_state_machine`

        :param name: The state machine name.
        :param definition: The ASL definition (dict or JSON text).
        :param role_arn: The execution role; ``None`` keeps an existing machine's role (and is an error
            when the machine must be created).
        :param type: ``STANDARD`` (required for Distributed Map parents) or ``EXPRESS``.
        :param logging_configuration: CloudWatch Logs settings; ``None`` leaves them as they are.
        :param tracing_configuration: X-Ray settings; ``None`` leaves them as they are.
        :return: The state machine ARN.
        """
        wanted = _as_json(definition)
        text = json.dumps(wanted, separators=(",", ":"))
        arn = self.find_state_machine(name)
        if arn is None:
            if not role_arn:
                raise ValueError(no_role_arn_message(name))
            params: dict[str, Any] = {"name": name, "definition": text, "roleArn": role_arn, "type": type}
            if logging_configuration is not None:
                params["loggingConfiguration"] = logging_configuration
            if tracing_configuration is not None:
                params["tracingConfiguration"] = tracing_configuration
            try:
                arn = str(self.client.create_state_machine(**params)["stateMachineArn"])
            except ClientError as error:
                # AWS raises when another task created it meanwhile with another definition: update that.
                if error_code(error) != "StateMachineAlreadyExists":
                    raise
                arn = self.find_state_machine(name)
                if arn is None:
                    raise
            else:
                self.log.info("Created state machine %s", arn)
                return arn

        current = self.client.describe_state_machine(stateMachineArn=arn)
        if current.get("type", "STANDARD") != type:
            raise StateMachineTypeMismatch(
                f"State machine {arn} is {current.get('type')} but {type} was requested; the type cannot be "
                "changed. To fix this, use another state_machine_name or delete the existing state machine."
            )
        changes: dict[str, Any] = {}
        if json.loads(current["definition"]) != wanted:
            changes["definition"] = text
        if role_arn and current.get("roleArn") != role_arn:
            changes["roleArn"] = role_arn
        if logging_configuration is not None and _logging_with_defaults(
            current.get("loggingConfiguration")
        ) != _logging_with_defaults(logging_configuration):
            changes["loggingConfiguration"] = logging_configuration
        if tracing_configuration is not None and bool(
            (current.get("tracingConfiguration") or {}).get("enabled")
        ) != bool(tracing_configuration.get("enabled")):
            changes["tracingConfiguration"] = tracing_configuration
        if not changes:
            self.log.info("State machine %s is up to date", arn)
            return arn
        if "definition" not in changes and "roleArn" not in changes:
            # UpdateStateMachine needs at least one of the two (MissingRequiredParameter otherwise).
            changes["definition"] = text
        self.client.update_state_machine(stateMachineArn=arn, **changes)
        self.log.info("Updated state machine %s (%s)", arn, ", ".join(sorted(changes)))
        return arn

    def definition_diagnostics(
        self, definition: dict[str, Any] | str, type: str = "STANDARD"
    ) -> list[dict[str, Any]]:
        """What Step Functions finds in ``definition`` (ValidateStateMachineDefinition); ``[]`` if nothing.

        .. seealso::
            - :external+boto3:py:meth:`SFN.Client.validate_state_machine_definition`

        :param definition: The ASL definition (dict or JSON text).
        :param type: ``STANDARD`` or ``EXPRESS``.
        :return: The diagnostics (``severity`` ``ERROR`` or ``WARNING``, ``code``, ``message`` and, when
            known, ``location``); any ``ERROR`` means CreateStateMachine would refuse the definition.
        """
        text = json.dumps(_as_json(definition), separators=(",", ":"))
        answer = self.client.validate_state_machine_definition(
            definition=text,
            type=type,  # type: ignore[arg-type]
            severity="WARNING",
        )
        diagnostics = [dict(d) for d in answer.get("diagnostics", [])]
        if answer.get("result") == "FAIL" and not any(d.get("severity") == "ERROR" for d in diagnostics):
            # Warnings filled the page (maxResults): "rely only on result", as the API reference says.
            diagnostics.append(
                {
                    "severity": "ERROR",
                    "code": "UNLISTED",
                    "message": "Step Functions refuses the definition; its errors were cut from the answer "
                    "behind warnings",
                }
            )
        return diagnostics

    # -- executions ----------------------------------------------------------------------------------

    def start_execution(
        self,
        state_machine_arn: str,
        name: str,
        execution_input: dict[str, Any] | str | None = None,
        *,
        attach_despite: Collection[str] = (),
    ) -> ExecutionStart:
        """Start an execution called ``name``, or find the execution that already has that name.

        StartExecution is idempotent only while an execution with the same name and input is running
        (``docs/distributed-map-spec.md`` §7); otherwise it raises ``ExecutionAlreadyExists``. Then this
        method describes that execution: a running one with the same input is attached to; a closed one with
        the same input is returned with its status so the caller decides (reuse a SUCCEEDED result, redrive a
        FAILED one). A closed one with another input (the input file was replaced since) is left alone: the
        execution starts under :func:`~airflow_distmap.naming.input_scoped_name` instead, found the same way.

        .. seealso::
            - :external+boto3:py:meth:`SFN.Client.start_execution`

        :param state_machine_arn: The state machine ARN.
        :param name: The execution name (see :func:`airflow_distmap.naming.execution_name`).
        :param execution_input: The execution input (dict or JSON text); ``None`` sends ``{}``.
        :param attach_despite: Top-level input keys in which a running execution of this name may differ and
            still be attached to (with a warning): for names that only one task run derives, whose earlier try
            started it before the DAG changed those values.
        :raises ExecutionNameConflict: An execution with this name is running with a different input (other
            than in ``attach_despite``).
        """
        wanted = _as_json(execution_input)
        if wanted is None:
            wanted = {}
        text = json.dumps(wanted, separators=(",", ":"))
        start = self._start_or_find(state_machine_arn, name, text, wanted, attach_despite)
        if start.started or start.status in EXECUTION_RUNNING_STATES or start.same_input:
            return start
        renamed = input_scoped_name(name, text)
        self.log.info(
            "Execution %s ended %s with another input than this try's: starting %s for this input",
            start.execution_arn,
            start.status,
            renamed,
        )
        return self._start_or_find(state_machine_arn, renamed, text, wanted, attach_despite)

    def _start_or_find(
        self, state_machine_arn: str, name: str, text: str, wanted: Any, attach_despite: Collection[str]
    ) -> ExecutionStart:
        called = datetime.now(timezone.utc)
        try:
            response = self.client.start_execution(stateMachineArn=state_machine_arn, name=name, input=text)
        except ClientError as error:
            if error_code(error) != "ExecutionAlreadyExists":
                raise
        else:
            arn = str(response["executionArn"])
            started = response.get("startDate")
            if isinstance(started, datetime) and started < called - _IDEMPOTENT_ANSWER_AGE:
                # StartExecution answers a running execution of that name and input idempotently.
                self.log.info("Attaching to execution %s, running since %s", arn, started.isoformat())
                return ExecutionStart(execution_arn=arn, started=False, status="RUNNING")
            self.log.info("Started execution %s", arn)
            return ExecutionStart(execution_arn=arn, started=True, status="RUNNING")

        arn = execution_arn_for(state_machine_arn, name)
        existing = self.describe_execution(arn)
        status = str(existing["status"])
        same_input = _as_json(existing.get("input") or "{}") == wanted
        if status in EXECUTION_RUNNING_STATES:
            if inputs_differ_only_in(_as_json(existing.get("input") or "{}"), wanted, attach_despite):
                self.log.warning(
                    "Attaching to running execution %s, which an earlier try started with other %s (the DAG "
                    "changed since): its results are this task run's",
                    arn,
                    ", ".join(sorted(attach_despite)),
                )
                return ExecutionStart(execution_arn=arn, started=False, status=status, description=existing)
            if not same_input:
                raise ExecutionNameConflict(
                    f"Execution {arn} is running with a different input than this task run computed. "
                    "To fix this, wait for it to finish or stop it, then clear the task; or pass "
                    "execution_name to start a separate execution."
                )
            self.log.info("Attaching to running execution %s", arn)
            return ExecutionStart(execution_arn=arn, started=False, status=status, description=existing)
        redrivable = existing.get("redriveStatus") == "REDRIVABLE"
        self.log.info("Execution %s already exists and is %s (redrivable: %s)", arn, status, redrivable)
        return ExecutionStart(
            execution_arn=arn,
            started=False,
            status=status,
            redrivable=redrivable,
            description=existing,
            same_input=same_input,
        )

    def executions_elsewhere(self, machine_prefix: str, exclude_machine: str, name: str) -> dict[str, str]:
        """The executions called ``name`` on state machines ``<machine_prefix><digest>``: status by ARN.

        The operators' default state machine names are the task's prefix plus a hex digest of the definition;
        ``exclude_machine`` (the current one) is skipped.

        .. seealso::
            - :external+boto3:py:meth:`SFN.Client.list_state_machines`
            - :external+boto3:py:meth:`SFN.Client.describe_execution`

        :param machine_prefix: The state machine names' common prefix, up to the digest.
        :param exclude_machine: The state machine not to look at.
        :param name: The execution name.
        """
        found: dict[str, str] = {}
        for page in self.client.get_paginator("list_state_machines").paginate():
            for machine in page.get("stateMachines", []):
                machine_name = str(machine["name"])
                digest = machine_name[len(machine_prefix) :]
                if (
                    machine_name == exclude_machine
                    or not machine_name.startswith(machine_prefix)
                    or not re.fullmatch(r"[0-9a-f]+", digest)
                ):
                    continue
                arn = execution_arn_for(str(machine["stateMachineArn"]), name)
                try:
                    found[arn] = str(self.client.describe_execution(executionArn=arn)["status"])
                except ClientError as error:
                    if error_code(error) != "ExecutionDoesNotExist":
                        raise
        return found

    def describe_execution(self, execution_arn: str) -> dict[str, Any]:
        """Describe an execution.

        .. seealso::
            - :external+boto3:py:meth:`SFN.Client.describe_execution`

        :param execution_arn: The execution ARN.
        """
        return dict(self.client.describe_execution(executionArn=execution_arn))

    def started_with_other_definition(self, execution_arn: str, definition: dict[str, Any] | str) -> bool:
        """Whether an execution started with another definition than ``definition``.

        A redrive runs the definition the execution started with, not a later update. When that definition
        cannot be read (no ``states:DescribeStateMachineForExecution`` permission), this says ``False`` and
        logs a warning.

        .. seealso::
            - :external+boto3:py:meth:`SFN.Client.describe_state_machine_for_execution`

        :param execution_arn: The execution ARN.
        :param definition: The definition deployed now (dict or JSON text).
        """
        try:
            response = self.client.describe_state_machine_for_execution(executionArn=execution_arn)
        except (ClientError, BotoCoreError) as error:
            self.log.warning(
                "Could not read the definition execution %s started with: %s", execution_arn, error
            )
            return False
        return bool(json.loads(response["definition"]) != _as_json(definition))

    def stop_execution(self, execution_arn: str, error: str | None = None, cause: str | None = None) -> None:
        """Stop a running execution (its Map Run aborts its running children).

        .. seealso::
            - :external+boto3:py:meth:`SFN.Client.stop_execution`

        :param execution_arn: The execution ARN.
        :param error: Error code recorded on the execution (at most 256 characters).
        :param cause: Cause recorded on the execution (at most 32768 characters).
        """
        params: dict[str, Any] = {"executionArn": execution_arn}
        if error:
            params["error"] = error[:256]
        if cause:
            params["cause"] = cause[:32768]
        self.client.stop_execution(**params)
        self.log.info("Stopped execution %s", execution_arn)

    def redrive_execution(self, execution_arn: str, client_token: str | None = None) -> None:
        """Redrive a FAILED, TIMED_OUT or ABORTED execution: only its unsuccessful steps and items run again.

        .. seealso::
            - :external+boto3:py:meth:`SFN.Client.redrive_execution`

        :param execution_arn: The execution ARN.
        :param client_token: Idempotency token (1 to 64 characters), so a repeated call redrives once.
        """
        params: dict[str, Any] = {"executionArn": execution_arn}
        if client_token:
            params["clientToken"] = client_token[:64]
        self.client.redrive_execution(**params)
        self.log.info("Redriving execution %s", execution_arn)

    # -- map runs ------------------------------------------------------------------------------------

    def list_map_runs(self, execution_arn: str) -> list[dict[str, Any]]:
        """List the Map Runs an execution started, following pagination.

        .. seealso::
            - :external+boto3:py:meth:`SFN.Client.list_map_runs`

        :param execution_arn: The parent execution ARN.
        """
        runs: list[dict[str, Any]] = []
        for page in self.client.get_paginator("list_map_runs").paginate(executionArn=execution_arn):
            runs.extend(dict(run) for run in page.get("mapRuns", []))
        return runs

    def describe_map_run(self, map_run_arn: str) -> dict[str, Any]:
        """Describe a Map Run: status, ``itemCounts`` and ``executionCounts``.

        .. seealso::
            - :external+boto3:py:meth:`SFN.Client.describe_map_run`

        :param map_run_arn: The Map Run ARN.
        """
        return dict(self.client.describe_map_run(mapRunArn=map_run_arn))

    def latest_map_run_arn(self, execution_arn: str) -> str | None:
        """The ARN of the most recently started Map Run of an execution, or ``None``.

        :param execution_arn: The execution ARN.
        """
        runs = self.list_map_runs(execution_arn)
        return latest_map_run_arn(runs) if runs else None

    # -- async variants (aiobotocore), used by the trigger on one open client -------------------------

    @staticmethod
    async def async_describe_execution(client: Any, execution_arn: str) -> dict[str, Any]:
        """Describe an execution with an open aiobotocore client (``async with await hook.get_async_conn()``).

        :param client: The aiobotocore Step Functions client.
        :param execution_arn: The execution ARN.
        """
        return dict(await client.describe_execution(executionArn=execution_arn))

    @staticmethod
    async def async_list_map_runs(client: Any, execution_arn: str) -> list[dict[str, Any]]:
        """List an execution's Map Runs (first page: a Distributed Map parent rarely has more than a few).

        :param client: The aiobotocore Step Functions client.
        :param execution_arn: The parent execution ARN.
        """
        response = await client.list_map_runs(executionArn=execution_arn)
        return [dict(run) for run in response.get("mapRuns", [])]

    @staticmethod
    async def async_describe_map_run(client: Any, map_run_arn: str) -> dict[str, Any]:
        """Describe a Map Run with an open aiobotocore client.

        :param client: The aiobotocore Step Functions client.
        :param map_run_arn: The Map Run ARN.
        """
        return dict(await client.describe_map_run(mapRunArn=map_run_arn))
