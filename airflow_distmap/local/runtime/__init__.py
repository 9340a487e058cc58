"""The local endpoint's Step Functions service and Distributed Map runtime."""

from __future__ import annotations

from airflow_distmap.local.runtime.service import StepFunctionsService

__all__ = ["StepFunctionsService"]
