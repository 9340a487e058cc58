"""Operator extra links to the Step Functions console: state machine, execution and Map Run."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote_plus

from airflow.providers.amazon.aws.links.base_aws import BASE_AWS_CONSOLE_LINK, BaseAwsLink
from airflow.providers.amazon.aws.links.step_function import (
    StateMachineDetailsLink,
    StateMachineExecutionsDetailsLink,
)


class StateMachineLink(StateMachineDetailsLink):
    """Link to the state machine's page in the Step Functions console (empty until its ARN is known)."""

    name = "Step Functions State Machine"
    key = "_distmap_state_machine"


class ExecutionLink(StateMachineExecutionsDetailsLink):
    """Link to the execution's page (graph, events, Map Run) in the Step Functions console."""

    name = "Step Functions Execution"
    key = "_distmap_execution"


class MapRunLink(BaseAwsLink):
    """Link to the Map Run's page (item counts, child executions) in the Step Functions console."""

    name = "Step Functions Map Run"
    key = "_distmap_map_run"
    format_str = BASE_AWS_CONSOLE_LINK + "/states/home?region={region_name}#/mapruns/{map_run_arn}"

    def format_link(self, *, map_run_arn: str | None = None, **kwargs: Any) -> str:
        """Format the link; empty until the Map Run ARN is known.

        :param map_run_arn: The Map Run ARN.
        """
        if not map_run_arn:
            return ""
        return super().format_link(map_run_arn=quote_plus(map_run_arn), **kwargs)
