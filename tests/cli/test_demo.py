from __future__ import annotations

import pytest

from airflow_distmap.cli import main


@pytest.mark.parametrize(
    "option", [["--rows", "0"], ["--rows", "-5"], ["--rows", "many"], ["--batch-size", "0"]]
)
def test_a_count_below_one_is_a_usage_error_before_anything_starts(
    option: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["demo", *option])
    assert caught.value.code == 2
    assert "Expected a whole number of at least 1" in capsys.readouterr().err
