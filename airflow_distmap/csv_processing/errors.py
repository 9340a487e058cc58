"""Errors of the CSV row-processing pre-flight and collector.

Every bad-input error derives from both :class:`~airflow_distmap.exceptions.DistributedMapError` (so a
caller can catch the provider's errors in one place) and ``AirflowFailException`` (a retry cannot fix
a bad file or argument, so Airflow does not retry it). Messages name the problem and the fix.
"""

from __future__ import annotations

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_distmap.exceptions import DistributedMapError


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
    """Raised when ``output_uri`` has an unsupported extension, equals the input, or already exists."""


class ResultsPrefixInUseError(CsvInputError):
    """Raised when ``results_uri`` already holds another run's results."""


class RowThresholdExceededError(DistributedMapError):
    """Raised when more rows failed than ``tolerated_failure_count`` / ``_percentage`` allow."""


class InputChangedError(DistributedMapError):
    """Raised when the input CSV changed between the start of the run and the collection of its results."""


class MissingResultsError(DistributedMapError):
    """Raised when a finished CSV run exported no manifest to collect from."""


class RowTooLargeError(CsvInputError):
    """Raised when a row's selected columns exceed what one child execution can receive."""
