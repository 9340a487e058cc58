"""Exceptions raised by the airflow-distmap provider: one base class and narrow subclasses."""

from __future__ import annotations

import json
from typing import Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException


class DistributedMapError(AirflowException):
    """Raised when a Distributed Map task cannot complete; base class of the provider's errors."""


class StateMachineTypeMismatch(DistributedMapError):
    """Raised when an existing state machine has a different type (STANDARD/EXPRESS) than requested."""


class ExecutionNameConflict(DistributedMapError):
    """Raised when the execution name of this task run is taken by an execution that cannot be reused."""


class DefinitionRaceError(DistributedMapError):
    """Raised when other tasks kept updating a shared state machine between this task's deploy and start."""


class ResultsNotFoundError(DistributedMapError):
    """Raised when a finished execution's manifest.json or result files cannot be located or read."""


class InvalidTaskArgumentsError(DistributedMapError, AirflowFailException, ValueError):
    """Raised before any AWS call when a rendered argument or the built definition is invalid (no retry)."""


class ItemSourceNotFoundError(DistributedMapError, AirflowFailException):
    """Raised before anything is created when the ItemReader's bucket or object does not exist."""


class ItemSourceContentError(DistributedMapError, AirflowFailException):
    """Raised before anything is created when the ItemReader would read no items, or fail on its source."""


class FunctionNotFoundError(DistributedMapError, AirflowFailException):
    """Raised before anything is created when a Lambda function the state machine invokes does not exist."""


class ResultsLocationError(DistributedMapError, AirflowFailException):
    """Raised before anything is created when ``results_uri`` cannot be used.

    Its bucket does not exist (the CSV operator), or the task run's ownership mark cannot be written there.
    """


class ResultsPrefixInUseError(ResultsLocationError):
    """Raised before anything is created when ``results_uri`` already holds another task run's results."""


class DistributedMapTimeout(DistributedMapError):
    """Raised when the execution is still running after ``waiter_max_attempts * waiter_delay`` seconds."""


class DistributedMapExecutionFailed(DistributedMapError):
    """Raised when the Step Functions execution ends in FAILED, TIMED_OUT or ABORTED.

    :param execution_arn: ARN of the execution.
    :param status: Its final status.
    :param error: The Step Functions error name (e.g. ``States.ExceedToleratedFailureThreshold``).
    :param cause: The Step Functions cause text.
    :param counts: Item counts of the Map Run (``total``, ``succeeded``, ``failed``...).
    :param failed_items: A few failed items read from the ``FAILED_*.json`` result files.
    :param map_run_arn: ARN of the Map Run, when one started.
    :param manifest_uri: ``s3://`` URI of the exported manifest, when the Map Run wrote one.
    """

    def __init__(
        self,
        *,
        execution_arn: str,
        status: str,
        error: str | None = None,
        cause: str | None = None,
        counts: dict[str, int] | None = None,
        failed_items: list[dict[str, Any]] | None = None,
        map_run_arn: str | None = None,
        manifest_uri: str | None = None,
    ) -> None:
        self.execution_arn = execution_arn
        self.status = status
        self.error = error
        self.cause = cause
        self.counts = dict(counts or {})
        self.failed_items = list(failed_items or [])
        self.map_run_arn = map_run_arn
        self.manifest_uri = manifest_uri
        super().__init__(self._message())

    def summary(self) -> dict[str, Any]:
        """The XCom the operator pushes under the key ``summary`` before raising (for failure callbacks)."""
        return {
            "execution_arn": self.execution_arn,
            "status": self.status,
            "error": self.error,
            "cause": _shortened(self.cause, _CAUSE_CHARS) if self.cause else self.cause,
            "counts": self.counts,
            "map_run_arn": self.map_run_arn,
            "manifest_uri": self.manifest_uri,
            # An item's input can be 256 KiB: a longer one goes as a preview, so the XCom stays small.
            "failed_items": [_with_small_input(item) for item in self.failed_items],
        }

    def _message(self) -> str:
        lines = [f"Step Functions execution {self.execution_arn} ended {self.status}."]
        if self.error or self.cause:
            lines.append(f"Error: {self.error or '-'}; cause: {(self.cause or '-')[:1000]}")
        if self.counts:
            counts = ", ".join(f"{k}={v}" for k, v in self.counts.items())
            # A Map Run that fails stops reading: its total is what it read, not what the source holds.
            lines.append(f"Item counts (of the items read before it ended): {counts}")
        for item in self.failed_items:
            lines.append(
                f"Failed item: error={item.get('error')!s}; cause={_shortened(str(item.get('cause')))}; "
                f"input={_json_preview(item.get('input'))}"
            )
        if self.manifest_uri:
            lines.append(f"Results: {self.manifest_uri}")
        if self.status == "TIMED_OUT":
            lines.append(
                "To fix this, raise the definition's TimeoutSeconds if the run needs longer, then clear the "
                "task: the retry redrives this execution (only the items that did not finish run again)."
            )
            return "\n".join(lines)
        manifest = self.manifest_uri or "<manifest.json>"
        lines.append(
            "To fix this, open the execution in the Step Functions console (see the task's extra links; "
            f"`airflow-distmap results {manifest}` lists the failures by error), fix the cause, then clear "
            "the task: the retry redrives the failed items of this execution."
        )
        return "\n".join(lines)


#: Characters of a failed item's input kept in the ``summary`` XCom.
_ITEM_INPUT_CHARS = 1000
#: Characters of the execution's cause (up to 32,768 on AWS) kept in the ``summary`` XCom.
_CAUSE_CHARS = 4000


def _with_small_input(item: dict[str, Any]) -> dict[str, Any]:
    """``item``, its input replaced by a preview of :data:`_ITEM_INPUT_CHARS` when its JSON is longer."""
    text = _json_preview(item.get("input"), _ITEM_INPUT_CHARS + 1)
    if len(text) <= _ITEM_INPUT_CHARS:
        return item
    return {**item, "input": _shortened(text, _ITEM_INPUT_CHARS)}


def _json_preview(value: Any, limit: int = 300) -> str:
    """A one-line JSON preview of ``value`` cut to ``limit`` characters, for error messages.

    :param value: any value (not JSON-able ones are shown by ``repr``).
    :param limit: the most characters shown, ``...`` included.
    """
    try:
        text = json.dumps(value, default=str, separators=(",", ":"))
    except (TypeError, ValueError):
        text = repr(value)
    return _shortened(text, limit)


def _shortened(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- CSV row processing: every bad-input error also derives from AirflowFailException (a retry cannot fix a
# bad file or argument, so Airflow does not retry it); messages name the problem and the fix.


class CsvInputError(DistributedMapError, AirflowFailException):
    """Raised when the CSV input or an argument of the CSV operator is unusable (base class)."""


class InputNotFoundError(CsvInputError):
    """Raised when the input bucket or object does not exist."""


class UnsupportedInputError(CsvInputError):
    """Raised when the input is compressed, not UTF-8, or its delimiter is not one AWS supports."""


class EmptyInputError(CsvInputError):
    """Raised when the input file is empty or holds only a header."""


class BadHeaderError(CsvInputError):
    """Raised when the header has duplicate or empty names, or is too long to read."""


class MissingColumnError(CsvInputError):
    """Raised when a requested column is not in the header."""


class OutputLocationError(CsvInputError):
    """Raised when ``output_uri`` has an unsupported extension, equals the input, or already exists.

    Also when someone else wrote it while the task run collected its results (a conditional write failed).
    """


class RowThresholdExceededError(DistributedMapError):
    """Raised when more rows failed than ``tolerated_failure_count`` / ``_percentage`` allow."""


class InputChangedError(DistributedMapError):
    """Raised when the input CSV changed between the start of the run and the collection of its results."""


class MissingResultsError(DistributedMapError):
    """Raised when a finished CSV run exported no manifest to collect from."""


class RowTooLargeError(CsvInputError):
    """Raised when a row's selected columns exceed what one child execution can receive."""
