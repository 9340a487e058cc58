from __future__ import annotations

import importlib
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

from airflow_distmap.provider_info import get_provider_info


def test_entry_point_points_at_get_provider_info():
    points = [
        e for e in entry_points(group="apache_airflow_provider") if e.value.startswith("airflow_distmap")
    ]
    assert [e.value for e in points] == ["airflow_distmap.provider_info:get_provider_info"]
    assert points[0].load()()["package-name"] == "airflow-distmap"


def test_extra_links_resolve_to_link_classes():
    from airflow.providers.common.compat.sdk import BaseOperatorLink

    for path in get_provider_info()["extra-links"]:
        module, name = path.rsplit(".", 1)
        cls = getattr(importlib.import_module(module), name)
        assert issubclass(cls, BaseOperatorLink)


def test_providers_manager_registers_the_provider_and_links():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert "airflow-distmap" in manager.providers
    assert "airflow_distmap.links.distributed_map.MapRunLink" in manager.extra_links_class_names


def test_airflow_providers_list_shows_it(tmp_path):
    airflow = Path(sys.executable).with_name("airflow")
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path)}
    result = subprocess.run(
        [str(airflow), "providers", "list"], capture_output=True, text=True, env=env, timeout=240, check=True
    )
    assert "airflow-distmap" in result.stdout


def test_provider_info_follows_airflows_schema_and_names_importable_modules():
    import json

    import airflow
    import jsonschema

    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    info = get_provider_info()
    jsonschema.validate(info, schema)
    for group in ("operators", "hooks", "triggers"):
        for entry in info[group]:
            for module in entry["python-modules"]:
                importlib.import_module(module)
