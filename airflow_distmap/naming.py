r"""Step Functions names derived from Airflow task identity.

Execution names must be unique per task run (each DAG run and each mapped index gets its own
execution) and identical across the tries of that run, so that a retry finds the execution the
previous try started instead of starting a second one. Step Functions allows at most 80
characters and forbids whitespace and ``< > { } [ ] ? * " # % \\ ^ | ~ ` $ & , ; : /``; only
``0-9A-Za-z-_`` are also safe for CloudWatch Logs, so names use only those characters.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

MAX_NAME_LENGTH = 80
"""Step Functions' limit for state machine and execution names (``docs/distributed-map-spec.md`` §6)."""

HASH_LENGTH = 12
"""Hex digits of the SHA-256 digest appended to every derived name (48 bits: collisions are negligible)."""

DIGEST_LENGTH = 8
"""Hex digits of the definition digest in a default state machine name (:func:`definition_scoped_name`)."""

_UNSAFE = re.compile(r"[^0-9A-Za-z_-]+")
_UNSAFE_KEY = re.compile(r"[^0-9A-Za-z._=-]+")
_VALID_NAME = re.compile(r"^[0-9A-Za-z_-]{1,80}$")


def _readable(text: str) -> str:
    """Replace every run of characters outside ``0-9A-Za-z-_`` with a single ``_``."""
    return _UNSAFE.sub("_", text).strip("_")


def _digest(*parts: object) -> str:
    """A short stable hash of ``parts`` (JSON-encoded, so ``("a-b", "c")`` and ``("a", "b-c")`` differ)."""
    payload = json.dumps(list(parts), separators=(",", ":"), default=str).encode("utf-8")
    return hashlib.sha256(payload).hexdigest()[:HASH_LENGTH]


def _join(readable: str, digest: str) -> str:
    """``<readable prefix>-<digest>``, cutting the prefix so the whole is at most 80 characters."""
    room = MAX_NAME_LENGTH - len(digest) - 1
    prefix = readable[:room].rstrip("_-")
    return f"{prefix}-{digest}" if prefix else digest


def definition_scoped_name(base: str, definition: dict[str, Any]) -> str:
    """``base`` plus a digest of ``definition`` (at most 80 characters): one state machine per definition.

    :param base: The readable part of the name.
    :param definition: The state machine definition.
    """
    digest = hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()[:DIGEST_LENGTH]
    return _join(base, digest)


def suffixed_name(name: str, suffix: str) -> str:
    """``name`` cut so that ``name + suffix`` fits in 80 characters, then ``suffix``.

    :param name: An execution name.
    :param suffix: What to add, such as ``-n2``.
    """
    return name[: MAX_NAME_LENGTH - len(suffix)] + suffix


def execution_name(dag_id: str, task_id: str, run_id: str, map_index: int | None = None) -> str:
    """Derive the Step Functions execution name of one task run.

    The name is a readable prefix (task id, run id, map index) followed by a 12-digit hash of all four
    inputs, so it stays unique after the prefix is truncated. It does not depend on the try number:
    every try of one task run gets the same name.

    :param dag_id: The DAG id.
    :param task_id: The task id (including any task-group prefix).
    :param run_id: The DAG run id, e.g. ``scheduled__2025-01-01T00:00:00+00:00``.
    :param map_index: The task's map index; ``None`` or ``-1`` for an unmapped task.
    :return: A name of at most 80 characters made only of ``0-9A-Za-z-_``.
    """
    index = None if map_index is None or map_index < 0 else map_index
    readable = f"{_readable(task_id)}-{_readable(run_id)}"
    if index is not None:
        readable += f"-m{index}"
    return _join(readable, _digest(dag_id, task_id, run_id, index))


def input_scoped_name(name: str, execution_input: str) -> str:
    """The execution name a task run uses when its input differs from that of its closed execution.

    A closed execution keeps its input (a redrive re-runs it with the old one) and its name stays taken for
    90 days, so a try whose input changed (a replaced input file, for example) starts a new execution under
    this name: ``name``, cut to fit, and 8 hex digits of a digest of the input. It is the same for every try
    with that input, so a retry still attaches to, reuses or redrives it.

    :param name: The task run's execution name (:func:`execution_name` or the user's).
    :param execution_input: The execution input, as JSON text.
    :return: A name of at most 80 characters made only of ``0-9A-Za-z-_``.
    """
    return _join(name, _digest(name, execution_input)[:8])


def successor_name(name: str, number: int) -> str:
    """The task run's ``number``-th execution name (2, 3, ...), used when AWS refuses to redrive the last one.

    AWS redrives a closed execution only for 14 days and within its history quota; past that a retry must
    start a new execution. Its name is ``name``, cut to fit, and ``-n<number>``: the same for every try, so a
    later retry finds it again and attaches to, reuses or redrives it.

    :param name: The task run's execution name.
    :param number: 2 for the first successor, then 3, ...
    :return: A name of at most 80 characters made only of ``0-9A-Za-z-_``.
    """
    return suffixed_name(name, f"-n{number}")


def default_state_machine_name(dag_id: str, task_id: str) -> str:
    """Derive a state machine name for a task that does not name one: one state machine per task.

    :param dag_id: The DAG id.
    :param task_id: The task id.
    :return: A name of at most 80 characters made only of ``0-9A-Za-z-_``.
    """
    return _join(f"{_readable(dag_id)}-{_readable(task_id)}", _digest(dag_id, task_id)[:8])


def _key_part(text: str) -> str:
    return _UNSAFE_KEY.sub("_", text).strip("_") or "_"


def task_results_key(dag_id: str, task_id: str) -> str:
    """``distmap-results/<dag>/<task>``: where a task's runs keep their results, each under its own prefix.

    :param dag_id: The DAG id.
    :param task_id: The task id.
    """
    return f"distmap-results/{_key_part(dag_id)}/{_key_part(task_id)}"


def task_run_results_key(dag_id: str, task_id: str, run_id: str, map_index: int | None = None) -> str:
    """``distmap-results/<dag>/<task>/<run>[/<map index>]/``: the default results prefix of one task run.

    Each task run (and mapped index) gets its own prefix, the same on every try, so retries and backfills
    never mix their results.

    :param dag_id: The DAG id.
    :param task_id: The task id.
    :param run_id: The DAG run id.
    :param map_index: The mapped task index (``None`` or negative when the task is not mapped).
    """
    parts = [task_results_key(dag_id, task_id), _key_part(run_id)]
    if isinstance(map_index, int) and map_index >= 0:
        parts.append(str(map_index))
    return "/".join(parts) + "/"


def validate_name(name: str, what: str = "name") -> None:
    """Check a state machine or execution name before any AWS call.

    Step Functions allows more characters than ``0-9A-Za-z-_``, but the others break CloudWatch Logs;
    this provider accepts only the safe set.

    :param name: The name to check.
    :param what: What the name is for, used in the error message (``state_machine_name``...).
    :raises ValueError: The name is empty, too long or has a character outside ``0-9A-Za-z-_``.
    """
    if not isinstance(name, str) or not _VALID_NAME.match(name):
        bad = sorted(set(_UNSAFE.findall(name))) if isinstance(name, str) else []
        problem = (
            f"is {len(name)} characters long"
            if isinstance(name, str) and len(name) > MAX_NAME_LENGTH
            else f"contains {' '.join(repr(b) for b in bad)}"
            if bad
            else "is empty"
        )
        example = _readable(str(name))[:MAX_NAME_LENGTH] or "my-name"
        raise ValueError(
            f"Invalid {what} {name!r}: it {problem}. To fix this, use 1 to {MAX_NAME_LENGTH} characters "
            f"from 0-9, A-Z, a-z, '-' and '_' (for example {example!r})."
        )
