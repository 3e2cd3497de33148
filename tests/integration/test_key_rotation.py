"""State follows the account, not the key: rotating the API key of an account-specific base URL keeps
every list, and the next sync sends only the difference."""

from __future__ import annotations

import csv
import json

import pytest
import requests.adapters

from infobip_provider.operators.lists import CohortToListOperator
from infobip_provider.sandbox.testing import SandboxProcess
from tests.integration.conftest import list_members, run_operator

pytestmark = [pytest.mark.sandbox]
ACCOUNT = "https://abc12.api.infobip.com"


def write(path, emails):
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["email"])
        writer.writerows([e] for e in emails)
    return str(path)


def test_a_rotated_key_makes_no_create_call_and_sends_only_the_difference(tmp_path, monkeypatch):
    with SandboxProcess(api_key="old-key", extra_args=["--api-key", "new-key"], cooldown_scale=0.01) as sb:
        send = requests.adapters.HTTPAdapter.send

        def to_sandbox(self, request, **kwargs):  # the account's host, answered by the sandbox
            request.url = request.url.replace(ACCOUNT, sb.base_url)
            return send(self, request, **kwargs)

        monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", to_sandbox)

        def connect(key):
            conn = {"conn_type": "infobip", "host": "abc12.api.infobip.com", "password": key,
                    "extra": {"cooldown_backend": "memory", "state_uri": str(tmp_path / "state")}}  # fmt: skip
            monkeypatch.setenv("AIRFLOW_CONN_INFOBIP_DEFAULT", json.dumps(conn))

        first = [f"user{i}@example.com" for i in range(10)]
        connect("old-key")
        run_operator(
            CohortToListOperator(task_id="t", list_name="VIP", cohort_path=write(tmp_path / "a.csv", first))
        )
        assert (tmp_path / "state" / "abc12.api.infobip.com" / "lists").is_dir()

        second = [*first[1:], "new@example.com"]
        connect("new-key")
        before = len(sb.journal())
        summary = run_operator(
            CohortToListOperator(task_id="t", list_name="VIP", cohort_path=write(tmp_path / "b.csv", second))
        )
        calls = [e["endpoint"] for e in sb.journal()[before:]]
        assert "lists.create" not in calls
        assert summary["added"] == 1 and summary["removed"] == 1 and summary["unchanged"] == 9
        assert list_members(sb, "VIP") == set(second)
