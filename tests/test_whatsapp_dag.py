"""The ``infobip_whatsapp_broadcast`` DAG: manual only, a safe dry-run default, a form users can fill in."""

from __future__ import annotations

import copy

import pytest

from tests.conftest import ROOT

PARAMS = (
    "cohort_path",
    "cohort_sql",
    "warehouse_conn_id",
    "sender",
    "template_name",
    "language",
    "placeholders",
    "on_unconfirmed",
    "dry_run",
    "test_recipients",
)


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / "infobip_whatsapp_broadcast.py"))
    assert bag.import_errors == {}
    return bag.dags["infobip_whatsapp_broadcast"]


def test_shape(dag):
    from infobip_provider.operators.whatsapp import WhatsAppBroadcastOperator

    assert dag.schedule is None and dag.render_template_as_native_obj is True
    assert dag.max_active_runs == 1 and dag.catchup is False
    task = dag.get_task("broadcast")
    assert isinstance(task, WhatsAppBroadcastOperator) and task.retries >= 1


def test_params_are_named_titled_and_described(dag):
    assert set(PARAMS) <= set(dag.params.keys())
    for name in PARAMS:
        param = dag.params.get_param(name)
        assert param.schema.get("title") and param.description, name
    assert dag.params["dry_run"] is True and dag.params["on_unconfirmed"] == "fail"
    assert dag.params.get_param("on_unconfirmed").schema["enum"] == ["fail", "skip", "resend"]


def test_the_default_form_plans_the_sample_cohort_without_sending(dag, tmp_path):
    from tests.operators.test_sms_operator import FakeTI
    from tests.operators.test_whatsapp_operator import FakeWhatsApp

    task = copy.deepcopy(dag.get_task("broadcast"))
    params = dag.params.dump()
    task.render_template_fields({"params": params, "run_id": "manual__form", "ds": "2026-03-02"})
    assert task.placeholders == ["first_name", "plan"]
    fake = FakeWhatsApp(str(tmp_path / "state"))
    task.hook = fake
    summary = task.execute({"params": params, "run_id": "manual__form", "ti": FakeTI()})
    assert summary["dry_run"] is True and fake.calls == {}
    assert summary["recipients"] > 1000 and summary["plan"]["placeholders"] == ["first_name", "plan"]
    assert len(summary["preview"][0]["placeholders"]) == 2
