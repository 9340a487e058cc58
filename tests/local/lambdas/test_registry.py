from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_distmap.local.lambdas import (
    FunctionNotFound,
    FunctionRegistry,
    FunctionSpec,
    parse_function_option,
)


@pytest.fixture
def registry(tmp_path: Path) -> FunctionRegistry:
    for name in ("resize", "post_processing"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "handler.py").write_text("def handler(event, context):\n    return event\n")
    (tmp_path / "resize" / "function.json").write_text(
        json.dumps({"Timeout": 30, "MemorySize": 256, "Environment": {"Variables": {"MODE": "fast"}}})
    )
    (tmp_path / "not_a_function").mkdir()
    (tmp_path / "README.md").write_text("ignored")
    return FunctionRegistry.build(functions_dir=tmp_path, functions={"extra": "my_pkg.handlers:run"})


@pytest.mark.parametrize(
    "reference",
    [
        "resize",
        "resize:$LATEST",
        "resize:prod",
        "123456789012:function:resize",
        "arn:aws:lambda:us-east-1:123456789012:function:resize",
        "arn:aws:lambda:eu-west-1:123456789012:function:resize:7",
    ],
)
def test_names_and_arns_resolve_to_the_function(registry: FunctionRegistry, reference: str) -> None:
    assert registry.resolve(reference).name == "resize"


@pytest.mark.parametrize(
    "reference",
    [
        "unknown",
        "arn:aws:lambda:us-east-1:123456789012:function:unknown",
        "arn:aws:s3:::resize",
        "bad name",
        "",
    ],
)
def test_unknown_or_malformed_references_raise_function_not_found(
    registry: FunctionRegistry, reference: str
) -> None:
    with pytest.raises(FunctionNotFound) as caught:
        registry.resolve(reference)
    assert caught.value.name == reference


def test_folders_with_handler_py_are_functions_with_their_settings(
    registry: FunctionRegistry, tmp_path: Path
) -> None:
    resize = registry.resolve("resize")

    assert registry.names() == ["extra", "post_processing", "resize"]
    assert resize.handler == "handler:handler"
    assert resize.code_dir == str(tmp_path.resolve() / "resize")
    assert (resize.timeout, resize.memory_mb, dict(resize.environment)) == (30.0, 256, {"MODE": "fast"})
    assert registry.resolve("post_processing").timeout == 3.0
    assert registry.resolve("extra").module_and_attr() == ("my_pkg.handlers", "run")


def test_overrides_replace_discovered_functions(tmp_path: Path) -> None:
    (tmp_path / "resize").mkdir()
    (tmp_path / "resize" / "handler.py").write_text("def handler(event, context):\n    return 1\n")

    registry = FunctionRegistry.build(functions_dir=tmp_path, functions={"resize": "other.mod:fn"})

    assert registry.resolve("resize") == FunctionSpec(name="resize", handler="other.mod:fn")


def test_missing_functions_dir_registers_nothing(tmp_path: Path) -> None:
    assert FunctionRegistry.build(functions_dir=tmp_path / "absent").names() == []


@pytest.mark.parametrize("option", ["noequals", "=mod:fn", "name=", "name=justmodule", "bad name=mod:fn"])
def test_malformed_function_options_are_rejected(option: str) -> None:
    with pytest.raises(ValueError, match=r"NAME=module:callable|not 'module:callable'"):
        parse_function_option(option)


def test_a_function_option_with_a_bad_name_says_what_a_name_is() -> None:
    with pytest.raises(ValueError, match=r"'bad name' is not a Lambda function name \(1 to 64 letters"):
        parse_function_option("bad name=mod:fn")


def test_function_option_is_split() -> None:
    assert parse_function_option("shout=my_pkg.text:shout") == ("shout", "my_pkg.text:shout")
