"""People import, the pure part: field map, value rules, payloads, plan and fold (no calls, no files)."""

from __future__ import annotations

import pandas as pd
import pytest

from infobip_provider.checkpoint import Recovery
from infobip_provider.people import (
    CUSTOM_VALUE_MAX,
    TAG_MAX,
    BuiltPeople,
    Confirmed,
    FieldMapError,
    PersonMapping,
    build_people,
    clean_value,
    confirmed_tagged,
    default_tag_name,
    fields_hash,
    fold_people,
    fold_recovery,
    make_ref,
    parse_field_map,
    parse_ref,
    plan_people,
    snapshot_from_frame,
    snapshot_to_frame,
    tag_query,
    without_tags,
)

MAPPING = parse_field_map(
    {"first": "firstName", "dob": "birthDate", "sex": "gender", "lang": "preferredLanguage", "plan": "plan"}
)


def members(*rows: dict) -> pd.DataFrame:
    """Members as prepare_cohort hands them: identities, then every other column as text or None."""
    base = {"key": None, "email": None, "phone": None, "external_id": None, "row": 0}
    extras = {"first": None, "dob": None, "sex": None, "lang": None, "plan": None}
    records = []
    for n, row in enumerate(rows, start=1):
        record = {**base, **extras, "row": n, **row}
        record["key"] = record["email"] or record["phone"]
        records.append(record)
    return (
        pd.DataFrame(records, columns=[*base, *extras]) if records else pd.DataFrame(columns=[*base, *extras])
    )


def built_of(*rows: dict, mapping: PersonMapping = MAPPING) -> BuiltPeople:
    return build_people(members(*rows), mapping)


def confirmed(built: BuiltPeople, tagged: bool = True) -> dict[str, Confirmed]:
    """The snapshot a complete run over ``built`` leaves behind."""
    refs = [p.ref for p in built.people]
    return fold_people({}, [(refs, {})], [(refs, {})] if tagged else [])


# ------------------------------------------------------------------------------------------- field map
def test_field_map_splits_standard_fields_from_custom_attributes():
    mapping = parse_field_map({"fn": "firstName", "c": "country", "ltv": "lifetimeValue"}, "lead")
    assert mapping.person_type == "LEAD"
    assert mapping.standard == (("fn", "firstName"), ("c", "country"))
    assert mapping.custom == (("ltv", "lifetimeValue"),)
    assert mapping.columns == ["fn", "c", "ltv"]


def test_field_map_accepts_its_json_text_and_nothing():
    assert parse_field_map('{"fn": "firstName"}').standard == (("fn", "firstName"),)
    assert parse_field_map("").standard == () and parse_field_map(None).custom == ()


def test_field_map_accepts_the_python_text_of_a_dict_rendered_without_native_objects():
    text = str({"fn": "firstName", "ltv": "lifetimeValue"})  # what Jinja gives for a dict param
    mapping = parse_field_map(text)
    assert mapping.standard == (("fn", "firstName"),) and mapping.custom == (("ltv", "lifetimeValue"),)


def test_person_type_is_read_as_text_and_only_none_or_empty_means_the_default():
    assert parse_field_map({}, None).person_type == parse_field_map({}, "").person_type == "CUSTOMER"
    with pytest.raises(FieldMapError, match="CUSTOMER or LEAD"):
        parse_field_map({}, 0)  # type: ignore[arg-type]  # a native render of "0"


@pytest.mark.parametrize(
    ("field_map", "person_type", "external_id", "message"),
    [
        pytest.param({"a": "tags"}, "CUSTOMER", False, "reserved", id="reserved-tags"),
        pytest.param({"a": "contactInformation"}, "CUSTOMER", False, "reserved", id="reserved-contacts"),
        pytest.param(
            {"a": "firstName", "b": "firstName"}, "CUSTOMER", False, "both", id="two-columns-one-field"
        ),
        pytest.param({"a": "externalId"}, "CUSTOMER", True, "external_id_column", id="external-id-twice"),
        pytest.param({"a": ""}, "CUSTOMER", False, "target", id="empty-target"),
        pytest.param({}, "PARTNER", False, "CUSTOMER or LEAD", id="bad-type"),
        pytest.param("[1, 2]", "CUSTOMER", False, "object", id="not-an-object"),
        pytest.param("{not json", "CUSTOMER", False, "object", id="bad-json"),
        pytest.param("{'a': f()}", "CUSTOMER", False, "object", id="python-code-not-a-literal"),
        pytest.param("('a', 'b')", "CUSTOMER", False, "object", id="python-literal-not-a-dict"),
    ],
)
def test_field_map_refuses_what_cannot_work(field_map, person_type, external_id, message):
    with pytest.raises(FieldMapError, match=message):
        parse_field_map(field_map, person_type, external_id=external_id)


# ---------------------------------------------------------------------------------------------- values
@pytest.mark.parametrize(
    ("target", "raw", "value", "problem"),
    [
        pytest.param("gender", "female", "FEMALE", None, id="gender-any-case"),
        pytest.param("gender", "M", "MALE", None, id="gender-initial"),
        pytest.param("gender", "other", None, "MALE or FEMALE", id="gender-unknown"),
        pytest.param("birthDate", "1990-05-01", "1990-05-01", None, id="date"),
        pytest.param("birthDate", "1990-05-01 00:00:00", "1990-05-01", None, id="date-at-midnight"),
        pytest.param("birthDate", "1990-02-30", None, "YYYY-MM-DD", id="date-impossible"),
        pytest.param("birthDate", "01/05/1990", None, "YYYY-MM-DD", id="date-other-format"),
        pytest.param("birthDate", "1990-05-01 13:00:00", None, "YYYY-MM-DD", id="date-with-a-time"),
        pytest.param("preferredLanguage", "en_us", "en-US", None, id="language-region"),
        pytest.param("preferredLanguage", "HR", "hr", None, id="language"),
        pytest.param("preferredLanguage", "english", None, "xx or xx-YY", id="language-word"),
        pytest.param("middleName", "x" * 50, "x" * 50, None, id="middle-name-at-limit"),
        pytest.param("middleName", "x" * 51, None, "longer than 50", id="middle-name-too-long"),
        pytest.param("country", "y" * 51, None, "longer than 50", id="country-too-long"),
        pytest.param("firstName", "  Ana  ", "Ana", None, id="trimmed"),
        pytest.param("score", "z" * CUSTOM_VALUE_MAX, "z" * CUSTOM_VALUE_MAX, None, id="custom-at-limit"),
        pytest.param("score", "z" * (CUSTOM_VALUE_MAX + 1), None, "longer than 4096", id="custom-too-long"),
        pytest.param("firstName", "   ", None, None, id="blank-is-empty"),
        pytest.param("firstName", None, None, None, id="none-is-empty"),
        pytest.param("firstName", float("nan"), None, None, id="nan-is-empty"),
        pytest.param("firstName", "Nan", "Nan", None, id="the-name-nan-is-a-name"),
    ],
)
def test_values_are_checked_against_the_contract(target, raw, value, problem):
    got_value, got_problem = clean_value(target, raw)
    assert got_value == value
    if problem is None:
        assert got_problem is None
    else:
        assert got_problem is not None and problem in got_problem


# -------------------------------------------------------------------------------------------- payloads
def test_payload_has_standard_fields_top_level_custom_ones_nested_and_omits_empty_values():
    built = built_of(
        {
            "email": "ana@x.com",
            "phone": "385911234567",
            "external_id": "C-1",
            "first": "Ana",
            "dob": "1990-05-01",
            "sex": "f",
            "lang": None,
            "plan": "pro",
        }
    )
    (person,) = built.people
    assert person.key == "ana@x.com" and person.key_type == "EMAIL"
    assert person.payload == {
        "type": "CUSTOMER",
        "contactInformation": [
            {"type": "EMAIL", "identifier": "ana@x.com"},
            {"type": "PHONE", "identifier": "385911234567"},
        ],
        "externalId": "C-1",
        "firstName": "Ana",
        "birthDate": "1990-05-01",
        "gender": "FEMALE",
        "customAttributes": {"plan": "pro"},
    }
    assert "preferredLanguage" not in person.payload  # empty: not sent, so never cleared


def test_member_without_email_is_matched_and_tagged_by_phone():
    (person,) = built_of({"phone": "12025550143", "first": "Bo"}).people
    assert (person.key, person.key_type) == ("12025550143", "PHONE")
    assert person.payload["contactInformation"] == [{"type": "PHONE", "identifier": "12025550143"}]
    assert "customAttributes" not in person.payload
    assert tag_query(person.ref) == ("PHONE", "12025550143")


def test_a_bad_value_rejects_the_row_with_its_reason_and_holds_the_member():
    built = built_of(
        {"email": "a@x.com", "dob": "31.12.1990", "sex": "robot"},
        {"email": "b@x.com", "first": "Bea"},
    )
    assert [p.key for p in built.people] == ["b@x.com"]
    assert built.held == {"a@x.com"}
    reasons = sorted(r["reason"] for r in built.rejects)
    assert reasons[0].startswith("invalid value: birthDate (column dob)")
    assert reasons[1].startswith("invalid value: gender (column sex)")
    assert {r["row"] for r in built.rejects} == {1} and built.rejected_rows == 1


def test_phone_only_member_who_is_the_same_person_as_an_email_member_is_rejected():
    built = built_of({"email": "a@x.com", "phone": "12025550143"}, {"phone": "12025550143", "first": "Dup"})
    assert [p.key for p in built.people] == ["a@x.com"]
    assert built.rejects[0]["reason"].startswith("duplicate person") and built.rejects[0]["row"] == 2


def test_a_phone_shared_by_two_members_with_emails_goes_to_the_first_only():
    built = built_of(
        {"email": "a@x.com", "phone": "12025550143"},
        {"email": "b@x.com", "phone": "12025550143"},
        {"email": "c@x.com", "phone": "14155550100"},
    )
    contacts = {p.key: p.payload["contactInformation"] for p in built.people}
    assert contacts["a@x.com"][1] == {"type": "PHONE", "identifier": "12025550143"}
    assert contacts["b@x.com"] == [{"type": "EMAIL", "identifier": "b@x.com"}]  # else Infobip merges a and b
    assert len(contacts["c@x.com"]) == 2 and built.shared_phones == 1 and not built.rejects
    assert built.people[1].phone is None


def test_a_mapped_column_missing_from_the_cohort_is_named():
    mapping = parse_field_map({"surname": "lastName"})
    with pytest.raises(FieldMapError, match=r"surname.*found: email"):
        build_people(members({"email": "a@x.com"}), mapping)


def test_the_hash_follows_the_payload_and_nothing_else():
    a = built_of({"email": "a@x.com", "first": "Ana", "plan": "pro"}).people[0]
    same = build_people(
        members({"email": "a@x.com", "first": "Ana", "plan": "pro"}),
        parse_field_map({"plan": "plan", "lang": "preferredLanguage", "first": "firstName"}),
    ).people[0]
    changed = built_of({"email": "a@x.com", "first": "Ana", "plan": "basic"}).people[0]
    lead = build_people(
        members({"email": "a@x.com", "first": "Ana", "plan": "pro"}),
        parse_field_map({"first": "firstName", "plan": "plan"}, "LEAD"),
    ).people[0]
    assert a.fields_hash == same.fields_hash == fields_hash(a.payload)
    assert len({a.fields_hash, changed.fields_hash, lead.fields_hash}) == 3


# ------------------------------------------------------------------------------------------------ plan
def test_first_run_upserts_everyone_and_tags_each_after_its_upsert():
    built = built_of({"email": "a@x.com"}, {"phone": "12025550143"})
    plan = plan_people(built, {})
    assert plan.upserts == [p.ref for p in built.people]
    assert plan.tag_after_upsert == set(plan.upserts) and plan.tag_now == []
    assert plan.untags == [] and plan.unchanged == 0 and plan.tag_adds == 2
    assert plan.payloads[plan.upserts[0]] == built.people[0].payload
    assert plan.calls(1) == {"people.upsert": 2, "tags.add": 2, "tags.remove": 0}


def test_rerun_without_change_sends_nothing():
    built = built_of({"email": "a@x.com", "first": "Ana"}, {"phone": "12025550143"})
    plan = plan_people(built, confirmed(built))
    assert (plan.upserts, plan.tag_now, plan.tag_after_upsert, plan.untags) == ([], [], set(), [])
    assert plan.unchanged == 2 and plan.calls(1000) == {"people.upsert": 0, "tags.add": 0, "tags.remove": 0}


def test_changed_fields_upsert_exactly_those_people_and_do_not_tag_again():
    before = built_of({"email": "a@x.com", "first": "Ana"}, {"email": "b@x.com", "first": "Bea"})
    after = built_of({"email": "a@x.com", "first": "Ana"}, {"email": "b@x.com", "first": "Beatrice"})
    plan = plan_people(after, confirmed(before))
    assert [parse_ref(r)[1] for r in plan.upserts] == ["b@x.com"]
    assert plan.tag_adds == 0 and plan.unchanged == 1


def test_leavers_are_untagged_entrants_tagged_and_held_members_left_alone():
    before = built_of({"email": "a@x.com"}, {"email": "b@x.com"}, {"email": "c@x.com"})
    after = built_of({"email": "a@x.com"}, {"email": "c@x.com", "dob": "bad"}, {"email": "d@x.com"})
    plan = plan_people(after, confirmed(before))
    assert [parse_ref(r)[1] for r in plan.untags] == ["b@x.com"]  # c is held: bad value, still a member
    assert [parse_ref(r)[1] for r in plan.upserts] == ["d@x.com"] and plan.held == 1
    assert tag_query(plan.untags[0]) == ("EMAIL", "b@x.com")


def test_upserted_but_untagged_people_get_their_tag_without_a_new_upsert():
    built = built_of({"email": "a@x.com"})
    plan = plan_people(built, confirmed(built, tagged=False))
    assert plan.upserts == [] and plan.tag_now == [built.people[0].ref] and plan.unchanged == 1


def test_untagged_leavers_are_forgotten_without_a_call():
    before = built_of({"email": "a@x.com"}, {"email": "b@x.com"})
    plan = plan_people(built_of({"email": "a@x.com"}), confirmed(before, tagged=False))
    assert plan.untags == [] and plan.dropped == ["b@x.com"]


def test_a_leaver_who_is_now_a_member_under_another_identity_keeps_the_tag():
    # Known by phone only before; now the same phone comes with an email: one Infobip person.
    before = built_of({"phone": "12025550143"}, {"email": "old@x.com", "phone": "14155550100"})
    after = built_of({"email": "new@x.com", "phone": "12025550143"}, {"phone": "14155550100"})
    plan = plan_people(after, confirmed(before))
    assert plan.untags == []
    assert sorted(plan.dropped) == ["12025550143", "old@x.com"]


def test_removals_are_counted_against_the_tagged_people():
    before = built_of({"email": "a@x.com"}, {"email": "b@x.com"})
    snap = confirmed(before)
    snap["c@x.com"] = Confirmed("EMAIL", "h", False)
    assert confirmed_tagged(snap) == 2 and confirmed_tagged(without_tags(snap)) == 0


# ------------------------------------------------------------------------------------------------ fold
def test_fold_applies_acknowledged_batches():
    new, known, leaver = (
        make_ref("EMAIL", k, "h2", None) for k in ("new@x.com", "known@x.com", "left@x.com")
    )
    refused_new = make_ref("PHONE", "12025550143", "h3", "12025550143")
    snapshot = {
        "known@x.com": Confirmed("EMAIL", "h1", True),
        "left@x.com": Confirmed("EMAIL", "h1", True),
    }
    out = fold_people(
        snapshot,
        upserted=[([new, known, refused_new], {refused_new: "refused by Infobip: 400106"})],
        tagged=[([new], {})],
        untagged=[([leaver], {})],
    )
    assert out == {
        "new@x.com": Confirmed("EMAIL", "h2", True, None),
        "known@x.com": Confirmed("EMAIL", "h2", True, None),  # new hash, still tagged
    }
    assert snapshot["left@x.com"].tagged  # the input is not modified


def test_a_refused_update_keeps_what_infobip_confirmed_before():
    ref = make_ref("EMAIL", "a@x.com", "new", None)
    out = fold_people({"a@x.com": Confirmed("EMAIL", "old", True)}, upserted=[([ref], {ref: "refused"})])
    assert out["a@x.com"] == Confirmed("EMAIL", "old", True)


def test_a_tag_ack_for_a_person_the_snapshot_lost_keeps_the_tag_and_forces_an_upsert():
    ref = make_ref("PHONE", "12025550143", "h", "12025550143")
    out = fold_people({}, tagged=[([ref], {})])
    assert out == {"12025550143": Confirmed("PHONE", "", True, "12025550143")}


# ------------------------------------------------------------------------------- unanswered batches
def _recovery(**unacked: list[str]) -> Recovery:
    return Recovery(unacked={lane: ids for lane, ids in unacked.items() if ids})


def test_an_unanswered_tag_batch_makes_its_people_uncertain_and_they_are_tagged_again():
    built = built_of({"email": "a@x.com"}, {"email": "b@x.com"})
    refs = [p.ref for p in built.people]
    # Upserts acknowledged, the tag-add batch sent without an answer: Infobip may have tagged them.
    snap = fold_recovery({}, Recovery(acked={"upsert": [(refs, {})]}, unacked={"tag": refs}))
    assert all(c.uncertain and not c.tagged for c in snap.values())
    plan = plan_people(built, snap)
    assert plan.upserts == [] and plan.tag_now == refs and plan.untags == []


def test_an_unanswered_tag_batch_for_a_member_who_then_left_is_untagged():
    built = built_of({"email": "a@x.com"}, {"email": "b@x.com"})
    refs = [p.ref for p in built.people]
    snap = fold_recovery({}, Recovery(acked={"upsert": [(refs, {})]}, unacked={"tag": refs[1:]}))
    plan = plan_people(built_of({"email": "a@x.com"}), snap)
    assert [parse_ref(r)[1] for r in plan.untags] == ["b@x.com"] and plan.dropped == []
    assert confirmed_tagged(snap) == 1  # b may carry the tag: the removal guard counts it


def test_an_unanswered_untag_batch_is_repaired_whichever_way_the_cohort_went():
    before = built_of({"email": "a@x.com"}, {"email": "b@x.com"})
    first = plan_people(built_of({"email": "a@x.com"}), confirmed(before))
    snap = fold_recovery(confirmed(before), _recovery(untag=first.untags))
    assert snap["b@x.com"].uncertain
    back = plan_people(before, snap)  # b came back: Infobip may have removed its tag
    assert [parse_ref(r)[1] for r in back.tag_now] == ["b@x.com"] and back.upserts == []
    still_gone = plan_people(built_of({"email": "a@x.com"}), snap)
    assert [parse_ref(r)[1] for r in still_gone.untags] == ["b@x.com"]


def test_an_unanswered_upsert_is_sent_again_even_when_the_fields_went_back():
    old = built_of({"email": "a@x.com", "first": "Ana"}, {"email": "n@x.com", "first": "New"})
    new = built_of({"email": "a@x.com", "first": "Changed"}, {"email": "n@x.com", "first": "New"})
    snap = confirmed(built_of({"email": "a@x.com", "first": "Ana"}))
    sent = plan_people(new, snap).upserts
    folded = fold_recovery(snap, _recovery(upsert=sent))
    assert folded["a@x.com"].tagged and not folded["a@x.com"].uncertain  # the tag is not in doubt
    plan = plan_people(old, folded)  # Infobip may hold "Changed" although the cohort says "Ana" again
    assert [parse_ref(r)[1] for r in plan.upserts] == ["a@x.com", "n@x.com"] and plan.unchanged == 0
    assert [parse_ref(r)[1] for r in plan.tag_after_upsert] == ["n@x.com"]


def test_an_acknowledgement_settles_an_uncertain_person_and_a_deleted_tag_clears_doubt():
    ref = make_ref("EMAIL", "a@x.com", "h", None)
    uncertain = fold_recovery({}, _recovery(tag=[ref]))
    assert fold_people(uncertain, tagged=[([ref], {})])["a@x.com"] == Confirmed("EMAIL", "", True)
    assert fold_people(uncertain, untagged=[([ref], {})]) == {}
    assert confirmed_tagged(without_tags(uncertain)) == 0


def test_refs_round_trip_and_snapshot_frames_round_trip():
    assert parse_ref(make_ref("PHONE", "123", "abc", "123")) == ("PHONE", "123", "abc", "123")
    assert parse_ref(make_ref("EMAIL", "a@x.com", "abc", None)) == ("EMAIL", "a@x.com", "abc", None)
    snapshot = {
        "a@x.com": Confirmed("EMAIL", "h1", True, "385911234567"),
        "123": Confirmed("PHONE", "h2", False),
        "u@x.com": Confirmed("EMAIL", "h3", False, None, uncertain=True),
    }
    frame = snapshot_to_frame(snapshot)
    assert list(frame.columns) == ["key", "key_type", "fields_hash", "tagged", "phone", "uncertain"]
    assert snapshot_from_frame(frame) == snapshot
    older = snapshot_from_frame(frame.drop(columns=["uncertain"]))  # written before the column existed
    assert not any(c.uncertain for c in older.values()) and older["a@x.com"] == snapshot["a@x.com"]
    assert snapshot_from_frame(snapshot_to_frame({})) == {}


# ------------------------------------------------------------------------------------------------- tag
def test_default_tag_name_comes_from_dag_and_task_and_fits_infobip():
    assert default_tag_name("infobip_people_import", "import_people") == "infobip_people_import.import_people"
    long_a, long_b = default_tag_name("d" * 300, "a"), default_tag_name("d" * 300, "b")
    assert len(long_a) == TAG_MAX and long_a != long_b
    assert default_tag_name(None, None)
