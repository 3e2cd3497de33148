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

All of it works on columns (Arrow arrays), so that a run over millions of people holds no Python
object per person: values are checked once per distinct value of their column, payloads are
assembled as canonical JSON text by string kernels (their digest is the hash of that text), the
snapshot is an Arrow table found by 64-bit hash lookups, and refs are made only for the people a
run sends something for. ``tests/people_rowwise.py`` keeps the per-person version the columns are
tested against.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from infobip_provider.values import read_literal

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

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


class BuiltPeople:
    """What :func:`build_people` made of a cohort, column-wise: one position per valid member.

    :ivar keys: the members' keys (Arrow text), cohort order; :attr:`key_hashes`, their 64-bit hashes
        when the cohort had them.
    :ivar emails: the members' emails (null for members known by their phone only).
    :ivar phones: the phones sent (null when none, or when an earlier member has it).
    :ivar digests: each member's :func:`fields_hash`.
    :ivar held: keys of members rejected for a bad value: not upserted, and not untagged either.
    :ivar rejects: one dict per rejected row (``row``, ``key``, ``value``, ``reason``).
    :ivar shared_phones: members sent without their phone because an earlier member has it.

    The payloads themselves are not kept: each mapped column stays dictionary-encoded (its distinct
    values once, a small integer per member), and a payload's text is assembled again, a block of
    members at a time, for the members a run upserts (:meth:`texts_at`).
    """

    def __init__(
        self,
        columns: dict[str, pa.Array],
        rows: np.ndarray,
        fields: _Fields,
        *,
        key_hashes: np.ndarray | None = None,
        held: set[str] | None = None,
        rejects: list[dict[str, Any]] | None = None,
        shared_phones: int = 0,
    ) -> None:
        self.keys: pa.Array = columns["key"]
        self.emails: pa.Array = columns["email"]
        self.phones: pa.Array = columns["phone"]
        self.digests: pa.Array = columns["digest"]
        self.rows = rows  # 1-based data rows, -1 where unknown
        self.fields = fields
        self.key_hashes = key_hashes
        self.held = held if held is not None else set()
        self.rejects = rejects if rejects is not None else []
        self.shared_phones = shared_phones

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def rejected_rows(self) -> int:
        """Rows rejected here (a row with several bad values counts once)."""
        return len({(r["row"], r["key"]) for r in self.rejects})

    def refs(self, index: np.ndarray) -> list[str]:
        """The journal refs (:func:`make_ref`) of the members at ``index``, in that order."""
        import pyarrow as pa

        at = pa.array(index, type=pa.int64())
        keys, emails, phones, digests = (
            a.take(at).to_pylist() for a in (self.keys, self.emails, self.phones, self.digests)
        )
        return [
            make_ref("PHONE" if e is None else "EMAIL", k, d, p)
            for k, e, p, d in zip(keys, emails, phones, digests)
        ]

    def texts_at(self, index: np.ndarray) -> pa.Array:
        """The canonical JSON payloads of the members at ``index`` (the text :func:`fields_hash` digests)."""
        import pyarrow as pa

        at = pa.array(index, type=pa.int64())
        return self.fields.texts(self.emails.take(at), self.phones.take(at), at)

    def payload(self, index: int) -> dict[str, Any]:
        """The v3 upsert item of the member at ``index``."""
        import numpy as np

        return json.loads(self.texts_at(np.asarray([index]))[0].as_py())  # type: ignore[no-any-return]

    @property
    def people(self) -> list[Person]:
        """Every member as a :class:`Person` (a Python object each: for small cohorts and tests)."""
        import numpy as np

        keys, emails, phones = self.keys.to_pylist(), self.emails.to_pylist(), self.phones.to_pylist()
        digests, texts = self.digests.to_pylist(), self.texts_at(np.arange(len(self))).to_pylist()
        return [
            Person(
                keys[i],
                "PHONE" if emails[i] is None else "EMAIL",
                emails[i],
                phones[i],
                json.loads(texts[i]),
                digests[i],
                None if self.rows[i] < 0 else int(self.rows[i]),
            )
            for i in range(len(self))
        ]


@dataclass
class _Fields:
    """How the members' payload texts are assembled: the person type, and each mapped field's values
    as JSON, dictionary-encoded, one position per member (top-level fields, then custom attributes)."""

    person_type: str
    standard: list[tuple[str, pa.Array]]
    custom: list[tuple[str, pa.Array]]

    def texts(self, emails: pa.Array, phones: pa.Array, at: pa.Array) -> pa.Array:
        """The payload texts of the members at ``at`` (whose emails and phones are given)."""
        import pyarrow as pa

        n = len(at)
        top = [("type", pa.array([json.dumps(self.person_type)] * n, pa.string()))]
        top.append(("contactInformation", _contacts(emails, phones)))
        top += [(name, _decoded(values.take(at))) for name, values in self.standard]
        if self.custom:
            custom = [(name, _decoded(values.take(at))) for name, values in self.custom]
            top.append(("customAttributes", _json_object(custom, n)))
        return _json_object(top, n)


def _decoded(values: pa.Array) -> pa.Array:
    import pyarrow as pa

    return values.cast(pa.string()) if pa.types.is_dictionary(values.type) else values


def _missing(value: Any) -> bool:
    return (
        value is None
        or type(value).__name__ in ("NAType", "NaTType")
        or (isinstance(value, float) and math.isnan(value))
    )


def _as_text(values: Any, n: int) -> pa.Array:
    """A column as Arrow text: ``None`` where a cell is missing (None, NaN, NA), else ``str`` of it."""
    import pyarrow as pa

    if values is None:
        return pa.nulls(n, type=pa.string())
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        return values if values.type == pa.string() else values.cast(pa.string())
    return pa.array(
        [None if _missing(v) else v if isinstance(v, str) else str(v) for v in values], pa.string()
    )


def _trimmed(values: pa.Array) -> pa.Array:
    """:func:`_text` of each value: trimmed, null when empty. Values holding anything but printable
    ASCII are trimmed by Python itself (its notion of whitespace), once per distinct value."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from infobip_provider.cohorts.columnar import NOT_PLAIN

    out = pc.utf8_trim(values, " ")
    odd = pc.fill_null(pc.match_substring_regex(values, NOT_PLAIN), False)
    if pc.any(odd).as_py():
        raw = pc.filter(values, odd).to_pylist()
        fixed = {v: v.strip() for v in set(raw)}
        out = pc.replace_with_mask(out, odd, pa.array([fixed[v] for v in raw], type=pa.string()))
    return pc.if_else(pc.equal(out, ""), pa.scalar(None, pa.string()), out)


def _json_strings(values: pa.Array) -> pa.Array:
    """Each text as a JSON string literal, as ``json.dumps(value, ensure_ascii=False)`` writes it."""
    import pyarrow as pa
    import pyarrow.compute as pc

    out = pc.binary_join_element_wise('"', values, '"', "")
    odd = pc.fill_null(pc.match_substring_regex(values, r'["\\\x00-\x1f]'), False)
    if pc.any(odd).as_py():
        raw = pc.filter(values, odd).to_pylist()
        out = pc.replace_with_mask(
            out, odd, pa.array([json.dumps(v, ensure_ascii=False) for v in raw], pa.string())
        )
    return out


@dataclass
class _Field:
    """One mapped column, checked once per distinct value: each row's value as JSON (null when empty
    or bad), the rows whose value Infobip would refuse, and why."""

    target: str
    where: str  # how a reject names it: ``firstName (column first)``
    raw: pa.Array
    json: pa.Array
    bad: np.ndarray
    problems: dict[str, str]  # raw text -> what is wrong with it


def _check_field(target: str, where: str, raw: pa.Array) -> _Field:
    """:func:`clean_value` once per distinct value of a column, spread back to the rows."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(raw)
    distinct = encoded.dictionary.to_pylist()
    sent: list[str | None] = []
    problems: dict[str, str] = {}
    for value in distinct:
        clean, problem = clean_value(target, value)
        sent.append(None if clean is None else json.dumps(clean, ensure_ascii=False))
        if problem:
            problems[value] = problem
    indices = encoded.indices
    bad = np.zeros(0, dtype=np.int64)
    if problems:
        wrong = pa.array([value in problems for value in distinct], type=pa.bool_())
        bad = np.flatnonzero(pc.fill_null(wrong.take(indices), False).to_numpy(zero_copy_only=False))
    values = pa.DictionaryArray.from_arrays(indices, pa.array(sent, type=pa.string()))
    return _Field(target, where, raw, values, bad, problems)


def _member_columns(members: Any) -> tuple[dict[str, Any], np.ndarray | None]:
    """The columns of a prepared cohort (its Arrow arrays as they are) or of a frame, and the keys'
    hashes when known."""
    if hasattr(members, "arrow_columns"):
        return members.arrow_columns(), members.key_hashes
    return {str(c): members[c].tolist() for c in members.columns}, None


def _row_numbers(values: Any, n: int) -> np.ndarray:
    import numpy as np

    if values is None:
        return np.full(n, -1, dtype=np.int64)
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu":
        return values.astype(np.int64, copy=False)
    return np.array([-1 if _text(v) is None else int(float(v)) for v in values], dtype=np.int64)


def _json_object(pieces: list[tuple[str, pa.Array]], n: int) -> pa.Array:
    """``{"name":value,...}`` per row, names sorted, a name left out where its value is null; null
    where every value is."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pieces:
        return pa.nulls(n, type=pa.string())
    parts = [
        pc.binary_join_element_wise(json.dumps(name, ensure_ascii=False) + ":", values, "")
        for name, values in sorted(pieces, key=lambda p: p[0])
    ]
    inner = pc.binary_join_element_wise(*parts, ",", null_handling="skip") if len(parts) > 1 else parts[0]
    inner = pc.if_else(pc.equal(inner, ""), pa.scalar(None, pa.string()), inner)
    return pc.binary_join_element_wise("{", inner, "}", "")


def _contacts(emails: pa.Array, phones: pa.Array) -> pa.Array:
    """Each member's ``contactInformation`` list as JSON (the email first)."""
    import pyarrow.compute as pc

    email = pc.binary_join_element_wise('{"identifier":', _json_strings(emails), ',"type":"EMAIL"}', "")
    phone = pc.binary_join_element_wise('{"identifier":', _json_strings(phones), ',"type":"PHONE"}', "")
    return pc.binary_join_element_wise(
        "[", pc.binary_join_element_wise(email, phone, ",", null_handling="skip"), "]", ""
    )


#: Members whose payload texts are assembled at once (digests, upserts): about 30 MB of text.
_BLOCK = 131_072


def _digests(texts: pa.Array) -> pa.Array:
    """:func:`fields_hash` of each canonical payload text."""
    import pyarrow as pa

    sha = hashlib.sha256
    return pa.array([sha(t.encode()).hexdigest()[:24] for t in texts.to_pylist()], pa.string())


def build_people(members: Any, mapping: PersonMapping) -> BuiltPeople:
    """Build and validate one payload per member, column-wise.

    ``members`` is a :class:`~infobip_provider.cohorts.PreparedCohort` (its Arrow columns are used as
    they are) or a frame with the columns ``key``, ``email``, ``phone``, ``external_id``, ``row`` and
    the mapped columns, as :func:`infobip_provider.cohorts.prepare_cohort` gives them.

    Infobip matches a person on any of its identifiers, so one phone must not reach Infobip for two
    members: a member without an email whose phone belongs to a member with an email is that same
    person and is rejected; a member with an email whose phone an earlier member already carries is
    sent without the phone (matched by its email alone, counted in ``shared_phones``), else Infobip
    would merge the two people into one.

    Each value is checked (:func:`clean_value`) once per distinct value of its column; the payloads
    are assembled as canonical JSON text by Arrow string kernels; only the digest
    (:func:`fields_hash`) is computed per member in Python.

    :raises FieldMapError: when a mapped column is not in the cohort (the message names those found).
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from infobip_provider.cohorts.columnar import first_rows

    columns, hashes = _member_columns(members)
    missing = [c for c in mapping.columns if c not in columns]
    if missing:
        found = [c for c in columns if c not in ("key", "row")]
        raise FieldMapError(
            f"field_map names columns the cohort does not have: {', '.join(missing)}; found: {', '.join(found)}"
        )
    n = len(columns["key"])

    def numpy(mask: pa.Array) -> np.ndarray:
        return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)

    raw_phones = _as_text(columns.get("phone"), n)
    keys = _trimmed(_as_text(columns.get("key"), n))
    emails = _trimmed(_as_text(columns.get("email"), n))
    phones = _trimmed(raw_phones)
    rows = _row_numbers(columns.get("row"), n)
    keyed, has_email, has_phone = numpy(keys.is_valid()), numpy(emails.is_valid()), numpy(phones.is_valid())
    # a member without an email whose phone (as it stands) a member with an email has: that member
    email_phones = raw_phones.filter(pa.array(has_email & has_phone))
    duplicate = keyed & ~has_email & numpy(pc.fill_null(pc.is_in(phones, value_set=email_phones), False))
    # a member with an email keeps its phone when the first member with an email and that phone is itself
    sharing = np.flatnonzero(keyed & has_email & has_phone)
    shared = np.zeros(0, dtype=np.int64)
    if len(sharing):
        first = sharing[first_rows(phones.take(pa.array(sharing)))]
        owner_differs = pc.not_equal(keys.take(pa.array(first)), keys.take(pa.array(sharing)))
        shared = sharing[np.flatnonzero(numpy(owner_differs))]
    fields = []
    if columns.get("external_id") is not None:
        fields.append(("externalId", "externalId (external id column)", columns["external_id"]))
    fields += [(target, f"{target} (column {col})", columns[col]) for col, target in mapping.standard]
    standard = len(fields)
    fields += [(t, f"customAttributes.{t} (column {col})", columns[col]) for col, t in mapping.custom]
    checked = [_check_field(target, where, _as_text(values, n)) for target, where, values in fields]
    bad = np.zeros(n, dtype=bool)
    for item in checked:
        bad[item.bad] = True
    rejects: list[dict[str, Any]] = []
    held: set[str] = set()
    for i in np.flatnonzero(keyed & (duplicate | bad)).tolist():  # row order, as the reasons read
        key, row = keys[i].as_py(), None if rows[i] < 0 else int(rows[i])
        if duplicate[i]:
            reason = "duplicate person: the phone of a member with an email"
            rejects.append({"row": row, "key": key, "value": phones[i].as_py(), "reason": reason})
            continue
        held.add(key)
        for item in checked:
            raw = item.raw[i].as_py()
            if raw in item.problems:
                reason = f"invalid value: {item.where} {item.problems[raw]}"
                rejects.append({"row": row, "key": key, "value": _text(raw), "reason": reason})
    kept = np.flatnonzero(keyed & ~duplicate & ~bad)
    if len(shared):
        without = np.zeros(n, dtype=bool)
        without[shared] = True
        phones = pc.if_else(pa.array(without), pa.scalar(None, pa.string()), phones)
    at = pa.array(kept, type=pa.int64())
    emails, phones = emails.take(at), phones.take(at)
    assemble = _Fields(
        mapping.person_type,
        [(item.target, item.json.take(at)) for item in checked[:standard]],
        [(item.target, item.json.take(at)) for item in checked[standard:]],
    )
    digests = []
    for start in range(0, len(kept), _BLOCK):  # one block's texts at a time
        block = pa.array(np.arange(start, min(start + _BLOCK, len(kept))), type=pa.int64())
        digests.append(_digests(assemble.texts(emails.take(block), phones.take(block), block)))
    return BuiltPeople(
        {
            "key": keys.take(at),
            "email": emails,
            "phone": phones,
            "digest": pa.concat_arrays(digests) if digests else pa.array([], pa.string()),
        },
        rows[kept],
        assemble,
        key_hashes=None if hashes is None else np.asarray(hashes)[kept],
        held=held,
        rejects=rejects,
        shared_phones=len(shared),
    )


# --------------------------------------------------------------------------------------------- refs
def make_ref(key_type: str, key: str, digest: str | None, phone: str | None) -> str:
    """A journal id that carries what folding an acknowledgement needs."""
    return "\t".join((key_type, key, digest or "", phone or ""))


def parse_ref(ref: str) -> tuple[str, str, str, str | None]:
    """``(key_type, key, fields_hash, phone)`` of a :func:`make_ref` id."""
    parts = ref.split("\t")
    if len(parts) != 4:
        parts = [*parts, "", "", ""][:4]
    return parts[0], parts[1], parts[2], parts[3] or None


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


def snapshot_schema() -> pa.Schema:
    """The columns of a tag's snapshot file."""
    import pyarrow as pa

    return pa.schema(
        [
            ("key", pa.string()),
            ("key_type", pa.string()),
            ("fields_hash", pa.string()),
            ("tagged", pa.bool_()),
            ("phone", pa.string()),
            ("uncertain", pa.bool_()),
        ]
    )


class Snapshot(MutableMapping[str, Confirmed]):
    """What Infobip confirmed about the tag's people, one row per person, kept column-wise (an Arrow
    table): a run over millions of people compares and folds whole columns, with no Python object
    per person. It is also a mapping ``key → Confirmed`` for the few reads and writes of single
    people (an index is built on the first such read; writes gather in a small overlay that the next
    column-wise use applies)."""

    def __init__(self, table: pa.Table | None = None) -> None:
        self._table = _as_snapshot_table(table)
        self._changes: dict[str, Confirmed | None] = {}  # None: removed
        self._index: dict[str, int] | None = None

    @classmethod
    def of(cls, snapshot: Mapping[str, Confirmed] | None) -> Snapshot:
        """``snapshot`` itself when it is one, else a snapshot of a plain ``{key: Confirmed}`` dict."""
        if isinstance(snapshot, Snapshot):
            return snapshot
        return cls.from_items((snapshot or {}).items())

    @classmethod
    def from_items(cls, items: Iterable[tuple[str, Confirmed]]) -> Snapshot:
        return cls(_apply_changes(snapshot_schema().empty_table(), dict(items)))

    # the table -------------------------------------------------------------------------------------
    @property
    def table(self) -> pa.Table:
        """The snapshot as one Arrow table (single changes applied)."""
        if self._changes:
            changes, self._changes = self._changes, {}
            self._table = _apply_changes(self._table, changes)
            self._index = None
        return self._table

    def column(self, name: str) -> np.ndarray:
        """A boolean column as NumPy, or a text column as Arrow (see :func:`snapshot_schema`)."""
        values = self.table.column(name)
        import numpy as np

        if name in ("tagged", "uncertain"):
            return np.asarray(values.to_numpy(), dtype=bool)
        return values

    def discard(self, keys: Iterable[str]) -> None:
        """Forget ``keys`` (those present), column-wise."""
        import pyarrow as pa
        import pyarrow.compute as pc

        gone = pa.array(list(keys), type=pa.string())
        if len(gone):
            table = self.table
            self._table = table.filter(pc.invert(pc.is_in(table.column("key"), value_set=gone)))
            self._index = None

    # the mapping -----------------------------------------------------------------------------------
    def _position(self, key: str) -> int | None:
        if self._index is None:
            self._index = {k: i for i, k in enumerate(self._table.column("key").to_pylist())}
        return self._index.get(key)

    def __getitem__(self, key: str) -> Confirmed:
        if key in self._changes:
            found = self._changes[key]
            if found is None:
                raise KeyError(key)
            return found
        at = self._position(key)
        if at is None:
            raise KeyError(key)
        row = self._table.slice(at, 1).to_pylist()[0]
        return Confirmed(
            row["key_type"],
            row["fields_hash"] or "",
            bool(row["tagged"]),
            row["phone"],
            bool(row["uncertain"]),
        )

    def __setitem__(self, key: str, value: Confirmed) -> None:
        self._changes[key] = value

    def __delitem__(self, key: str) -> None:
        self[key]  # KeyError when absent
        self._changes[key] = None

    def __iter__(self) -> Iterator[str]:
        return iter(self.table.column("key").to_pylist())

    def __len__(self) -> int:
        return self.table.num_rows

    def __repr__(self) -> str:
        return f"Snapshot({self.table.num_rows} people)"


def _as_snapshot_table(table: pa.Table | None) -> pa.Table:
    """``table`` with every snapshot column, typed (a file of an older version lacks ``phone`` or
    ``uncertain``: nobody of it was uncertain); empty hashes as ``""``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    schema = snapshot_schema()
    if table is None:
        return schema.empty_table()
    n = table.num_rows
    columns = []
    for name in schema.names:
        kind = schema.field(name).type
        if name in table.column_names:
            values = table.column(name)
            values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
            values = values if values.type == kind else values.cast(kind)
        else:
            values = pa.array([False] * n, pa.bool_()) if kind == pa.bool_() else pa.nulls(n, kind)
        if kind == pa.bool_():
            values = pc.fill_null(values, False)
        if name == "fields_hash":
            values = pc.fill_null(values, "")
        if name == "phone":  # an empty phone is none
            values = pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)
        columns.append(values)
    return pa.Table.from_arrays(columns, schema=schema)


def _apply_changes(table: pa.Table, changes: Mapping[str, Confirmed | None]) -> pa.Table:
    """``table`` without the rows of the changed keys, then the changed people that remain, appended."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not changes:
        return table
    kept = table.filter(
        pc.invert(pc.is_in(table.column("key"), value_set=pa.array(list(changes), pa.string())))
    )
    added = {k: c for k, c in changes.items() if c is not None}
    columns = {
        "key": list(added),
        "key_type": [c.key_type for c in added.values()],
        "fields_hash": [c.fields_hash for c in added.values()],
        "tagged": [bool(c.tagged) for c in added.values()],
        "phone": [c.phone for c in added.values()],
        "uncertain": [bool(c.uncertain) for c in added.values()],
    }
    return pa.concat_tables([kept, pa.table(columns, schema=snapshot_schema())]).combine_chunks()


def snapshot_from_frame(frame: pd.DataFrame) -> Snapshot:
    import pyarrow as pa

    if frame.empty:
        return Snapshot()
    return Snapshot(pa.Table.from_pandas(frame, preserve_index=False))


def snapshot_to_frame(snapshot: Mapping[str, Confirmed]) -> pd.DataFrame:
    table = Snapshot.of(snapshot).table
    frame = table.to_pandas()
    return frame.astype({name: kind for name, kind in SNAPSHOT_COLUMNS.items()})


def fold_people(
    snapshot: Mapping[str, Confirmed],
    upserted: Iterable[tuple[Sequence[str], Mapping[str, str]]] = (),
    tagged: Iterable[tuple[Sequence[str], Mapping[str, str]]] = (),
    untagged: Iterable[tuple[Sequence[str], Mapping[str, str]]] = (),
    unanswered_upserts: Iterable[str] = (),
    unanswered_tags: Iterable[str] = (),
) -> Snapshot:
    """Apply acknowledged batches (``(refs, refused ref → reason)``) to a copy of the snapshot.

    An upserted person gets the payload's hash (a refused one keeps what was confirmed before, or
    stays out when it is new); a tagged person is marked tagged; an untagged one leaves the snapshot.
    Then the refs of unanswered batches: an upserted person's hash is forgotten (upserted again,
    whatever its fields are next time); a tagged or untagged person becomes ``uncertain``.

    Column-wise: each kind of batch is one Arrow table of refs, found in the snapshot by hash lookups
    and written into its columns; a person named twice by one kind takes what applying the refs one
    after the other would give (the last ref's fields, the first ref's phone for a person new to it).
    """
    table = Snapshot.of(snapshot).table
    table = _fold_upserts(table, _refs_table(_acked(upserted)))
    table = _fold_tags(table, _refs_table(_acked(tagged)), uncertain=False)
    untag = _refs_table(_acked(untagged))
    if untag.num_rows:
        import pyarrow.compute as pc

        table = table.filter(pc.invert(pc.is_in(table.column("key"), value_set=untag.column("key"))))
    table = _fold_lost_upserts(table, _refs_table(list(unanswered_upserts)))
    table = _fold_tags(table, _refs_table(list(unanswered_tags)), uncertain=True)
    return Snapshot(table)


def _acked(batches: Iterable[tuple[Sequence[str], Mapping[str, str]]]) -> list[str]:
    return [ref for refs, refused in batches for ref in refs if ref not in refused]


def _refs_table(refs: list[str], block: int = 1_000_000) -> pa.Table:
    """Refs (:func:`make_ref`) as columns ``key_type``, ``key``, ``digest``, ``phone`` (null when
    empty), a block of refs per chunk (no chunk near Arrow's 2 GB limit of one text array)."""
    import pyarrow as pa

    names = ["key_type", "key", "digest", "phone"]
    parts = [_ref_columns(refs[start : start + block]) for start in range(0, len(refs), block)]
    if not parts:
        return pa.table({n: pa.array([], pa.string()) for n in names})
    return pa.table({n: pa.chunked_array([p[i] for p in parts], pa.string()) for i, n in enumerate(names)})


def _ref_columns(refs: list[str]) -> list[pa.Array]:
    import pyarrow as pa
    import pyarrow.compute as pc

    parts = pc.split_pattern(pa.array(refs, pa.string()), "\t")
    if pc.all(pc.equal(pc.list_value_length(parts), 4)).as_py():
        columns = [pc.list_element(parts, i) for i in range(4)]
    else:  # refs of another shape (older journals): as parse_ref reads them
        rows = [parse_ref(ref) for ref in refs]
        columns = [pa.array([r[i] for r in rows], pa.string()) for i in range(4)]
    columns[3] = pc.if_else(pc.equal(columns[3], ""), pa.scalar(None, pa.string()), columns[3])
    return columns


def _once(refs: pa.Table, keep: str) -> pa.Table:
    """One row per key: its ``first`` or ``last`` ref."""
    import numpy as np
    import pyarrow as pa

    from infobip_provider.cohorts.columnar import first_rows

    n = refs.num_rows
    keys = refs.column("key")
    if keep == "last":
        backwards = pa.array(np.arange(n - 1, -1, -1), pa.int64())
        first = first_rows(keys.take(backwards))
        chosen = np.sort(n - 1 - np.flatnonzero(first == np.arange(n)))
    else:
        first = first_rows(keys)
        chosen = np.flatnonzero(first == np.arange(n))
    return refs if len(chosen) == n else refs.take(pa.array(chosen, pa.int64()))


def _scatter(table: pa.Table, refs: pa.Table, updates: dict[str, Any]) -> tuple[pa.Table, np.ndarray]:
    """Write ``updates`` (column → the refs' own column, or a constant) into the rows of ``table``
    whose key a ref names; return the table and, per ref, its row (-1: not in the table)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from infobip_provider.cohorts.columnar import positions

    where = positions(refs.column("key"), table.column("key"))
    found = np.flatnonzero(where >= 0)
    if len(found):
        source = np.full(table.num_rows, -1, dtype=np.int64)
        source[where[found]] = found
        hit = pa.array(source >= 0)
        picks = pa.array(np.maximum(source, 0), pa.int64())
        for name, value in updates.items():
            column = table.schema.get_field_index(name)
            new = value.take(picks) if isinstance(value, (pa.Array, pa.ChunkedArray)) else value
            table = table.set_column(column, name, pc.if_else(hit, new, table.column(name)))
    return table, where


def _append(table: pa.Table, rows: dict[str, Any], n: int) -> pa.Table:
    """``table`` with ``n`` new rows (each column: an array, or a constant for every row)."""
    import pyarrow as pa

    if not n:
        return table
    schema = snapshot_schema()
    columns = [
        rows[f.name]
        if isinstance(rows[f.name], (pa.Array, pa.ChunkedArray))
        else pa.array([rows[f.name]] * n, f.type)
        for f in schema
    ]
    return pa.concat_tables([table, pa.Table.from_arrays(columns, schema=schema)]).combine_chunks()


def _fold_upserts(table: pa.Table, refs: pa.Table) -> pa.Table:
    """Acknowledged upserts: the last ref's type, digest and phone; the tag as it was."""
    import pyarrow as pa

    if not refs.num_rows:
        return table
    refs = _once(refs, "last")
    table, where = _scatter(
        table,
        refs,
        {
            "key_type": refs.column("key_type"),
            "fields_hash": refs.column("digest"),
            "phone": refs.column("phone"),
        },
    )
    new = refs.filter(pa.array(where < 0))
    return _append(
        table,
        {
            "key": new.column("key"),
            "key_type": new.column("key_type"),
            "fields_hash": new.column("digest"),
            "tagged": False,
            "phone": new.column("phone"),
            "uncertain": False,
        },
        new.num_rows,
    )


def _fold_tags(table: pa.Table, refs: pa.Table, *, uncertain: bool) -> pa.Table:
    """Acknowledged tags (tagged, no doubt; the last ref's type) or unanswered tags and untags (in
    doubt, the type on record); a person new to the snapshot gets the first ref's phone (and type,
    when in doubt)."""
    import pyarrow as pa

    from infobip_provider.cohorts.columnar import positions

    if not refs.num_rows:
        return table
    first = _once(refs, "first")
    kinds = first.column("key_type")
    updates: dict[str, Any] = {"tagged": pa.scalar(not uncertain), "uncertain": pa.scalar(uncertain)}
    if not uncertain:
        last = _once(refs, "last")
        kinds = last.column("key_type").take(pa.array(positions(first.column("key"), last.column("key"))))
        updates["key_type"] = kinds
    table, where = _scatter(table, first, updates)
    new = pa.array(where < 0)
    return _append(
        table,
        {
            "key": first.column("key").filter(new),
            "key_type": kinds.filter(new),
            "fields_hash": "",
            "tagged": not uncertain,
            "phone": first.column("phone").filter(new),
            "uncertain": uncertain,
        },
        int((where < 0).sum()),
    )


def _fold_lost_upserts(table: pa.Table, refs: pa.Table) -> pa.Table:
    """Unanswered upserts: the digest is forgotten (sent again next time, whatever the fields)."""
    import pyarrow as pa

    if not refs.num_rows:
        return table
    table, _ = _scatter(table, _once(refs, "first"), {"fields_hash": pa.scalar("")})
    return table


def fold_recovery(snapshot: Mapping[str, Confirmed], recovery: Recovery) -> Snapshot:
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


def without_tags(snapshot: Mapping[str, Confirmed]) -> Snapshot:
    """The snapshot with nobody tagged (after the tag was found deleted in Infobip): no doubt left."""
    import pyarrow as pa

    table = Snapshot.of(snapshot).table
    false = pa.array([False] * table.num_rows, pa.bool_())
    table = table.set_column(table.schema.get_field_index("tagged"), "tagged", false)
    return Snapshot(table.set_column(table.schema.get_field_index("uncertain"), "uncertain", false))


# --------------------------------------------------------------------------------------------- plan
class Payloads(Mapping[str, dict[str, Any]]):
    """``ref → v3 payload`` for a plan's upserts, assembled a block of upserts at a time when sent."""

    def __init__(self, built: BuiltPeople, refs: list[str], positions: np.ndarray) -> None:
        self._built, self._positions = built, positions
        self._order = {ref: i for i, ref in enumerate(refs)}
        self._blocks: dict[int, list[str]] = {}

    def __getitem__(self, ref: str) -> dict[str, Any]:
        i = self._order[ref]
        block, offset = divmod(i, _BLOCK)
        texts = self._blocks.get(block)
        if texts is None:
            if len(self._blocks) >= 2:  # lanes send in order: the oldest block is done with
                del self._blocks[min(self._blocks)]
            at = self._positions[block * _BLOCK : (block + 1) * _BLOCK]
            texts = self._blocks[block] = self._built.texts_at(at).to_pylist()
        return json.loads(texts[offset])  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[str]:
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._order)


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
    payloads: Mapping[str, dict[str, Any]] = field(default_factory=dict)
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


def plan_people(built: BuiltPeople, snapshot: Mapping[str, Confirmed]) -> PeoplePlan:
    """Diff the cohort's payloads against the snapshot, column-wise (pure; see the module docstring).

    Each member is found in the snapshot by a hash lookup; refs are made only for the members the
    plan sends something for, and leavers are looked at one by one only once found.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from infobip_provider.cohorts.columnar import positions

    table = Snapshot.of(snapshot).table
    plan = PeoplePlan(held=len(built.held))
    keys = table.column("key")
    where = positions(built.keys, keys, built.key_hashes)
    found = where >= 0
    at = pa.array(np.maximum(where, 0), type=pa.int64())
    tagged = np.asarray(table.column("tagged").to_numpy(), dtype=bool)
    was_tagged = found & (tagged[np.maximum(where, 0)] if len(tagged) else np.zeros(len(where), bool))
    same = (
        pc.fill_null(pc.equal(table.column("fields_hash").take(at), built.digests), False)
        if len(keys)
        else None
    )
    changed = (
        ~found if same is None else ~(found & np.asarray(same.to_numpy(zero_copy_only=False), dtype=bool))
    )
    upsert_at = np.flatnonzero(changed)
    plan.upserts = built.refs(upsert_at)
    plan.payloads = Payloads(built, plan.upserts, upsert_at)
    plan.tag_after_upsert = {r for r, t in zip(plan.upserts, was_tagged[upsert_at].tolist()) if not t}
    plan.unchanged = len(built) - len(upsert_at)
    plan.tag_now = built.refs(np.flatnonzero(~changed & found & ~was_tagged))
    # Leavers: snapshot people whose key is no member's (nor held back for a bad value).
    gone = positions(keys, built.keys, None, built.key_hashes) < 0
    if built.held and gone.any():
        gone &= ~np.asarray(
            pc.is_in(keys, value_set=pa.array(list(built.held), pa.string())).to_numpy(zero_copy_only=False),
            dtype=bool,
        )
    leaving = np.flatnonzero(gone)
    if len(leaving):
        left = table.take(pa.array(leaving, type=pa.int64()))
        members_phones = built.phones.filter(built.phones.is_valid())
        identities = pa.chunked_array([built.keys, members_phones.cast(built.keys.type)])
        # the same person as a member under another identity: its key is a member's phone, or its phone
        # is a member's key or phone
        same_person = pc.or_(
            pc.is_in(left.column("key"), value_set=identities),
            pc.fill_null(pc.is_in(left.column("phone"), value_set=identities), False),
        )
        maybe_tagged = pc.or_(left.column("tagged"), left.column("uncertain"))
        untag = np.asarray(
            pc.and_(maybe_tagged, pc.invert(same_person)).to_numpy(zero_copy_only=False), dtype=bool
        )
        rows = left.to_pylist()
        for row, out in zip(rows, untag.tolist()):
            if out:
                plan.untags.append(make_ref(row["key_type"], row["key"], row["fields_hash"], row["phone"]))
            else:
                plan.dropped.append(row["key"])
    plan.untags.sort()
    return plan


def confirmed_tagged(snapshot: Mapping[str, Confirmed]) -> int:
    """People who may carry the tag (the removal guard's base): tagged or uncertain."""
    import pyarrow.compute as pc

    table = Snapshot.of(snapshot).table
    return int(pc.sum(pc.or_(table.column("tagged"), table.column("uncertain"))).as_py() or 0)


def default_tag_name(dag_id: str | None, task_id: str | None) -> str:
    """The tag of an operator given none: ``<dag_id>.<task_id>``, shortened (with a digest) to 256."""
    name = ".".join(part for part in (dag_id, task_id) if part) or "airflow-people-import"
    if len(name) <= TAG_MAX:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return name[: TAG_MAX - 9] + "-" + digest
