"""The column-wise People build, plan and fold give exactly what the per-person code gave.

Hostile cohorts (padding, Unicode whitespace, quotes and backslashes, control characters, numbers,
NaN, bad dates, genders and languages, over-long values, phones shared between members) are built
by both; then plans against snapshots that earlier runs left, and folds of journals with refused,
acknowledged and unanswered batches. The reference is tests/people_rowwise.py.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infobip_provider.people import (
    Confirmed,
    Snapshot,
    build_people,
    fold_people,
    parse_field_map,
    plan_people,
)
from tests import people_rowwise as rowwise

MAPPING = parse_field_map(
    {"first": "firstName", "dob": "birthDate", "sex": "gender", "lang": "preferredLanguage", "plan": "tier"}
)
EMAILS = [
    "a@x.com",
    "b@x.com",
    "c@x.com",
    "d@x.com",
    " e@x.com ",
    "F@X.COM",
    "\u00e9@x.com",
    'q"@x.com',
    None,
    "",
]
PHONES = ["12025550143", "14155550100", "385911234567", " 12025550143 ", "12025550143\u2003", None, ""]
TEXTS = [
    None,
    "",
    "  Ana ",
    "Ana\u00a0",
    "\u2003Bo",
    "\u00c9mile",
    'say "hi"',
    "back\\slash",
    "tab\tin",
    "line\nbreak",
    "\x1f",
    "\u65e5\u672c",
    "x" * 300,
    float("nan"),
    7,
    1.5,
]
DATES = [None, "2020-01-02", "2020-02-30", "2020-01-02 00:00:00", "2020-01-02T00:00", "bad", " 1999-12-31 "]
GENDERS = [None, "m", "F", "female", "other", " M "]
LANGS = [None, "en_us", "EN", "e", "hr-HR", "pt_br "]
PLANS = [None, "pro", "", "p" * 5000, 5, "\u00a0team\u00a0"]


@st.composite
def cohorts(draw: Any, external: bool = False) -> pd.DataFrame:
    rows = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "email": st.sampled_from(EMAILS),
                    "phone": st.sampled_from(PHONES),
                    "first": st.sampled_from(TEXTS),
                    "dob": st.sampled_from(DATES),
                    "sex": st.sampled_from(GENDERS),
                    "lang": st.sampled_from(LANGS),
                    "plan": st.sampled_from(PLANS),
                    "external_id": st.sampled_from([None, "c-1", " c-2 ", "i" * 300, 42]),
                }
            ),
            max_size=14,
        )
    )
    records, seen = [], set()
    for n, row in enumerate(rows, start=1):
        key = row["email"] if row["email"] and row["email"].strip() else row["phone"]
        if key is not None and key.strip() in seen:  # a prepared cohort has one row per key
            continue
        seen.add(key.strip() if key else key)
        records.append({**row, "key": key, "row": n if n % 5 else None})
        if not external:
            records[-1]["external_id"] = None
    columns = ["key", "email", "phone", "external_id", "row", "first", "dob", "sex", "lang", "plan"]
    return pd.DataFrame(records, columns=columns).astype(object)


def _same_value(a: Any, b: Any) -> bool:
    return (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)) or a == b


def assert_same_build(members: pd.DataFrame) -> tuple[Any, Any]:
    ours, theirs = build_people(members, MAPPING), rowwise.build_people(members, MAPPING)
    assert ours.people == theirs.people
    assert ours.held == theirs.held
    assert len(ours.rejects) == len(theirs.rejects)
    for mine, reference in zip(ours.rejects, theirs.rejects):
        assert mine.keys() == reference.keys()
        assert all(_same_value(mine[k], reference[k]) for k in mine), (mine, reference)
    assert ours.shared_phones == theirs.shared_phones
    assert [p.ref for p in ours.people] == ours.refs(list(range(len(ours))))
    return ours, theirs


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cohorts(external=True))
def test_build_is_the_per_person_build(members: pd.DataFrame) -> None:
    assert_same_build(members)


def _snapshot_after(built: Any, tagged: list[bool], doubt: list[bool]) -> dict[str, Confirmed]:
    """The snapshot a run over ``built`` left: each person tagged, untagged or in doubt as drawn."""
    out = {}
    for person, is_tagged, unsure in zip(built.people, tagged, doubt):
        out[person.key] = Confirmed(
            person.key_type,
            person.fields_hash,
            is_tagged and not unsure,
            person.phone,
            unsure and not is_tagged,
        )
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cohorts(),
    cohorts(),
    st.lists(st.booleans(), min_size=14, max_size=14),
    st.lists(st.booleans(), min_size=14, max_size=14),
)
def test_plan_is_the_per_person_plan(
    before: pd.DataFrame, after: pd.DataFrame, tagged: list[bool], doubt: list[bool]
) -> None:
    old = rowwise.build_people(before, MAPPING)
    snapshot = _snapshot_after(old, tagged, doubt)
    ours_built, theirs_built = assert_same_build(after)
    ours, theirs = plan_people(ours_built, snapshot), rowwise.plan_people(theirs_built, snapshot)
    assert ours.upserts == theirs.upserts
    assert {r: ours.payloads[r] for r in ours.upserts} == theirs.payloads
    assert ours.tag_now == theirs.tag_now
    assert ours.tag_after_upsert == theirs.tag_after_upsert
    assert ours.untags == theirs.untags
    assert sorted(ours.dropped) == sorted(theirs.dropped)
    assert (ours.unchanged, ours.held) == (theirs.unchanged, theirs.held)
    # the same plan from a snapshot read back column-wise
    again = plan_people(ours_built, Snapshot.of(snapshot))
    assert (again.upserts, again.untags, again.tag_now) == (ours.upserts, ours.untags, ours.tag_now)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cohorts(),
    cohorts(),
    st.lists(st.booleans(), min_size=14, max_size=14),
    st.lists(st.sampled_from(["acked", "refused", "unanswered", "not sent"]), min_size=48, max_size=48),
)
def test_fold_is_the_per_person_fold(
    before: pd.DataFrame, after: pd.DataFrame, tagged: list[bool], fates: list[str]
) -> None:
    snapshot = _snapshot_after(rowwise.build_people(before, MAPPING), tagged, [False] * 14)
    plan = rowwise.plan_people(rowwise.build_people(after, MAPPING), snapshot)
    lanes = {
        "upsert": plan.upserts,
        "tag": [*plan.tag_now, *sorted(plan.tag_after_upsert)],
        "untag": plan.untags,
    }
    acked: dict[str, list[tuple[list[str], dict[str, str]]]] = {lane: [] for lane in lanes}
    unanswered: dict[str, list[str]] = {lane: [] for lane in lanes}
    fate = iter(fates * 4)
    for lane, refs in lanes.items():
        for ref in refs:
            what = next(fate)
            if what == "acked":
                acked[lane].append(([ref], {}))
            elif what == "refused":
                acked[lane].append(([ref], {ref: "refused by Infobip: 400"}))
            elif what == "unanswered":
                unanswered[lane].append(ref)
    args = (
        acked["upsert"],
        acked["tag"],
        acked["untag"],
        unanswered["upsert"],
        [*unanswered["tag"], *unanswered["untag"]],
    )
    copy = {
        k: Confirmed(v.key_type, v.fields_hash, v.tagged, v.phone, v.uncertain) for k, v in snapshot.items()
    }
    theirs = rowwise.fold_people(copy, *args)
    ours = fold_people(snapshot, *args)
    assert dict(ours.items()) == theirs
    assert len(ours) == len(theirs)
    assert fold_people(Snapshot.of(snapshot), *args) == theirs  # from a column-wise snapshot as well


def test_fold_edge_cases_match_the_per_person_fold() -> None:
    """Cases a random journal rarely draws: a tag acknowledged while the upsert before it was not
    (the phone on record stays), an upsert unanswered after an acknowledged one, a person untagged and
    then in doubt, refs from an older version without a phone field."""
    from infobip_provider.people import make_ref

    snapshot = {
        "a@x.com": Confirmed("EMAIL", "h1", False, "111"),
        "b@x.com": Confirmed("EMAIL", "h1", True, None),
        "222": Confirmed("PHONE", "h1", True, "222", uncertain=False),
    }
    a_new = make_ref("EMAIL", "a@x.com", "h2", "999")
    b_new = make_ref("EMAIL", "b@x.com", "h3", None)
    cases = [
        ([([a_new], {a_new: "refused"})], [([a_new], {})], [], [], []),
        ([([b_new], {})], [], [], [b_new], []),
        (
            [],
            [],
            [([make_ref("PHONE", "222", "h1", "222")], {})],
            [],
            [make_ref("PHONE", "222", "h1", "222")],
        ),
        ([(["EMAIL\tc@x.com"], {})], [(["EMAIL\tc@x.com\th9"], {})], [], [], ["PHONE\t333"]),
        # one person named twice by one kind of batch: the refs apply one after the other
        (
            [([make_ref("EMAIL", "u@x.com", "h1", "1"), make_ref("PHONE", "u@x.com", "h2", "2")], {})],
            [([make_ref("EMAIL", "n@x.com", "h", "111"), make_ref("PHONE", "n@x.com", "h", "222")], {})],
            [],
            [],
            [make_ref("PHONE", "d@x.com", "", "5"), make_ref("EMAIL", "d@x.com", "", "6")],
        ),
        (
            [],
            [([make_ref("PHONE", "a@x.com", "h", "7"), make_ref("EMAIL", "a@x.com", "h", "8")], {})],
            [],
            [],
            [],
        ),
    ]
    for args in cases:
        copy = {
            k: Confirmed(v.key_type, v.fields_hash, v.tagged, v.phone, v.uncertain)
            for k, v in snapshot.items()
        }
        assert fold_people(snapshot, *args) == rowwise.fold_people(copy, *args), args


def test_a_journal_folded_in_many_chunks_is_folded_the_same(monkeypatch) -> None:
    """Refs are read a block at a time (no Arrow text array near 2 GB); the fold does not depend on it."""
    import functools

    import infobip_provider.people as people
    from infobip_provider.people import make_ref

    snapshot = {f"k{i}@x.com": Confirmed("EMAIL", "h0", i % 2 == 0, None) for i in range(7)}
    ups = [make_ref("EMAIL", f"k{i}@x.com", f"h{i}", str(i)) for i in range(3, 12)]
    tags = [make_ref("EMAIL", f"k{i}@x.com", f"h{i}", str(i)) for i in (*range(5, 12), 5)]
    args = (
        [(ups, {ups[1]: "refused"})],
        [(tags, {})],
        [([make_ref("EMAIL", "k0@x.com", "", None)], {})],
        ups[:2],
        tags[:3],
    )
    whole = fold_people(snapshot, *args)
    monkeypatch.setattr(people, "_refs_table", functools.partial(people._refs_table, block=2))
    assert fold_people(snapshot, *args) == whole
    copy = {
        k: Confirmed(v.key_type, v.fields_hash, v.tagged, v.phone, v.uncertain) for k, v in snapshot.items()
    }
    assert whole == rowwise.fold_people(copy, *args)
