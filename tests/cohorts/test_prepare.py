"""prepare_cohort: keys, the email-or-phone rule, dedupe, rejects, columns, empty cohorts, thresholds."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowFailException

from infobip_provider.cohorts import (
    CohortError,
    FileSource,
    IdentityColumns,
    PreparedCohort,
    RejectRatioExceeded,
    prepare_cohort,
)
from tests.cohorts.conftest import ROOT, write


class RecordingLog:
    """A logger stand-in that keeps formatted messages by level."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str]] = []

    def _add(self, level: str, msg: str, *args) -> None:
        self.records.append((level, msg % args))

    def warning(self, msg: str, *args) -> None:
        self._add("warning", msg, *args)

    def info(self, msg: str, *args) -> None:
        self._add("info", msg, *args)

    def messages(self, level: str) -> list[str]:
        return [m for lv, m in self.records if lv == level]


def _prepare(tmp_path: Path, text: str, **kwargs) -> PreparedCohort:
    path = write(tmp_path / "cohort.csv", text)
    return prepare_cohort(FileSource(path), **kwargs)


def _rejects(prepared: PreparedCohort) -> list[tuple]:
    """Rejects as tuples, missing cells as None."""
    frame = prepared.rejects[["row", "key", "value", "reason"]]
    return [tuple(None if pd.isna(v) else v for v in r) for r in frame.itertuples(index=False)]


COHORT = (
    "email,phone,first_name,plan\n"
    " Ana@Example.com ,+385 91 234 5678,Ana,pro\n"  # 1
    "broken@,(415) 555-2671,Ivan,free\n"  # 2 invalid email, valid phone
    ",12345,Lee,basic\n"  # 3 no email, invalid phone
    "ana@example.COM,+1 415 555 2672,Ana again,free\n"  # 4 duplicate email of row 1
    ",,Nobody,free\n"  # 5 nothing
    "also@broken,n/a,Both,free\n"  # 6 invalid email and phone
    ",415.555.2671,Ivan again,pro\n"  # 7 duplicate phone of row 2
    "mia@example.com,not a phone,Mia,pro\n"  # 8 valid email, invalid phone
)


def test_email_or_phone_applies_infobips_rule(tmp_path):
    prepared = _prepare(tmp_path, COHORT, key="email_or_phone")
    members = prepared.members
    assert members["key"].tolist() == ["ana@example.com", "14155552671", "mia@example.com"]
    assert members["row"].tolist() == [1, 2, 8]
    assert members["email"].tolist() == ["ana@example.com", None, "mia@example.com"]  # row 2: bad email, kept
    assert members["phone"].tolist() == ["385912345678", "14155552671", None]  # row 8: bad phone, kept
    assert _rejects(prepared) == [
        (3, None, "12345", "invalid phone"),
        (4, "ana@example.com", "ana@example.COM", "duplicate of row 1"),
        (5, None, None, "missing identity"),
        (6, None, "also@broken | n/a", "invalid email and phone"),
        (7, "14155552671", "415.555.2671", "duplicate of row 2"),
    ]
    assert prepared.stats["rejected_by_reason"] == {
        "invalid phone": 1,
        "duplicate": 2,
        "missing identity": 1,
        "invalid email and phone": 1,
    }


def test_key_email(tmp_path):
    prepared = _prepare(tmp_path, COHORT, key="email")
    assert prepared.members["key"].tolist() == ["ana@example.com", "mia@example.com"]
    reasons = {row: reason for row, _, _, reason in _rejects(prepared)}
    assert reasons == {
        2: "invalid email",
        3: "missing identity",
        4: "duplicate of row 1",
        5: "missing identity",
        6: "invalid email",
        7: "missing identity",
    }
    assert prepared.rejects.set_index("row").loc[2, "value"] == "broken@"


def test_key_phone(tmp_path):
    prepared = _prepare(tmp_path, COHORT, key="phone")
    assert prepared.members["key"].tolist() == ["385912345678", "14155552671", "14155552672"]
    assert prepared.members["email"].tolist() == ["ana@example.com", None, "ana@example.com"]
    reasons = {row: reason for row, _, _, reason in _rejects(prepared)}
    assert reasons == {
        3: "invalid phone",
        5: "missing identity",
        6: "invalid phone",
        7: "duplicate of row 2",
        8: "invalid phone",
    }


def test_key_external_id_is_trimmed_and_deduplicated(tmp_path):
    text = "id,email\n A-1 ,a@example.com\nA-2,\n   ,c@example.com\nA-1,d@example.com\n"
    prepared = _prepare(tmp_path, text, columns=IdentityColumns(external_id="id"), key="external_id")
    assert prepared.members["key"].tolist() == ["A-1", "A-2"]
    assert prepared.members["external_id"].tolist() == ["A-1", "A-2"]
    assert _rejects(prepared) == [
        (3, None, "   ", "missing identity"),
        (4, "A-1", "A-1", "duplicate of row 1"),
    ]


def test_first_row_wins_with_all_its_columns(tmp_path):
    text = "email,plan,city\nana@example.com,pro,Zagreb\nANA@example.com,free,Split\nana@example.com,,\n"
    prepared = _prepare(tmp_path, text)
    assert prepared.members[["key", "plan", "city", "row"]].to_dict("records") == [
        {"key": "ana@example.com", "plan": "pro", "city": "Zagreb", "row": 1}
    ]
    assert prepared.rejects["reason"].tolist() == ["duplicate of row 1", "duplicate of row 1"]
    assert prepared.stats["duplicates"] == 2


def test_member_columns_and_types(tmp_path):
    text = "email,phone,first_name,zip\nana@example.com,,Ana,\n"
    members = _prepare(tmp_path, text).members
    assert list(members.columns) == ["key", "email", "phone", "external_id", "row", "first_name", "zip"]
    record = members.iloc[0].to_dict()
    assert record == {
        "key": "ana@example.com",
        "email": "ana@example.com",
        "phone": None,
        "external_id": None,
        "row": 1,
        "first_name": "Ana",
        "zip": None,
    }
    assert str(members["row"].dtype) == "int64"


def test_source_columns_clashing_with_member_columns_are_renamed(tmp_path):
    text = "Email,key,row\nana@example.com,k1,r1\n"
    members = _prepare(tmp_path, text).members
    assert list(members.columns) == [
        "key",
        "email",
        "phone",
        "external_id",
        "row",
        "source_key",
        "source_row",
    ]
    assert (members.loc[0, "source_key"], members.loc[0, "source_row"]) == ("k1", "r1")


def test_identity_columns_match_case_insensitively(tmp_path):
    text = "E-Mail,Mobile\nana@example.com,+385912345678\n"
    prepared = _prepare(
        tmp_path, text, columns=IdentityColumns(email="e-mail", phone="mobile"), key="email_or_phone"
    )
    assert prepared.members[["email", "phone"]].values.tolist() == [["ana@example.com", "385912345678"]]


def test_required_column_absent_names_the_columns_found(tmp_path):
    with pytest.raises(
        CohortError,
        match=r"column 'email' \(email for key='email'\) not found in file .*; columns found: mail, phone",
    ):
        _prepare(tmp_path, "mail,phone\na@example.com,1\n")


def test_email_or_phone_needs_both_configured_columns(tmp_path):
    with pytest.raises(
        CohortError, match=r"cohort column 'phone' \(phone for key='email_or_phone'\) not found"
    ):
        _prepare(tmp_path, "email\na@example.com\n", key="email_or_phone")
    prepared = _prepare(
        tmp_path, "email\na@example.com\n", key="email_or_phone", columns=IdentityColumns(phone=None)
    )
    assert prepared.stats["members"] == 1


def test_identity_column_the_key_does_not_need_may_be_absent(tmp_path):
    prepared = _prepare(tmp_path, "email\na@example.com\n", key="email")  # default phone="phone" is absent
    assert prepared.members["phone"].tolist() == [None]


def test_key_needs_its_column_configured(tmp_path):
    with pytest.raises(CohortError, match="key='external_id' needs the external_id column set"):
        _prepare(tmp_path, "email\na@example.com\n", key="external_id")


def test_country_column_reads_national_numbers_per_row(tmp_path):
    text = (
        "phone,country\n"
        "091 234 5678,HR\n"
        "030 901820,de\n"
        "(415) 555-2671,\n"  # no country: default_region
        "020 7946 0958,Narnia\n"  # unknown code: default_region (US) -> invalid
    )
    prepared = _prepare(tmp_path, text, columns=IdentityColumns(email=None, country="country"), key="phone")
    assert prepared.members["phone"].tolist() == ["385912345678", "4930901820", "14155552671"]
    assert prepared.members["country"].tolist() == ["HR", "de", None]  # kept as a field
    assert _rejects(prepared) == [(4, None, "020 7946 0958", "invalid phone")]
    assert prepared.stats["unknown_country_rows"] == 1


def test_country_column_absent_reads_international_numbers_and_rejects_unreadable(tmp_path, caplog):
    text = (
        "email,phone,first_name,last_name,plan\n"
        ",+41 79 100 00 00,Anna,Meier,pro\n"  # international: read as it is
        ",+385 91 234 5678,Ivo,Horvat,free\n"
        ",(415) 555-2671,Sam,Lee,free\n"  # national: the default region (US)
        ",091 234 5678,Ana,Kovac,pro\n"  # national but not a US number: rejected with a reason
    )
    with caplog.at_level("INFO", logger="infobip_provider.cohorts.prepare"):
        prepared = _prepare(
            tmp_path, text, columns=IdentityColumns(email="email", country="country"), key="email_or_phone"
        )
    assert prepared.members["phone"].tolist() == ["41791000000", "385912345678", "14155552671"]
    assert _rejects(prepared) == [(4, None, "091 234 5678", "invalid phone")]
    said = [r.getMessage() for r in caplog.records if "no country column" in r.getMessage()]
    assert len(said) == 1
    assert "'country'" in said[0]
    assert "US" in said[0]


def test_header_only_file_is_an_empty_cohort(tmp_path):
    prepared = _prepare(tmp_path, "email,phone,plan\n")
    assert prepared.empty is True
    assert prepared.stats["rows_read"] == 0
    assert list(prepared.members.columns) == ["key", "email", "phone", "external_id", "row", "plan"]
    assert list(prepared.rejects.columns) == ["row", "key", "value", "reason"]


def test_zero_byte_file_is_an_empty_cohort(tmp_path):
    prepared = _prepare(tmp_path, "")
    assert prepared.stats["empty"] is True
    assert prepared.stats["rows_read"] == 0


def test_all_rows_rejected_is_flagged_empty(tmp_path):
    prepared = _prepare(tmp_path, "email\nnope\n")
    assert prepared.stats["empty"] is True
    assert prepared.stats["rejected"] == 1


def test_stats_add_up(tmp_path):
    stats = _prepare(tmp_path, COHORT, key="email_or_phone").stats
    assert stats["rows_read"] == 8
    assert stats["rows_read"] == stats["members"] + stats["rejected"]
    assert stats["rejected"] == stats["invalid"] + stats["duplicates"]
    assert sum(stats["rejected_by_reason"].values()) == stats["rejected"]
    assert stats["columns"] == ["first_name", "plan"]
    assert stats["key"] == "email_or_phone"


def test_unknown_key_and_region_are_refused(tmp_path):
    with pytest.raises(CohortError, match="unknown cohort key 'mobile'"):
        _prepare(tmp_path, COHORT, key="mobile")
    with pytest.raises(CohortError, match="unknown phone region 'XX'"):
        _prepare(tmp_path, COHORT, default_region="XX")


def test_a_plain_path_is_read_as_a_file(tmp_path):
    path = write(tmp_path / "c.csv", "email\nana@example.com\n")
    assert prepare_cohort(str(path)).stats["members"] == 1


# ----------------------------------------------------------------------------------------- reject ratio


def _with_invalid(tmp_path, good: int, bad: int, duplicates: int = 0) -> PreparedCohort:
    lines = ["email"]
    lines += [f"user{i}@example.com" for i in range(good)]
    lines += ["not-an-email"] * bad
    lines += ["user0@example.com"] * duplicates
    return _prepare(tmp_path, "\n".join(lines) + "\n")


def test_reject_ratio_below_threshold_warns_with_counts(tmp_path):
    prepared = _with_invalid(tmp_path, good=96, bad=4)
    log = RecordingLog()
    prepared.check_reject_ratio(0.05, log)
    assert log.messages("warning") == [
        f"Cohort from {prepared.source}: 100 rows read, 96 members, 4 rows not used: 4 invalid email"
    ]


def test_reject_ratio_at_threshold_passes(tmp_path):
    _with_invalid(tmp_path, good=95, bad=5).check_reject_ratio(0.05, RecordingLog())


def test_reject_ratio_above_threshold_fails_the_task(tmp_path):
    prepared = _with_invalid(tmp_path, good=94, bad=6)
    with pytest.raises(
        RejectRatioExceeded,
        match=r"6 of 100 cohort rows \(6\.0%\) were rejected \(invalid email 6\), "
        r"above max_reject_ratio 5\.0%",
    ) as err:
        prepared.check_reject_ratio(0.05, RecordingLog())
    assert isinstance(err.value, AirflowFailException)  # no retries for bad data
    assert isinstance(err.value, CohortError)


def test_no_threshold_never_fails(tmp_path):
    log = RecordingLog()
    _with_invalid(tmp_path, good=1, bad=9).check_reject_ratio(None, log)
    assert "10 rows read, 1 members, 9 rows not used: 9 invalid email" in log.messages("warning")[0]


def test_duplicates_do_not_count_towards_the_ratio(tmp_path):
    prepared = _with_invalid(tmp_path, good=10, bad=0, duplicates=90)
    log = RecordingLog()
    prepared.check_reject_ratio(0.0, log)
    assert log.messages("warning") == []
    assert log.messages("info") == [
        f"Cohort from {prepared.source}: 100 rows read, 10 members, 90 rows not used: "
        "90 repeating an earlier row's email"
    ]


def test_zero_threshold_fails_on_one_invalid_row(tmp_path):
    with pytest.raises(RejectRatioExceeded):
        _with_invalid(tmp_path, good=99, bad=1).check_reject_ratio(0.0, RecordingLog())


def test_empty_cohort_warns(tmp_path):
    log = RecordingLog()
    prepared = _prepare(tmp_path, "email\n")
    prepared.check_reject_ratio(0.1, log)
    assert log.messages("warning") == [
        f"Cohort from {prepared.source}: 0 rows read, 0 members (the cohort is empty)"
    ]


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_threshold_must_be_a_ratio(tmp_path, bad):
    with pytest.raises(CohortError, match="between 0 and 1"):
        _with_invalid(tmp_path, good=1, bad=0).check_reject_ratio(bad, RecordingLog())


# ------------------------------------------------------------------------------------------ rejects file


@pytest.mark.parametrize("as_uri", [False, True], ids=["path", "file-uri"])
def test_write_rejects(tmp_path, as_uri):
    prepared = _prepare(tmp_path, COHORT, key="email_or_phone")
    target = tmp_path / "state" / "run" / "rejects.csv"
    written = prepared.write_rejects(target.as_uri() if as_uri else str(target))
    assert written.endswith("rejects.csv")
    with target.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["reason"] for r in rows] == [r for *_, r in _rejects(prepared)]
    assert rows[0] == {"row": "3", "key": "", "value": "12345", "reason": "invalid phone"}


# --------------------------------------------------------------------------------------- parse-time cost


def test_importing_the_package_loads_neither_pandas_nor_pyarrow():
    code = (
        "import sys; import infobip_provider.cohorts as c; "
        "print(sorted(m for m in ('pandas', 'pyarrow', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT / "plugins"), "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_members_used_with_one_identity_are_counted_and_said(tmp_path):
    """A bad email beside a good phone (matched by the phone) and a bad phone beside a good email
    (sent without it) are not rejects, but the log and the stats say how many there were."""
    path = tmp_path / "partly.csv"
    path.write_text(
        "email,phone\neve@example,+12125550188\nfred@example.com,12345\nann@example.com,+12125550199\n"
        "  ,+12125550100\nbad,\n"
    )
    prepared = prepare_cohort(FileSource(str(path)), IdentityColumns(), key="email_or_phone")
    assert prepared.stats["partly_used"] == {
        "invalid email (matched by the phone)": 1,
        "invalid phone (not sent)": 1,
    }
    assert prepared.describe().endswith(
        "; used with one identity only: 1 invalid email (matched by the phone), 1 invalid phone (not sent)"
    )
    assert len(prepared.rejects) == 1  # "bad" with no phone: not used at all
    clean = tmp_path / "clean.csv"
    clean.write_text("email,phone\nann@example.com,+12125550199\n")
    assert (
        "partly_used"
        not in prepare_cohort(FileSource(str(clean)), IdentityColumns(), key="email_or_phone").stats
    )
