"""Every file in dags/ imports cleanly, and every DAG keeps the shape users rely on."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT

DAGS = ROOT / "dags"
HEAVY = {"pandas", "pyarrow", "requests", "phonenumbers", "redis"}


def _bag(folder: Path):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(folder))


def test_every_dag_file_imports_without_errors():
    bag = _bag(DAGS)
    assert bag.import_errors == {}
    assert len(bag.dags) == len(list(DAGS.glob("*.py")))


def test_an_empty_dags_folder_passes(tmp_path):
    bag = _bag(tmp_path)
    assert bag.import_errors == {} and bag.dags == {}


def test_a_broken_dag_file_is_reported(tmp_path):
    shutil.copy(DAGS / "infobip_cohort_to_list.py", tmp_path / "ok.py")
    (tmp_path / "broken.py").write_text("from airflow.sdk import dag\nimport not_a_module_anywhere\n")
    bag = _bag(tmp_path)
    assert list(bag.import_errors) and "not_a_module_anywhere" in next(iter(bag.import_errors.values()))


@pytest.mark.parametrize("path", sorted(DAGS.glob("*.py")), ids=lambda p: p.name)
def test_dag_files_import_nothing_heavy_at_top_level(path):
    tree = ast.parse(path.read_text())
    top = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            top.add(node.module.split(".")[0])
    assert not top & HEAVY


def test_cohort_to_list_dag_shape():
    dag = _bag(DAGS).dags["infobip_cohort_to_list"]
    assert dag.max_active_runs == 1 and dag.catchup is False
    task = dag.get_task("sync_list")
    assert task.retries >= 1
    for name in (
        "cohort_path",
        "cohort_sql",
        "warehouse_conn_id",
        "list_name",
        "id_column",
        "mode",
        "dry_run",
    ):
        param = dag.params.get_param(name)
        assert param.schema.get("title") and param.description, name
    assert task.operator_extra_links
