"""Checks shared by the definition builders: each raises ``ValueError`` naming the problem and the fix."""

from __future__ import annotations

import re
from typing import Any

MAX_CONCURRENCY = 10_000
"""Hard quota of parallel child executions per Map Run; 0 means "unlimited" (= 10,000)."""

MAX_ITEMS = 100_000_000
"""``ReaderConfig.MaxItems`` ceiling; 0 means no limit."""

MAX_INPUT_BYTES_PER_BATCH = 262_144
"""``ItemBatcher.MaxInputBytesPerBatch`` ceiling (256 KiB)."""

MAX_LABEL_LENGTH = 40

# Whitespace, ? * < > { } [ ] : ; , \ | ^ ~ $ # % & ` " and control characters (docs: Distributed Map, Label).
_LABEL_FORBIDDEN = re.compile(r"[\s?*<>{}\[\]:;,\\|^~$#%&`\"\u0000-\u001f\u007f-\u009f]")


def check_int(value: Any, name: str, low: int, high: int | None = None, *, hint: str = "") -> int:
    """Return ``value`` if it is an ``int`` in ``[low, high]``, else raise ``ValueError``."""
    in_range = isinstance(value, int) and not isinstance(value, bool) and value >= low
    if in_range and high is not None:
        in_range = value <= high
    if not in_range:
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValueError(
            f"{name}={value!r} is invalid: it must be a whole number {bounds}. To fix this, pass an "
            f"integer {bounds}{hint}."
        )
    return int(value)


def check_percentage(value: Any, name: str) -> float:
    """Return ``value`` if it is a number in ``[0, 100]``, else raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
        raise ValueError(
            f"{name}={value!r} is invalid: it must be a percentage between 0 and 100. To fix this, pass a "
            "number such as 5 or 2.5 (100 tolerates every failure)."
        )
    return float(value)


def check_label(label: str) -> str:
    """Return ``label`` if Step Functions accepts it as a Map state Label, else raise ``ValueError``."""
    if not isinstance(label, str) or not label:
        raise ValueError("label must be a non-empty string. To fix this, pass a name such as 'ProcessRows'.")
    if len(label) > MAX_LABEL_LENGTH:
        raise ValueError(
            f"label {label!r} is {len(label)} characters long; Step Functions allows at most "
            f"{MAX_LABEL_LENGTH}. To fix this, shorten it."
        )
    bad = sorted(set(_LABEL_FORBIDDEN.findall(label)))
    if bad:
        raise ValueError(
            f"label {label!r} contains {' '.join(repr(c) for c in bad)}, which Step Functions forbids in "
            "a Map Run label. To fix this, use letters, digits, '-', '_' and '.' only."
        )
    return label


def check_non_empty(value: Any, name: str, example: str) -> str:
    """Return ``value`` if it is a non-empty string, else raise ``ValueError``."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string. To fix this, pass something like {example!r}.")
    return value


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise ``ValueError`` listing them."""
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not supported. To fix this, use one of: {', '.join(choices)}.")
    return str(value)
