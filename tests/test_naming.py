from __future__ import annotations

import re

import pytest

from airflow_distmap.naming import default_state_machine_name, execution_name, successor_name, validate_name

SAFE = re.compile(r"^[0-9A-Za-z_-]{1,80}$")
RUN_IDS = [
    "scheduled__2025-01-01T00:00:00+00:00",
    "manual__2025-01-01T00:00:00+00:00",
    "backfill__2025-01-01T00:00:00+00:00",
]


@pytest.mark.parametrize("run_id", RUN_IDS)
def test_execution_name_is_valid_and_readable_for_each_run_kind(run_id):
    name = execution_name("etl", "process_rows", run_id)
    assert SAFE.match(name)
    assert name.startswith("process_rows-" + run_id.split("__")[0] + "__2025-01-01T00_00_00_00_00")
    validate_name(name)


def test_execution_names_differ_across_run_kinds_with_the_same_date():
    names = {execution_name("etl", "process_rows", run_id) for run_id in RUN_IDS}
    assert len(names) == 3


def test_execution_name_is_identical_across_tries():
    # Nothing try-dependent goes in: calling twice (try 1 and try 2 of one run) gives the same name.
    first = execution_name("etl", "t", RUN_IDS[0], 3)
    assert execution_name("etl", "t", RUN_IDS[0], 3) == first


def test_map_indexes_and_dags_get_distinct_names():
    names = {execution_name("etl", "t", RUN_IDS[0], index) for index in (None, 0, 1, 2)}
    assert len(names) == 4
    assert execution_name("etl", "t", RUN_IDS[0], -1) == execution_name("etl", "t", RUN_IDS[0], None)
    assert execution_name("etl_a", "t", RUN_IDS[0]) != execution_name("etl_b", "t", RUN_IDS[0])
    assert execution_name("etl", "t", RUN_IDS[0], 7).split("-")[-2] == "m7"


def test_long_ids_are_truncated_but_stay_unique():
    task = "group." + "a" * 120
    one = execution_name("dag", task, "manual__" + "x" * 100 + "1")
    two = execution_name("dag", task, "manual__" + "x" * 100 + "2")
    assert len(one) == 80
    assert len(two) == 80
    assert SAFE.match(one)
    assert one != two


def test_forbidden_characters_are_replaced():
    name = execution_name("dag", "my task:<v2>", "manual__2025-01-01T00:00:00+00:00 (re-run)")
    assert SAFE.match(name)
    assert name.startswith("my_task_v2-manual__2025")


def test_successor_names_fit_and_stay_valid():
    name = execution_name("dag", "group." + "a" * 120, "manual__" + "x" * 100)
    assert successor_name(name, 2) == name[:77] + "-n2"
    assert successor_name("short", 12) == "short-n12"
    validate_name(successor_name(name, 1000))


def test_default_state_machine_name_is_stable_and_valid():
    name = default_state_machine_name("etl.daily", "process rows")
    assert name == default_state_machine_name("etl.daily", "process rows")
    assert name.startswith("etl_daily-process_rows-")
    validate_name(name)
    assert len(default_state_machine_name("d" * 200, "t" * 200)) == 80


@pytest.mark.parametrize(
    ("name", "fragment"),
    [("", "is empty"), ("a" * 81, "is 81 characters long"), ("has space", "' '"), ("a:b", "':'")],
)
def test_validate_name_names_the_problem_and_the_fix(name, fragment):
    with pytest.raises(ValueError, match="To fix this") as info:
        validate_name(name, "state_machine_name")
    assert fragment in str(info.value)
    assert "state_machine_name" in str(info.value)
