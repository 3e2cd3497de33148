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


def test_people_import_dag_defaults(dag):
    params = dag.params
    assert params["cohort_sql"] is None and params["cohort_path"] is None  # the sample file
    assert params["warehouse_conn_id"] == "warehouse_default"
    assert params.get_param("person_type").schema["enum"] == ["CUSTOMER", "LEAD"]
    assert params.get_param("field_map").schema["type"] == ["null", "object"]
    assert params["field_map"] is None  # the columns named like standard fields
    assert params["dry_run"] is False


def test_the_warehouse_query_selects_the_identities_and_standard_fields():
    from infobip_provider.people import automatic_field_map

    sql = (ROOT / "include" / "sql" / "people_cohort.sql").read_text()
    columns = [line.strip().rstrip(",") for line in sql.splitlines() if line.startswith("    ")]
    assert {"email", "phone", "country"} <= set(columns)
    assert set(automatic_field_map(columns).values()) >= {"firstName", "lastName", "gender", "birthDate"}


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
