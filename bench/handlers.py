"""Row functions the benchmarks register as local Lambda functions."""

from __future__ import annotations

import time
from typing import Any

from airflow_distmap.lambda_runtime import row_handler

CPU_SECONDS_PER_ROW = 0.001
IO_SECONDS_PER_ROW = 0.020


def burn_cpu(row: dict[str, Any]) -> int:
    """About 1 ms of pure-Python CPU work per row (a hash-like loop over the text)."""
    deadline = time.thread_time() + CPU_SECONDS_PER_ROW
    acc = 0
    text = str(row.get("text", ""))
    while time.thread_time() < deadline:
        for ch in text:
            acc = (acc * 31 + ord(ch)) % 1_000_003
    return acc


def wait_io(row: dict[str, Any]) -> str:
    """A 20 ms wait per row, like a call to a slow HTTP API."""
    time.sleep(IO_SECONDS_PER_ROW)
    return str(row.get("text", ""))[:8]


cpu_handler = row_handler(burn_cpu)
io_handler = row_handler(wait_io)
