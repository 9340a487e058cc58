"""A realistic, messy CSV for the demo and the benchmarks.

Free text with punctuation, digits, extra whitespace, non-ASCII letters, quoted fields holding commas, quotes
and newlines.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterator

_WORDS = (
    "order shipped late again!!! customer #4411 says the box was DAMAGED, refund?",
    "great product :) would buy again -- 5 stars",
    "Café crème brûlée: naïve façade, déjà vu (unicode OK?)",
    'he said "it works" then it didn\'t',
    "multi\nline\nnote from the call center",
    "   lots     of      spaces   ",
    "tracking: 1Z999AA10123456784; ETA 2024-06-01",
    "emoji? 🚚📦 none of these are letters",
    "Straße, Größe, Übung — German; Ελληνικά; русский текст",
    "",
)
_CATEGORIES = ("returns", "shipping", "billing", "praise", "other")


def iter_messy_rows(rows: int, seed: int = 7) -> Iterator[list[str]]:
    """Yield ``rows`` data rows ``[id, customer, category, text, amount]``, deterministic for a seed."""
    rng = random.Random(seed)
    for index in range(rows):
        text = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 3)))
        amount = f"{rng.uniform(1, 500):.2f}"
        yield [str(index), f"cust-{rng.randint(1, 50_000):05d}", rng.choice(_CATEGORIES), text, amount]


def messy_csv_bytes(rows: int, seed: int = 7) -> bytes:
    """The whole demo CSV (header ``id,customer,category,text,amount``) as UTF-8 bytes."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "customer", "category", "text", "amount"])
    writer.writerows(iter_messy_rows(rows, seed))
    return buffer.getvalue().encode("utf-8")
