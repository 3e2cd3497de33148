"""The infobip_people_import DAG keeps the shape users rely on (params, schedule, retries, templating)."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT

PARAMS = ("cohort_sql", "warehouse_conn_id", "cohort_path", "tag", "person_type", "field_map", "dry_run")


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / "infobip_people_import.py"))
    assert bag.import_errors == {}
    return bag.dags["infobip_people_import"]


def test_people_import_dag_shape(dag):
    from infobip_provider.operators.people import PeopleImportOperator

    assert dag.max_active_runs == 1 and dag.catchup is False
    assert dag.render_template_as_native_obj is True
    assert dag.schedule == "@hourly"
    task = dag.get_task("import_people")
    assert isinstance(task, PeopleImportOperator) and task.retries >= 1
    for name in PARAMS:
        param = dag.params.get_param(name)
        assert param.schema.get("title") and param.description, name


def test_people_import_dag_defaults_read_the_embedded_warehouse(dag):
    params = dag.params
    assert params["cohort_sql"] == "sql/people_cohort.sql"
    assert (ROOT / "include" / "sql" / "people_cohort.sql").is_file()
    assert params["warehouse_conn_id"] == "warehouse_default"
    assert params.get_param("person_type").schema["enum"] == ["CUSTOMER", "LEAD"]
    assert params.get_param("field_map").schema["type"] == "object"
    assert params["dry_run"] is False


def test_every_default_mapped_column_is_selected_by_the_default_sql(dag):
    from infobip_provider.people import parse_field_map

    sql = (ROOT / "include" / "sql" / "people_cohort.sql").read_text()
    mapping = parse_field_map(dag.params["field_map"], dag.params["person_type"], external_id=True)
    for column in [*mapping.columns, "email", "phone", "customer_id", "country"]:
        assert f"    {column}," in sql or f"    {column}\n" in sql, column


def test_people_import_dag_templates_every_param_into_the_operator(dag):
    task = dag.get_task("import_people")
    rendered = {
        "tag": task.tag,
        "cohort_sql": task.cohort_sql,
        "cohort_conn_id": task.cohort_conn_id,
        "cohort_path": task.cohort_path,
        "person_type": task.person_type,
        "field_map": task.field_map,
        "dry_run": task.dry_run,
    }
    for field, value in rendered.items():
        assert field in task.template_fields and "params." in str(value), field
