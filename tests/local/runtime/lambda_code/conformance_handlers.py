"""Lambda handlers the conformance cases describe (the corpus ships behaviour, not code)."""

from __future__ import annotations

from typing import Any


def identity(event: Any, context: Any) -> Any:
    """Return the invocation event unchanged (the corpus's Lambda in both Lambda cases)."""
    return event
