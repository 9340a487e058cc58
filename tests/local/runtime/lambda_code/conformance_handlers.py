"""Lambda handlers the conformance cases describe (the corpus ships behaviour, not code)."""

from __future__ import annotations

from typing import Any


def identity(event: Any, context: Any) -> Any:
    """Return the invocation event unchanged (the corpus's Lambda in both Lambda cases)."""
    return event


def fail_on_negative(event: Any, context: Any) -> Any:
    """Raise ``ValueError`` when the event's ``n`` (or the event itself) is negative, else echo it."""
    value = event.get("n") if isinstance(event, dict) else event
    if isinstance(value, int | float) and value < 0:
        raise ValueError(f"negative value {value}")
    return event
