"""Build a Lambda deployment zip: a function folder plus :mod:`airflow_distmap.lambda_runtime`.

``python -m airflow_distmap.lambda_zip lambda_functions/post_processing build/post_processing.zip``

The zip holds the folder's files at the top level (so the Lambda handler setting is ``handler.handler``)
and ``airflow_distmap/__init__.py`` (empty) + ``airflow_distmap/lambda_runtime.py``, so the handler's
``from airflow_distmap.lambda_runtime import row_handler`` works unchanged on Lambda. Entries are written
in sorted order with a fixed timestamp, so the same sources always give the same bytes (and the same
code SHA-256 for Lambda's change detection).
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

import airflow_distmap.lambda_runtime as lambda_runtime

#: zip's earliest representable time; a constant keeps builds reproducible.
FIXED_DATE_TIME: Final = (1980, 1, 1, 0, 0, 0)
_SKIPPED_DIRS: Final = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "tests"})
_SKIPPED_SUFFIXES: Final = (".pyc", ".pyo")


def _function_files(function_dir: Path) -> Iterator[tuple[str, Path]]:
    for path in sorted(function_dir.rglob("*")):
        relative = path.relative_to(function_dir)
        if any(part in _SKIPPED_DIRS or part.startswith(".") for part in relative.parts):
            continue
        if path.is_file() and not path.name.endswith(_SKIPPED_SUFFIXES):
            yield relative.as_posix(), path


def _write(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=FIXED_DATE_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)


def build_zip(function_dir: str | Path, out_path: str | Path) -> Path:
    """Write the deployment zip of ``function_dir`` to ``out_path`` and return its path.

    :param function_dir: folder holding ``handler.py`` (and any other modules it imports).
    :param out_path: the zip to write; parent folders are created.
    :raises FileNotFoundError: ``function_dir`` has no ``handler.py``.
    """
    source = Path(function_dir)
    if not (source / "handler.py").is_file():
        raise FileNotFoundError(
            f"{source} has no handler.py: point at a folder like lambda_functions/<name>."
        )
    target = Path(out_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    entries: dict[str, bytes] = {name: path.read_bytes() for name, path in _function_files(source)}
    if "airflow_distmap/lambda_runtime.py" not in entries:
        entries["airflow_distmap/__init__.py"] = b""
        entries["airflow_distmap/lambda_runtime.py"] = Path(lambda_runtime.__file__).read_bytes()
    with zipfile.ZipFile(target, "w") as archive:
        for name in sorted(entries):
            _write(archive, name, entries[name])
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point: ``python -m airflow_distmap.lambda_zip FUNCTION_DIR OUT_ZIP``."""
    parser = argparse.ArgumentParser(prog="python -m airflow_distmap.lambda_zip", description=__doc__)
    parser.add_argument(
        "function_dir", help="folder holding handler.py, e.g. lambda_functions/post_processing"
    )
    parser.add_argument("out_zip", help="zip file to write, e.g. build/post_processing.zip")
    args = parser.parse_args(argv)
    try:
        target = build_zip(args.function_dir, args.out_zip)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"Wrote {target} (handler: handler.handler)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
