from __future__ import annotations

from pathlib import Path

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


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--functions-dir", "No post_processing function folder in /no/such/folder. To fix this"),
        ("--dags-folder", "No csv_row_processing.py in /no/such/folder. To fix this"),
    ],
)
def test_a_folder_without_what_the_demo_runs_is_refused_before_anything_starts(
    option: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--workdir", str(tmp_path), option, "/no/such/folder"]) == 2
    assert message in " ".join(capsys.readouterr().out.split())
    assert not (tmp_path / "airflow").exists()
