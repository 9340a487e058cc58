"""Errors of the local endpoint, in AWS's shapes."""

from __future__ import annotations

#: The longest error name and cause text Step Functions reports (API model: SensitiveError, SensitiveCause).
MAX_ERROR_CHARS = 256
MAX_CAUSE_CHARS = 32768


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
        # Step Functions' error and cause members hold at most 256 and 32,768 characters (API model:
        # SensitiveError, SensitiveCause); UNCONFIRMED that a longer one is cut rather than replaced.
        error, cause = error[:MAX_ERROR_CHARS], cause[:MAX_CAUSE_CHARS]
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause
