"""Errors of the local endpoint, in AWS's shapes."""

from __future__ import annotations


class ServiceError(Exception):
    """An AWS API error, as botocore reports it.

    :param code: the exception name (``__type``), e.g. ``ExecutionDoesNotExist``.
    :param message: AWS's message text.
    :param status: the HTTP status.
    :param members: the error shape's other members (``resourceName``...).
    """

    def __init__(
        self, code: str, message: str, status: int = 400, members: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.members = members or {}


class StatesError(Exception):
    """A Step Functions runtime error inside an execution.

    :param error: ``States.Runtime``, ``Lambda.Unknown``, a handler's ``errorType``...: what Retry/Catch match
        on and what ``ExecutionFailed`` reports.
    :param cause: the error's cause text.
    """

    def __init__(self, error: str, cause: str = "") -> None:
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause
