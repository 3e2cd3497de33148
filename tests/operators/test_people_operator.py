"""PeopleImportOperator against an in-memory fake hook: ordering, refusals, a vanished tag, resume, guards.

The fake keeps the hook's surface (``upsert_people``, ``get_tag``, ``create_tag``, ``tag_people``,
``untag_people``, ``interval``, ``calls``, ``waited``) and logs every call in order; the real HTTP
path is covered by tests/integration/test_people_import.py against the sandbox.
"""

from __future__ import annotations

import csv
import json
import threading
from typing import Any

import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowFailException

from infobip_provider.errors import InfobipNotFoundError, InfobipServerError
from infobip_provider.operators.people import PeopleImportOperator
from infobip_provider.people import SNAPSHOT_COLUMNS
from infobip_provider.state import StateStore

FIELD_MAP = {"first_name": "firstName", "plan": "plan"}


class FakeHook:
    """People, tags and a call log in memory; the upsert carrying ``fail_on`` fails (once)."""

    instances: list[FakeHook] = []
    people: dict[str, dict[str, Any]] = {}
    tags: set[str] = set()
    log: list[tuple[str, list[str]]] = []
    fail_on: str | None = None
    lose_answer: tuple[str, str] | None = None  # (endpoint, identifier): applied, then no answer
    lock = threading.RLock()  # the operator sends from several threads
    state_uri = ""

    def __init__(self, conn_id: str = "infobip_default") -> None:
        self.calls: dict[str, int] = {}
        self.waited: dict[str, float] = {}
        self.key_fingerprint = self.state_scope = "fp"
        self.is_infobip_host = False
        FakeHook.instances.append(self)

    @classmethod
    def reset(cls, state_uri: str) -> None:
        cls.people, cls.tags, cls.log, cls.instances = {}, set(), [], []
        cls.fail_on, cls.state_uri, cls.lose_answer = None, state_uri, None

    def interval(self, endpoint: str) -> float:
        return 0.0

    def _count(self, endpoint: str, ids: list[str]) -> None:
        with FakeHook.lock:
            self.calls[endpoint] = self.calls.get(endpoint, 0) + 1
            FakeHook.log.append((endpoint, ids))

    def upsert_people(self, persons: list[dict[str, Any]]) -> dict[str, Any]:
        keys = [p["contactInformation"][0]["identifier"] for p in persons]
        with FakeHook.lock:
            if FakeHook.fail_on in keys:
                FakeHook.fail_on = None
                raise InfobipServerError("people upsert: server error 500", status=500)
            self._count("people.upsert", keys)
        results, errors = [], []
        for index, (key, person) in enumerate(zip(keys, persons)):  # one thread per batch: distinct people
            if person.get("firstName") == "Refused":
                errors.append({"index": index, "code": 400106, "message": "Ambiguous person.", "details": []})
                continue
            status = "CREATED" if key not in FakeHook.people else "UPDATED"
            FakeHook.people.setdefault(key, {"tags": set()}).update(person)
            results.append({"index": index, "id": index, "status": status})
        self._lost("people.upsert", keys)
        return {"results": results, "errors": errors}

    @staticmethod
    def _lost(endpoint: str, identifiers: list[str]) -> None:
        """Infobip applied the call but its answer never came (a timeout, a dropped connection)."""
        with FakeHook.lock:
            lost = FakeHook.lose_answer
            if lost is not None and lost[0] == endpoint and lost[1] in identifiers:
                FakeHook.lose_answer = None
                raise InfobipServerError(f"{endpoint}: read timed out", status=None)

    def get_tag(self, name: str) -> dict[str, Any] | None:
        self._count("tags.get", [name])
        return {"id": 7, "name": name} if name in FakeHook.tags else None

    def create_tag(self, name: str) -> dict[str, Any]:
        self._count("tags.create", [name])
        FakeHook.tags.add(name)
        return {"id": 7, "name": name}

    def _tag(self, endpoint: str, name: str, people: list[tuple[str, str]]) -> dict[str, Any]:
        self._count(endpoint, [identifier for _, identifier in people])
        if name not in FakeHook.tags:
            raise InfobipNotFoundError("tag add: 404 not found", status=404)
        for _, identifier in people:
            tags = FakeHook.people[identifier]["tags"]
            tags.add(name) if endpoint == "tags.add" else tags.discard(name)
        self._lost(endpoint, [identifier for _, identifier in people])
        return {}

    def tag_people(self, name: str, people: list[tuple[str, str]]) -> dict[str, Any]:
        return self._tag("tags.add", name, people)

    def untag_people(self, name: str, people: list[tuple[str, str]]) -> dict[str, Any]:
        return self._tag("tags.remove", name, people)


class FakeTI:
    def xcom_push(self, key: str, value: Any) -> None:
        json.dumps(value)


def context(run_id: str = "r") -> Any:
    """The part of the task context the operator reads."""
    return {"run_id": run_id, "ti": FakeTI(), "params": {}}


@pytest.fixture
def fake(tmp_path, monkeypatch):
    import infobip_provider.hooks.infobip as hooks

    FakeHook.reset(str(tmp_path / "state"))
    monkeypatch.setattr(hooks, "InfobipHook", FakeHook)
    return FakeHook


def write_cohort(path, rows: list[dict[str, str]]) -> str:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["email", "phone", "first_name", "plan"])
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


def people(n: int, first: str = "Ana", start: int = 0) -> list[dict[str, str]]:
    return [
        {"email": f"p{i}@example.com", "phone": "", "first_name": first, "plan": "pro"}
        for i in range(start, start + n)
    ]


def run(cohort: str, **kwargs: Any) -> dict[str, Any]:
    op = PeopleImportOperator(
        task_id="import_people", cohort_path=cohort, field_map=FIELD_MAP, tag="VIP", batch_size=2, **kwargs
    )
    result = op.execute(context("manual__1"))
    json.dumps(result)
    return result


def calls(endpoint: str) -> list[str]:
    return [i for e, ids in FakeHook.log if e == endpoint for i in ids]


def snapshot(tmp_path) -> pd.DataFrame:
    return StateStore(str(tmp_path / "state")).target("fp", "tags", "VIP").read_snapshot(SNAPSHOT_COLUMNS)


# ----------------------------------------------------------------------------------------------- tests
def test_first_run_upserts_then_tags_each_person_and_a_rerun_sends_nothing(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", people(5))
    first = run(cohort)
    assert (first["created"], first["updated"], first["tagged"], first["untagged"]) == (5, 0, 5, 0)
    assert calls("tags.get") == ["VIP"] and calls("tags.create") == ["VIP"]
    assert (
        sorted(calls("tags.add")) == sorted(calls("people.upsert")) == [f"p{i}@example.com" for i in range(5)]
    )
    for person in calls("tags.add"):  # each tag call comes after the upsert call that carried the person
        upsert_at = next(
            n for n, (e, ids) in enumerate(FakeHook.log) if e == "people.upsert" and person in ids
        )
        tag_at = next(n for n, (e, ids) in enumerate(FakeHook.log) if e == "tags.add" and person in ids)
        assert upsert_at < tag_at
    assert all(p["tags"] == {"VIP"} for p in FakeHook.people.values())

    FakeHook.log.clear()
    second = run(cohort)
    assert FakeHook.log == [] and second["calls"] == {}
    assert (second["created"], second["updated"], second["unchanged"], second["tagged"]) == (0, 0, 5, 0)


def test_changed_people_are_upserted_again_leavers_untagged_entrants_tagged(fake, tmp_path):
    run(write_cohort(tmp_path / "c.csv", people(4)))
    FakeHook.log.clear()
    rows = people(4)[1:]
    rows[0]["first_name"] = "Changed"  # p1
    rows += people(1, start=9)
    summary = run(write_cohort(tmp_path / "c2.csv", rows))
    assert calls("people.upsert") == ["p1@example.com", "p9@example.com"]
    assert calls("tags.add") == ["p9@example.com"] and calls("tags.remove") == ["p0@example.com"]
    assert calls("tags.get") == []  # the tag's id is remembered
    assert (summary["updated"], summary["created"], summary["untagged"], summary["unchanged"]) == (1, 1, 1, 2)
    assert FakeHook.people["p0@example.com"]["tags"] == set()  # untagged, never deleted


def test_people_refused_in_the_207_answer_are_rejected_untagged_and_retried_next_run(fake, tmp_path):
    rows = people(3)
    rows[1]["first_name"] = "Refused"
    summary = run(write_cohort(tmp_path / "c.csv", rows))
    assert summary["refused_by_infobip"] == 1 and summary["rejected"] == 1 and summary["tagged"] == 2
    assert "p1@example.com" not in calls("tags.add")
    assert "p1@example.com" not in set(snapshot(tmp_path)["key"])
    refused = [p for p in (tmp_path / "state").rglob("rejects/*refused.csv")]
    assert len(refused) == 1 and "400106" in refused[0].read_text()
    FakeHook.log.clear()
    run(write_cohort(tmp_path / "c.csv", rows))
    assert calls("people.upsert") == ["p1@example.com"]


def test_a_tag_deleted_in_infobip_is_created_again_and_everyone_tagged(fake, tmp_path):
    run(write_cohort(tmp_path / "c.csv", people(3)))
    FakeHook.tags.clear()
    for person in FakeHook.people.values():
        person["tags"].clear()
    FakeHook.log.clear()
    summary = run(write_cohort(tmp_path / "c.csv", people(4)))
    assert summary["recreated"] is True
    assert calls("tags.create") == ["VIP"]
    assert calls("people.upsert") == ["p3@example.com"]  # no field was re-sent for the others
    assert all(p["tags"] == {"VIP"} for p in FakeHook.people.values())


def test_a_failed_run_resumes_without_repeating_acknowledged_batches(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", people(12))
    FakeHook.fail_on = "p6@example.com"  # batches of 2, up to 4 in flight: whatever was answered is kept
    with pytest.raises(InfobipServerError):
        run(cohort)
    first = calls("people.upsert")
    frame = snapshot(tmp_path)
    assert set(frame["key"]) == set(first) and "p6@example.com" not in first  # acknowledged = confirmed
    tagged_before = {k for k, t in zip(frame["key"], frame["tagged"]) if t}
    FakeHook.log.clear()
    run(cohort)
    everyone = {f"p{i}@example.com" for i in range(12)}
    assert sorted(calls("people.upsert")) == sorted(everyone - set(first))  # nothing upserted twice
    assert sorted(calls("tags.add")) == sorted(everyone - tagged_before)  # nor tagged twice
    assert all(p["tags"] == {"VIP"} for p in FakeHook.people.values()) and len(FakeHook.people) == 12


def tags_of() -> dict[str, set[str]]:
    return {k: set(p["tags"]) for k, p in FakeHook.people.items()}


def test_an_unanswered_untag_is_repaired_when_the_leaver_comes_back(fake, tmp_path):
    everyone = write_cohort(tmp_path / "c.csv", people(4))
    run(everyone)
    FakeHook.lose_answer = ("tags.remove", "p3@example.com")  # Infobip removed the tag, said nothing
    with pytest.raises(InfobipServerError):
        run(write_cohort(tmp_path / "c2.csv", people(3)))
    assert tags_of()["p3@example.com"] == set()
    FakeHook.log.clear()
    summary = run(everyone)  # p3 is back: the snapshot must not trust that it still has the tag
    assert calls("tags.add") == ["p3@example.com"] and calls("people.upsert") == []
    assert summary["unchanged"] == 4 and all(t == {"VIP"} for t in tags_of().values())


def test_an_unanswered_untag_is_sent_again_while_the_person_stays_out(fake, tmp_path):
    run(write_cohort(tmp_path / "c.csv", people(4)))
    FakeHook.lose_answer = ("tags.remove", "p3@example.com")
    with pytest.raises(InfobipServerError):
        run(write_cohort(tmp_path / "c2.csv", people(3)))
    FakeHook.log.clear()
    run(write_cohort(tmp_path / "c2.csv", people(3)))
    assert calls("tags.remove") == ["p3@example.com"]  # repeating a removal is harmless
    assert "p3@example.com" not in set(snapshot(tmp_path)["key"])
    FakeHook.log.clear()
    run(write_cohort(tmp_path / "c2.csv", people(3)))
    assert FakeHook.log == []  # settled


def test_an_unanswered_tag_add_is_undone_when_the_member_leaves(fake, tmp_path):
    FakeHook.lose_answer = ("tags.add", "p3@example.com")  # Infobip tagged p3, the answer was lost
    with pytest.raises(InfobipServerError):
        run(write_cohort(tmp_path / "c.csv", people(4)))
    assert tags_of()["p3@example.com"] == {"VIP"}
    FakeHook.log.clear()
    run(write_cohort(tmp_path / "c2.csv", people(3)), max_removal_ratio=1.0)
    assert calls("tags.remove") == ["p3@example.com"] and "p3@example.com" not in calls("people.upsert")
    assert tags_of() == {**{f"p{i}@example.com": {"VIP"} for i in range(3)}, "p3@example.com": set()}


def test_an_unanswered_upsert_is_sent_again_even_when_the_fields_went_back(fake, tmp_path):
    original = write_cohort(tmp_path / "c.csv", people(2))
    run(original)
    FakeHook.lose_answer = ("people.upsert", "p0@example.com")  # Infobip stored "Changed", no answer
    with pytest.raises(InfobipServerError):
        run(write_cohort(tmp_path / "c2.csv", people(2, first="Changed")))
    assert FakeHook.people["p0@example.com"]["firstName"] == "Changed"
    FakeHook.log.clear()
    summary = run(original)  # the cohort is back to "Ana": p0 must be upserted, not counted as unchanged
    assert calls("people.upsert") == ["p0@example.com", "p1@example.com"] and calls("tags.add") == []
    assert FakeHook.people["p0@example.com"]["firstName"] == "Ana" and summary["unchanged"] == 0


@pytest.mark.parametrize(
    ("lane", "endpoint", "cohort_size", "expected"),
    [
        pytest.param("untag", "tags.add", 4, ["p3@example.com"], id="untag-then-back-in-cohort"),
        pytest.param("untag", "tags.remove", 3, ["p3@example.com"], id="untag-still-out"),
        pytest.param("tag", "tags.remove", 3, ["p3@example.com"], id="tag-then-left"),
        pytest.param("tag", "tags.add", 4, ["p3@example.com"], id="tag-still-in"),
        pytest.param("upsert", "people.upsert", 4, ["p3@example.com"], id="upsert"),
    ],
)
def test_a_killed_run_resends_its_unanswered_batches_on_resume(
    fake, tmp_path, lane, endpoint, cohort_size, expected
):
    from infobip_provider.people import make_ref

    run(write_cohort(tmp_path / "c.csv", people(4)))
    target = StateStore(str(tmp_path / "state")).target("fp", "tags", "VIP")
    frame = snapshot(tmp_path)
    if lane == "tag":  # p3's upsert was acknowledged, its tag-add batch was not
        frame.loc[frame["key"] == "p3@example.com", "tagged"] = False
        target.write_snapshot(frame)
    digest = dict(zip(frame["key"], frame["fields_hash"]))["p3@example.com"]
    ref = make_ref("EMAIL", "p3@example.com", "changed" if lane == "upsert" else digest, None)
    # A kill right after the intent: the journal holds it without an acknowledgement, nothing folded.
    target.append_journal({"run": "killed:1", "lane": lane, "batch": 0, "state": "intent", "ids": [ref]})
    FakeHook.log.clear()
    run(write_cohort(tmp_path / "c2.csv", people(cohort_size)), max_removal_ratio=1.0)
    assert calls(endpoint) == expected
    assert list(target.read_journal()) == []


def test_the_removal_guard_stops_a_run_that_would_untag_most_people(fake, tmp_path):
    run(write_cohort(tmp_path / "c.csv", people(10)))
    FakeHook.log.clear()
    with pytest.raises(AirflowFailException, match="max_removal_ratio"):
        run(write_cohort(tmp_path / "c2.csv", people(3)))
    assert FakeHook.log == []
    summary = run(write_cohort(tmp_path / "c2.csv", people(3)), max_removal_ratio=1.0)
    assert summary["untagged"] == 7


def test_dry_run_plans_without_calls_or_state(fake, tmp_path):
    rows = people(5)
    rows[0]["first_name"] = "x" * 300
    summary = run(write_cohort(tmp_path / "c.csv", rows), dry_run="true")
    assert FakeHook.log == []
    assert not list(tmp_path.rglob("*.parquet")) and not list(tmp_path.rglob("journal.jsonl"))
    assert summary["to_upsert"] == 4 and summary["to_tag"] == 4 and summary["held"] == 1
    assert summary["calls_planned"] == {"people.upsert": 2, "tags.add": 2, "tags.remove": 0}
    # the dry run shows which rows would not be used, and why
    rejects = pd.read_csv(summary["rejects_uri"].removeprefix("file://"))
    assert rejects["reason"].str.contains("firstName").tolist() == [True]


def test_value_rejects_count_towards_max_reject_ratio(fake, tmp_path):
    rows = people(4)
    rows[0]["first_name"] = rows[1]["first_name"] = "y" * 300
    with pytest.raises(AirflowFailException, match="max_reject_ratio"):
        run(write_cohort(tmp_path / "c.csv", rows), max_reject_ratio=0.25)
    assert FakeHook.log == []
    # the message says "see the rejects file": it is there, with both rows and why
    (rejects,) = tmp_path.rglob("rejects/*.csv")
    assert pd.read_csv(rejects)["reason"].str.contains("firstName").sum() == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param(
            {"email_column": "", "phone_column": None}, "email_column or phone_column", id="no-identity"
        ),
        pytest.param({"field_map": {"a": "tags"}}, "reserved", id="reserved-field"),
        pytest.param({"person_type": "VIP"}, "CUSTOMER or LEAD", id="bad-type"),
        pytest.param({"tag": "t" * 257}, "256", id="tag-too-long"),
        pytest.param({"batch_size": 1001}, "batch_size", id="batch-too-big"),
        pytest.param({"person_type": 0}, "CUSTOMER or LEAD", id="type-rendered-as-int"),
        pytest.param({"field_map": "{'a': 'tags'}"}, "reserved", id="python-text-field-map"),
    ],
)
def test_bad_arguments_fail_before_any_call(fake, tmp_path, kwargs, message):
    args = {"task_id": "t", "cohort_path": write_cohort(tmp_path / "c.csv", people(1)), **kwargs}
    with pytest.raises(AirflowFailException, match=message):
        PeopleImportOperator(**args).execute(context())
    assert FakeHook.log == [] and FakeHook.instances == []


@pytest.mark.parametrize("tag", [2026, 0], ids=["year", "zero"])
def test_a_tag_rendered_as_a_number_is_used_as_its_text(fake, tmp_path, tag):
    op = PeopleImportOperator(
        task_id="import_people", cohort_path=write_cohort(tmp_path / "c.csv", people(2)), tag=tag
    )
    summary = op.execute(context())
    assert summary["tag"] == str(tag) and calls("tags.create") == [str(tag)]
    assert all(p["tags"] == {str(tag)} for p in FakeHook.people.values())


def test_text_params_rendered_as_native_objects_are_read_as_text(fake, tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("2026,0,first_name\nn@example.com,+12025550143,Ana\n")
    op = PeopleImportOperator(
        task_id="import_people",
        cohort_path=str(path),
        email_column=2026,  # type: ignore[arg-type]  # column names that look like numbers
        phone_column=0,  # type: ignore[arg-type]
        field_map=str({"first_name": "firstName"}),  # a dict param rendered without native objects
        tag="VIP",
    )
    summary = op.execute(context())
    assert summary["members"] == 1 and summary["created"] == 1
    person = FakeHook.people["n@example.com"]
    assert person["firstName"] == "Ana"
    assert {c["type"] for c in person["contactInformation"]} == {"EMAIL", "PHONE"}


def test_template_fields_and_a_tag_named_after_the_dag_and_task():
    from airflow.sdk import DAG

    assert {
        "tag",
        "cohort_path",
        "cohort_sql",
        "cohort_conn_id",
        "field_map",
        "dry_run",
        "person_type",
    } <= set(PeopleImportOperator.template_fields)
    assert PeopleImportOperator.template_ext == (".sql",)
    with DAG("audience_export", schedule=None):
        op = PeopleImportOperator(task_id="vip_people", tag="  ")
    assert op.tag_name() == "audience_export.vip_people"


def test_a_404_on_an_upsert_fails_the_task_instead_of_tagging_everyone_again(fake, tmp_path, monkeypatch):
    """Only a 404 from the tag's own endpoints means the tag vanished; any other 404 is an error."""
    run(write_cohort(tmp_path / "c.csv", people(3)))
    FakeHook.log.clear()

    def not_found(self, persons):
        raise InfobipNotFoundError("people upsert: 404 not found", status=404)

    monkeypatch.setattr(FakeHook, "upsert_people", not_found)
    rows = people(3)
    rows[0]["first_name"] = "Changed"
    with pytest.raises(InfobipNotFoundError):
        run(write_cohort(tmp_path / "c.csv", rows))
    assert calls("tags.create") == [] and calls("tags.add") == []


def test_the_snapshot_folded_from_the_plan_is_the_one_the_journal_gives(fake, tmp_path, monkeypatch):
    """A run whose every batch was answered folds its plan; the same runs folding the journal instead
    leave the same snapshot (new, changed, refused, unchanged-but-untagged people and leavers)."""
    first = people(6)
    second = people(5, start=2)
    second[0]["first_name"], second[1]["first_name"] = "Changed", "Refused"
    second.append({"email": "", "phone": "+12025550143", "first_name": "Bo", "plan": "team"})

    def runs() -> pd.DataFrame:
        run(write_cohort(tmp_path / "c.csv", first))
        run(write_cohort(tmp_path / "c.csv", second))
        return snapshot(tmp_path).sort_values("key").reset_index(drop=True)

    from_plan = runs()
    FakeHook.reset(str(tmp_path / "state"))
    import shutil

    shutil.rmtree(tmp_path / "state")
    monkeypatch.setattr(PeopleImportOperator, "fold_answered", lambda self, snapshot, plan, lanes: None)
    from_journal = runs()
    pd.testing.assert_frame_equal(from_plan, from_journal)
    # p0 and p1 left (untagged, forgotten); p3 was refused (what Infobip confirmed before stays)
    assert sorted(from_plan["key"]) == ["12025550143", *(f"p{i}@example.com" for i in range(2, 7))]
    assert from_plan["tagged"].all()


def test_a_snapshot_the_per_person_code_wrote_is_read_and_nobody_is_upserted_again(fake, tmp_path):
    """Upgrading keeps the tag's state: a snapshot written as a pandas frame by the per-person code
    (same digests) leaves an unchanged cohort with nothing to send."""
    from infobip_provider.cohorts import IdentityColumns, cohort_source, prepare_cohort
    from infobip_provider.people import make_ref, parse_field_map
    from tests import people_rowwise as rowwise

    rows = [*people(4), {"email": "", "phone": "+12025550143", "first_name": "Bo", "plan": "team"}]
    cohort = write_cohort(tmp_path / "c.csv", rows)
    prepared = prepare_cohort(cohort_source(path=cohort), IdentityColumns(), key="email_or_phone")
    built = rowwise.build_people(prepared.members, parse_field_map(FIELD_MAP))
    refs = [make_ref(p.key_type, p.key, p.fields_hash, p.phone) for p in built.people]
    old = rowwise.fold_people({}, [(refs, {})], [(refs, {})])
    frame = pd.DataFrame(
        {
            "key": pd.Series(list(old), dtype="string"),
            "key_type": pd.Series([c.key_type for c in old.values()], dtype="string"),
            "fields_hash": pd.Series([c.fields_hash for c in old.values()], dtype="string"),
            "tagged": pd.Series([c.tagged for c in old.values()], dtype="bool"),
            "phone": pd.Series([c.phone for c in old.values()], dtype="string"),
        }
    )  # written before the ``uncertain`` column existed
    StateStore(str(tmp_path / "state")).target("fp", "tags", "VIP").write_snapshot(frame)
    FakeHook.tags.add("VIP")
    summary = run(cohort)
    assert (summary["created"], summary["updated"], summary["tagged"], summary["unchanged"]) == (0, 0, 0, 5)
    assert FakeHook.log == [] or all(endpoint.startswith("tags.get") for endpoint, _ in FakeHook.log)
