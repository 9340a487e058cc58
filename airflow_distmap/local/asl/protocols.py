"""What the ASL engine needs from its host: a history sink, a Lambda invoker and the Map runtime."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class EventSink(Protocol):
    """Receives the parent execution's history events.

    ``details`` is AWS's inner detail object for the event type (what ``GetExecutionHistory`` shows under
    ``stateEnteredEventDetails``, ``taskScheduledEventDetails``, ...), with
    ``input``/``output``/``parameters``
    as JSON text, exactly as the API returns them.
    """

    def record(self, event_type: str, details: dict[str, Any] | None = None) -> None:
        """Append one event, e.g. ``record("PassStateEntered", {"name": ..., "input": ..., ...})``."""


class InvocationResultLike(Protocol):
    """The fields of ``airflow_distmap.local.lambdas.InvocationResult`` the engine reads."""

    @property
    def payload(self) -> Any: ...  # noqa: D102

    @property
    def function_error(self) -> str | None: ...  # noqa: D102

    @property
    def executed_version(self) -> str: ...  # noqa: D102

    @property
    def request_id(self) -> str: ...  # noqa: D102

    @property
    def error_text(self) -> str | None: ...  # noqa: D102


class LambdaInvokerLike(Protocol):
    """``airflow_distmap.local.lambdas.LambdaInvoker``, structurally."""

    async def invoke(self, function: str, payload: Any) -> InvocationResultLike:
        """Invoke a function by name or ARN; raises ``FunctionNotFound`` for an unknown function."""


class Services(Protocol):
    """What a running state machine calls out to."""

    @property
    def lambdas(self) -> LambdaInvokerLike:
        """The Lambda worker pool."""

    async def run_distributed_map(
        self,
        state_name: str,
        state: dict[str, Any],
        effective_input: Any,
        context: Mapping[str, Any],
        events: EventSink | None,
    ) -> Any:
        """Run one Distributed Map state's Map Run and return its raw result, or raise ``StatesError``."""
