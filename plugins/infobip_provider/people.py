"""People import, the pure part: build Infobip persons from cohort rows, validate them, plan the sync.

Nothing here talks to Infobip or touches files; :mod:`infobip_provider.operators.people` wires it to
the hook, the state store and the checkpoint lanes.

- :func:`parse_field_map` checks the user's ``{column: Infobip field}`` map once, before any row:
  standard Person fields go top-level, every other target becomes a ``customAttributes`` key.
- :func:`build_people` turns each cohort member into the exact v3 upsert payload, validated against
  the contract (lengths, ``gender``, ``birthDate``, ``preferredLanguage``, custom attribute sizes).
  Empty values are left out, so a partial upsert never clears what Infobip already has. A row with
  a bad value is rejected with its reason and *held*: it is neither upserted nor untagged.
- :func:`plan_people` compares the payloads with the tag's snapshot (what Infobip confirmed last):
  upserts for new or changed people (by a hash of the payload), tag additions for members not yet
  tagged, tag removals for tagged people who left.
- :func:`fold_people` applies acknowledged batches (from the checkpoint journal) to the snapshot;
  :func:`fold_recovery` also marks the people of unanswered batches (Infobip may or may not have
  applied them): an unanswered upsert is sent again, an unanswered tag or untag makes the person's
  tag *uncertain*, and an uncertain person is tagged again if in the cohort, untagged if not.

Batch ids travel through the checkpoint journal as *refs*: ``TYPE<tab>key<tab>hash<tab>phone``, so
that a resumed run knows, from the journal alone, which payload Infobip acknowledged.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from infobip_provider.values import read_literal

if TYPE_CHECKING:
    import pandas as pd

    from infobip_provider.checkpoint import Recovery

#: Standard Person fields of the v3 upsert with their length limits (``None``: checked by a rule
#: instead of a length), as the contract states them.
STANDARD_FIELDS: dict[str, int | None] = {
    "firstName": 255,
    "lastName": 255,
    "middleName": 50,
    "nickName": 50,
    "gender": None,
    "birthDate": None,
    "address": 256,
    "city": 50,
    "country": 50,
    "preferredLanguage": None,
    "externalId": 256,
    "profilePicture": 2083,
}
#: Targets a field map may not use: the operator sets them (type, contacts) or Infobip does.
RESERVED_FIELDS = frozenset(
    {"type", "contactInformation", "tags", "customAttributes", "id", "createdAt", "modifiedAt", "origin"}
)
PERSON_TYPES = ("CUSTOMER", "LEAD")
GENDERS = {"MALE": "MALE", "FEMALE": "FEMALE", "M": "MALE", "F": "FEMALE"}
CUSTOM_VALUE_MAX = 4096
TAG_MAX = 256
SNAPSHOT_COLUMNS = {
    "key": "string",
    "key_type": "string",
    "fields_hash": "string",
    "tagged": "bool",
    "phone": "string",
    "uncertain": "bool",
}

_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})(?:[ T]00:00(?::00(?:\.0+)?)?)?")
_LANGUAGE = re.compile(r"([A-Za-z]{2})(?:[-_]([A-Za-z]{2}))?")


class FieldMapError(ValueError):
    """The field map (or the columns it names) cannot work; the message says what to change."""


# ------------------------------------------------------------------------------------------ mapping
@dataclass(frozen=True)
class PersonMapping:
    """Which cohort column fills which Person field.

    :param person_type: ``CUSTOMER`` or ``LEAD``, sent as every person's ``type``.
    :param standard: ``(column, field)`` pairs for top-level Person fields.
    :param custom: ``(column, attribute)`` pairs for ``customAttributes``.
    """

    person_type: str = "CUSTOMER"
    standard: tuple[tuple[str, str], ...] = ()
    custom: tuple[tuple[str, str], ...] = ()

    @property
    def columns(self) -> list[str]:
        return [column for column, _ in (*self.standard, *self.custom)]


def parse_field_map(
    field_map: Mapping[str, Any] | str | None,
    person_type: str | None = "CUSTOMER",
    *,
    external_id: bool = False,
) -> PersonMapping:
    """Check a ``{column: Infobip field}`` map and sort it into standard fields and custom attributes.

    :param field_map: the map, or its text as JSON or as a Python dict literal (a template rendered
        without native objects gives the latter).
    :param person_type: ``CUSTOMER`` or ``LEAD`` (any case); ``None`` or empty: ``CUSTOMER``.
    :param external_id: True when an external id column is also given (then no column may map to
        ``externalId``).
    :raises FieldMapError: for an unknown type, a reserved target, or two columns on one target.
    """
    kind = "CUSTOMER" if person_type is None or person_type == "" else str(person_type).strip().upper()
    if kind not in PERSON_TYPES:
        raise FieldMapError(f"person_type must be CUSTOMER or LEAD, got {person_type!r}")
    if isinstance(field_map, str):
        field_map = _field_map_text(field_map)
    if field_map is None:
        field_map = {}
    if not isinstance(field_map, Mapping):
        raise FieldMapError(
            f"field_map must be an object {{column: Infobip field}}, got {type(field_map).__name__}"
        )
    standard: list[tuple[str, str]] = []
    custom: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    for column, target in field_map.items():
        name = str(target or "").strip()
        if not str(column).strip() or not name:
            raise FieldMapError(f"field_map entries need a column and a target, got {column!r}: {target!r}")
        if name in RESERVED_FIELDS:
            raise FieldMapError(
                f"field_map maps {column!r} to {name!r}, which the operator sets itself "
                f"(reserved: {', '.join(sorted(RESERVED_FIELDS))}); use person_type, email_column or phone_column"
            )
        if name == "externalId" and external_id:
            raise FieldMapError(
                f"field_map maps {column!r} to externalId, but external_id_column already does"
            )
        if name in seen:
            raise FieldMapError(f"field_map maps both {seen[name]!r} and {column!r} to {name!r}")
        seen[name] = str(column)
        (standard if name in STANDARD_FIELDS else custom).append((str(column), name))
    return PersonMapping(kind, tuple(standard), tuple(custom))


#: Column names (case, spaces and punctuation ignored) read as a standard Person field when the user
#: gives no field map; the field's own name works too (``firstName``, ``first_name``, ``First Name``).
FIELD_ALIASES = {
    "givenname": "firstName",
    "surname": "lastName",
    "familyname": "lastName",
    "dateofbirth": "birthDate",
    "dob": "birthDate",
    "language": "preferredLanguage",
    "lang": "preferredLanguage",
    "customerid": "externalId",
}


def _folded(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def automatic_field_map(columns: Iterable[str], *, external_id: bool = False) -> dict[str, str]:
    """The field map used when the user gives none: each cohort column named like a standard Person
    field (or one of :data:`FIELD_ALIASES`) fills that field, the first such column per field. Other
    columns are not sent: a custom attribute must be named in a field map (Infobip needs it defined)."""
    by_name = {_folded(f): f for f in STANDARD_FIELDS} | FIELD_ALIASES
    chosen: dict[str, str] = {}
    taken = {"externalId"} if external_id else set()
    for column in columns:
        target = by_name.get(_folded(column))
        if target is None or target in taken or target == "country":  # country reads phone numbers
            continue
        taken.add(target)
        chosen[column] = target
    return chosen


def _field_map_text(text: str) -> Any:
    """The object a field map's text stands for: JSON, else a Python literal (``str()`` of a dict)."""
    text = text.strip()
    if not text:
        return {}
    try:
        return read_literal(text)
    except ValueError:
        raise FieldMapError(
            f"field_map must be an object {{column: Infobip field}} (JSON or a Python dict), got {text[:200]!r}"
        ) from None


def _text(value: Any) -> str | None:
    """The trimmed text of a cell; ``None`` for a missing or empty one (NaN, None, "")."""
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    text = str(value).strip()
    return text or None


def clean_value(target: str, raw: Any) -> tuple[str | None, str | None]:
    """``(value to send, problem)`` for one cell mapped to ``target``; ``(None, None)`` when empty.

    Values are normalised where the meaning is unambiguous: gender in any case or ``M``/``F``,
    a date with a midnight time part, ``en_us`` as ``en-US``.
    """
    text = _text(raw)
    if text is None:
        return None, None
    if target == "gender":
        gender = GENDERS.get(text.upper())
        return (gender, None) if gender else (None, "must be MALE or FEMALE")
    if target == "birthDate":
        found = _DATE.fullmatch(text)
        try:
            if found is None:
                raise ValueError(text)
            date.fromisoformat(found.group(1))
        except ValueError:
            return None, "must be a date YYYY-MM-DD"
        return found.group(1), None
    if target == "preferredLanguage":
        found = _LANGUAGE.fullmatch(text)
        if found is None:
            return None, "must look like xx or xx-YY"
        language, region = found.group(1).lower(), found.group(2)
        return (f"{language}-{region.upper()}" if region else language), None
    limit = STANDARD_FIELDS.get(target, CUSTOM_VALUE_MAX)
    if limit is not None and len(text) > limit:
        return None, f"longer than {limit} characters ({len(text)})"
    return text, None


def fields_hash(payload: Mapping[str, Any]) -> str:
    """A short stable digest of a person payload (keys sorted): equal payloads, equal hashes."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


# ------------------------------------------------------------------------------------------- people
@dataclass(frozen=True)
class Person:
    """One cohort member as Infobip will receive it.

    :param key: the identity the tag follows: the email, or the phone when there is no email.
    :param key_type: ``EMAIL`` or ``PHONE`` (the identifier type of tag calls).
    :param payload: the exact v3 upsert item.
    :param fields_hash: :func:`fields_hash` of ``payload``.
    """

    key: str
    key_type: str
    email: str | None
    phone: str | None
    payload: dict[str, Any]
    fields_hash: str
    row: int | None = None

    @property
    def ref(self) -> str:
        return make_ref(self.key_type, self.key, self.fields_hash, self.phone)


@dataclass
class BuiltPeople:
    """What :func:`build_people` made of a cohort.

    :param people: the valid members, in cohort order.
    :param held: keys of members rejected for a bad value: not upserted, and not untagged either.
    :param rejects: one dict per rejected row (``row``, ``key``, ``value``, ``reason``).
    :param shared_phones: members sent without their phone because an earlier member has it.
    """

    people: list[Person] = field(default_factory=list)
    held: set[str] = field(default_factory=set)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    shared_phones: int = 0

    @property
    def rejected_rows(self) -> int:
        """Rows rejected here (a row with several bad values counts once)."""
        return len({(r["row"], r["key"]) for r in self.rejects})


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


def build_people(members: pd.DataFrame, mapping: PersonMapping) -> BuiltPeople:
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
    built = BuiltPeople()
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


# --------------------------------------------------------------------------------------------- refs
def make_ref(key_type: str, key: str, digest: str | None, phone: str | None) -> str:
    """A journal id that carries what folding an acknowledgement needs."""
    return "\t".join((key_type, key, digest or "", phone or ""))


def parse_ref(ref: str) -> tuple[str, str, str, str | None]:
    """``(key_type, key, fields_hash, phone)`` of a :func:`make_ref` id."""
    key_type, key, digest, phone = [*ref.split("\t"), "", "", ""][:4]
    return key_type, key, digest, phone or None


def tag_query(ref: str) -> tuple[str, str]:
    """The ``(type, identifier)`` a tag call sends for a ref."""
    key_type, key, _, _ = parse_ref(ref)
    return key_type, key


# ------------------------------------------------------------------------------------------ snapshot
@dataclass
class Confirmed:
    """What Infobip confirmed about one person of the tag's cohort.

    :param fields_hash: the hash of the payload Infobip acknowledged; ``""`` when unknown (upserted again).
    :param tagged: Infobip acknowledged the tag.
    :param uncertain: a tag or untag batch for this person went unanswered: Infobip may or may not
        carry the tag (``tagged`` is then False), so it is tagged or untagged again.
    """

    key_type: str
    fields_hash: str
    tagged: bool
    phone: str | None = None
    uncertain: bool = False

    @property
    def maybe_tagged(self) -> bool:
        """The person may carry the tag in Infobip (a leaver in this state is untagged)."""
        return self.tagged or self.uncertain


Snapshot = dict[str, Confirmed]


def snapshot_from_frame(frame: pd.DataFrame) -> Snapshot:
    if frame.empty:
        return {}
    phones = frame["phone"].tolist() if "phone" in frame.columns else [None] * len(frame)
    # Snapshots written before the column existed hold no uncertain person.
    doubts = frame["uncertain"].tolist() if "uncertain" in frame.columns else [False] * len(frame)
    return {
        str(k): Confirmed(str(t), _text(h) or "", bool(tagged), _text(p), bool(u))
        for k, t, h, tagged, p, u in zip(
            frame["key"].tolist(),
            frame["key_type"].tolist(),
            frame["fields_hash"].tolist(),
            frame["tagged"].tolist(),
            phones,
            doubts,
        )
    }


def snapshot_to_frame(snapshot: Snapshot) -> pd.DataFrame:
    import pandas as pd

    keys = list(snapshot)
    rows = list(snapshot.values())
    return pd.DataFrame(
        {
            "key": pd.Series(keys, dtype="string"),
            "key_type": pd.Series([r.key_type for r in rows], dtype="string"),
            "fields_hash": pd.Series([r.fields_hash for r in rows], dtype="string"),
            "tagged": pd.Series([r.tagged for r in rows], dtype="bool"),
            "phone": pd.Series([r.phone for r in rows], dtype="string"),
            "uncertain": pd.Series([r.uncertain for r in rows], dtype="bool"),
        }
    )


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


def fold_recovery(snapshot: Snapshot, recovery: Recovery) -> Snapshot:
    """Fold everything an interrupted or finished import's journal says into (a copy of) the snapshot.

    Acknowledged batches are applied (:func:`fold_people`); refs of batches sent without an answer
    are sent again next time: upserts whatever the fields, tag additions and removals as an
    ``uncertain`` tag (tagged when in the cohort, untagged when not; both are safe to repeat).
    """
    return fold_people(
        snapshot,
        recovery.acked.get("upsert", []),
        recovery.acked.get("tag", []),
        recovery.acked.get("untag", []),
        unanswered_upserts=recovery.unacked.get("upsert", []),
        unanswered_tags=[*recovery.unacked.get("tag", []), *recovery.unacked.get("untag", [])],
    )


def without_tags(snapshot: Snapshot) -> Snapshot:
    """The snapshot with nobody tagged (after the tag was found deleted in Infobip): no doubt left."""
    return {k: Confirmed(v.key_type, v.fields_hash, False, v.phone) for k, v in snapshot.items()}


# --------------------------------------------------------------------------------------------- plan
@dataclass
class PeoplePlan:
    """What a run sends.

    :param upserts: refs of people to upsert (new, or whose payload hash changed), cohort order.
    :param payloads: ref → v3 payload, for ``upserts``.
    :param tag_now: refs to tag that need no upsert first (unchanged people not tagged yet).
    :param tag_after_upsert: refs (of ``upserts``) to tag once their upsert is acknowledged.
    :param untags: refs of people who left the cohort and may carry the tag (tagged or uncertain).
    :param unchanged: members whose payload is as confirmed (not upserted; some may still get the tag).
    :param dropped: snapshot keys forgotten without a call (left while untagged, or the same person
        now in the cohort under another identity).
    """

    upserts: list[str] = field(default_factory=list)
    payloads: dict[str, dict[str, Any]] = field(default_factory=dict)
    tag_now: list[str] = field(default_factory=list)
    tag_after_upsert: set[str] = field(default_factory=set)
    untags: list[str] = field(default_factory=list)
    unchanged: int = 0
    held: int = 0
    dropped: list[str] = field(default_factory=list)

    @property
    def tag_adds(self) -> int:
        return len(self.tag_now) + len(self.tag_after_upsert)

    def calls(self, batch_size: int) -> dict[str, int]:
        """Requests per endpoint this plan needs (upper bound: refusals may cancel some tag adds)."""
        return {
            "people.upsert": math.ceil(len(self.upserts) / batch_size),
            "tags.add": math.ceil(self.tag_adds / batch_size),
            "tags.remove": math.ceil(len(self.untags) / batch_size),
        }


def plan_people(built: BuiltPeople, snapshot: Snapshot) -> PeoplePlan:
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


def confirmed_tagged(snapshot: Snapshot) -> int:
    """People who may carry the tag (the removal guard's base): tagged or uncertain."""
    return sum(1 for v in snapshot.values() if v.maybe_tagged)


def default_tag_name(dag_id: str | None, task_id: str | None) -> str:
    """The tag of an operator given none: ``<dag_id>.<task_id>``, shortened (with a digest) to 256."""
    name = ".".join(part for part in (dag_id, task_id) if part) or "airflow-people-import"
    if len(name) <= TAG_MAX:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return name[: TAG_MAX - 9] + "-" + digest
