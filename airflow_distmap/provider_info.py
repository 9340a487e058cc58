"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_distmap import __version__

INTEGRATION = "AWS Step Functions Distributed Map"


def get_provider_info() -> dict[str, Any]:
    """Return the provider description Airflow's ProvidersManager expects."""
    return {
        "package-name": "airflow-distmap",
        "name": "AWS Step Functions Distributed Map",
        "description": "Run per-row work over large S3 datasets on AWS Step Functions Distributed Map.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://docs.aws.amazon.com/step-functions/latest/dg/state-map-distributed.html",
                "tags": ["aws"],
            }
        ],
        "operators": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    "airflow_distmap.operators.distributed_map",
                    "airflow_distmap.operators.csv_row_processing",
                ],
            }
        ],
        "hooks": [
            {"integration-name": INTEGRATION, "python-modules": ["airflow_distmap.hooks.distributed_map"]}
        ],
        "triggers": [
            {"integration-name": INTEGRATION, "python-modules": ["airflow_distmap.triggers.distributed_map"]}
        ],
        "extra-links": [
            "airflow_distmap.links.distributed_map.StateMachineLink",
            "airflow_distmap.links.distributed_map.ExecutionLink",
            "airflow_distmap.links.distributed_map.MapRunLink",
        ],
    }
