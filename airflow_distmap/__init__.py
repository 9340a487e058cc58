"""Apache Airflow provider for AWS Step Functions Distributed Map, with a local endpoint."""

from __future__ import annotations

__version__ = "0.1.0"
