"""The JSON Pointer helpers: the streaming walker finds exactly the node the parsed-document one does."""

from __future__ import annotations

import io
import json
import random
from typing import Any

import ijson
import pytest

from airflow_distmap.formats.json_pointer import (
    PointerNotAnArray,
    follow,
    is_pointer,
    pointed_array_items,
    pointer_tokens,
)

#: Keys that trip dotted prefixes and naive parsers: a dot, ijson's "item", digits, the escapes, empty.
KEYS = ["a", "b", "", "a.b", "item", "0", "1", "~", "/"]


def random_document(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.25:
        return rng.choice([1, "s", None, True, 2.5])
    if roll < 0.6:
        return [random_document(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(KEYS): random_document(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def streamed(document: Any, tokens: list[str]) -> list[Any] | None:
    events = ijson.basic_parse(io.BytesIO(json.dumps(document).encode()), use_float=True)
    try:
        return list(pointed_array_items(events, tokens))
    except PointerNotAnArray:
        return None


def test_the_stream_walker_agrees_with_the_parsed_document_on_random_documents() -> None:
    rng = random.Random(7)
    for _ in range(3000):
        document = random_document(rng)
        tokens = [rng.choice([*KEYS, "2"]) for _ in range(rng.randint(1, 3))]
        pointer = "/" + "/".join(token.replace("~", "~0").replace("/", "~1") for token in tokens)
        expected = follow(document, pointer_tokens(pointer))
        assert streamed(document, tokens) == (expected if isinstance(expected, list) else None), (
            document,
            pointer,
        )


@pytest.mark.parametrize(
    ("pointer", "tokens"),
    [("", []), ("/", [""]), ("/a~1b/c~0d", ["a/b", "c~d"]), ("/data/0", ["data", "0"])],
)
def test_pointer_tokens_unescape_rfc_6901(pointer: str, tokens: list[str]) -> None:
    assert is_pointer(pointer)
    assert pointer_tokens(pointer) == tokens


def test_text_without_a_leading_slash_is_not_a_pointer() -> None:
    assert not is_pointer("data/rows")
    with pytest.raises(ValueError, match="must be empty or start with '/'"):
        pointer_tokens("data/rows")
