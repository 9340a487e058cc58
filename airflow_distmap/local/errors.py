"""Errors of the local endpoint, in AWS's shapes."""

from __future__ import annotations


class ServiceError(Exception):
    """An AWS API error, as botocore reports it.

    ``code`` is the exception name (``__type``), e.g. ``ExecutionDoesNotExist``; ``message`` is AWS's message
    text; ``status`` the HTTP status; ``members`` the error shape's other members (``resourceName``...).
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

    ``States.Runtime``, ``Lambda.Unknown``, a handler's ``errorType``...: what Retry/Catch match on and what
    ``ExecutionFailed`` reports.
    """

    def __init__(self, error: str, cause: str = "") -> None:
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause
