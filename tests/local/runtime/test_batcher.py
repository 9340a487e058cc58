from __future__ import annotations

import json

from airflow_distmap.json_codec import dumps_bytes
from airflow_distmap.local.runtime.batcher import Batch, ItemBatcher


def batches(batcher: ItemBatcher, items: list[object]) -> list[dict[str, object]]:
    # Items arrive in chunks, as the Map Run reads them; batches do not depend on the chunking.
    out: list[Batch] = []
    for start in range(0, len(items), 2):
        chunk = items[start : start + 2]
        out += batcher.add_many(start, [dumps_bytes(item) for item in chunk], chunk)
    last = batcher.flush()
    out += [last] if last is not None else []
    parsed = [json.loads(b.input_json(batcher.batch_input_json)) for b in out]
    assert parsed == [b.input_value(batcher.batch_input) for b in out]
    return parsed


def test_count_limit_gives_full_batches_then_the_rest() -> None:
    result = batches(ItemBatcher(3, 262_144), list(range(10)))
    assert [b["Items"] for b in result] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    assert all(set(b) == {"Items"} for b in result)


def test_batch_input_is_part_of_every_child_input() -> None:
    result = batches(ItemBatcher(2, 262_144, {"factor": 7}), [1, 2, 3])
    assert result == [
        {"BatchInput": {"factor": 7}, "Items": [1, 2]},
        {"BatchInput": {"factor": 7}, "Items": [3]},
    ]


def test_byte_limit_counts_the_whole_child_input_in_utf8() -> None:
    item = "é" * 10  # 22 bytes as a JSON string in UTF-8
    batcher = ItemBatcher(None, 60)
    built = batches(batcher, [item] * 5)
    for child in built:
        assert len(json.dumps(child, separators=(",", ":"), ensure_ascii=False).encode()) <= 60
    assert sum(len(b["Items"]) for b in built) == 5  # type: ignore[arg-type]
    assert len(built) == 3


def test_an_item_larger_than_the_byte_limit_goes_alone() -> None:
    result = batches(ItemBatcher(None, 30), ["x" * 50, "y"])
    assert [b["Items"] for b in result] == [["x" * 50], ["y"]]


def test_batch_records_its_first_item_index() -> None:
    batcher = ItemBatcher(2, 262_144)
    closed = batcher.add_many(0, [dumps_bytes(i) for i in range(5)], list(range(5)))
    last = batcher.flush()
    assert last is not None
    assert [b.first_index for b in [*closed, last]] == [0, 2, 4]
    assert [b.values for b in [*closed, last]] == [[0, 1], [2, 3], [4]]
