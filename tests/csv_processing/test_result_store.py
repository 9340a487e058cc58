from __future__ import annotations

from pathlib import Path

from airflow_distmap.csv_processing.result_store import ResultStore, contiguous_runs


def test_contiguous_runs() -> None:
    assert list(contiguous_runs([3, 4, 5])) == [(3, 0, 3)]
    assert list(contiguous_runs([1, 2, 5, 6, 9])) == [(1, 0, 2), (5, 2, 4), (9, 4, 5)]
    assert list(contiguous_runs([])) == []


def test_runs_come_back_in_index_order_and_success_wins(tmp_path: Path) -> None:
    with ResultStore(tmp_path / "r.sqlite") as store:
        store.add_run(10, ["k", None], [(11, "ValueError", "bad")])
        store.add_run(
            0, [None, None], [(0, "Lambda.Unknown", "x"), (1, "Lambda.Unknown", "x")], succeeded=False
        )
        store.add_run(0, ["a", "b"])  # the redriven batch succeeded
        store.add_run(0, [None, None], [(0, "Late", "x"), (1, "Late", "x")], succeeded=False)
        runs = list(store.iter_runs())
    assert [(r.start, r.values.to_pylist(), r.errors) for r in runs] == [
        (0, ["a", "b"], {}),
        (10, ["k", None], {11: ("ValueError", "bad")}),
    ]
    assert runs[1].stop == 12


def test_outputs_come_back_as_the_output_column_text(tmp_path: Path) -> None:
    with ResultStore(tmp_path / "r.sqlite") as store:
        store.add_run(0, ["ü", "", None, 3, {"a": [1, "é"]}, True])
        store.add_run(6, [None, None])
        store.add_run(8, [])
        runs = list(store.iter_runs())
    assert [(r.start, r.stop, r.values.to_pylist()) for r in runs] == [
        (0, 6, ["ü", "", None, "3", '{"a":[1,"é"]}', "true"]),
        (6, 8, [None, None]),
        (8, 8, []),
    ]


def test_text_array_of_strings_equals_arrow_own_conversion() -> None:
    import pyarrow as pa

    from airflow_distmap.csv_processing.result_store import text_array

    for values in (["Grüße 東京 🚚", "", "plain", "x" * 10_000], []):
        built = text_array(values)
        assert built.equals(pa.array(values, type=pa.string()))
        assert built.to_pylist() == values
    assert text_array(["a", None, 3, {"k": [1]}]).to_pylist() == ["a", None, "3", '{"k":[1]}']
    # A function's lone surrogate (valid as a JSON escape) cannot be UTF-8: the output shows it escaped.
    assert text_array(["a\ud800b", "é"]).to_pylist() == ["a\\ud800b", "é"]
    assert text_array([{"v": "\udfff"}]).to_pylist() == ['{"v":"\\udfff"}']
