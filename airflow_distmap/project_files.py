"""Where the project's example DAGs and Lambda functions are, whatever the working directory."""

from __future__ import annotations

from pathlib import Path
from typing import Final

_PACKAGE: Final = Path(__file__).resolve().parent
#: Where a wheel carries the repository's ``dags/`` and ``lambda_functions/`` (pyproject's force-include).
BUNDLED_EXAMPLES: Final = _PACKAGE / "examples"


def project_path(path: str | Path, containing: str | None = None) -> Path:
    """``path`` when it is absolute or exists; else the project's own folder of that name, if there is one.

    A relative path is looked for in the working directory, then in the source checkout the package is
    installed from (an editable install), then among the files the wheel carries. So ``airflow-distmap demo``
    and ``airflow-distmap local`` find the example DAGs and Lambda functions from any directory.

    :param path: a folder, such as ``dags`` or ``lambda_functions``.
    :param containing: pass over a folder that lacks this entry (the demo's DAG file, say).
    """
    given = Path(path)
    if given.is_absolute():
        return given
    for candidate in (given, _PACKAGE.parent / given, BUNDLED_EXAMPLES / given):
        if candidate.exists() and (containing is None or (candidate / containing).exists()):
            return candidate
    return given
