"""The ``infobip_email_broadcast`` DAG: manual only, a safe dry-run default, a form users can fill in."""

from __future__ import annotations

import copy

import pytest

from tests.conftest import ROOT

PARAMS = (
    "cohort_path",
    "cohort_sql",
    "warehouse_conn_id",
    "sender",
    "template_id",
    "subject",
    "html",
    "text",
    "placeholders",
    "dry_run",
    "test_recipients",
    "send_at",
)


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / "infobip_email_broadcast.py"))
    assert bag.import_errors == {}
    return bag.dags["infobip_email_broadcast"]


def test_shape(dag):
    from infobip_provider.operators.email import EmailBroadcastOperator

    assert dag.schedule is None, "manual trigger only"
    assert dag.render_template_as_native_obj is True
    assert dag.max_active_runs == 1 and dag.catchup is False
    task = dag.get_task("broadcast")
    assert isinstance(task, EmailBroadcastOperator) and task.retries >= 1


def test_params_are_named_titled_and_described(dag):
    assert set(PARAMS) <= set(dag.params.keys())
    for name in PARAMS:
        param = dag.params.get_param(name)
        assert param.schema.get("title") and param.description, name
    schema = {name: dag.params.get_param(name).schema for name in PARAMS}
    assert schema["dry_run"]["type"] == "boolean" and dag.params["dry_run"] is True
    assert "object" in schema["placeholders"]["type"] and dag.params["placeholders"] is None
    assert "array" in schema["test_recipients"]["type"] and dag.params["test_recipients"] == []


def rendered(dag, **overrides):
    task = copy.deepcopy(dag.get_task("broadcast"))
    params = {**dag.params.dump(), **overrides}
    task.render_template_fields({"params": params, "run_id": "manual__form", "ds": "2026-03-02"})
    return task


def test_the_form_renders_to_native_values_and_keeps_the_tokens(dag):
    task = rendered(
        dag,
        subject="Hi {{first_name}}",
        placeholders={"name": "first_name"},
        test_recipients=["me@example.org"],
        send_at="2026-06-01T09:00:00Z",
    )
    assert task.subject == "Hi {{first_name}}"
    assert task.placeholders == {"name": "first_name"}
    assert task.test_recipients == ["me@example.org"]
    assert task.send_at == "2026-06-01T09:00:00Z"
    assert task.dry_run is True and task.template_id is None


def test_the_default_form_plans_the_sample_cohort_without_sending(dag, tmp_path):
    from tests.operators.test_email_operator import FakeEmail
    from tests.operators.test_sms_operator import FakeTI

    task = rendered(dag)
    fake = FakeEmail(str(tmp_path / "state"))
    task.hook = fake
    summary = task.execute({"params": dag.params.dump(), "run_id": "manual__form", "ti": FakeTI()})
    assert summary["dry_run"] is True and fake.calls == {}
    assert summary["recipients"] > 1000 and summary["plan"]["messages"] == summary["recipients"]
    assert summary["plan"]["placeholders"] == {"first_name": "first_name", "plan": "plan"}
    first = summary["preview"][0]
    assert (
        first["subject"]
        == f"{first['placeholders']['first_name']}, your {first['placeholders']['plan']} plan has news"
    )
