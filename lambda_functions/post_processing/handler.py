"""Text post-processing: the per-row function users start from.

For each row it reads one text column, keeps only letters and whitespace, collapses runs of whitespace
to one space, strips the ends and prefixes ``"Processed data: "``.

Which column: ``BatchInput.config.column`` (the operator's ``function_config={"column": ...}``), else the
``POST_PROCESSING_COLUMN`` environment variable, else the row's only column (``columns=["text"]``).
"""

from __future__ import annotations

import os
from typing import Any

from airflow_distmap.lambda_runtime import row_handler

PREFIX = "Processed data: "
#: The column named by the function's environment: read once, when the runtime loads the module, as a
#: Lambda function's environment is fixed for the life of its sandbox.
COLUMN_FROM_ENVIRONMENT = os.environ.get("POST_PROCESSING_COLUMN")


def clean_text(text: str) -> str:
    """Keep letters and whitespace, collapse whitespace, strip, and add the prefix."""
    kept = "".join(ch for ch in text if ch.isalpha() or ch.isspace())
    return PREFIX + " ".join(kept.split())


def pick_column(row: dict[str, Any], config: Any) -> str:
    """Return the name of the column to process for this row."""
    column = config.get("column") if isinstance(config, dict) else None
    column = column or COLUMN_FROM_ENVIRONMENT
    if column:
        return str(column)
    if len(row) == 1:
        return next(iter(row))
    raise ValueError(
        f"Row has {len(row)} columns and no column is configured: pass function_config={{'column': ...}} "
        "or send a single column (columns=[...])."
    )


def process_row(row: dict[str, Any], config: Any = None) -> str:
    """Process one row: clean the configured text column."""
    column = pick_column(row, config)
    if column not in row:
        raise ValueError(f"Column {column!r} is not in the row; columns sent: {sorted(row)}.")
    value = row[column]
    if not isinstance(value, str):
        raise TypeError(f"Column {column!r} holds {type(value).__name__}, expected text.")
    return clean_text(value)


handler = row_handler(process_row)
