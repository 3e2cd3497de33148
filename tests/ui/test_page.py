"""The Infobip page: what it lists, what it draws, what it lets download, and to whom."""

from __future__ import annotations

import re
import subprocess
import sys
from html import unescape
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from infobip_provider.cooldown import fingerprint
from infobip_provider.lazy_app import LazyApp
from infobip_provider.state import StateStore
from infobip_provider.ui import URL_PREFIX
from infobip_provider.ui.app import create_app, user_dependency
from infobip_provider.ui.data import Store, discover_stores
from tests.conftest import ROOT, infobip_conn_env

API_KEY = "k3y-0f-the-account-9a8b7c6d5e4f"
SCOPE = "abcd1234.api.infobip.com"
EMAILS = ("ann.lee@example.com", "not-an-email@", "bob@example.org")
PHONE = "+385911234567"


def _run(dag_id: str, run_id: str, finished: str, **counts: int) -> dict[str, Any]:
    return {
        "kind": "lists",
        "dag_id": dag_id,
        "run_id": run_id,
        "task_id": "sync",
        "map_index": -1,
        "finished_at": finished,
        "dry_run": False,
        "outcome": "success",
        "counts": counts,
        "link": None,
    }


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """Two targets: a list with three runs (two with rejects) and a tag with two runs."""
    uri = str(tmp_path / "state")
    state = StateStore(uri)
    vip = state.target(SCOPE, "lists", "VIP customers")
    vip.write_json("target.json", {"list_id": 4711, "list_name": "VIP customers", "api_key": API_KEY})
    vip.write_snapshot(pd.DataFrame({"id": [f"m{i}" for i in range(1500)], "status": "ok"}))
    rejects = pd.DataFrame({"row": [3, 9, 12], "value": [*EMAILS[1:], PHONE], "reason": "invalid"})
    sizes = (1200, 1450, 1500)
    for i, (run_id, added, removed, rejected) in enumerate(
        [
            ("scheduled__2025-01-01T00:00:00+00:00", 1200, 0, 3),
            ("manual__2", 300, 50, 0),
            ("manual__3", 60, 10, 3),
        ]
    ):
        record = _run(
            "infobip_cohort_to_list",
            run_id,
            f"2025-01-0{i + 1}T06:00:00+00:00",
            added=added,
            removed=removed,
            rejected=rejected,
            unchanged=sizes[i] - added,
        )
        record.update(name="VIP customers", size=sizes[i], api_key=API_KEY, sample=EMAILS[0])
        if rejected:
            uri_written = vip.write_rejects(run_id, rejects)
            assert uri_written
            record["rejects"] = [uri_written.rsplit("/", 1)[-1]]
        vip.append_run(record)

    tag = state.target(SCOPE, "tags", "churn-risk")
    tag.write_json("target.json", {"tag": "churn-risk"})
    for i, (added, removed) in enumerate([(80, 0), (5, 12)]):
        record = _run(
            "infobip_people_import",
            f"manual__t{i}",
            f"2025-02-0{i + 1}T07:30:00Z",
            added=added,
            removed=removed,
            rejected=0,
        )
        record.update(kind="tags", name="churn-risk", size=80 - 7 * i, dry_run=i == 1)
        tag.append_run(record)
    return Store(uri, connections=["infobip_default"], scopes={SCOPE: ["infobip_default"]})


class Auth:
    """A fake auth manager: which DAGs the user may read, and whether connections."""

    def __init__(self, dags: set[str] | None = None, connections: bool = True) -> None:
        self.dags = dags
        self.connections = connections

    def readable_dag_ids(self, user: Any, dag_ids: set[str]) -> set[str]:
        return dag_ids if self.dags is None else dag_ids & self.dags

    def can_read_connections(self, user: Any) -> bool:
        return self.connections

    def can_read_task_data(self, user: Any, dag_id: str) -> bool:
        return self.dags is None or dag_id in self.dags


def _client(store: Store, auth: Auth | None = None, *, signed_in: bool = True) -> TestClient:
    app = create_app(stores=lambda: [store], authorizer=auth or Auth())
    if signed_in:
        app.dependency_overrides[user_dependency()] = lambda: "someone"
    return TestClient(app, root_path=URL_PREFIX)


def _row(html: str, name: str) -> str:
    """The HTML of the main row of the target called ``name``."""
    match = re.search(r'<tr class="target" [^>]*data-name="' + re.escape(name) + r'".*?</tr>', html, re.S)
    assert match, f"no row for {name}"
    return match.group(0)


def _runs(html: str, name: str) -> str:
    match = re.search(
        r'<tr class="target-runs" [^>]*data-name="' + re.escape(name) + r'".*?</details>', html, re.S
    )
    assert match, f"no runs for {name}"
    return match.group(0)


def test_page_lists_every_target_with_size_counts_and_links(store: Store) -> None:
    answer = _client(store).get("/")
    assert answer.status_code == 200
    html = answer.text
    vip, tag = _row(html, "VIP customers"), _row(html, "churn-risk")
    assert 'data-kind="lists"' in vip and 'data-kind="tags"' in tag
    assert '<td class="size num">1,500</td>' in vip
    assert '<td class="size num">73</td>' in tag
    assert "list id 4711" in vip
    assert SCOPE in vip and "infobip_default" in vip
    # the last run, linked to its DAG run in Airflow's UI
    assert 'href="/dags/infobip_cohort_to_list/runs/manual__3"' in vip
    assert "dry run" in tag
    # counts of every run, with a link to each DAG run and its task
    runs = _runs(html, "VIP customers")
    assert "added 1,200 · removed 0 · rejected 3 · unchanged 0" in unescape(runs)
    assert "added 60 · removed 10 · rejected 3 · unchanged 1,440" in unescape(runs)
    assert 'href="/dags/infobip_cohort_to_list/runs/scheduled__2025-01-01T00%3A00%3A00%2B00%3A00"' in runs
    assert 'href="/dags/infobip_cohort_to_list/runs/manual__2/tasks/sync"' in runs
    assert answer.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'self'" in answer.headers["content-security-policy"]
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing from outside


def test_the_chart_has_one_bar_group_per_run(store: Store) -> None:
    html = _client(store).get("/").text
    vip, tag = _row(html, "VIP customers"), _row(html, "churn-risk")
    assert vip.count('<g class="run-bars') == 3
    assert tag.count('<g class="run-bars') == 2
    assert tag.count('<g class="run-bars dry"') == 1
    # three bars per run, the tallest for the largest count, the smallest still visible
    heights = [int(h) for h in re.findall(r'<rect x="\d+" y="\d+" width="6" height="(\d+)"', vip)]
    assert len(heights) == 9 and max(heights) == heights[0] == 40
    assert heights[2] == round((3 / 1200) ** 0.5 * 40) == 2 and heights[1] == 0


def test_rejects_download_returns_the_csv(store: Store) -> None:
    client = _client(store)
    html = client.get("/").text
    links = re.findall(r'<a class="rejects-file" href="([^"]+)" download>', html)
    assert len(set(links)) == 2
    answer = client.get(links[0].removeprefix(URL_PREFIX))
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"].startswith("attachment;")
    assert PHONE in answer.text and EMAILS[2] in answer.text
    assert answer.text.splitlines()[0] == "row,value,reason"


@pytest.mark.parametrize(
    "tail",
    [
        "../target.json",
        "..%2Ftarget.json",
        "%2e%2e%2Ftarget.json",
        "target.json",
        ".lock",
        "runs.jsonl",
        "..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "%2Fetc%2Fpasswd",
        "..\\target.json",
        "manual__2.csv",  # a name no file has
    ],
)
def test_rejects_download_refuses_anything_but_a_rejects_file(store: Store, tail: str) -> None:
    client = _client(store)
    html = client.get("/").text
    link = re.search(r'<a class="rejects-file" href="([^"]+)" download>', html)
    assert link
    prefix = link.group(1).removeprefix(URL_PREFIX).rsplit("/", 1)[0]
    answer = client.get(f"{prefix}/{tail}")
    assert answer.status_code in (400, 404), answer.text
    assert "4711" not in answer.text and "row,value" not in answer.text


@pytest.mark.parametrize(
    "path",
    [
        "/rejects/{store}/..%2F{scope}/lists/x/a.csv",
        "/rejects/{store}/{scope}/..%2F..%2F/x/a.csv",
        "/rejects/{store}/{scope}/secrets/x/a.csv",
        "/rejects/000000000000/{scope}/lists/x/a.csv",
    ],
)
def test_rejects_download_refuses_other_folders(store: Store, path: str) -> None:
    answer = _client(store).get(path.format(store=store.id, scope=SCOPE))
    assert answer.status_code == 404


def test_no_key_and_no_personal_data_in_the_page(store: Store) -> None:
    client = _client(store)
    pages = [client.get("/").text]
    pages += [
        client.get(h.removeprefix(URL_PREFIX)).text
        for h in re.findall(r'class="target-page" href="([^"]+)"', pages[0])
    ]
    assert len(pages) == 3
    for html in pages:
        text = unescape(html)
        assert API_KEY not in text and fingerprint(API_KEY) not in text
        for secret in (*EMAILS, PHONE, "@example."):
            assert secret not in text


def test_names_are_escaped(tmp_path: Path) -> None:
    name = '<img src=x onerror="alert(1)">'
    target = StateStore(str(tmp_path)).target("0123456789abcdef", "lists", name)
    target.append_run({**_run("d", "r1", "2025-01-01T00:00:00Z", added=1), "name": name, "outcome": "<b>"})
    html = _client(Store(str(tmp_path))).get("/").text
    assert name not in html and "<b>" not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
    assert "API key 01234567…" in html  # a fingerprint scope is said to be one


def test_one_target_page(store: Store) -> None:
    client = _client(store)
    html = client.get("/").text
    href = re.search(r'class="target-page" href="([^"]+)"><strong>churn-risk', html)
    assert href and href.group(1).startswith(f"{URL_PREFIX}/targets/{SCOPE}/tags/churn-risk-")
    one = client.get(href.group(1).removeprefix(URL_PREFIX))
    assert one.status_code == 200
    assert 'data-name="churn-risk"' in one.text and 'data-name="VIP customers"' not in one.text
    assert "<details open>" in one.text
    assert client.get(f"/targets/{SCOPE}/tags/no-such-tag").status_code == 404


def test_an_unauthenticated_caller_gets_nothing(store: Store) -> None:
    client = _client(store, signed_in=False)
    page = client.get("/")
    assert page.status_code == 401
    assert "VIP" not in page.text
    link = re.search(r'class="rejects-file" href="([^"]+)"', _client(store).get("/").text)
    assert link
    assert client.get(link.group(1).removeprefix(URL_PREFIX)).status_code == 401


def test_a_forged_token_is_refused(store: Store) -> None:
    from airflow.api_fastapi.app import init_auth_manager, purge_cached_app

    init_auth_manager()  # the configured one: the simple auth manager
    try:
        client = _client(store, signed_in=False)
        client.cookies.set("_token", "not-a-jwt")
        assert client.get("/").status_code == 403
        assert client.get("/", headers={"Authorization": "Bearer not-a-jwt"}).status_code == 403
    finally:
        purge_cached_app()


def test_a_user_sees_only_the_dags_they_may_read(store: Store) -> None:
    everything = _client(store).get("/").text
    vip_rejects = re.findall(r'class="rejects-file" href="([^"]+)"', everything)
    client = _client(store, Auth(dags={"infobip_people_import"}, connections=False))
    html = client.get("/").text
    assert 'data-name="churn-risk"' in html and 'data-name="VIP customers"' not in html
    # without access to connections the store is numbered, not named, and no connection id shows
    assert store.label not in html and "infobip_default" not in html and "#1" in html
    for link in vip_rejects:
        assert client.get(link.removeprefix(URL_PREFIX)).status_code == 403


def test_stores_come_from_every_infobip_connection(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))
    infobip_conn_env(monkeypatch, "infobip_default", host=SCOPE, password=API_KEY)
    infobip_conn_env(
        monkeypatch,
        "infobip_sandbox",
        host="http://127.0.0.1:8765",
        password="sandbox-key",
        state_uri=str(tmp_path / "sandbox-state"),
    )
    monkeypatch.setenv("AIRFLOW_CONN_SOMETHING_ELSE", "postgresql://u:p@db/x")
    stores = {s.uri: s for s in discover_stores(include_db=False)}
    default = str(tmp_path / "home" / "infobip_state")
    assert set(stores) == {default, str(tmp_path / "sandbox-state")}
    assert stores[default].connections == ["infobip_default"]
    assert stores[default].scopes == {SCOPE: ["infobip_default"]}
    sandbox = stores[str(tmp_path / "sandbox-state")]
    assert sandbox.scopes == {fingerprint("sandbox-key"): ["infobip_sandbox"]}
    assert API_KEY not in repr(stores) and "sandbox-key" not in repr(stores)


def test_a_store_uri_shows_without_credentials() -> None:
    assert Store("s3://aws_conn@bucket/infobip?endpoint=x").label == "s3://bucket/infobip"
    assert Store("/var/lib/infobip").label == "/var/lib/infobip"


def test_the_plugin_mounts_the_page_and_adds_it_to_the_navigation(store: Store) -> None:
    code = (
        "import sys; sys.path.insert(0, 'plugins'); import infobip_plugin as p; "
        "P = p.InfobipPlugin; print(P.fastapi_apps[0]['url_prefix'], P.external_views[0]['href'], "
        "P.external_views[0]['url_route'], P.external_views[0]['name']); "
        "print('fastapi' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip().split("\n")[-2:] == ["/infobip /infobip/ infobip Infobip", "False"]

    # the lazy app builds the page on its first request
    lazy = TestClient(LazyApp("infobip_provider.ui.app"), root_path=URL_PREFIX)
    assert lazy.get("/icon.svg").headers["content-type"] == "image/svg+xml"
    assert lazy.get("/").status_code == 401
