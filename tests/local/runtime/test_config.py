from __future__ import annotations

from typing import Any

import pytest

from airflow_distmap.local.errors import StatesError
from airflow_distmap.local.runtime.config import (
    FieldResolver,
    Tolerance,
    check_max_items,
    effective_concurrency,
    resolve_batching,
    resolve_max_concurrency,
    resolve_max_items,
    resolve_tolerance,
)

PREFIX = "An error occurred while executing the state 'MapState' (entered at the event id #2). "


def resolver(values: dict[str, Any]) -> FieldResolver:
    return FieldResolver("MapState", 2, lambda path: values[path.removeprefix("$.")])


@pytest.mark.parametrize(
    ("value", "cause"),
    [
        (
            "NoNumber",
            'The ToleratedFailureCountPath field refers to value "NoNumber" which is not a valid integer: '
            "$.ToleratedFailureCount",
        ),
        (
            {},
            'The ToleratedFailureCountPath field refers to value "{}" which is not a valid integer: '
            "$.ToleratedFailureCount",
        ),
        (-1, "ToleratedFailureCount cannot be negative."),
    ],
)
def test_tolerated_failure_count_path_messages(value: Any, cause: str) -> None:
    with pytest.raises(StatesError) as caught:
        resolve_tolerance(
            resolver({"ToleratedFailureCount": value}),
            {"ToleratedFailureCountPath": "$.ToleratedFailureCount"},
        )
    assert (caught.value.error, caught.value.cause) == ("States.Runtime", PREFIX + cause)


@pytest.mark.parametrize("value", [-1, -1.1, 100.1])
def test_tolerated_failure_percentage_range(value: float) -> None:
    spec = {"ToleratedFailurePercentagePath": "$.p"}
    with pytest.raises(StatesError) as caught:
        resolve_tolerance(resolver({"p": value}), spec)
    assert caught.value.cause == PREFIX + "ToleratedFailurePercentage must be between 0 and 100."


@pytest.mark.parametrize(
    ("resolve", "spec"),
    [
        (resolve_tolerance, {"ToleratedFailurePercentage": "{% 150 %}"}),
        (resolve_tolerance, {"ToleratedFailureCount": "{% -1 %}"}),
        (resolve_max_concurrency, {"MaxConcurrency": "{% -1 %}"}),
        (resolve_batching, {"MaxItemsPerBatch": "{% 'abc' %}"}),
    ],
)
def test_a_jsonata_value_a_field_does_not_take_is_a_query_evaluation_error(resolve: Any, spec: Any) -> None:
    """The ASL specification's own example of States.QueryEvaluationError (a literal or *Path value that is
    out of range stays AWS's recorded States.Runtime)."""
    expressions = {"{% 150 %}": 150, "{% -1 %}": -1, "{% 'abc' %}": "abc"}
    with pytest.raises(StatesError) as caught:
        resolve(FieldResolver("MapState", 2, expressions.__getitem__), spec)
    assert caught.value.error == "States.QueryEvaluationError"
    (field,) = spec
    assert f"The JSONata expression '{spec[field]}' specified for the field '{field}'" in caught.value.cause


def test_tolerance_accepts_numeric_strings_and_floats() -> None:
    tolerance = resolve_tolerance(
        resolver({"c": "3", "p": 1.1}),
        {"ToleratedFailureCountPath": "$.c", "ToleratedFailurePercentagePath": "$.p"},
    )
    assert tolerance == Tolerance(3, 1.1)


def test_breach_is_strictly_greater_and_either_limit_fails() -> None:
    assert not Tolerance(None, None).breached(0, 10)
    assert Tolerance(None, None).breached(1, 10)
    assert not Tolerance(2, None).breached(2, 10)
    assert Tolerance(2, None).breached(3, 10)
    assert not Tolerance(None, 20.0).breached(2, 10)
    assert Tolerance(None, 20.0).breached(3, 10)
    assert Tolerance(100, 10.0).breached(2, 10)
    assert not Tolerance(None, 10.0).breached(5, None)  # percentage waits for the total
    # ...except 0 %, which one failure exceeds whatever the total:
    assert Tolerance(None, 0.0).breached(1, None)
    assert not Tolerance(None, 0.0).breached(0, None)


def test_max_items_rules() -> None:
    assert resolve_max_items(resolver({}), {"MaxItems": 0}) is None
    assert resolve_max_items(resolver({}), {"MaxItems": 2}) == 2
    assert resolve_max_items(resolver({"m": 100_000_001}), {"MaxItemsPath": "$.m"}) == 100_000_000
    assert resolve_max_items(resolver({"m": "2"}), {"MaxItemsPath": "$.m"}) == 2
    with pytest.raises(StatesError) as caught:
        resolve_max_items(resolver({"MaxItems": 1.5}), {"MaxItemsPath": "$.MaxItems"})
    assert caught.value.cause == PREFIX + (
        'The MaxItemsPath field refers to value "1.5" which is not a valid integer: $.MaxItems'
    )
    negative = resolve_max_items(resolver({"m": -1}), {"MaxItemsPath": "$.m"})
    with pytest.raises(StatesError) as caught:
        check_max_items(negative)
    assert (caught.value.error, caught.value.cause) == (
        "States.ItemReaderFailed",
        "field MaxItems must be positive",
    )


def test_max_concurrency_zero_means_ten_thousand() -> None:
    assert resolve_max_concurrency(resolver({}), {}) == 0
    assert effective_concurrency(0) == 10_000
    assert effective_concurrency(50_000) == 10_000
    assert effective_concurrency(7) == 7
    with pytest.raises(StatesError, match="not a valid integer"):
        resolve_max_concurrency(resolver({"c": "NoNumber"}), {"MaxConcurrencyPath": "$.c"})
