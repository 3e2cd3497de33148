"""File cohorts: every format and encoding, object storage URIs, relative paths, chunks, bad input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from infobip_provider.cohorts import CohortError, FileSource, IdentityColumns, cohort_source, prepare_cohort
from infobip_provider.cohorts.sources import include_dir, sniff_delimiter
from tests.cohorts.conftest import write

ROWS = [
    {"email": "Ana@Example.com", "phone": "+385 91 234 5678", "first_name": "Ana", "plan": "pro"},
    {"email": "ivan@example.com", "phone": "(415) 555-2671", "first_name": "Ivan", "plan": "free"},
    {"email": "broken@", "phone": "+44 7400 123456", "first_name": "Lee", "plan": "basic"},
]
EXPECTED_KEYS = ["ana@example.com", "ivan@example.com", "447400123456"]


def _csv(rows: list[dict[str, str]], delimiter: str = ",") -> str:
    header = delimiter.join(rows[0])
    return "\n".join([header, *(delimiter.join(r.values()) for r in rows)]) + "\n"


def _read_all(source: FileSource, chunk_size: int = 100_000) -> pd.DataFrame:
    return pd.concat(list(source.iter_chunks(chunk_size)), ignore_index=True)


def _keys(path: str | Path, **kwargs) -> list[str]:
    prepared = prepare_cohort(FileSource(path, **kwargs), key="email_or_phone")
    return prepared.members["key"].tolist()


@pytest.mark.parametrize(
    ("name", "delimiter"),
    [
        pytest.param("c.csv", ",", id="comma"),
        pytest.param("c.csv", ";", id="semicolon"),
        pytest.param("c.csv", "\t", id="tab-in-csv"),
        pytest.param("c.tsv", "\t", id="tsv"),
        pytest.param("c.txt", "|", id="pipe-txt"),
    ],
)
def test_csv_delimiters_are_sniffed(tmp_path, name, delimiter):
    path = write(tmp_path / name, _csv(ROWS, delimiter))
    frame = _read_all(FileSource(path))
    assert list(frame.columns) == ["email", "phone", "first_name", "plan"]
    assert frame["first_name"].tolist() == ["Ana", "Ivan", "Lee"]
    assert _keys(path) == EXPECTED_KEYS


def test_explicit_delimiter_wins_over_sniffing(tmp_path):
    path = write(tmp_path / "c.csv", "email;phone\na@example.com;1\n")
    frame = _read_all(FileSource(path, delimiter=","))
    assert frame.to_dict("records") == [{"email;phone": "a@example.com;1"}]


def test_rows_with_more_fields_than_the_header_are_an_error_not_lost_data(tmp_path):
    path = write(tmp_path / "c.csv", "email;phone\na@example.com;1,2\n")
    with pytest.raises(CohortError, match="a row has more fields than the header"):
        list(FileSource(path, delimiter=",").iter_chunks())


def test_utf8_with_bom_and_without(tmp_path):
    text = "email,first_name\nana@example.com,Željka\n"
    with_bom = write(tmp_path / "bom.csv", "\ufeff" + text)
    without = write(tmp_path / "plain.csv", text)
    for path in (with_bom, without):
        frame = _read_all(FileSource(path))
        assert list(frame.columns) == ["email", "first_name"]  # no BOM glued to the first header
        assert frame["first_name"].tolist() == ["Željka"]


def test_utf16_with_bom_is_recognised(tmp_path):
    path = write(tmp_path / "excel.csv", "email\tfirst_name\nana@example.com\tŽeljka\n", encoding="utf-16")
    frame = _read_all(FileSource(path))
    assert frame.to_dict("records") == [{"email": "ana@example.com", "first_name": "Željka"}]


def test_other_encodings_when_told(tmp_path):
    path = write(tmp_path / "latin.csv", "email,city\nana@example.com,Málaga\n", encoding="cp1252")
    assert _read_all(FileSource(path, encoding="cp1252"))["city"].tolist() == ["Málaga"]


def test_quoted_fields_keep_delimiters_quotes_and_newlines(tmp_path):
    text = (
        "email;name;note\n"
        '"ana@example.com";"Horvat; Ana";"said ""hi"", then left"\n'
        'ivan@example.com;"Ivić, Ivan";"two\nlines"\n'
    )
    path = write(tmp_path / "quoted.csv", text)
    frame = _read_all(FileSource(path))
    assert frame["name"].tolist() == ["Horvat; Ana", "Ivić, Ivan"]
    assert frame["note"].tolist() == ['said "hi", then left', "two\nlines"]


def test_missing_cells_are_missing_and_text_stays_text(tmp_path):
    path = write(tmp_path / "c.csv", "email,phone,zip,flag\nana@example.com,,01234,NA\n")
    frame = _read_all(FileSource(path))
    row = frame.iloc[0]
    assert pd.isna(row["phone"])
    assert row["zip"] == "01234"  # leading zero kept: nothing is parsed as a number
    assert row["flag"] == "NA"  # only empty cells are missing


def test_header_names_are_trimmed(tmp_path):
    path = write(tmp_path / "c.csv", " email , phone \na@example.com,+14155552671\n")
    assert list(_read_all(FileSource(path)).columns) == ["email", "phone"]


def test_gzip_csv(tmp_path):
    path = tmp_path / "c.csv.gz"
    path.write_bytes(gzip.compress(_csv(ROWS).encode()))
    assert _keys(path) == EXPECTED_KEYS


def test_parquet_with_typed_columns(tmp_path):
    table = pa.table(
        {
            "email": ["ana@example.com", None, "lee@example.com"],
            "phone": pa.array([385912345678, 14155552671, None], type=pa.int64()),
            "score": [1.5, 2.0, None],
            "active": [True, False, None],
            "joined": pa.array([pd.Timestamp("2026-01-02"), None, pd.Timestamp("2026-03-04 05:06:07")]),
        }
    )
    path = tmp_path / "c.parquet"
    pq.write_table(table, path)
    frame = _read_all(FileSource(path))
    assert frame["phone"].tolist()[:2] == ["385912345678", "14155552671"]
    assert frame["score"].tolist()[:2] == ["1.5", "2"]
    assert frame["active"].tolist()[:2] == ["true", "false"]
    assert frame["joined"].tolist()[0].startswith("2026-01-02")
    assert frame.isna().sum().to_dict() == {"email": 1, "phone": 1, "score": 1, "active": 1, "joined": 1}
    # a phone stored as an integer is an international number without '+': read with its country
    prepared = prepare_cohort(
        FileSource(path), IdentityColumns(phone="phone"), key="phone", default_region="HR"
    )
    assert prepared.members["phone"].tolist() == ["385912345678"]


def test_parquet_in_row_groups_is_read_in_chunks(tmp_path):
    frame = pd.DataFrame({"email": [f"user{i}@example.com" for i in range(2500)]})
    path = tmp_path / "big.parquet"
    frame.to_parquet(path, row_group_size=700)
    chunks = list(FileSource(path).iter_chunks(1000))
    assert [len(c) for c in chunks] == [1000, 1000, 500]


def test_jsonl_with_nested_and_typed_values(tmp_path):
    lines = [
        {"email": "ana@example.com", "phone": "+385912345678", "age": 31, "tags": ["vip", "hr"]},
        {"email": "ivan@example.com", "phone": 14155552671, "vip": True},
        {},
    ]
    path = write(tmp_path / "c.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n\n")
    frame = _read_all(FileSource(path))
    assert list(frame.columns) == ["email", "phone", "age", "tags", "vip"]
    assert frame["phone"].tolist()[:2] == ["+385912345678", "14155552671"]
    assert frame["tags"].tolist()[0] == '["vip", "hr"]'
    assert frame["vip"].tolist()[1] == "true"
    assert len(frame) == 3


def test_ndjson_suffix_and_explicit_format(tmp_path):
    body = json.dumps({"email": "ana@example.com"}) + "\n"
    assert _read_all(FileSource(write(tmp_path / "c.ndjson", body)))["email"].tolist() == ["ana@example.com"]
    assert _read_all(FileSource(write(tmp_path / "c.data", body), format="jsonl"))["email"].tolist() == [
        "ana@example.com"
    ]


def test_file_uri_through_object_storage(tmp_path):
    path = write(tmp_path / "store" / "c.csv", _csv(ROWS))
    source = cohort_source(path=path.as_uri())
    assert path.as_uri().startswith("file:///")
    assert _keys(path.as_uri()) == EXPECTED_KEYS
    assert source.describe() == f"file {path.as_uri()}"


def test_file_uri_parquet_through_object_storage(tmp_path):
    path = tmp_path / "c.parquet"
    pd.DataFrame(ROWS).to_parquet(path)
    assert _keys(path.as_uri()) == EXPECTED_KEYS


def test_relative_paths_resolve_against_the_include_folder(include):
    write(include / "cohorts" / "mine.csv", _csv(ROWS))
    assert include_dir() == include
    assert _keys("cohorts/mine.csv") == EXPECTED_KEYS


def test_the_committed_sample_cohort_reads_from_the_default_include_folder(monkeypatch):
    monkeypatch.delenv("INFOBIP_INCLUDE_DIR", raising=False)
    prepared = prepare_cohort(cohort_source(path="cohorts/customers.csv"), key="email_or_phone")
    assert prepared.stats["rows_read"] == 2000
    assert prepared.stats["members"] > 1800
    assert {"first_name", "last_name", "country", "plan"} <= set(prepared.members.columns)


def test_large_file_is_read_in_chunks_and_deduplicated_across_them(tmp_path):
    lines = ["email,phone,n"]
    for i in range(2500):
        lines.append(f"user{i % 2000}@example.com,,{i}")  # rows 2001-2500 repeat rows 1-500
    path = write(tmp_path / "big.csv", "\n".join(lines) + "\n")
    chunks = list(FileSource(path).iter_chunks(1000))
    assert [len(c) for c in chunks] == [1000, 1000, 500]
    prepared = prepare_cohort(FileSource(path), chunk_size=1000)
    assert prepared.stats["chunks"] == 3
    assert prepared.stats["rows_read"] == 2500
    assert prepared.stats["members"] == 2000
    assert prepared.stats["duplicates"] == 500
    first_dup = prepared.rejects.iloc[0]
    assert (first_dup["row"], first_dup["reason"], first_dup["key"]) == (
        2001,
        "duplicate of row 1",
        "user0@example.com",
    )
    assert prepared.members["n"].tolist()[:3] == ["0", "1", "2"]  # the first row wins


def test_sniff_delimiter_prefers_the_consistent_split():
    assert sniff_delimiter("a;b;c\n1;2,5;3\n4;5;6\n") == ";"
    assert sniff_delimiter("a,b\n1,2\n") == ","
    assert sniff_delimiter("just_one_column\nx\n") == ","


# ------------------------------------------------------------------------------------------- bad input


def test_missing_file_names_the_path(include):
    with pytest.raises(CohortError, match=r"cohort file not found: .*include/cohorts/nope\.csv"):
        list(FileSource("cohorts/nope.csv").iter_chunks())


def test_missing_uri_names_it(tmp_path):
    uri = (tmp_path / "nope.parquet").as_uri()
    with pytest.raises(CohortError, match=f"cohort file not found: {uri}"):
        list(FileSource(uri).iter_chunks())


def test_a_directory_is_not_a_cohort_file(tmp_path):
    (tmp_path / "d.csv").mkdir()
    with pytest.raises(CohortError, match="cohort file not found"):
        list(FileSource(tmp_path / "d.csv").iter_chunks())


def test_unreadable_encoding_says_which_and_what_to_do(tmp_path):
    path = write(tmp_path / "c.csv", "email,city\nana@example.com,Málaga\n", encoding="cp1252")
    with pytest.raises(CohortError, match=r"not readable as utf-8-sig text .*encoding="):
        list(FileSource(path).iter_chunks())


def test_encoding_error_past_the_sniffed_sample_is_reported_too(tmp_path):
    body = "email,city\n" + "ana@example.com,Zagreb\n" * 5000 + "ivan@example.com,Málaga\n"
    path = write(tmp_path / "c.csv", body, encoding="cp1252")
    with pytest.raises(CohortError, match="not readable as utf-8-sig"):
        list(FileSource(path).iter_chunks(1000))


def test_unknown_suffix_asks_for_a_format(tmp_path):
    path = write(tmp_path / "c.xlsx", b"PK\x03\x04")
    with pytest.raises(CohortError, match=r"suffix \.xlsx: pass format= one of csv, tsv, parquet, jsonl"):
        list(FileSource(path).iter_chunks())


def test_unknown_format_is_refused():
    with pytest.raises(CohortError, match="unknown cohort format 'xml'"):
        FileSource("c.xml", format="xml")


def test_malformed_csv_names_the_line(tmp_path):
    path = write(tmp_path / "c.csv", "email,phone\na@example.com,1\nb@example.com,2,3\n")
    with pytest.raises(CohortError, match=r"cannot parse cohort file .*c\.csv as CSV: .*line 3"):
        list(FileSource(path).iter_chunks())


def test_not_parquet(tmp_path):
    path = write(tmp_path / "c.parquet", _csv(ROWS))
    with pytest.raises(CohortError, match=r"cannot read cohort file .*c\.parquet as Parquet"):
        list(FileSource(path).iter_chunks())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param('{"email": "a@example.com"}\n{"email": \n', "line 2: Expecting value", id="bad-json"),
        pytest.param(
            '{"email": "a@example.com"}\n["x"]\n', "line 2 is a list, not an object", id="not-object"
        ),
    ],
)
def test_malformed_jsonl_names_the_line(tmp_path, body, message):
    path = write(tmp_path / "c.jsonl", body)
    with pytest.raises(CohortError, match=message):
        list(FileSource(path).iter_chunks())


def test_empty_path_is_refused():
    with pytest.raises(CohortError, match="path is empty"):
        FileSource("  ")


def test_cohort_source_needs_exactly_one_of_path_or_sql():
    with pytest.raises(CohortError, match="exactly one of path="):
        cohort_source()
    with pytest.raises(CohortError, match="exactly one of path="):
        cohort_source(path="a.csv", sql="SELECT 1")
