"""JSON Pointer (RFC 6901), as a JSON ItemReader's ``ItemsPointer`` names the array of items.

Shared by the operators' pre-flight (a parsed document) and the local runtime's ItemReader (a stream of
parser events, :func:`pointed_array_items`), so both find the same node: a key holding a ``.`` is one key, a
token reaches into an array by index, and ``"/"`` names the member whose key is empty (``""`` is the whole
document).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Final

from ijson.common import ObjectBuilder

_ARRAY_INDEX: Final = re.compile(r"^(0|[1-9][0-9]*)$")
_CONTAINER_STARTS: Final = frozenset({"start_map", "start_array"})
_CONTAINER_ENDS: Final = frozenset({"end_map", "end_array"})


class PointerNotAnArray(Exception):
    """The pointer names nothing, or a node that is not an array."""


def is_pointer(text: object) -> bool:
    """Whether ``text`` is a JSON Pointer: ``""`` (the whole document) or ``/`` and reference tokens.

    :param text: the value to check.
    """
    return isinstance(text, str) and (not text or text.startswith("/"))


def pointer_tokens(pointer: str) -> list[str]:
    """The reference tokens of ``pointer``, unescaped (``~1`` is ``/``, ``~0`` is ``~``); ``[]`` for ``""``.

    :param pointer: a JSON Pointer such as ``/data/rows``.
    :raises ValueError: ``pointer`` is not a JSON Pointer (see :func:`is_pointer`).
    """
    if not is_pointer(pointer):
        raise ValueError(f"{pointer!r} is not a JSON Pointer: it must be empty or start with '/'")
    if not pointer:
        return []
    return [part.replace("~1", "/").replace("~0", "~") for part in pointer[1:].split("/")]


def follow(value: Any, tokens: list[str]) -> Any:
    """The node ``tokens`` name in a parsed document, or ``None`` when there is none.

    :param value: the parsed document.
    :param tokens: :func:`pointer_tokens` of the pointer.
    """
    for token in tokens:
        if isinstance(value, dict) and token in value:
            value = value[token]
        elif isinstance(value, list) and _ARRAY_INDEX.match(token) and int(token) < len(value):
            value = value[int(token)]
        else:
            return None
    return value


def pointed_array_items(events: Iterator[tuple[str, Any]], tokens: list[str]) -> Iterator[Any]:
    """Yield the elements of the array ``tokens`` name, from ``ijson.basic_parse`` events, one at a time.

    The document streams by: only the element being built is in memory. Locations are matched key by key
    (ijson's dotted prefixes cannot tell the key ``"a.b"`` from the path ``a`` then ``b``), so this walks the
    events itself; subtrees off the pointer's path are only counted through.

    :param events: ``ijson.basic_parse`` events of the document.
    :param tokens: :func:`pointer_tokens` of the pointer.
    :raises PointerNotAnArray: the pointer names nothing, or not an array.
    """
    depth = 0  # containers open around the current event
    on_path = 0  # how many of them lie on the pointer's path (always the outermost ones)
    kinds: list[str] = []  # per container on the path: "start_map" or "start_array"
    keys: list[Any] = []  # ... and the location of its current member: a key, or the next element's index
    for event, value in events:
        if depth > on_path:  # inside a subtree off the path: only its nesting matters
            if event in _CONTAINER_STARTS:
                depth += 1
            elif event in _CONTAINER_ENDS:
                depth -= 1
                if depth == on_path and kinds and kinds[-1] == "start_array":
                    keys[-1] += 1
            continue
        if event == "map_key":
            keys[-1] = value
            continue
        if event in _CONTAINER_ENDS:  # a container on the path ends: the pointer's node is not in it
            break
        # A value starts inside the innermost container on the path, or is the document itself.
        if depth:
            in_array = kinds[-1] == "start_array"
            matches = tokens[depth - 1] == (str(keys[-1]) if in_array else keys[-1])
            if in_array and event not in _CONTAINER_STARTS:
                keys[-1] += 1
        else:
            matches = True
        if not matches:
            if event in _CONTAINER_STARTS:
                depth += 1
            continue
        if depth == len(tokens):
            if event != "start_array":
                break
            yield from _array_elements(events)
            return
        if event not in _CONTAINER_STARTS:
            break  # a scalar where the pointer goes on
        depth += 1
        on_path += 1
        kinds.append(event)
        keys.append(0 if event == "start_array" else None)
    raise PointerNotAnArray(tokens)


def _array_elements(events: Iterator[tuple[str, Any]]) -> Iterator[Any]:
    """Build and yield each element of the array whose ``start_array`` was just read, until its end."""
    builder: ObjectBuilder | None = None
    depth = 0
    for event, value in events:
        if not depth:
            if event == "end_array":
                return
            if event not in _CONTAINER_STARTS:
                yield value
                continue
            builder = ObjectBuilder()
        assert builder is not None
        builder.event(event, value)
        if event in _CONTAINER_STARTS:
            depth += 1
        elif event in _CONTAINER_ENDS:
            depth -= 1
            if not depth:
                yield builder.value
