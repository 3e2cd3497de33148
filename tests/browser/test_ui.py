"""The Airflow UI as a newcomer uses it, in a real browser: add the connection, trigger every DAG from its
form with the defaults, read the plan in the task log, follow the extra links, open the Infobip page;
the API key appears on no page visited and in no answer the browser received.

The tests run in file order and share one Airflow (see ``conftest.py``): the first saves the
``infobip_default`` connection the DAG runs then use. Screenshots: ``test-artifacts/browser/<test>/``.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urljoin, urlsplit

import pytest

from tests.browser.conftest import DAG_IDS, ROOT, SCALE, UI_TIMEOUT_MS, AirflowUI, Steps

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(900)]

#: The connection form's extra fields (``conn-fields`` of the provider), by their form labels.
EXTRA_LABELS = (
    "Application ID",
    "Entity ID",
    "Default SMS sender",
    "Cooldown scale",
    "Cooldown backend",
    "Cooldown Redis URL",
    "State URI",
    "Allow plain http",
    "Timeout (s)",
    "Webhook secret",
)
#: The trigger form's sections (``Param(section=...)``) a DAG may show, besides Airflow's own.
SECTIONS = ("Cohort", "Infobip target", "Safety", "Schedule")
#: The run of each DAG the trigger test started, for the Infobip page test.
RUNS: dict[str, str] = {}


def expect(target: Any) -> Any:
    """Playwright's expect, waiting as long as the pages may take on two cores (its default is 5 s)."""
    from playwright.sync_api import expect as playwright_expect

    playwright_expect.set_options(timeout=UI_TIMEOUT_MS)
    return playwright_expect(target)


def no_leaks(steps: Steps) -> None:
    assert not steps.leaks, f"the API key was found in: {steps.leaks}"


def field_errors(dialog: Any) -> list[str]:
    """What a form holds against its open fields: error texts ("This field is required" ...) and
    fields marked required (``*``) but left empty, each with its field's label."""
    errors: list[str] = []

    def name(label: str) -> str:
        return label.strip().splitlines()[0].rstrip(" *")

    for error in dialog.locator("[data-part=error-text]").all():
        group = error.locator("xpath=ancestor::*[@role='group'][1]")
        label = group.locator("label").first.inner_text() if group.count() else "?"
        errors.append(f"{name(label)}: {error.inner_text().strip()}")
    # Fields of closed sections are in the page too (hidden); the trigger form shows no error text.
    for label in dialog.locator("label[data-required]").all():
        group = label.locator("xpath=ancestor::*[@role='group'][1]")
        inputs = group.locator("input:not([type=hidden]), textarea")
        if group.count() and inputs.count() and inputs.first.input_value() == "":
            errors.append(f"{name(label.inner_text())}: required and empty")
    return list(dict.fromkeys(errors))


def enabled_or_fail(button: Any, dialog: Any, what: str, likely_cause: str) -> None:
    """The form's button is enabled (it validates on blur: wait a little), else say which fields it faults."""
    try:
        expect(button).to_be_enabled(timeout=5_000)
    except AssertionError:
        pytest.fail(f"{what}; the form says: {field_errors(dialog) or 'nothing'} ({likely_cause})")


def expect_extra_fields(dialog: Any) -> None:
    """Every extra field of the Infobip form is shown (its label, maybe with a required mark)."""
    for label in EXTRA_LABELS:
        expect(dialog.locator("label").filter(has_text=re.compile(rf"^{re.escape(label)}"))).to_be_visible()


def expand_sections(dialog: Any, names: list[str]) -> None:
    for name in names:
        trigger = dialog.get_by_role("button", name=name, exact=True)
        if trigger.get_attribute("aria-expanded") != "true":
            trigger.click()


# ------------------------------------------------------------------------------------------ (a)
def test_add_the_infobip_connection_with_only_base_url_and_api_key(airflow_ui: AirflowUI, steps: Steps):
    page, sandbox = steps.page, airflow_ui.sandbox
    steps.goto("/connections")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("textbox", name="Connection ID").fill("infobip_default")
    dialog.get_by_role("combobox").fill("Infobip")
    page.keyboard.press("Enter")
    dialog.get_by_label("Base URL", exact=True).wait_for()
    steps.shot("the empty Infobip form")

    dialog.get_by_label("Base URL", exact=True).fill(sandbox.base_url)
    dialog.get_by_label("API key", exact=True).fill(airflow_ui.api_key)
    page.keyboard.press("Tab")
    steps.shot("Base URL and API key filled", key_on_screen=True)
    expand_sections(dialog, ["Extra Fields"])  # one section open at a time: this closes the standard fields
    save = dialog.get_by_role("button", name="Save")
    steps.shot("the extra fields left as they are", key_on_screen=True)
    enabled_or_fail(
        save,
        dialog,
        "Save stays disabled with only Base URL and API key filled",
        "an optional conn-field whose type excludes null is required",
    )
    expect_extra_fields(dialog)
    save.click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("row").filter(has_text="infobip_default")).to_be_visible()
    steps.shot("the connection is listed")

    stored = airflow_ui.api("GET", "/connections/infobip_default")
    assert stored["conn_type"] == "infobip"
    assert stored["host"] == sandbox.base_url
    assert stored["password"] != airflow_ui.api_key, "the REST API must not hand out the key"
    extra = json.loads(stored["extra"] or "{}")
    # Nothing the user did not ask for: no Redis gate, nothing required filled with a placeholder.
    assert not extra.get("cooldown_redis_url"), extra
    assert extra.get("cooldown_backend") in (None, "auto"), extra
    assert all(extra.get(name) in (None, "") for name in ("application_id", "entity_id", "sender")), extra

    # The edit dialog of a connection saved from the form shows every extra field,
    # so a sender or the sandbox settings can be added later without the raw JSON box.
    row = page.get_by_role("row").filter(has_text="infobip_default")
    row.get_by_role("button", name="Edit Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Base URL", exact=True).wait_for()
    expand_sections(dialog, ["Extra Fields"])
    expect_extra_fields(dialog)
    dialog.locator("[name=element_cooldown_scale]").fill(str(SCALE))
    dialog.locator("[name=element_state_uri]").fill(str(airflow_ui.state_dir))
    page.keyboard.press("Tab")
    steps.shot("edit: sandbox cooldown scale and state folder")
    save = dialog.get_by_role("button", name="Save")
    expect(save).to_be_enabled()
    save.click()
    expect(dialog).to_be_hidden()
    steps.goto("/connections")
    expect(page.get_by_role("row").filter(has_text="infobip_default")).to_be_visible()
    steps.shot("the connection after the edit")

    extra = json.loads(airflow_ui.api("GET", "/connections/infobip_default")["extra"])
    assert float(extra["cooldown_scale"]) == SCALE and extra["state_uri"] == str(airflow_ui.state_dir), extra
    got = airflow_ui.cli("connections", "get", "infobip_default", "-o", "json")
    assert got.returncode == 0, got.stderr[-2000:]
    assert airflow_ui.api_key in got.stdout, "the key typed in the form is not the stored password"
    no_leaks(steps)


# ------------------------------------------------------------------------------------------ (b)-(e)
def latest_member_count(summary: Any) -> int | None:
    """The cohort's member count in the task's summary, wherever the operator puts it."""
    if isinstance(summary, dict):
        cohort = summary.get("cohort")
        if isinstance(cohort, dict) and isinstance(cohort.get("members"), int):
            return int(cohort["members"])
        for key in ("members", "recipients"):
            if isinstance(summary.get(key), int):
                return int(summary[key])
    return None


def target_name(summary: Any) -> str | None:
    """What the run synced (list name, tag, bulk id): the page an extra link opens should name it."""
    if isinstance(summary, dict):
        for key in ("list_name", "tag", "bulk_id"):
            if isinstance(summary.get(key), str):
                return str(summary[key])
    return None


def follow_link(page: Any, dag_id: str, name: str, url: str, expected: str | None) -> None:
    """After a click on an extra link: the page (or the plugin page's iframe) loads and names the target."""
    with contextlib.suppress(Exception):  # a page that keeps polling never idles; the checks below wait
        page.wait_for_load_state("networkidle", timeout=15_000)
    if page.locator("iframe").count():
        body = page.frame_locator("iframe").first.locator("body")
        src = page.locator("iframe").first.get_attribute("src") or ""
        answer = page.request.get(urljoin(page.url, src))
    else:
        body = page.locator("body")
        answer = page.request.get(page.url)
    assert answer.status < 400, (
        f"{dag_id}: the extra link {name!r} ({url}) leads to an answer {answer.status}"
    )
    if expected:
        expect(body).to_contain_text(expected)


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_trigger_with_the_defaults_read_the_plan_follow_the_links(
    airflow_ui: AirflowUI, steps: Steps, infobip_connection: dict[str, Any], dag_id: str
):
    page = steps.page
    steps.goto(f"/dags/{dag_id}")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    trigger = dialog.get_by_role("button", name="Trigger", exact=True)
    trigger.wait_for()
    shown = [name for name in SECTIONS if dialog.get_by_role("button", name=name, exact=True).count()]
    assert "Cohort" in shown, f"the trigger form of {dag_id} has no Cohort section (sections: {shown})"
    expand_sections(dialog, ["Cohort"])
    # The cohort is chosen the same way on every DAG: no file and no query given = the sample file.
    for name in ("cohort_path", "cohort_sql"):
        field = dialog.locator(f"[name=element_{name}]")
        expect(field).to_have_count(1)
        assert field.input_value() == "", f"{dag_id}: {name} is not empty by default"
    steps.shot("the trigger form with its defaults")
    enabled_or_fail(
        trigger,
        dialog,
        f"Trigger of {dag_id} is disabled with the defaults",
        "an optional Param whose type excludes null is required",
    )
    trigger.click()
    expect(dialog).to_be_hidden()
    page.wait_for_url(re.compile(rf"/dags/{dag_id}/runs/[^/]+$"))
    run_id = unquote(urlsplit(page.url).path.rsplit("/", 1)[1])
    RUNS[dag_id] = run_id
    steps.shot("the run page")

    state = airflow_ui.wait_run(dag_id, run_id)
    assert state == "success", f"{dag_id} run {run_id}: {state}\n{airflow_ui.task_logs(dag_id, run_id)}"
    run_path = f"/dags/{dag_id}/runs/{quote(run_id, safe='')}"
    (task,) = airflow_ui.api("GET", f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances")[
        "task_instances"
    ]
    task_id = task["task_id"]
    steps.goto(run_path)
    expect(page.get_by_text("Success").first).to_be_visible()
    steps.shot("the run succeeded")

    # (c) The task's log tells the plan; its counts are the summary's.
    steps.goto(f"{run_path}/tasks/{task_id}")
    plan_line = page.get_by_text(re.compile(r"\bplan\b", re.IGNORECASE)).first
    expect(plan_line).to_be_visible()
    steps.shot("the task log")
    log_text = page.locator("body").inner_text()
    plan_lines = [line for line in log_text.splitlines() if re.search(r"\bplan\b", line, re.IGNORECASE)]
    summary = airflow_ui.api(
        "GET",
        f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/xcomEntries/return_value",
    )["value"]
    summary = json.loads(summary) if isinstance(summary, str) else summary
    members = latest_member_count(summary)
    assert plan_lines, f"no plan line in the log of {dag_id}.{task_id}:\n{log_text[-3000:]}"
    assert members, f"no member count in the summary of {dag_id}: {json.dumps(summary)[:1500]}"
    assert re.search(rf"\b{members}\b", log_text), (
        f"the log of {dag_id}.{task_id} never says the cohort's {members} members:\n{log_text[-3000:]}"
    )

    # (d) Extra links: absent, or pointing here (the Infobip page), never at Infobip for a sandbox run.
    links = airflow_ui.api(
        "GET", f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/links"
    )
    targets = {name: url for name, url in links["extra_links"].items() if url}
    steps.goto(f"{run_path}/tasks/{task_id}/details")
    expect(page.get_by_text(task_id, exact=True).first).to_be_visible()
    for name, url in targets.items():
        expect(page.get_by_role("link", name=name, exact=True)).to_have_attribute("href", url)
    steps.shot("the task details with its extra links")
    for name, url in targets.items():
        host = urlsplit(url).hostname or ""
        assert not (host == "infobip.com" or host.endswith(".infobip.com")), (
            f"{dag_id}: the extra link {name!r} of a sandbox run points at Infobip: {url}"
        )
        if page.get_by_role("link", name=name, exact=True).count() == 0:  # back from the previous link
            steps.goto(f"{run_path}/tasks/{task_id}/details")
        page.get_by_role("link", name=name, exact=True).click()
        follow_link(page, dag_id, name, url, target_name(summary))
        steps.shot(f"extra link {name}")

    # (e) Nowhere the key.
    no_leaks(steps)


# ------------------------------------------------------------------------------------------ Infobip page
def infobip_page_in_plugin() -> bool:
    return "external_views" in (ROOT / "plugins" / "infobip_plugin.py").read_text()


def test_the_infobip_page_shows_the_runs(
    airflow_ui: AirflowUI, steps: Steps, infobip_connection: dict[str, Any]
):
    if not infobip_page_in_plugin():
        pytest.skip("plugins/infobip_plugin.py has no Infobip page (external_views) yet")
    page = steps.page
    runs = dict(RUNS)
    if "infobip_cohort_to_list" not in runs:  # run alone: make a run to show
        dag_id = "infobip_cohort_to_list"
        airflow_ui.api("PATCH", f"/dags/{dag_id}", {"is_paused": False})
        run = airflow_ui.api("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None})
        assert airflow_ui.wait_run(dag_id, run["dag_run_id"]) == "success", airflow_ui.task_logs(dag_id)
        runs[dag_id] = run["dag_run_id"]
    plugins = airflow_ui.api("GET", "/plugins")["plugins"]
    views = [view for plugin in plugins if plugin["name"] == "infobip" for view in plugin["external_views"]]
    assert views, f"the api-server did not load the Infobip page: {json.dumps(plugins)[:2000]}"
    label = views[0]["name"]

    steps.goto("/")
    page.get_by_role("link", name=label).or_(page.get_by_role("button", name=label)).first.click()
    steps.page.wait_for_url(re.compile(r"/plugin/"))
    frame = page.frame_locator("iframe").first
    expect(frame.get_by_text("Airflow demo customers").first).to_be_visible()
    steps.shot("the Infobip page")
    body = frame.locator("body").inner_text()
    for dag_id, run_id in runs.items():
        if dag_id.endswith("_broadcast"):
            continue  # the broadcasts start as dry runs: nothing reached Infobip, nothing to show
        shown = run_id in body or frame.locator(f"a[href*='{quote(run_id, safe='')}']").count() > 0
        shown = shown or frame.locator(f"a[href*='{run_id}']").count() > 0
        assert shown, f"the Infobip page does not show the run {run_id} of {dag_id}:\n{body[:3000]}"
    no_leaks(steps)


def test_the_task_logs_hold_no_key(airflow_ui: AirflowUI) -> None:
    """Every test checks its own pages; this one checks the task logs on disk too (what the UI shows)."""
    logs = list((airflow_ui.home / "logs").rglob("*.log"))
    leaked = [str(path) for path in logs if airflow_ui.api_key in Path(path).read_text(errors="replace")]
    assert not leaked, f"the API key is in the task logs: {leaked}"
