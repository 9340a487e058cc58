"""Walking a state machine definition: every state, nested ones included, and its Distributed Maps."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def is_distributed_map(state: Any) -> bool:
    """Whether an ASL state is a Map state in DISTRIBUTED mode.

    :param state: The ASL state.
    """
    if not isinstance(state, dict) or state.get("Type") != "Map":
        return False
    processor = state.get("ItemProcessor") or state.get("Iterator") or {}
    return bool((processor.get("ProcessorConfig") or {}).get("Mode") == "DISTRIBUTED")


def iter_states(
    definition: dict[str, Any], query_language: str = "JSONPath"
) -> Iterator[tuple[str, dict[str, Any], str]]:
    """Yield ``(state_name, state, query_language)`` for every state, nested ones included.

    States in Parallel branches and in Map ItemProcessors come right after the state holding them.

    :param definition: A state machine definition or an ItemProcessor / Parallel branch.
    :param query_language: The inherited ``QueryLanguage``.
    """
    language = definition.get("QueryLanguage", query_language)
    for name, state in (definition.get("States") or {}).items():
        if not isinstance(state, dict):
            continue
        state_language = state.get("QueryLanguage", language)
        yield name, state, state_language
        for branch in state.get("Branches") or []:
            if isinstance(branch, dict):
                yield from iter_states(branch, state_language)
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if isinstance(processor, dict):
            yield from iter_states(processor, state_language)


def iter_distributed_maps(
    definition: dict[str, Any], query_language: str = "JSONPath"
) -> Iterator[tuple[str, dict[str, Any], str]]:
    """Yield ``(state_name, state, query_language)`` for every Distributed Map, nested ones included.

    :param definition: A state machine definition or an ItemProcessor / Parallel branch.
    :param query_language: The inherited ``QueryLanguage``.
    """
    return (found for found in iter_states(definition, query_language) if is_distributed_map(found[1]))


#: State types a Map's source is known to exist (or not) after: they do no work and take no branch.
_PASS_THROUGH_TYPES = frozenset({"Pass", "Wait"})


def map_reading_at_start(definition: dict[str, Any]) -> str | None:
    """The top-level Distributed Map every execution reaches from ``StartAt`` through Pass and Wait alone.

    What such a Map's ItemReader reads exists, or not, when the execution starts. A Map reached after a Task,
    Parallel or another Map may read what that state writes, and one behind a Choice may never run.

    :param definition: A state machine definition.
    """
    states = definition.get("States")
    if not isinstance(states, dict):
        return None
    name, seen = definition.get("StartAt"), set()
    while isinstance(name, str) and name not in seen and isinstance(states.get(name), dict):
        seen.add(name)
        state = states[name]
        if is_distributed_map(state):
            return name
        if state.get("Type") not in _PASS_THROUGH_TYPES:
            return None
        name = state.get("Next")
    return None
