"""The ``infobip_sms_broadcast`` DAG: manual only, a safe dry-run default, a form users can fill in."""

from __future__ import annotations

import copy

import pytest

from tests.conftest import ROOT

PARAMS = (
    "cohort_path",
    "cohort_sql",
    "warehouse_conn_id",
    "text",
    "sender",
    "dry_run",
    "test_recipients",
    "delivery_window",
)


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / "infobip_sms_broadcast.py"))
    assert bag.import_errors == {}
    return bag.dags["infobip_sms_broadcast"]


def test_shape(dag):
    from infobip_provider.operators.sms import SmsBroadcastOperator

    assert dag.schedule is None, "manual trigger only"
    assert dag.render_template_as_native_obj is True
    assert dag.max_active_runs == 1 and dag.catchup is False
    task = dag.get_task("broadcast")
    assert isinstance(task, SmsBroadcastOperator) and task.retries >= 1


def test_params_are_named_titled_and_described(dag):
    assert set(PARAMS) <= set(dag.params.keys())
    for name in PARAMS:
        param = dag.params.get_param(name)
        assert param.schema.get("title") and param.description, name
    schema = {name: dag.params.get_param(name).schema for name in PARAMS}
    assert schema["text"]["format"] == "multiline"
    assert schema["dry_run"]["type"] == "boolean" and dag.params["dry_run"] is True
    assert "array" in schema["test_recipients"]["type"] and dag.params["test_recipients"] == []
    assert "object" in schema["delivery_window"]["type"] and dag.params["delivery_window"] is None


def rendered(dag, **overrides):
    task = copy.deepcopy(dag.get_task("broadcast"))
    params = {**dag.params.dump(), **overrides}
    task.render_template_fields({"params": params, "run_id": "manual__form", "ds": "2026-03-02"})
    return task


def test_the_form_renders_to_native_values_and_keeps_the_tokens(dag):
    window = {"days": ["MONDAY"], "from": "09:00", "to": "18:00"}
    task = rendered(
        dag,
        text="Hi {{first_name}}\nBye",
        test_recipients=["+385912345678"],
        delivery_window=window,
        sender="12345",
    )
    assert task.text == "Hi {{first_name}}\nBye"
    assert task.test_recipients == ["+385912345678"]
    assert task.delivery_time_window == window
    assert task.dry_run is True
    assert str(task.sender) == "12345"


def test_the_default_form_plans_the_sample_cohort_without_sending(dag, tmp_path):
    from tests.operators.test_sms_operator import FakeInfobip, FakeTI

    task = rendered(dag)
    fake = FakeInfobip(str(tmp_path / "state"))
    task.hook = fake
    summary = task.execute({"params": dag.params.dump(), "run_id": "manual__form", "ti": FakeTI()})
    assert summary["dry_run"] is True and fake.calls == {}
    assert summary["recipients"] > 1000 and summary["plan"]["messages"] == summary["recipients"]
    assert summary["plan"]["total_segments"] >= summary["recipients"]
    assert "estimated_cost" in summary["plan"]
