"""The People build, plan and fold as they were written first, one person at a time (Python dicts).

The reference the column-wise implementation in :mod:`infobip_provider.people` is tested against:
same people, payloads, digests, rejects and plans on hostile input (tests/test_people_columnwise.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from infobip_provider.people import (
    Confirmed,
    FieldMapError,
    PeoplePlan,
    Person,
    PersonMapping,
    _text,
    clean_value,
    fields_hash,
    make_ref,
    parse_ref,
)

Snapshot = dict[str, Confirmed]


@dataclass
class RowPeople:
    people: list[Person] = field(default_factory=list)
    held: set[str] = field(default_factory=set)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    shared_phones: int = 0


def _fill_fields(
    payload: dict[str, Any],
    i: int,
    external_id: str | None,
    standard: list[tuple[str, list[Any], str]],
    custom: list[tuple[str, list[Any], str]],
) -> list[tuple[str, Any, str]]:
    """Put row ``i``'s mapped values into ``payload`` (custom ones under ``customAttributes``);
    return the problems ``(where, raw value, what is wrong)`` of the values Infobip would refuse."""
    problems: list[tuple[str, Any, str]] = []
    if external_id is not None:
        value, problem = clean_value("externalId", external_id)
        if problem:
            problems.append(("externalId (external id column)", external_id, problem))
        elif value is not None:
            payload["externalId"] = value
    attributes: dict[str, str] = {}
    for fields, into, label in ((standard, payload, "{}"), (custom, attributes, "customAttributes.{}")):
        for target, values, col in fields:
            value, problem = clean_value(target, values[i])
            if problem:
                problems.append((f"{label.format(target)} (column {col})", values[i], problem))
            elif value is not None:
                into[target] = value
    if attributes:
        payload["customAttributes"] = attributes
    return problems


def build_people(members: pd.DataFrame, mapping: PersonMapping) -> RowPeople:
    """Build and validate one payload per member (columns ``key``, ``email``, ``phone``, ``external_id``,
    ``row`` and the mapped columns, as :func:`infobip_provider.cohorts.prepare_cohort` gives them).

    Infobip matches a person on any of its identifiers, so one phone must not reach Infobip for two
    members: a member without an email whose phone belongs to a member with an email is that same
    person and is rejected; a member with an email whose phone an earlier member already carries is
    sent without the phone (matched by its email alone, counted in ``shared_phones``), else Infobip
    would merge the two people into one.

    :raises FieldMapError: when a mapped column is not in the cohort (the message names those found).
    """
    missing = [c for c in mapping.columns if c not in members.columns]
    if missing:
        found = [c for c in members.columns if c not in ("key", "row")]
        raise FieldMapError(
            f"field_map names columns the cohort does not have: {', '.join(missing)}; found: {', '.join(found)}"
        )
    built = RowPeople()
    n = len(members)

    def column(name: str) -> list[Any]:
        return members[name].tolist() if name in members.columns else [None] * n

    keys, emails, phones = column("key"), column("email"), column("phone")
    external_ids, rows = column("external_id"), column("row")
    standard = [(target, column(col), col) for col, target in mapping.standard]
    custom = [(target, column(col), col) for col, target in mapping.custom]
    email_phones: set[str] = {str(p) for e, p in zip(emails, phones) if _text(e) and _text(p)}
    phone_owner: dict[str, str] = {}
    for i in range(n):
        key = _text(keys[i])
        if key is None:
            continue
        email, phone, row = _text(emails[i]), _text(phones[i]), rows[i]
        row_number = None if _text(row) is None else int(float(row))
        if email is None and phone in email_phones:
            built.rejects.append(
                {
                    "row": row_number,
                    "key": key,
                    "value": phone,
                    "reason": "duplicate person: the phone of a member with an email",
                }
            )
            continue
        if email is not None and phone is not None and phone_owner.setdefault(phone, key) != key:
            phone = None
            built.shared_phones += 1
        contacts = []
        if email is not None:
            contacts.append({"type": "EMAIL", "identifier": email})
        if phone is not None:
            contacts.append({"type": "PHONE", "identifier": phone})
        payload: dict[str, Any] = {"type": mapping.person_type, "contactInformation": contacts}
        problems = _fill_fields(payload, i, _text(external_ids[i]), standard, custom)
        if problems:
            built.held.add(key)
            for where, raw, problem in problems:
                built.rejects.append(
                    {
                        "row": row_number,
                        "key": key,
                        "value": _text(raw),
                        "reason": f"invalid value: {where} {problem}",
                    }
                )
            continue
        key_type = "EMAIL" if email is not None else "PHONE"
        built.people.append(Person(key, key_type, email, phone, payload, fields_hash(payload), row_number))
    return built


def fold_people(
    snapshot: Snapshot,
    upserted: Iterable[tuple[list[str], dict[str, str]]] = (),
    tagged: Iterable[tuple[list[str], dict[str, str]]] = (),
    untagged: Iterable[tuple[list[str], dict[str, str]]] = (),
    unanswered_upserts: Iterable[str] = (),
    unanswered_tags: Iterable[str] = (),
) -> Snapshot:
    """Apply acknowledged batches (``(refs, refused ref → reason)``) to a copy of the snapshot.

    An upserted person gets the payload's hash (a refused one keeps what was confirmed before, or
    stays out when it is new); a tagged person is marked tagged; an untagged one leaves the snapshot.
    Then the refs of unanswered batches: an upserted person's hash is forgotten (upserted again,
    whatever its fields are next time); a tagged or untagged person becomes ``uncertain``.
    """
    out = {
        k: Confirmed(v.key_type, v.fields_hash, v.tagged, v.phone, v.uncertain) for k, v in snapshot.items()
    }
    for refs, refused in upserted:
        for ref in refs:
            if ref in refused:
                continue
            key_type, key, digest, phone = parse_ref(ref)
            before = out.get(key)
            was_tagged, unsure = bool(before and before.tagged), bool(before and before.uncertain)
            out[key] = Confirmed(key_type, digest, was_tagged, phone, unsure)
    for refs, refused in tagged:
        for ref in refs:
            if ref in refused:
                continue
            key_type, key, _, phone = parse_ref(ref)
            before = out.get(key)
            # A tag acknowledged for a person the snapshot lost: keep the tag, re-send the fields next run.
            out[key] = Confirmed(
                key_type, before.fields_hash if before else "", True, before.phone if before else phone
            )
    for refs, refused in untagged:
        for ref in refs:
            if ref not in refused:
                out.pop(parse_ref(ref)[1], None)
    for ref in unanswered_upserts:
        # A person not in the snapshot is upserted next time anyway (and was not tagged meanwhile:
        # a tag-add follows its upsert's acknowledgement).
        before = out.get(parse_ref(ref)[1])
        if before is not None:
            before.fields_hash = ""
    for ref in unanswered_tags:
        key_type, key, _, phone = parse_ref(ref)
        before = out.get(key)
        out[key] = Confirmed(
            before.key_type if before else key_type,
            before.fields_hash if before else "",
            False,
            before.phone if before else phone,
            uncertain=True,
        )
    return out


def plan_people(built: RowPeople, snapshot: Snapshot) -> PeoplePlan:
    """Diff the cohort's payloads against the snapshot (pure; see the module docstring)."""
    plan = PeoplePlan(held=len(built.held))
    identities: set[str] = set()
    for person in built.people:
        identities.add(person.key)
        if person.phone:
            identities.add(person.phone)
        confirmed = snapshot.get(person.key)
        ref = person.ref
        changed = confirmed is None or confirmed.fields_hash != person.fields_hash
        if changed:
            plan.upserts.append(ref)
            plan.payloads[ref] = person.payload
            if not (confirmed and confirmed.tagged):
                plan.tag_after_upsert.add(ref)
        else:
            plan.unchanged += 1
            if confirmed is not None and not confirmed.tagged:
                plan.tag_now.append(ref)
    in_cohort = {p.key for p in built.people} | built.held
    for key, confirmed in snapshot.items():
        if key in in_cohort:
            continue
        same_person = key in identities or (confirmed.phone is not None and confirmed.phone in identities)
        if confirmed.maybe_tagged and not same_person:
            plan.untags.append(make_ref(confirmed.key_type, key, confirmed.fields_hash, confirmed.phone))
        else:
            plan.dropped.append(key)
    plan.untags.sort()
    return plan
