"""Cohort test fixtures: an include folder per test, the demo warehouse built once, SQL connections."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_builder() -> ModuleType:
    """``include/warehouse/build_warehouse.py`` (a script, not a package) as a module."""
    path = ROOT / "include" / "warehouse" / "build_warehouse.py"
    spec = importlib.util.spec_from_file_location("build_warehouse", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def builder() -> ModuleType:
    return load_builder()


@pytest.fixture
def include(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh include folder that relative cohort paths resolve against."""
    folder = tmp_path / "include"
    folder.mkdir()
    monkeypatch.setenv("INFOBIP_INCLUDE_DIR", str(folder))
    return folder


@pytest.fixture(scope="session")
def warehouse_db(tmp_path_factory: pytest.TempPathFactory, builder: ModuleType) -> Path:
    """The demo warehouse (default size and seed), built once into a temporary folder."""
    return builder.build_warehouse(tmp_path_factory.mktemp("warehouse") / "warehouse.db")


@pytest.fixture
def warehouse_conn(warehouse_db: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """``warehouse_default`` defined exactly as the docs tell users to."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_WAREHOUSE_DEFAULT", json.dumps({"conn_type": "sqlite", "host": str(warehouse_db)})
    )
    return "warehouse_default"


def write(path: Path, text: str | bytes, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_bytes(text.encode(encoding))
    return path
