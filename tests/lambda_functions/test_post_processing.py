from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from airflow_distmap.lambda_zip import build_zip
from airflow_distmap.lambda_zip import main as zip_main

FUNCTION_DIR = Path(__file__).resolve().parents[2] / "lambda_functions" / "post_processing"


def load_handler_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("post_processing_handler", FUNCTION_DIR / "handler.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def post_processing() -> ModuleType:
    return load_handler_module()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  Hello,   World!! 123 ", "Processed data: Hello World"),
        ("Crème brûlée — 5€\tnaïve\n", "Processed data: Crème brûlée naïve"),
        ("日本語 テキスト", "Processed data: 日本語 テキスト"),
        ("1234 !!!", "Processed data: "),
        ("", "Processed data: "),
    ],
)
def test_clean_text(post_processing: ModuleType, text: str, expected: str) -> None:
    assert post_processing.clean_text(text) == expected


def test_handler_reads_the_configured_column_in_a_batch(post_processing: ModuleType) -> None:
    event = {
        "Items": [
            {"index": 1, "row": {"id": "1", "text": "a-b c"}},
            {"index": 2, "row": {"id": "2", "other": "x"}},
        ],
        "BatchInput": {"config": {"column": "text"}},
    }
    result = post_processing.handler(event, None)
    assert result["rows"][0] == {"index": 1, "output": "Processed data: ab c"}
    assert result["rows"][1]["index"] == 2
    assert result["rows"][1]["error"]["type"] == "ValueError"
    assert "'text' is not in the row" in result["rows"][1]["error"]["message"]


def test_handler_uses_the_only_column_or_the_environment(
    post_processing: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert post_processing.handler({"index": 0, "row": {"body": "x1y"}}, None) == {
        "index": 0,
        "output": "Processed data: xy",
    }
    two_columns = {"index": 0, "row": {"a": "one", "b": "two"}}
    assert post_processing.handler(two_columns, None)["error"]["type"] == "ValueError"
    monkeypatch.setenv("POST_PROCESSING_COLUMN", "b")
    reloaded = load_handler_module()  # a Lambda sandbox reads its environment when it loads the module
    assert reloaded.handler(two_columns, None)["output"] == "Processed data: two"


def test_zip_holds_handler_and_runtime_and_runs_without_the_package(tmp_path: Path) -> None:
    out = build_zip(FUNCTION_DIR, tmp_path / "build" / "post_processing.zip")
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
        archive.extractall(tmp_path / "task")
    assert names == ["airflow_distmap/__init__.py", "airflow_distmap/lambda_runtime.py", "handler.py"]
    # -I -S: no site-packages, like a bare Lambda runtime; only the unpacked zip is importable.
    script = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import handler; "
        "print(json.dumps(handler.handler({'Items': [{'index': 5, 'row': {'t': 'Hi 2 you!'}}]}, None)))"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", script, str(tmp_path / "task")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout) == {"rows": [{"index": 5, "output": "Processed data: Hi you"}]}


def test_zip_is_reproducible(tmp_path: Path) -> None:
    first = build_zip(FUNCTION_DIR, tmp_path / "a.zip").read_bytes()
    second = build_zip(FUNCTION_DIR, tmp_path / "b.zip").read_bytes()
    assert first == second


def test_zip_cli_refuses_a_folder_without_handler(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert zip_main([str(tmp_path), str(tmp_path / "x.zip")]) == 2
    assert "has no handler.py" in capsys.readouterr().err
