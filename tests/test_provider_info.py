"""The provider's metadata: the entry point, the connection form, and a schema check."""

from __future__ import annotations

import json
from importlib.metadata import entry_points
from pathlib import Path

import airflow
import jsonschema

from infobip_provider import get_provider_info

FIELDS = {
    "application_id",
    "entity_id",
    "sender",
    "cooldown_scale",
    "cooldown_backend",
    "cooldown_redis_url",
    "state_uri",
    "timeout",
    "allow_insecure_http",
    "webhook_secret",
}


def test_provider_info_validates_against_airflows_schema():
    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_connection_type_form():
    (conn,) = get_provider_info()["connection-types"]
    assert conn["connection-type"] == "infobip"
    assert conn["hook-class-name"] == "infobip_provider.hooks.infobip.InfobipHook"
    assert set(conn["conn-fields"]) == FIELDS
    for name, spec in conn["conn-fields"].items():
        assert spec["label"] and spec["description"] and spec["schema"]["type"], name
    assert conn["conn-fields"]["cooldown_backend"]["schema"]["enum"] == ["auto", "memory", "file", "redis"]
    behaviour = conn["ui-field-behaviour"]
    assert set(behaviour["hidden-fields"]) == {"login", "schema", "port"}
    assert behaviour["relabeling"] == {"host": "Base URL", "password": "API key"}
    assert behaviour["placeholders"]["host"]


def test_conn_fields_fit_airflows_provider_yaml_schema():
    schema = json.loads((Path(airflow.__file__).parent / "provider.yaml.schema.json").read_text())
    conn_schema = schema["properties"]["connection-types"]["items"]
    (conn,) = get_provider_info()["connection-types"]
    jsonschema.validate(conn, conn_schema)


def test_entry_point_is_installed_and_points_here():
    eps = [
        ep for ep in entry_points(group="apache_airflow_provider") if ep.value.startswith("infobip_provider")
    ]
    assert eps, "pip install -e . registers the apache_airflow_provider entry point"
    assert eps[0].load()() == get_provider_info()


def test_hook_class_matches_provider_info():
    from infobip_provider.hooks.infobip import InfobipHook

    assert InfobipHook.conn_type == "infobip"
    assert InfobipHook.default_conn_name == "infobip_default"
