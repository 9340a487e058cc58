"""Retry and Catch: retriers with backoff, jitter and per-retrier counters; catchers with their ResultPath."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_distmap.local.asl.io import compile_optional_path

#: Errors no retrier or catcher ever matches (AWS: "not retriable", "cannot be caught by States.ALL").
UNCATCHABLE_ERRORS = frozenset({"States.Runtime", "States.DataLimitExceeded"})

DEFAULT_INTERVAL_SECONDS = 1
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_BACKOFF_RATE = 2.0


def error_matches(error_equals: Sequence[str], error: str) -> bool:
    """Whether an ``ErrorEquals`` list matches an error name.

    ``States.ALL`` matches everything, ``States.TaskFailed`` everything except ``States.Timeout``; neither
    matches ``States.Runtime`` or ``States.DataLimitExceeded``, and nothing else does either.

    :param error_equals: the retrier's or catcher's ``ErrorEquals``.
    :param error: the error name.
    """
    if error in UNCATCHABLE_ERRORS:
        return False
    if error in error_equals or "States.ALL" in error_equals:
        return True
    return "States.TaskFailed" in error_equals and error != "States.Timeout"


class Retrier:
    """One element of a state's ``Retry``.

    :param spec: the retrier as written in the definition.
    """

    __slots__ = ("backoff_rate", "error_equals", "full_jitter", "interval", "max_attempts", "max_delay")

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.error_equals = tuple(spec["ErrorEquals"])
        self.interval = float(spec.get("IntervalSeconds", DEFAULT_INTERVAL_SECONDS))
        self.max_attempts = int(spec.get("MaxAttempts", DEFAULT_MAX_ATTEMPTS))
        self.backoff_rate = float(spec.get("BackoffRate", DEFAULT_BACKOFF_RATE))
        max_delay = spec.get("MaxDelaySeconds")
        self.max_delay = float(max_delay) if max_delay is not None else None
        self.full_jitter = spec.get("JitterStrategy", "NONE") == "FULL"

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt + 1`` (``attempt`` counts retries already made).

        :param attempt: retries this retrier already made in this state execution (0 for the first).
        """
        delay = self.interval * self.backoff_rate**attempt
        if self.max_delay is not None:
            delay = min(delay, self.max_delay)
        if self.full_jitter:
            delay = random.uniform(0.0, delay)
        return delay


class RetryPolicy:
    """A state's ``Retry`` list; :meth:`next_delay` consumes one attempt of the first matching retrier.

    :param specs: the ``Retry`` list.
    """

    __slots__ = ("retriers",)

    def __init__(self, specs: Sequence[Mapping[str, Any]]) -> None:
        self.retriers = tuple(Retrier(spec) for spec in specs)

    def next_delay(self, error: str, counters: list[int]) -> float | None:
        """The delay before the next attempt, or ``None`` when the error must not be retried.

        Only the *first* retrier whose ErrorEquals matches is considered; when its attempts are used up, the
        error goes to the catchers (ASL spec).

        :param error: the error name.
        :param counters: per-retrier attempt counters for this state execution (updated in place).
        """
        for index, retrier in enumerate(self.retriers):
            if error_matches(retrier.error_equals, error):
                if counters[index] >= retrier.max_attempts:
                    return None
                delay = retrier.delay(counters[index])
                counters[index] += 1
                return delay
        return None


class Catcher:
    """One element of a state's ``Catch``.

    :param spec: the catcher as written in the definition.
    """

    __slots__ = ("error_equals", "next", "result_path")

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.error_equals = tuple(spec["ErrorEquals"])
        self.next: str = spec["Next"]
        self.result_path = compile_optional_path(spec, "ResultPath")


def find_catcher(catchers: Sequence[Catcher], error: str) -> Catcher | None:
    """The first catcher matching an error, if any.

    :param catchers: the state's catchers.
    :param error: the error name.
    """
    for catcher in catchers:
        if error_matches(catcher.error_equals, error):
            return catcher
    return None
