"""The suppression list: fed by opt-out replies and hard/spam bounces (the outcomes tables, read since
their marks) and by the user's own file, kept per account as Parquet and CSV; every broadcast skips
the suppressed with the reason ``suppressed``, counts them in its dry run, and turns it off only with
``respect_suppression=False``."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime

import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowFailException

from infobip_provider.outcomes import (
    REPLY_COLUMNS,
    REPLY_KEY,
    REPORT_COLUMNS,
    REPORT_KEY,
    opt_out_words,
    reply_row,
    report_row,
)
from infobip_provider.respect.suppression import (
    CSV,
    PARQUET,
    SuppressionList,
    listed_rows,
    normalize_address,
    outcome_rows,
)
from infobip_provider.state import TargetState
from infobip_provider.warehouse import SqlTable
from tests.operators import test_email_operator as email_tests
from tests.operators import test_sms_operator as sms_tests

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC).timestamp()


@pytest.fixture
def outcomes(tmp_path, monkeypatch):
    """The outcomes tables the reports DAG fills, on SQLite (connection ``outcomes``)."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_OUTCOMES", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "dwh.db")})
    )
    replies = SqlTable("outcomes", "infobip_replies", REPLY_COLUMNS, REPLY_KEY)
    reports = SqlTable("outcomes", "infobip_delivery_reports", REPORT_COLUMNS, REPORT_KEY)
    replies.ensure()
    reports.ensure()
    return {"replies": replies, "reports": reports}


def reply(replies: SqlTable, sender: str, text: str, collected_at: str, message_id: str) -> None:
    item = {"messageId": message_id, "from": sender, "to": "447860099299", "text": text}
    replies.upsert([reply_row("sms", item, opt_out_words(), collected_at)])


def report(reports: SqlTable, channel: str, to: str, status: str, error: dict, collected_at: str, mid: str):
    item = {"messageId": mid, "bulkId": "b", "to": to, "status": {"groupName": status}, "error": error}
    reports.upsert([report_row(channel, item, source="reports", collected_at=collected_at)])


def phones_cohort(path, phones) -> str:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["phone", "first_name", "plan"])
        for i, phone in enumerate(phones):
            writer.writerow([f"+{phone}", f"N{i}", "pro"])
    return str(path)


def sms_run(fake, cohort, run_id="manual__1", **kwargs):
    op = sms_tests.make(fake, cohort, text="Hi {{first_name}}", outcomes_conn_id="outcomes", **kwargs)
    op._clock = lambda: T0
    return sms_tests.run(op, run_id)


def rejects(summary) -> dict[str, str]:
    with open(summary["rejects_uri"].removeprefix("file://"), encoding="utf-8") as fh:
        return {row["key"]: row["reason"] for row in csv.DictReader(fh)}


def test_an_opt_out_reply_keeps_the_number_out_of_the_next_sms_broadcast(tmp_path, outcomes):
    fake = sms_tests.FakeInfobip(str(tmp_path / "state"))
    numbers = sms_tests.numbers(10)
    cohort = phones_cohort(tmp_path / "c.csv", numbers)
    reply(outcomes["replies"], numbers[3], "Stop please", "2026-11-24 09:00:00.000", "r1")
    reply(outcomes["replies"], numbers[4], "Thanks!", "2026-11-24 09:00:00.000", "r2")  # not an opt-out
    # a dry run counts the suppressed before anything is sent (and writes nothing)
    plan = sms_run(fake, cohort, dry_run=True)
    assert plan["recipients"] == 9 and plan["skipped_by_reason"]["suppressed"] == 1
    assert plan["plan"]["respect"]["suppression"]["members_suppressed"] == 1
    assert not (tmp_path / "state" / "fp-test" / "suppression" / PARQUET).exists()
    summary = sms_run(fake, cohort)
    sent = {m["to"] for m in fake.messages}
    assert sent == set(numbers) - {numbers[3]}
    assert summary["skipped_by_reason"]["suppressed"] == 1
    assert rejects(summary)[numbers[3]] == "suppressed"
    # the list is a table anyone can read: Parquet and CSV, with the reason and the source
    folder = tmp_path / "state" / "fp-test" / "suppression"
    listed = pd.read_csv(folder / CSV, dtype=str)
    assert listed.to_dict("records") == [
        {
            "channel": "*",
            "address": numbers[3],
            "reason": "opt_out",
            "source": "replies:infobip_replies",
            "added_at": "2026-11-24T10:00:00+00:00",
            "detail": "STOP",
        }
    ]
    assert pd.read_parquet(folder / PARQUET)["address"].tolist() == [numbers[3]]
    assert json.loads((folder / "sources.json").read_text()) == {
        "replies:infobip_replies": "2026-11-24 09:00:00.000"
    }


def test_respect_suppression_false_turns_it_off_explicitly(tmp_path, outcomes):
    fake = sms_tests.FakeInfobip(str(tmp_path / "state"))
    numbers = sms_tests.numbers(5)
    reply(outcomes["replies"], numbers[0], "STOP", "2026-11-24 09:00:00.000", "r1")
    summary = sms_run(fake, phones_cohort(tmp_path / "c.csv", numbers), respect_suppression=False)
    assert summary["sent"] == 5 and "suppressed" not in summary["skipped_by_reason"]
    assert summary["plan"]["respect"]["suppression"] == {"applied": False}


def test_an_sms_hard_bounce_suppresses_on_sms_only_and_a_soft_one_not_at_all(tmp_path, outcomes):
    fake = sms_tests.FakeInfobip(str(tmp_path / "state"))
    numbers = sms_tests.numbers(4)
    report(
        outcomes["reports"],
        "sms",
        numbers[0],
        "UNDELIVERABLE",
        {"groupName": "HANDSET_ERRORS", "permanent": True},
        "2026-11-24 09:00:00.000",
        "m1",
    )
    report(
        outcomes["reports"],
        "sms",
        numbers[1],
        "UNDELIVERABLE",
        {"groupName": "HANDSET_ERRORS", "permanent": False},
        "2026-11-24 09:00:00.000",
        "m2",
    )
    summary = sms_run(fake, phones_cohort(tmp_path / "c.csv", numbers))
    assert {m["to"] for m in fake.messages} == set(numbers[1:])
    assert summary["skipped_by_reason"]["suppressed"] == 1
    listing = SuppressionList(TargetState(_folder(tmp_path)))
    assert listing.addresses("sms") == {numbers[0]} and listing.addresses("whatsapp") == set()


def _folder(tmp_path):
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath("file://" + str(tmp_path / "state" / "fp-test" / "suppression"))


def test_a_hard_bounce_keeps_an_address_out_of_the_next_email_broadcast(tmp_path, outcomes):
    fake = email_tests.FakeEmail(str(tmp_path / "state"))
    path = tmp_path / "e.csv"
    path.write_text("email,first_name,plan\nana@x.example,Ana,pro\nbob@x.example,Bob,pro\n")
    report(
        outcomes["reports"],
        "email",
        "Ana@X.example",
        "UNDELIVERABLE",
        {"groupName": "HANDSET_ERRORS", "name": "EC_INVALID_RECIPIENT", "permanent": True},
        "2026-11-24 09:00:00.000",
        "e1",
    )
    op = email_tests.make(fake, str(path), outcomes_conn_id="outcomes")
    op._clock = lambda: T0
    summary = email_tests.run(op)
    assert [e["to"] for e in fake.emails] == ["bob@x.example"]
    assert summary["skipped_by_reason"]["suppressed"] == 1


def test_the_outcomes_tables_are_read_from_their_marks_on(tmp_path, outcomes):
    listing = SuppressionList(TargetState(_folder(tmp_path)))
    hook = outcomes["replies"].hook
    reply(outcomes["replies"], "41790000001", "STOP", "2026-11-24 09:00:00.000", "r1")
    first = outcome_rows(
        hook,
        replies_table="infobip_replies",
        reports_table="infobip_delivery_reports",
        marks={},
        added_at="t",
    )
    assert [r[1] for r in first.rows] == ["41790000001"]
    assert listing.merge(first.rows, marks=first.marks) == 1
    reply(outcomes["replies"], "41790000002", "quit", "2026-11-24 11:00:00.000", "r2")
    second = outcome_rows(
        hook, replies_table="infobip_replies", reports_table=None, marks=listing.marks(), added_at="t"
    )
    # from the mark on (>=, so rows of the same instant are never lost): the new one, the old one again
    assert {r[1] for r in second.rows} == {"41790000001", "41790000002"}
    assert listing.merge(second.rows, marks=second.marks) == 1
    assert listing.marks() == {"replies:infobip_replies": "2026-11-24 11:00:00.000"}
    assert listing.addresses("email") == {"41790000001", "41790000002"}


def test_a_row_stamped_before_the_mark_by_a_slow_clock_is_still_read(tmp_path, outcomes):
    listing = SuppressionList(TargetState(_folder(tmp_path)))
    hook = outcomes["replies"].hook
    reply(outcomes["replies"], "41790000001", "STOP", "2026-11-24 11:00:00.000", "r1")
    first = outcome_rows(hook, replies_table="infobip_replies", reports_table=None, marks={}, added_at="t")
    listing.merge(first.rows, marks=first.marks)
    # collected after that read by a worker whose clock is 40 minutes behind: stamped before the mark
    reply(outcomes["replies"], "41790000002", "STOP", "2026-11-24 10:20:00.000", "r2")
    second = outcome_rows(
        hook, replies_table="infobip_replies", reports_table=None, marks=listing.marks(), added_at="t"
    )
    assert "41790000002" in {r[1] for r in second.rows}
    assert listing.merge(second.rows, marks=second.marks) == 1  # the one read again is not added twice
    assert listing.marks() == {"replies:infobip_replies": "2026-11-24 11:00:00.000"}
    # a day before the mark at most
    reply(outcomes["replies"], "41790000003", "STOP", "2026-11-23 10:59:00.000", "r3")
    third = outcome_rows(
        hook, replies_table="infobip_replies", reports_table=None, marks=listing.marks(), added_at="t"
    )
    assert "41790000003" not in {r[1] for r in third.rows}


def test_a_sender_caused_bounce_is_a_spam_bounce_but_suppresses_nobody(tmp_path, outcomes):
    blacklisted = {"groupName": "BOUNCED", "name": "EC_SENDER_IP_BLACKLISTED", "permanent": True}
    spam = {"groupName": "BOUNCED", "name": "EC_BLOCKED_AS_SPAM", "permanent": True}
    report(
        outcomes["reports"],
        "email",
        "ana@x.example",
        "UNDELIVERABLE",
        blacklisted,
        "2026-11-24 09:00:00.000",
        "e1",
    )
    report(
        outcomes["reports"], "email", "bob@x.example", "UNDELIVERABLE", spam, "2026-11-24 09:00:00.000", "e2"
    )
    hook = outcomes["reports"].hook
    # the reports table keeps seed 001's class
    classes = dict(hook.get_records("SELECT recipient, bounce_class FROM infobip_delivery_reports"))
    assert classes == {"ana@x.example": "spam_bounce", "bob@x.example": "spam_bounce"}
    got = outcome_rows(
        hook, replies_table=None, reports_table="infobip_delivery_reports", marks={}, added_at="t"
    )
    assert [r[1] for r in got.rows] == ["bob@x.example"]
    # an entry such a bounce put on the list before is taken off at the next merge
    listing = SuppressionList(TargetState(_folder(tmp_path)))
    listing.merge(
        [
            (
                "email",
                "ana@x.example",
                "spam_bounce",
                "reports:infobip_delivery_reports",
                "t",
                "EC_SENDER_IP_BLACKLISTED",
            )
        ]
    )
    listing.merge(got.rows)
    assert listing.addresses("email") == {"bob@x.example"}


def test_a_missing_outcomes_table_is_noted_not_fatal(tmp_path, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_EMPTYDB", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "e.db")})
    )
    from airflow.sdk import BaseHook

    hook = BaseHook.get_connection("emptydb").get_hook()
    got = outcome_rows(
        hook,
        replies_table="infobip_replies",
        reports_table="infobip_delivery_reports",
        marks={},
        added_at="t",
    )
    assert got.rows == [] and len(got.notes) == 2 and "not there yet" in got.notes[0]


class BrokenHook:
    """A warehouse that answers every query with an error (a lost connection, no permission)."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def get_records(self, sql):
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(RuntimeError("server closed the connection unexpectedly"), id="connection-lost"),
        pytest.param(PermissionError('permission denied for table "infobip_replies"'), id="no-permission"),
        pytest.param(RuntimeError('column "opt_out_word" does not exist'), id="missing-column"),
    ],
)
def test_an_unreadable_outcomes_table_is_an_error_naming_it(error):
    from infobip_provider.respect.suppression import OutcomesUnreadable

    with pytest.raises(OutcomesUnreadable, match="'infobip_replies' on the connection 'dwh'"):
        outcome_rows(
            BrokenHook(error),
            replies_table="infobip_replies",
            reports_table=None,
            marks={},
            added_at="t",
            conn_id="dwh",
        )


def test_a_missing_table_read_before_is_an_error(tmp_path, monkeypatch):
    # a mark says the table was read: missing now means dropped or renamed, not "never filled"
    monkeypatch.setenv(
        "AIRFLOW_CONN_EMPTYDB", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "e.db")})
    )
    from airflow.sdk import BaseHook

    from infobip_provider.respect.suppression import OutcomesUnreadable

    hook = BaseHook.get_connection("emptydb").get_hook()
    with pytest.raises(OutcomesUnreadable, match=r"last read up to 2026-11-24 09:00:00\.000"):
        outcome_rows(
            hook,
            replies_table="infobip_replies",
            reports_table=None,
            marks={"replies:infobip_replies": "2026-11-24 09:00:00.000"},
            added_at="t",
        )


def test_a_broadcast_whose_outcomes_cannot_be_read_sends_nothing(tmp_path, outcomes, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    fake = sms_tests.FakeInfobip(str(tmp_path / "state"))
    cohort = phones_cohort(tmp_path / "c.csv", sms_tests.numbers(3))
    monkeypatch.setattr(
        "infobip_provider.respect.suppression._records",
        lambda hook, sql: (_ for _ in ()).throw(RuntimeError("SSL SYSCALL error: EOF detected")),
    )
    with pytest.raises(AirflowFailException, match="'infobip_replies' on the connection 'outcomes'"):
        sms_run(fake, cohort)
    assert fake.bodies == []
    # on purpose: no outcomes tables
    summary = sms_run(fake, cohort, replies_table=None, reports_table="")
    assert summary["sent"] == 3


def test_an_outcomes_connection_never_defined_is_noted_and_one_gone_after_use_stops(
    tmp_path, outcomes, monkeypatch
):
    """A first run on sample files has no warehouse connection yet (the reports DAG, which writes
    through it, has collected nothing): the broadcast goes on. A connection the list was read from
    before and that is gone now stops the broadcast before anything is sent."""
    from airflow.sdk.exceptions import AirflowFailException

    cohort = phones_cohort(tmp_path / "c.csv", sms_tests.numbers(3))
    never = sms_tests.FakeInfobip(str(tmp_path / "never"))
    monkeypatch.delenv("AIRFLOW_CONN_OUTCOMES")
    assert sms_run(never, cohort)["sent"] == 3
    read_before = sms_tests.FakeInfobip(str(tmp_path / "read-before"))
    monkeypatch.setenv(
        "AIRFLOW_CONN_OUTCOMES", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "dwh.db")})
    )
    reply(outcomes["replies"], "41793026999", "STOP", "2026-11-24 09:00:00.000", "m-1")
    assert sms_run(read_before, cohort)["sent"] == 3
    monkeypatch.delenv("AIRFLOW_CONN_OUTCOMES")
    sent = len(read_before.bodies)
    with pytest.raises(AirflowFailException, match="outcomes connection 'outcomes'"):
        sms_run(read_before, cohort, run_id="manual__2")
    assert len(read_before.bodies) == sent


def test_a_users_file_feeds_the_list_and_replaces_what_it_listed_before(tmp_path):
    fake = sms_tests.FakeInfobip(str(tmp_path / "state"))
    numbers = sms_tests.numbers(6)
    cohort = phones_cohort(tmp_path / "c.csv", numbers)
    mine = tmp_path / "dnc.csv"
    mine.write_text(f"phone\n+{numbers[0]}\n+{numbers[1]}\nnot a number\n")
    op = sms_tests.make(fake, cohort, text="Hi", suppression_path=str(mine))
    first = sms_tests.run(op, "manual__1")
    assert first["sent"] == 4 and first["skipped_by_reason"]["suppressed"] == 2
    mine.write_text(f"phone\n+{numbers[1]}\n")  # number 0 is off the user's list now
    second = sms_tests.run(sms_tests.make(fake, cohort, text="Hi", suppression_path=str(mine)), "manual__2")
    assert second["sent"] == 5
    assert {m["to"] for m in fake.messages if m["bulkId"] == sms_tests.bulk("manual__2")} == set(numbers) - {
        numbers[1]
    }
    # without the file, the list still holds what it listed last
    third = sms_tests.run(sms_tests.make(fake, cohort, text="Hi"), "manual__3")
    assert third["sent"] == 5


def test_a_broadcast_reads_the_list_once_and_applies_it_as_written(tmp_path, monkeypatch):
    fake = sms_tests.FakeInfobip(str(tmp_path / "state"))
    numbers = sms_tests.numbers(6)
    cohort = phones_cohort(tmp_path / "c.csv", numbers)
    mine = tmp_path / "dnc.csv"
    mine.write_text(f"phone\n+{numbers[0]}\n+{numbers[1]}\n")
    reads = []
    real = SuppressionList.read
    monkeypatch.setattr(SuppressionList, "read", lambda self: reads.append(1) or real(self))
    first = sms_tests.run(sms_tests.make(fake, cohort, text="Hi", suppression_path=str(mine)), "manual__1")
    assert len(reads) == 1  # checked, merged and applied from one read
    assert (
        first["skipped_by_reason"]["suppressed"] == 2
        and first["plan"]["respect"]["suppression"]["entries"] == 2
    )
    mine.write_text(f"phone\n+{numbers[1]}\n+{numbers[2]}\n")  # one off, one on: written, then applied
    second = sms_tests.run(sms_tests.make(fake, cohort, text="Hi", suppression_path=str(mine)), "manual__2")
    assert len(reads) == 2
    assert second["plan"]["respect"]["suppression"]["entries"] == 2
    assert {m["to"] for m in fake.messages if m["bulkId"] == sms_tests.bulk("manual__2")} == set(numbers) - {
        numbers[1],
        numbers[2],
    }


def test_test_sends_ignore_the_list(tmp_path):
    fake = sms_tests.FakeInfobip(str(tmp_path / "state"))
    numbers = sms_tests.numbers(3)
    mine = tmp_path / "dnc.csv"
    mine.write_text(f"phone\n+{numbers[0]}\n")
    op = sms_tests.make(
        fake,
        phones_cohort(tmp_path / "c.csv", numbers),
        text="Hi",
        suppression_path=str(mine),
        test_recipients=[f"+{numbers[0]}"],
    )
    summary = sms_tests.run(op)
    assert summary["sent"] == 1 and {m["to"] for m in fake.messages} == {numbers[0]}


NORMALIZERS = {"email": normalize_address, "phone": normalize_address}


def test_listed_rows_and_addresses():
    frame = pd.DataFrame({"Email": ["A@x.example", None, "b@x.example"]})
    rows = listed_rows(frame, "file:x", "t", NORMALIZERS)
    assert [r[1] for r in rows] == ["a@x.example", "b@x.example"]
    frame = pd.DataFrame({"number": ["+41 79 000 00 01", "c@x.example"]})  # one column: by its values
    assert [r[1] for r in listed_rows(frame, "file:y", "t", NORMALIZERS)] == ["41790000001", "c@x.example"]


def test_every_identity_column_of_a_list_is_read_whatever_the_channel():
    frame = pd.DataFrame(
        {"email": ["a@x.example", None], "Phone": [None, "+41 79 000 00 01"], "name": ["A", "B"]}
    )
    assert sorted(r[1] for r in listed_rows(frame, "file:x", "t", NORMALIZERS)) == [
        "41790000001",
        "a@x.example",
    ]


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(pd.DataFrame({"name": ["Ana"], "note": ["+41790000001"]}), id="no-identity-column"),
        pytest.param(pd.DataFrame(), id="no-columns"),
    ],
)
def test_a_list_without_an_identity_column_is_an_error(frame):
    from infobip_provider.respect.suppression import SuppressionSourceError

    with pytest.raises(SuppressionSourceError, match="no phone or email column"):
        listed_rows(frame, "file:x", "t", NORMALIZERS)


def test_one_file_shared_by_an_email_and_an_sms_broadcast_keeps_both_its_columns(tmp_path):
    numbers = sms_tests.numbers(3)
    mine = tmp_path / "dnc.csv"
    mine.write_text(f"email,phone\nana@x.example,+{numbers[0]}\nbob@x.example,\n")
    sms = sms_tests.FakeInfobip(str(tmp_path / "state"))
    first = sms_tests.run(
        sms_tests.make(
            sms, phones_cohort(tmp_path / "c.csv", numbers), text="Hi", suppression_path=str(mine)
        ),
        "manual__1",
    )
    assert first["skipped_by_reason"]["suppressed"] == 1
    listing = SuppressionList(TargetState(_folder(tmp_path)))
    assert listing.addresses("email") == {"ana@x.example", "bob@x.example", numbers[0]}
    email = email_tests.FakeEmail(str(tmp_path / "state"))
    path = tmp_path / "e.csv"
    path.write_text("email,first_name,plan\nana@x.example,Ana,pro\ncid@x.example,Cid,pro\n")
    op = email_tests.make(email, str(path), suppression_path=str(mine))
    summary = email_tests.run(op)
    assert [e["to"] for e in email.emails] == ["cid@x.example"]
    assert summary["skipped_by_reason"]["suppressed"] == 1
    # the email broadcast kept the file's numbers: the next SMS broadcast still skips them
    assert listing.addresses("sms") == {"ana@x.example", "bob@x.example", numbers[0]}
    again = sms_tests.run(
        sms_tests.make(
            sms, phones_cohort(tmp_path / "c.csv", numbers), text="Hi", suppression_path=str(mine)
        ),
        "manual__2",
    )
    assert again["skipped_by_reason"]["suppressed"] == 1 and again["sent"] == 2


def test_a_file_without_an_identity_column_stops_the_broadcast(tmp_path):
    fake = sms_tests.FakeInfobip(str(tmp_path / "state"))
    mine = tmp_path / "dnc.csv"
    mine.write_text("name,note\nAna,do not call\n")
    op = sms_tests.make(
        fake, phones_cohort(tmp_path / "c.csv", sms_tests.numbers(2)), text="Hi", suppression_path=str(mine)
    )
    with pytest.raises(AirflowFailException, match="no phone or email column"):
        sms_tests.run(op)
    assert fake.bodies == []


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("phone\n", id="header-only"),
        pytest.param("", id="empty-file"),
        pytest.param("phone\nnot a number\n", id="mis-read"),
    ],
)
def test_an_empty_or_mis_read_file_does_not_wipe_what_it_listed(tmp_path, content):
    fake = sms_tests.FakeInfobip(str(tmp_path / "state"))
    numbers = sms_tests.numbers(5)
    cohort = phones_cohort(tmp_path / "c.csv", numbers)
    mine = tmp_path / "dnc.csv"
    mine.write_text(f"phone\n+{numbers[0]}\n+{numbers[1]}\n+{numbers[2]}\n")
    first = sms_tests.run(sms_tests.make(fake, cohort, text="Hi", suppression_path=str(mine)), "manual__1")
    assert first["sent"] == 2
    sent = len(fake.messages)
    mine.write_text(content)
    for dry_run in (True, False):
        op = sms_tests.make(fake, cohort, text="Hi", suppression_path=str(mine), dry_run=dry_run)
        with pytest.raises(AirflowFailException, match=r"Refusing to remove 3 of the 3|no phone or email"):
            sms_tests.run(op, "manual__2")
    assert len(fake.messages) == sent
    listing = SuppressionList(TargetState(_folder(tmp_path)))
    assert listing.addresses("sms") == set(numbers[:3])


def test_a_list_may_shrink_a_little_and_empty_only_when_allowed(tmp_path):
    fake = sms_tests.FakeInfobip(str(tmp_path / "state"))
    numbers = sms_tests.numbers(5)
    cohort = phones_cohort(tmp_path / "c.csv", numbers)
    mine = tmp_path / "dnc.csv"
    mine.write_text("phone\n" + "".join(f"+{n}\n" for n in numbers[:4]))
    sms_tests.run(sms_tests.make(fake, cohort, text="Hi", suppression_path=str(mine)), "manual__1")
    mine.write_text("phone\n" + "".join(f"+{n}\n" for n in numbers[:3]))  # one of four off: fine
    second = sms_tests.run(sms_tests.make(fake, cohort, text="Hi", suppression_path=str(mine)), "manual__2")
    assert second["skipped_by_reason"]["suppressed"] == 3
    mine.write_text("phone\n")
    op = sms_tests.make(fake, cohort, text="Hi", suppression_path=str(mine), suppression_max_removal_ratio=1)
    third = sms_tests.run(op, "manual__3")
    assert third["sent"] == 5 and "suppressed" not in third["skipped_by_reason"]


def test_a_member_sent_by_an_earlier_try_is_not_rejected_as_suppressed_on_the_next(tmp_path):
    fake = sms_tests.FakeInfobip(str(tmp_path / "state"))
    numbers = sms_tests.numbers(4)
    cohort = phones_cohort(tmp_path / "c.csv", numbers)
    fake.faults = ["ok", "die_after"]  # two members sent, then the process died
    with pytest.raises(sms_tests.Crash):
        sms_tests.run(sms_tests.make(fake, cohort, text="Hi", batch_size=1))
    sent_first = [m["to"] for m in fake.messages]
    assert len(sent_first) == 2
    # before the retry, one member already sent and one not yet sent opt out
    unsent = next(n for n in numbers if n not in sent_first)
    mine = tmp_path / "dnc.csv"
    mine.write_text(f"phone\n+{sent_first[0]}\n+{unsent}\n")
    summary = sms_tests.run(sms_tests.make(fake, cohort, text="Hi", batch_size=1, suppression_path=str(mine)))
    assert rejects(summary) == {unsent: "suppressed"}
    assert summary["skipped_by_reason"]["suppressed"] == 1
    assert summary["sent"] == 3 and summary["already_sent"] == 2
    assert unsent not in {m["to"] for m in fake.messages}
