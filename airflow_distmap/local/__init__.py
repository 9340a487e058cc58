"""The local AWS endpoint: Step Functions (the project's runtime), S3 (moto) and Lambda on one loopback URL.

``LocalEndpoint`` is imported lazily so that ``airflow_distmap.local.errors`` and friends stay cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_distmap.local.endpoint import LocalEndpoint

__all__ = ["LocalEndpoint"]


def __getattr__(name: str) -> Any:
    if name == "LocalEndpoint":
        from airflow_distmap.local.endpoint import LocalEndpoint

        return LocalEndpoint
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
