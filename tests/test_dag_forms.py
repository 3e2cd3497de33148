"""The three example DAGs' trigger forms: what is optional is optional, fields sit in sections, and
the cohort is chosen the same way everywhere (the param the user set wins; both is an error;
neither is the sample file)."""

from __future__ import annotations

import copy

import pytest

from infobip_provider.cohorts import CohortError, FileSource, SqlSource
from infobip_provider.operators.common import cohort_source_for
from infobip_provider.params import SAMPLE_COHORT
from tests.conftest import ROOT

TASKS = {
    "infobip_cohort_to_list": "sync_list",
    "infobip_people_import": "import_people",
    "infobip_sms_broadcast": "broadcast",
    "infobip_email_broadcast": "broadcast",
    "infobip_whatsapp_broadcast": "broadcast",
}
SECTIONS = {"Cohort", "Infobip target", "Safety", "Schedule"}


@pytest.fixture(scope="module")
def dags():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    return bag.dags


def nullable(schema: dict) -> bool:
    kind = schema.get("type")
    return kind is None or kind == "null" or (isinstance(kind, list) and "null" in kind)


@pytest.mark.parametrize("dag_id", TASKS)
def test_every_empty_default_is_nullable_and_every_param_has_a_section(dags, dag_id):
    dag = dags[dag_id]
    assert dag.description
    for name, param in dag.params.items():
        schema = dag.params.get_param(name).schema
        if param in (None, ""):
            assert nullable(schema), f"{dag_id}.{name}: the form would call it required"
        assert schema.get("section") in SECTIONS, f"{dag_id}.{name}"
        assert schema.get("title") and dag.params.get_param(name).description, f"{dag_id}.{name}"


def source(dag, context_params: dict):
    task = copy.deepcopy(dag.get_task(TASKS[dag.dag_id]))
    params = {**dag.params.dump(), **context_params}
    context = {"params": params, "run_id": "manual__form", "ds": "2026-03-02"}
    task.render_template_fields(context)
    return cohort_source_for(task, context)


@pytest.mark.parametrize("dag_id", TASKS)
def test_no_cohort_given_reads_the_sample(dags, dag_id):
    found = source(dags[dag_id], {})
    assert isinstance(found, FileSource) and found.path == SAMPLE_COHORT
    assert (ROOT / "include" / SAMPLE_COHORT).is_file()


@pytest.mark.parametrize("dag_id", TASKS)
def test_a_file_given_is_the_file(dags, dag_id, tmp_path):
    mine = tmp_path / "mine.csv"
    found = source(dags[dag_id], {"cohort_path": str(mine)})
    assert isinstance(found, FileSource) and found.path == str(mine)


@pytest.mark.parametrize("dag_id", TASKS)
def test_a_query_given_is_the_query_on_the_named_connection(dags, dag_id):
    found = source(dags[dag_id], {"cohort_sql": "SELECT email, phone FROM t", "warehouse_conn_id": "dwh"})
    assert isinstance(found, SqlSource)
    assert found.conn_id == "dwh" and "FROM t" in found.query()


@pytest.mark.parametrize("dag_id", TASKS)
def test_a_file_and_a_query_is_a_clear_error(dags, dag_id):
    with pytest.raises(CohortError, match="give one of cohort_path and cohort_sql"):
        source(dags[dag_id], {"cohort_path": "mine.csv", "cohort_sql": "SELECT 1"})


@pytest.mark.parametrize("dag_id", TASKS)
def test_empty_text_counts_as_not_given(dags, dag_id):
    found = source(dags[dag_id], {"cohort_path": "", "cohort_sql": "  "})
    assert isinstance(found, FileSource) and found.path == SAMPLE_COHORT


BROADCASTS = ("infobip_sms_broadcast", "infobip_email_broadcast", "infobip_whatsapp_broadcast")


@pytest.mark.parametrize("dag_id", BROADCASTS)
def test_broadcasts_respect_the_recipient_from_the_form(dags, dag_id):
    dag = dags[dag_id]
    for name in ("quiet_hours", "max_per_person", "suppression_path"):
        schema = dag.params.get_param(name).schema
        assert dag.params[name] is None and nullable(schema), f"{dag_id}.{name} is optional"
    assert dag.params["respect_suppression"] is True  # on unless the user unticks it
    task = copy.deepcopy(dag.get_task(TASKS[dag_id]))
    quiet = {"from": "21:00", "to": "09:00", "days": ["MONDAY"]}
    cap = {"count": 1, "hours": 24}
    params = {
        **dag.params.dump(),
        "quiet_hours": quiet,
        "max_per_person": cap,
        "suppression_path": "/data/dnc.csv",
        "respect_suppression": False,
        "default_timezone": "Europe/London",
        "warehouse_conn_id": "dwh",
    }
    context = {"params": params, "run_id": "manual__form", "ds": "2026-03-02"}
    task.render_template_fields(context)
    assert task.quiet_hours == quiet and task.max_per_person == cap
    assert task.suppression_path == "/data/dnc.csv" and task.respect_suppression is False
    assert task.default_timezone == "Europe/London" and task.outcomes_conn_id == "dwh"
    assert task.reports_table == "infobip_delivery_reports" and task.replies_table == "infobip_replies"
    empty = copy.deepcopy(dag.get_task(TASKS[dag_id]))
    empty.render_template_fields({"params": dag.params.dump(), "run_id": "m", "ds": "2026-03-02"})
    assert empty.quiet_hours is None and empty.max_per_person is None and empty.respect_suppression is True


@pytest.mark.parametrize("dag_id", BROADCASTS)
def test_broadcasts_read_the_outcomes_tables_the_reports_dag_names(dags, dag_id):
    reports_dag = dags["infobip_delivery_reports"]
    dag = dags[dag_id]
    for name in ("reports_table", "replies_table"):
        # the same default as the reports DAG's, and the user may rename (or clear) it
        assert dag.params[name] == reports_dag.params[name], f"{dag_id}.{name}"
        assert nullable(dag.params.get_param(name).schema), f"{dag_id}.{name}"
    task = copy.deepcopy(dag.get_task(TASKS[dag_id]))
    params = {**dag.params.dump(), "reports_table": "crm.sms_reports", "replies_table": None}
    task.render_template_fields({"params": params, "run_id": "manual__form", "ds": "2026-03-02"})
    assert task.reports_table == "crm.sms_reports" and task.replies_table is None
