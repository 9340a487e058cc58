from __future__ import annotations

import pytest

from airflow_distmap.links.distributed_map import ExecutionLink, MapRunLink, StateMachineLink

SM = "arn:aws:states:eu-west-1:123456789012:stateMachine:sm"
EXECUTION = "arn:aws:states:eu-west-1:123456789012:execution:sm:run-1"
MAP_RUN = "arn:aws:states:eu-west-1:123456789012:mapRun:sm/Rows:0f9c"


@pytest.mark.parametrize(
    ("link", "kwargs", "expected"),
    [
        (
            StateMachineLink(),
            {"state_machine_arn": SM},
            "https://console.aws.amazon.com/states/home?region=eu-west-1#/statemachines/view/"
            "arn%3Aaws%3Astates%3Aeu-west-1%3A123456789012%3AstateMachine%3Asm",
        ),
        (
            ExecutionLink(),
            {"execution_arn": EXECUTION},
            "https://console.aws.amazon.com/states/home?region=eu-west-1#/v2/executions/details/"
            "arn%3Aaws%3Astates%3Aeu-west-1%3A123456789012%3Aexecution%3Asm%3Arun-1",
        ),
        (
            MapRunLink(),
            {"map_run_arn": MAP_RUN},
            "https://console.aws.amazon.com/states/home?region=eu-west-1#/mapruns/"
            "arn%3Aaws%3Astates%3Aeu-west-1%3A123456789012%3AmapRun%3Asm%2FRows%3A0f9c",
        ),
    ],
)
def test_links_point_at_the_console(link, kwargs, expected):
    assert link.format_link(region_name="eu-west-1", aws_domain="aws.amazon.com", **kwargs) == expected


def test_links_are_empty_until_the_arn_is_known():
    assert StateMachineLink().format_link(region_name="eu-west-1", aws_domain="aws.amazon.com") == ""
    assert ExecutionLink().format_link(region_name="eu-west-1", aws_domain="aws.amazon.com") == ""
    assert MapRunLink().format_link(region_name="eu-west-1", aws_domain="aws.amazon.com") == ""


def test_link_keys_are_distinct_from_the_amazon_provider():
    keys = {StateMachineLink.key, ExecutionLink.key, MapRunLink.key}
    assert len(keys) == 3
    assert "_state_machine_details" not in keys
