"""The failed-rows ledger: ``<output stem>.failed.csv`` / ``.parquet`` beside the output.

One line per failed row: ``row_index`` (0-based data row, like a pandas index; the header line is not
counted), the row's columns exactly as read, ``error_type`` and ``error_message``. A row that raised in
the function has the exception's class name and message; the rows of a batch whose whole child execution
failed share the child's ``Error`` (``Lambda.Unknown``, ``Sandbox.Timedout``...) and ``Cause``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from airflow_distmap.csv_processing.writers import string_schema

ROW_INDEX: str = "row_index"
ERROR_TYPE: str = "error_type"
ERROR_MESSAGE: str = "error_message"

#: Error type of a row that has no result at all in the Map Run's result files.
NOT_PROCESSED = "RowNotProcessed"
#: Error type of a row whose batch answered outside the ``row_handler`` contract.
CONTRACT_ERROR = "RowContractError"


def _unique(name: str, taken: set[str]) -> str:
    while name in taken:
        name = "_" + name
    taken.add(name)
    return name


@dataclass(frozen=True)
class LedgerColumns:
    """Names of the ledger's own columns, made unique against the input's header.

    :param row_index: the row index column (``row_index``, or ``_row_index`` if the input has one...).
    :param error_type: the error type column.
    :param error_message: the error message column.
    """

    row_index: str
    error_type: str
    error_message: str

    @classmethod
    def for_headers(cls, headers: Sequence[str]) -> LedgerColumns:
        """Pick names that do not collide with ``headers``."""
        taken = set(headers)
        return cls(
            row_index=_unique(ROW_INDEX, taken),
            error_type=_unique(ERROR_TYPE, taken),
            error_message=_unique(ERROR_MESSAGE, taken),
        )

    def schema(self, headers: Sequence[str]) -> pa.Schema:
        """The ledger's schema: row index, the input's columns, error type, error message."""
        base = string_schema(headers, leading=[(self.row_index, pa.int64())])
        return base.append(pa.field(self.error_type, pa.string())).append(
            pa.field(self.error_message, pa.string())
        )
