"""The sandbox's keyset fast path answers exactly what its general filter-and-sort path answers."""

from __future__ import annotations

import random

import pytest

from infobip_provider.outcomes import PeopleCursor, people_filter
from infobip_provider.sandbox.api_people import _ordered
from infobip_provider.sandbox.people_filter import compile_filter
from infobip_provider.sandbox.people_keyset import keyset_page, keyset_start


def people(n: int = 400) -> list[dict]:
    rng = random.Random(5)
    stamps = [f"2026-11-30T10:00:{s:02d}" for s in range(8)]  # many ties per second
    return [
        {
            "id": i,
            "modifiedAt": rng.choice(stamps),
            "tags": rng.sample(["vip", "news", "b2b"], rng.randint(0, 2)),
        }
        for i in rng.sample(range(1, 5 * n), n)
    ]


def general(persons: list[dict], spec: dict, limit: int) -> list[dict]:
    predicate = compile_filter(spec)
    return _ordered([p for p in persons if predicate(p)], "modifiedAt:asc,id:asc")[:limit]


@pytest.mark.parametrize(
    "tags",
    [
        pytest.param([], id="everyone"),
        pytest.param(["vip"], id="one tag"),
        pytest.param(["vip", "b2b"], id="two tags"),
    ],
)
def test_every_keyset_page_equals_the_general_answer(tags):
    persons = people()
    cursors: list[PeopleCursor] = []
    for p in random.Random(1).sample(persons, 40):
        cursors += [PeopleCursor(p["modifiedAt"], p["id"]), PeopleCursor(p["modifiedAt"], None)]
    for cursor in cursors:
        spec = people_filter(tags, cursor)
        start = keyset_start(spec)
        assert start == (cursor.modified_at, cursor.person_id)
        for limit in (1, 7, 1000):
            assert keyset_page(persons, start, compile_filter(spec), limit) == general(persons, spec, limit)


def test_a_whole_export_pages_through_everyone_once():
    persons = people()
    cursor, seen = None, []
    while True:
        spec = people_filter([], cursor)
        if spec is None:
            page = _ordered(list(persons), "modifiedAt:asc,id:asc")[:50]
        else:
            page = keyset_page(persons, keyset_start(spec), compile_filter(spec), 50)
        seen += [p["id"] for p in page]
        if len(page) < 50:
            break
        cursor = PeopleCursor(page[-1]["modifiedAt"], page[-1]["id"])
    assert sorted(seen) == sorted(p["id"] for p in persons) and len(seen) == len(set(seen))


@pytest.mark.parametrize(
    "spec",
    [
        {"#gt": {"modifiedAt": "2026-11-30T10:00:00"}},
        {"#contains": {"tags": "vip"}},
        {"#or": [{"#gt": {"modifiedAt": "x"}}, {"#and": [{"#eq": {"modifiedAt": "y"}}, {"#gt": {"id": 3}}]}]},
        {
            "#or": [
                {"#gt": {"modifiedAt": "x"}},
                {"#and": [{"#eq": {"modifiedAt": "x"}}, {"#gt": {"id": "3"}}]},
            ]
        },
    ],
)
def test_other_filters_take_the_general_path(spec):
    assert keyset_start(spec) is None
