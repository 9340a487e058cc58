"""The project's example DAGs and Lambda functions are found from any working directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_distmap.project_files import project_path

REPO = Path(__file__).resolve().parents[1]


def test_the_working_directory_comes_first_then_the_project(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert project_path("dags") == REPO / "dags"
    assert project_path("lambda_functions") == REPO / "lambda_functions"
    assert project_path("no_such_folder") == Path("no_such_folder")
    (tmp_path / "dags").mkdir()
    assert project_path("dags") == Path("dags")  # the user's own folder wins
    assert project_path("dags", containing="csv_row_processing.py") == REPO / "dags"  # unless it lacks that
    assert project_path(tmp_path / "elsewhere") == tmp_path / "elsewhere"


@pytest.mark.timeout(300)
def test_the_demo_runs_outside_the_repository(tmp_path: Path) -> None:
    (tmp_path / "dags").mkdir()  # the user's own Airflow project, without the demo's DAG or function
    (tmp_path / "lambda_functions" / "theirs").mkdir(parents=True)
    done = subprocess.run(
        [sys.executable, "-m", "airflow_distmap.cli", "demo", "--rows", "200", "--batch-size", "50"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=280,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert re.search(r"succeeded\s+│\s+200\s", done.stdout), done.stdout
    assert re.search(r"failed\s+│\s+0\s", done.stdout), done.stdout
    assert (tmp_path / ".demo" / "airflow").is_dir()  # its work files stay in the working directory
