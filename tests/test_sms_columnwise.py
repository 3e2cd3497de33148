"""The SMS plan worked out column-wise and once per distinct value gives what the row-by-row plan gave:
the same texts, recipients, message ids (kept in ledgers: they must never change), segment plan,
request count, frequency-cap counts and quiet-hours zones, on hostile input (unicode, missing values, numbers that are
equal but show differently, blank texts, invalid numbers)."""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infobip_provider.engines.broadcast import _rows_of, message_id, message_ids
from infobip_provider.operators.sms import SmsBroadcastOperator, render_texts
from infobip_provider.respect.frequency import LedgerView, recent_counts
from infobip_provider.respect.quiet_hours import ZoneResolver
from infobip_provider.sms import (
    MessageTemplate,
    Recipient,
    SegmentPlan,
    count_batches,
    count_segments,
    plan_batches,
)
from tests.operators.test_sms_operator import FakeInfobip, FakeTI, make

HOSTILE_TEXTS = [
    "Ana",
    "ana",
    "Ana ",
    "",
    " ",
    "\t\n",
    "Zoë",
    "Ştefan",
    "李雷",
    "😀",
    "a\x00",
    "\x00",
    "{{plan}}",
    "€[]^",
    "x" * 200,
    "ü" * 80,
    "nan",
    "None",
]
#: Cells a cohort column may hold: texts, missing values, and numbers that are equal but show
#: differently (1, 1.0, True; 0.0 and -0.0) or show as text (pd.NA).
CELLS = st.one_of(
    st.sampled_from(HOSTILE_TEXTS),
    st.text(max_size=12),
    st.sampled_from([None, math.nan, 1, 1.0, True, 0.0, -0.0, 0, False, pd.NA, 2.5]),
)
AT = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
TEMPLATES = [
    "Hi {{a}}, your {{b}} plan",
    "{{a}}",
    "{{a}}{{b}}{{a}}",
    "static text",
    "  {{b}}  ",
    "{{a}}-{{b}}:{{c}}€",
]


def reference_message_id(bulk_id: str, address: Any) -> str:
    """The message id as ledgers have always held it (the engine's formula, written out)."""
    return hashlib.sha256(f"{bulk_id}\x1f{address}".encode()).hexdigest()[:32]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    template=st.sampled_from(TEMPLATES),
    rows=st.lists(st.tuples(CELLS, CELLS, CELLS), max_size=40),
    as_frame=st.booleans(),
)
def test_render_texts_equals_rendering_row_by_row(template, rows, as_frame):
    parsed = MessageTemplate.parse(template)
    columns: dict[str, Any] = {name: [r[i] for r in rows] for i, name in enumerate("abc")}
    if as_frame:  # object columns of a frame, as the operator passes them
        frame = pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in columns.items()})
        columns = {k: frame[k].to_numpy(dtype=object) for k in columns}
    got = render_texts(parsed, columns, len(rows))
    assert got == parsed.render_columns({k: list(v) for k, v in columns.items()}, len(rows))
    assert got == [parsed.render(dict(zip("abc", r))) for r in rows]
    assert all(type(t) is str for t in got)


@settings(max_examples=150, deadline=None)
@given(
    template=st.sampled_from(TEMPLATES),
    rows=st.lists(
        st.tuples(*[st.one_of(st.none(), st.sampled_from(HOSTILE_TEXTS), st.text(max_size=8))] * 3),
        max_size=40,
    ),
    kind=st.sampled_from(["string", "large_string", "chunked"]),
)
def test_render_texts_from_arrow_columns_equals_rendering_row_by_row(template, rows, kind):
    """The members' Arrow columns (as ``PreparedCohort.arrow_columns`` gives them) render as their cells."""
    parsed = MessageTemplate.parse(template)
    cells = {name: [r[i] for r in rows] for i, name in enumerate("abc")}
    if kind == "chunked":
        half = len(rows) // 2
        columns: dict[str, Any] = {
            k: pa.chunked_array([v[:half], v[half:]], type=pa.string()) for k, v in cells.items()
        }
    else:
        columns = {k: pa.array(v, type=getattr(pa, kind)()) for k, v in cells.items()}
    got = render_texts(parsed, columns, len(rows))
    assert got == [parsed.render(dict(zip("abc", r))) for r in rows]


@settings(max_examples=100, deadline=None)
@given(
    addresses=st.lists(
        st.one_of(st.none(), st.sampled_from(["41790000001", "41790000002", "Zoë@x", ""])), max_size=30
    ),
    wanted=st.sets(st.sampled_from(["41790000001", "41790000002", "Zoë@x", "", "other"])),
    kind=st.sampled_from(["list", "arrow", "chunked"]),
)
def test_rows_of_the_skipped_equal_the_members_rows(addresses, wanted, kind):
    rows = np.arange(2, len(addresses) + 2, dtype=np.int64)
    expected = {a: r for a, r in zip(addresses, rows.tolist()) if a in wanted}
    given_addresses: Any = addresses
    if kind == "arrow":
        given_addresses = pa.array(addresses, type=pa.string())
    elif kind == "chunked":
        given_addresses = pa.chunked_array([addresses[:3], addresses[3:]], type=pa.large_string())
    assert _rows_of(given_addresses, rows if kind != "list" else rows.tolist(), set(wanted)) == expected


def test_rows_with_the_same_values_share_one_text():
    parsed = MessageTemplate.parse("Hi {{a}}, {{b}}")
    a = ["Ana", "Bo", None, "Ana"] * 1000
    b = ["pro", "free", "pro", "pro"] * 1000
    texts = render_texts(parsed, {"a": a, "b": b}, len(a))
    assert texts[:4] == ["Hi Ana, pro", "Hi Bo, free", "Hi , pro", "Hi Ana, pro"]
    assert len({id(t) for t in texts}) == 3


@settings(max_examples=100, deadline=None)
@given(bulk=st.text(max_size=30), addresses=st.lists(st.text(max_size=20), max_size=20))
def test_message_ids_are_the_ledgers_ids(bulk, addresses):
    expected = [reference_message_id(bulk, a) for a in addresses]
    assert message_ids(bulk, addresses) == [message_id(bulk, a) for a in addresses] == expected


def test_message_ids_never_change():
    # ids written in ledgers by earlier versions: a change here would resend a whole broadcast
    assert message_id("bulk-1", "41793026727") == reference_message_id("bulk-1", "41793026727")
    assert message_ids("bulk-1", ["41793026727"]) == [
        hashlib.sha256(b"bulk-1\x1f41793026727").hexdigest()[:32]
    ]


def reference_plan(
    recipients: list[Recipient], max_segments: int | None
) -> tuple[SegmentPlan, dict[str, int]]:
    """The segment plan row by row, as it was counted before."""
    plan = SegmentPlan()
    per_id = {}
    for r in recipients:
        count = count_segments(r.text)
        plan.add(count, max_segments)
        per_id[r.message_id] = count.segments
    return plan, per_id


SMS_TEXTS = st.one_of(
    st.sampled_from(["Hi", "Hi Ana", "Ćao", "€" * 90, "x" * 161, "x" * 320, "😀" * 40, "ş" * 71, "a\fb"]),
    st.text(max_size=400),
)


@settings(max_examples=150, deadline=None)
@given(texts=st.lists(SMS_TEXTS, max_size=30), max_segments=st.one_of(st.none(), st.integers(1, 4)))
def test_segment_plan_per_distinct_text_equals_the_plan_row_by_row(texts, max_segments):
    recipients = [Recipient(f"id{i}", f"4179{i:07d}", t) for i, t in enumerate(texts)]
    plan, per_text = SmsBroadcastOperator._segment_plan(recipients, max_segments, None)  # type: ignore[arg-type]
    expected, per_id = reference_plan(recipients, max_segments)
    assert plan == expected
    assert plan.as_dict(0.05, currency="EUR") == expected.as_dict(0.05, currency="EUR")
    assert plan.lines(0.05) == expected.lines(0.05)
    assert {r.message_id: per_text[r.text] for r in recipients} == per_id


@given(n=st.integers(0, 5000), size=st.integers(1, 1000), distinct=st.integers(1, 50))
@settings(max_examples=100, deadline=None)
def test_count_batches_equals_the_batches_planned(n, size, distinct):
    recipients = [Recipient(str(i), str(i), f"text {i % distinct}") for i in range(n)]
    assert count_batches(n, size) == len(plan_batches(recipients, size))


@pytest.mark.parametrize("size", [0, 1001])
def test_count_batches_checks_the_size_like_plan_batches(size):
    with pytest.raises(Exception, match="batch_size must be between 1 and 1000"):
        count_batches(10, size)


def test_recipients_skip_blank_texts_and_keep_order_and_ids(tmp_path):
    op = make(FakeInfobip(str(tmp_path / "state")), str(tmp_path / "unused.csv"))
    phones = [f"4179{i:07d}" for i in range(8)]
    texts = ["Hi", " ", "Zoë", "", "\t", "Hi", "😀", "Hi"]
    got, empty = op._recipients("bulk", phones, texts)
    expected = [Recipient(message_id("bulk", p), p, t) for p, t in zip(phones, texts) if t.strip()]
    assert (got, empty) == (expected, 3)


@pytest.mark.parametrize("members_first", [False, True], ids=["arrow-columns", "members-frame-built"])
def test_the_cohort_plan_equals_the_row_by_row_plan(tmp_path, members_first):
    """Hostile cohort rows (unicode, missing fields, invalid and duplicate numbers, blank texts): the
    recipients, their texts and ids are those of rendering each member's row."""
    cohort = tmp_path / "cohort.csv"
    rows = [
        ("+41793000001", "Zoë", "pro"),
        ("+41793000002", "", "free"),
        ("not a number", "Ana", "pro"),
        ("+41793000003", "李雷", ""),
        ("+41793000001", "Dup", "pro"),  # a duplicate number
        ("+41793000004", "", ""),  # renders blank
        ("+41793000005", '😀 "quoted, name"', "pro"),
        ("", "NoPhone", "pro"),
        ("+41793000006", "nan", "None"),
        ("+41793000007", "  ", " "),  # renders blank
        ("+41793000008", "Ştefan", "team"),
    ]
    with cohort.open("w", encoding="utf-8") as fh:
        fh.write("phone,first_name,plan\n")
        for phone, name, plan in rows:
            name = '"' + name.replace('"', '""') + '"' if ("," in name or '"' in name) else name
            fh.write(f"{phone},{name},{plan}\n")
    op = make(FakeInfobip(str(tmp_path / "state")), str(cohort), text="{{first_name}}{{plan}}")
    context = {"run_id": "manual__1", "ti": FakeTI(-1), "params": {}}
    template = MessageTemplate.parse(op.text)
    prepared = op._read_cohort(context, template)
    if members_first:  # a flow built the members frame before: its columns give the same
        assert len(prepared.members) == 8
    phones, texts = op._messages(prepared, template, [])
    recipients, empty = op._recipients("bulk", phones, texts)

    members = prepared.members
    expected = []
    blank = 0
    for record in members.to_dict("records"):
        text = template.render(record)
        if not text.strip():
            blank += 1
            continue
        expected.append(Recipient(reference_message_id("bulk", record["phone"]), record["phone"], text))
    assert recipients == expected and empty == blank == 2
    assert [r.text for r in recipients][:4] == ["Zoëpro", "free", "李雷", '😀 "quoted, name"pro']
    assert len(recipients) == 6
    plan, _ = op._segment_plan(recipients, None, None)  # type: ignore[arg-type]
    assert plan == reference_plan(recipients, None)[0]


def test_frequency_counts_equal_the_row_by_row_counts():
    addresses = [f"4179{i:07d}" for i in range(50)] + ["ana@x.example", "Zoë@x.example"]
    ledgers = []
    for b in range(4):
        bulk = f"bulk-{b}"
        sent = [reference_message_id(bulk, a) for a in addresses[b::3]]
        records = [
            {"state": "intent", "batch": "k1", "t": 100.0, "ids": sent},
            {"state": "ack", "batch": "k1"},
        ]
        ledgers.append(LedgerView(bulk, "sms", False, records))
    counts, broadcasts = recent_counts(ledgers, addresses, channel="sms", since=0.0, exclude_bulk="bulk-3")
    expected: Counter[str] = Counter()
    for ledger in ledgers[:3]:
        accepted = set(ledger.records[0]["ids"])
        for a in addresses:
            if reference_message_id(ledger.bulk_id, a) in accepted:
                expected[a] += 1
    assert broadcasts == 3 and counts == expected and sum(counts.values()) > 0


def reference_zones(
    default: str, at: datetime, phones: list[Any], column: list[Any] | None
) -> tuple[list[str], Counter[str]]:
    """Each member's zone worked out row by row: the column's zone, else the number's longest prefix
    key in ``phonenumbers``' time-zone data, else the default."""
    from phonenumbers.tzdata import TIMEZONE_DATA

    from infobip_provider.respect.quiet_hours import load_zone

    lookup = ZoneResolver(default, at)._lookup_key
    counts: Counter[str] = Counter()
    out = []
    for i, phone in enumerate(phones):
        value = None if column is None else column[i]
        zone = None
        if not (value is None or (isinstance(value, float) and value != value) or not str(value).strip()):
            if load_zone(str(value)) is not None:
                zone = str(value).strip()
            else:
                counts["invalid_timezone"] += 1
        if zone is not None:
            counts["column"] += 1
            out.append(zone)
            continue
        number = str(phone or "").lstrip("+")
        key = None
        if number and number.isdigit():
            key = next(
                (number[:n] for n in range(9, 0, -1) if number[:n] in TIMEZONE_DATA and len(number[:n]) == n),
                None,
            )
        if key is not None:
            zone, ambiguous = lookup(key, number)
            counts["ambiguous"] += ambiguous
        if zone is not None:
            counts["phone"] += 1
        else:
            zone = default
            counts["default"] += 1
        out.append(zone)
    return out, +counts


PHONES = st.one_of(
    st.builds(
        lambda prefix, rest: prefix + rest,
        st.sampled_from(
            [
                "1415",
                "1212",
                "1800",
                "44791",
                "7916",
                "91981",
                "977981",
                "41793",
                "385",
                "+1907",
                "++4479",
                "999",
                "",
            ]
        ),
        st.text(alphabet="0123456789", max_size=9),
    ),
    st.sampled_from([None, 0, 14155550134, "abc", "١٢٣٤", "1٢٣٤٥", "  ", "+"]),
)


@settings(max_examples=150, deadline=None)
@given(
    phones=st.lists(PHONES, max_size=30),
    zones=st.one_of(
        st.none(),
        st.lists(
            st.sampled_from([None, "", " ", "Asia/Tokyo", "Not/AZone", math.nan, "UTC"]),
            min_size=30,
            max_size=30,
        ),
    ),
)
def test_zones_equal_the_zones_worked_out_row_by_row(phones, zones):
    column = None if zones is None else zones[: len(phones)]
    resolver = ZoneResolver("Europe/Berlin", AT)
    got = resolver.zones(phones, column, len(phones))
    assert (got, resolver.counts) == reference_zones("Europe/Berlin", AT, phones, column)
