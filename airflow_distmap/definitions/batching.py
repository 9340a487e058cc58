"""Typed ItemBatcher builder: send several items to one child execution (spec §2.3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from airflow_distmap.definitions._checks import MAX_INPUT_BYTES_PER_BATCH, check_int


@dataclass(frozen=True)
class ItemBatcher:
    """Group items into batches; each child receives ``{"Items": [...]}`` (plus ``BatchInput`` when given).

    :param max_items_per_batch: At most this many items per batch.
    :param max_input_bytes_per_batch: At most this many bytes per batch (up to 262144, 256 KiB).
    :param batch_input: A fixed JSON object (``key.$`` paths allowed) sent with every batch; an Airflow
        template field: an operator that templates its ``item_batcher`` renders it (``{"day": "{{ ds }}"}``).
    """

    template_fields: ClassVar[tuple[str, ...]] = ("batch_input",)

    max_items_per_batch: int | None = None
    max_input_bytes_per_batch: int | None = None
    batch_input: dict[str, Any] | None = None

    def to_asl(self) -> dict[str, Any]:
        """Render the ``ItemBatcher`` field."""
        if self.max_items_per_batch is None and self.max_input_bytes_per_batch is None:
            raise ValueError(
                "ItemBatcher needs a limit. To fix this, pass max_items_per_batch (e.g. 100), "
                "max_input_bytes_per_batch (at most 262144), or both."
            )
        batcher: dict[str, Any] = {}
        if self.max_items_per_batch is not None:
            batcher["MaxItemsPerBatch"] = check_int(self.max_items_per_batch, "max_items_per_batch", 1)
        if self.max_input_bytes_per_batch is not None:
            batcher["MaxInputBytesPerBatch"] = check_int(
                self.max_input_bytes_per_batch,
                "max_input_bytes_per_batch",
                1,
                MAX_INPUT_BYTES_PER_BATCH,
                hint=" (a child's input is limited to 256 KiB)",
            )
        if self.batch_input is not None:
            if not isinstance(self.batch_input, dict):
                raise ValueError(
                    f"batch_input must be a JSON object, got {type(self.batch_input).__name__}. To fix this, "
                    "pass a dict such as {'run_date': '2025-01-01'}."
                )
            batcher["BatchInput"] = self.batch_input
        return batcher
