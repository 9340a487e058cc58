"""Which Distributed Map reads its source when the execution starts (the operator's pre-flight checks it)."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_distmap.definitions.states import map_reading_at_start

MAP: dict[str, Any] = {
    "Type": "Map",
    "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED"}},
    "End": True,
}


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ({"Rows": MAP}, "Rows"),
        (
            {
                "Prepare": {"Type": "Pass", "Next": "Pause"},
                "Pause": {"Type": "Wait", "Next": "Rows"},
                "Rows": MAP,
            },
            "Rows",
        ),
        # A Task may write what the Map reads; a Choice may route around it.
        ({"Export": {"Type": "Task", "Next": "Rows"}, "Rows": MAP}, None),
        ({"Pick": {"Type": "Choice", "Choices": [{"Next": "Rows"}], "Default": "Rows"}, "Rows": MAP}, None),
        ({"Inline": {"Type": "Map", "Next": "Rows"}, "Rows": MAP}, None),
        # Malformed definitions are for ValidateStateMachineDefinition to refuse; the walk must not crash.
        ({"Loop": {"Type": "Pass", "Next": "Loop"}}, None),
        ({"Bad": {"Type": "Pass", "Next": ["Rows"]}, "Rows": MAP}, None),
        ({"Bad": {"Type": "Pass", "Next": "Missing"}}, None),
    ],
)
def test_the_map_reached_before_any_work_is_found(states: dict[str, Any], expected: str | None) -> None:
    start = next(iter(states))
    assert map_reading_at_start({"StartAt": start, "States": states}) == expected


def test_a_definition_without_states_has_none() -> None:
    assert map_reading_at_start({"StartAt": "x", "States": ["not", "a", "dict"]}) is None
    assert map_reading_at_start({}) is None
