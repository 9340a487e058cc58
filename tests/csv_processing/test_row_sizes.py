from __future__ import annotations

from typing import Any

import pytest

from airflow_distmap.csv_processing.preflight import check_csv_input
from airflow_distmap.csv_processing.row_sizes import check_row_sizes
from airflow_distmap.exceptions import RowTooLargeError

BUCKET = "data"


@pytest.mark.parametrize("ragged", [False, True])
def test_the_largest_selected_row_is_found_with_or_without_ragged_rows(s3: Any, ragged: bool) -> None:
    rows = ["1,short", "2," + "é" * 1000, "3,mid" if not ragged else "3"]
    s3.put_object(Bucket=BUCKET, Key="in.csv", Body=("id,text\n" + "\n".join(rows) + "\n").encode())
    layout = check_csv_input(s3, f"s3://{BUCKET}/in.csv", columns=["text"])
    largest = check_row_sizes(s3, layout, 10_000)
    assert 2000 < largest < 2100  # 1000 two-byte characters plus the envelope
    with pytest.raises(RowTooLargeError, match=r"Row 1 \(0-based"):
        check_row_sizes(s3, layout, 1000)
