"""Fast JSON for the hot paths: msgspec's encoder and decoder, with the standard library as the fallback.

msgspec (a dependency of Airflow itself) encodes about ten times and decodes up to twice as fast as the
standard library's ``json``. Where it refuses a text or value that ``json`` accepts (``NaN`` literals, lone
surrogates, numbers past a double, non-string keys) the standard library takes over, so results and error
messages stay those of ``json``. Texts are compact (``separators=(",", ":")``) and keep non-ASCII characters
as they are (``ensure_ascii=False``), as Step Functions writes JSON. One difference is cosmetic: msgspec
writes ``1e16`` where ``json`` writes ``1e+16`` (the same number).
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
_FALLBACK = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
#: For texts holding lone surrogates, which UTF-8 cannot carry: written as JSON ``\u`` escapes (as AWS
#: Lambda's Python runtime writes them), the text stays valid JSON in valid UTF-8.
_ASCII_FALLBACK = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True)


class EncodedObject(dict[str, Any]):
    """A JSON object carrying its compact UTF-8 JSON text, which :func:`dumps_bytes` and :func:`dumps` return.

    The local runtime builds a batch's input text anyway (for its size and the result files); a Lambda task
    whose ``Payload`` is that input then sends the text as is instead of encoding the batch a second time.
    Safe because the runtime never changes a JSON value in place: ResultPath, the templates and the intrinsic
    functions build new objects.

    :param value: the object's members.
    :param text: its compact UTF-8 JSON.
    """

    __slots__ = ("text",)

    def __init__(self, value: dict[str, Any], text: bytes) -> None:
        super().__init__(value)
        self.text = text


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Decode one JSON text (``json.loads`` semantics and errors).

    :param data: the JSON text, as bytes or str.
    """
    try:
        return _decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return json.loads(bytes(data) if isinstance(data, memoryview) else data)


def dumps_bytes(value: Any) -> bytes:
    """Compact UTF-8 JSON of ``value``.

    :param value: any JSON-able value.
    """
    if type(value) is EncodedObject:
        return value.text
    try:
        return _encode(value)
    except (TypeError, ValueError, OverflowError, UnicodeEncodeError, msgspec.EncodeError):
        return dumps_standard(value).encode("utf-8")


def dumps(value: Any) -> str:
    """Compact JSON text of ``value``.

    :param value: any JSON-able value.
    """
    if type(value) is EncodedObject:
        return value.text.decode()
    try:
        return _encode(value).decode("utf-8")
    except (TypeError, ValueError, OverflowError, UnicodeEncodeError, msgspec.EncodeError):
        return dumps_standard(value)


def dumps_standard(value: Any) -> str:
    """Compact JSON text of ``value`` by the standard library (its number formats and errors).

    The text is always valid UTF-8: a value holding a lone surrogate is written with JSON escapes.

    :param value: a JSON-able value.
    """
    text = _FALLBACK.encode(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return _ASCII_FALLBACK.encode(value)
    return text
