"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_distmap import __version__


def get_provider_info() -> dict[str, Any]:
    """Return the provider description Airflow's ProvidersManager expects."""
    return {
        "package-name": "airflow-distmap",
        "name": "AWS Step Functions Distributed Map",
        "description": "Run per-row work over large S3 datasets on AWS Step Functions Distributed Map.",
        "versions": [__version__],
        "extra-links": [
            "airflow_distmap.links.distributed_map.StateMachineLink",
            "airflow_distmap.links.distributed_map.ExecutionLink",
            "airflow_distmap.links.distributed_map.MapRunLink",
        ],
    }
