from __future__ import annotations

import json
import math

import pytest

from airflow_distmap import json_codec

VALUES = [
    {"index": 3, "row": {"text": 'Grüße, 東京 "quoted"\n'}, "n": None, "ok": True},
    [1, -2.5, 10**30, "", [], {}],
    "plain",
]


@pytest.mark.parametrize("value", VALUES)
def test_round_trip_matches_the_standard_library(value: object) -> None:
    text = json_codec.dumps(value)
    assert text == json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    assert json_codec.dumps_bytes(value) == text.encode()
    assert json_codec.loads(text) == json_codec.loads(text.encode()) == value


def test_texts_msgspec_refuses_decode_as_the_standard_library_does() -> None:
    assert math.isnan(json_codec.loads(b"[NaN]")[0])
    assert json_codec.loads('"\\ud800"') == "\ud800"
    assert json_codec.loads(b"1E400") == math.inf


def test_invalid_json_raises_the_standard_library_error() -> None:
    with pytest.raises(json.JSONDecodeError, match="Expecting property name"):
        json_codec.loads(b"{bad")


def test_values_msgspec_refuses_encode_as_the_standard_library_does() -> None:
    assert json_codec.dumps({1: "a"}) == '{"1":"a"}'
    # A lone surrogate cannot be UTF-8: it is written escaped, and the text still reads back the same.
    assert json_codec.dumps(["\ud800", "é"]) == '["\\ud800","\\u00e9"]'
    assert json_codec.loads(json_codec.dumps_bytes("a\ud800b").decode("utf-8")) == "a\ud800b"
    with pytest.raises(TypeError):
        json_codec.dumps(object())


def test_an_encoded_object_is_encoded_as_the_text_it_carries() -> None:
    value = json_codec.EncodedObject({"Items": [1, 2]}, b'{"Items":[1,2]}')
    assert value == {"Items": [1, 2]}
    assert json_codec.dumps_bytes(value) == b'{"Items":[1,2]}'
    assert json_codec.dumps(value) == '{"Items":[1,2]}'
    assert json_codec.dumps_bytes({"outer": value}) == b'{"outer":{"Items":[1,2]}}'  # nested: as a dict
