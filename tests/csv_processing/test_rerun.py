from __future__ import annotations

from dataclasses import asdict

from airflow_distmap.csv_processing.rerun import Rerun, RunState


def test_state_round_trips_through_its_stored_json() -> None:
    state = RunState(
        manifest_uri="s3://b/r/manifest.json",
        failed_rows=2,
        reruns=[Rerun(number=1, items_uri="s3://b/r/rerun-1/items.jsonl", rows=2)],
        source_etag='"abc"',
    )
    assert RunState.from_dict(asdict(state)) == state


def test_state_of_a_replaced_input_is_dropped() -> None:
    state = RunState(manifest_uri="s3://b/r/manifest.json", failed_rows=2, source_etag='"old"')
    assert state.for_input('"old"') is state
    assert state.for_input('"new"') == RunState()
    legacy = RunState(manifest_uri="s3://b/r/manifest.json")  # written before ETags were recorded
    assert legacy.for_input('"new"') is legacy
