"""The return path, the pure part: Infobip's People, delivery reports and replies as warehouse rows.

Nothing here talks to Infobip, a database or files; :mod:`infobip_provider.transfers` wires it to
the hook, the state store and :mod:`infobip_provider.warehouse`.

- :data:`PERSON_COLUMNS` and :func:`person_row`: one row per person (standard fields, contacts,
  tags, custom attributes as JSON and, optionally, as columns the user names).
- :class:`PeopleCursor` and :func:`people_filter`: keyset paging through ``GET /people/2/persons``
  by ``(modifiedAt, id)``, so a person changed while a run pages through moves *ahead* of the
  cursor (read later in the run, or by the next one) instead of shifting pages under it.
- :data:`CHANNELS`, :func:`bounce_class`, :data:`REPORT_COLUMNS` and :func:`report_row`: one row per
  message of a delivery report, with a bounce class per channel: Synerise's mapping for email
  (seed 001), ``error.permanent`` for the other channels.
- :data:`OPT_OUT_KEYWORDS`, :func:`opt_out_word`, :data:`REPLY_COLUMNS` and :func:`reply_row`: inbound
  replies, opt-out words marked.
- :data:`SEEN_COLUMNS` and :func:`seen_row`: seen reports (who read a message, when), as pushed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

#: A column: name and a SQL type every supported dialect understands (SQLite takes any name).
Column = tuple[str, str]

BOUNCE_CLASSES = ("delivered", "soft_bounce", "hard_bounce", "spam_bounce", "dropped", "pending")

# --------------------------------------------------------------------------------------- People
#: Standard Person fields as ``(Infobip field, column)``, in the table's order.
PERSON_FIELDS: tuple[tuple[str, str], ...] = (
    ("externalId", "external_id"),
    ("type", "type"),
    ("firstName", "first_name"),
    ("lastName", "last_name"),
    ("middleName", "middle_name"),
    ("nickName", "nick_name"),
    ("gender", "gender"),
    ("birthDate", "birth_date"),
    ("address", "address"),
    ("city", "city"),
    ("country", "country"),
    ("preferredLanguage", "preferred_language"),
    ("profilePicture", "profile_picture"),
    ("origin", "origin"),
)
PERSON_COLUMNS: tuple[Column, ...] = (
    ("id", "BIGINT NOT NULL"),
    *((column, "TEXT") for _, column in PERSON_FIELDS),
    ("emails", "TEXT"),
    ("phones", "TEXT"),
    ("tags", "TEXT"),
    ("custom_attributes", "TEXT"),
    ("created_at", "TIMESTAMP"),
    ("modified_at", "TIMESTAMP"),
    ("exported_at", "TIMESTAMP"),
)
PERSON_KEY = ("id",)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def attribute_columns(spec: Mapping[str, str] | Sequence[str] | None) -> tuple[tuple[str, str], ...]:
    """``(custom attribute, column)`` pairs from a list of names or a ``{attribute: column}`` map.

    :raises ValueError: a column is not a plain SQL identifier or clashes with a person column.
    """
    if not spec:
        return ()
    pairs = list(spec.items()) if isinstance(spec, Mapping) else [(str(n), str(n)) for n in spec]
    taken = {name for name, _ in PERSON_COLUMNS}
    out: list[tuple[str, str]] = []
    for attribute, column in pairs:
        column = str(column)
        if not _IDENTIFIER.match(column):
            raise ValueError(
                f"custom attribute column {column!r} is not a plain SQL name (letters, digits, _)"
            )
        if column.lower() in taken:
            raise ValueError(f"custom attribute column {column!r} is already a column of the People table")
        taken.add(column.lower())
        out.append((str(attribute), column))
    return tuple(out)


def person_columns(attributes: Sequence[tuple[str, str]] = ()) -> tuple[Column, ...]:
    """The People table's columns, with one TEXT column per named custom attribute."""
    return (*PERSON_COLUMNS, *((column, "TEXT") for _, column in attributes))


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def people_timestamp(value: Any) -> str | None:
    """A People timestamp (``yyyy-MM-ddTHH:mm:ss``, UTC) as a SQL timestamp literal."""
    return None if not value else str(value).replace("T", " ")


def person_row(
    person: Mapping[str, Any], exported_at: str, attributes: Sequence[tuple[str, str]] = ()
) -> tuple[Any, ...]:
    """One row of :func:`person_columns` for a person as ``GET /people/2/persons`` answers it."""
    contact = person.get("contactInformation") or {}
    emails = [e.get("address") for e in contact.get("email") or [] if e.get("address")]
    phones = [p.get("number") for p in contact.get("phone") or [] if p.get("number")]
    custom = person.get("customAttributes") or {}
    return (
        int(person["id"]),
        *(_text(person.get(field)) for field, _ in PERSON_FIELDS),
        json.dumps(emails, ensure_ascii=False),
        json.dumps(phones, ensure_ascii=False),
        json.dumps(list(person.get("tags") or []), ensure_ascii=False),
        json.dumps(custom, ensure_ascii=False, sort_keys=True),
        people_timestamp(person.get("createdAt")),
        people_timestamp(person.get("modifiedAt")),
        exported_at,
        *(_text(custom.get(attribute)) for attribute, _ in attributes),
    )


@dataclass(frozen=True)
class PeopleCursor:
    """Where a People export stands: every person up to ``(modified_at, person_id)`` is in the table.

    ``person_id`` ``None`` means the second ``modified_at`` was still open when it was read (Infobip's
    clock had not passed it), so a person changed later in that same second could sort *behind* the
    last id read: the next run reads that whole second again.
    """

    modified_at: str
    person_id: int | None

    def as_dict(self) -> dict[str, Any]:
        return {"modifiedAt": self.modified_at, "id": self.person_id}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> PeopleCursor | None:
        if not data or not data.get("modifiedAt"):
            return None
        person_id = data.get("id")
        return cls(str(data["modifiedAt"]), None if person_id is None else int(person_id))

    def settled(self, server_time: str | None) -> PeopleCursor:
        """This cursor as the next run may trust it: exact once Infobip's clock (``server_time``, the
        answer's ``Date``) has passed its second, else re-reading that second."""
        if server_time is not None and server_time > self.modified_at:
            return self
        return PeopleCursor(self.modified_at, None)


#: Keyset order of the export: by modification time, ties by id. [assumed] several keys are allowed.
PEOPLE_ORDER = "modifiedAt:asc,id:asc"


def people_filter(tags: Sequence[str], cursor: PeopleCursor | None) -> dict[str, Any] | None:
    """The ``filter`` of the next page: any of ``tags`` (all people when empty), after ``cursor``."""
    parts: list[dict[str, Any]] = []
    if tags:
        any_tag = [{"#contains": {"tags": tag}} for tag in tags]
        parts.append(any_tag[0] if len(any_tag) == 1 else {"#or": any_tag})
    if cursor is not None:
        if cursor.person_id is None:
            parts.append({"#gte": {"modifiedAt": cursor.modified_at}})
        else:
            parts.append(
                {
                    "#or": [
                        {"#gt": {"modifiedAt": cursor.modified_at}},
                        {
                            "#and": [
                                {"#eq": {"modifiedAt": cursor.modified_at}},
                                {"#gt": {"id": cursor.person_id}},
                            ]
                        },
                    ]
                }
            )
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else {"#and": parts}


# ------------------------------------------------------------------------------ bounce classes
def _group(part: Mapping[str, Any] | None) -> str:
    return str((part or {}).get("groupName") or "").upper()


def sms_bounce_class(status: Mapping[str, Any] | None, error: Mapping[str, Any] | None) -> str:
    """SMS (and any channel without a published mapping): ``error.permanent`` decides the bounce.

    DELIVERED → delivered; PENDING (or no status) → pending; REJECTED (Infobip never sent it:
    blocklisted, DND, no credit) → dropped; anything else (UNDELIVERABLE, EXPIRED) → hard_bounce
    when ``error.permanent`` is true, else soft_bounce.
    """
    group = _group(status)
    if group == "DELIVERED":
        return "delivered"
    if group in ("", "PENDING"):
        return "pending"
    if group == "REJECTED":
        return "dropped"
    return "hard_bounce" if (error or {}).get("permanent") is True else "soft_bounce"


_EMAIL_SPAM_DROPPED = {"EC_SPAM_DETECTED", "EC_SUPPRESSED_SPAM_COMPLAINT", "EC_SUPPRESSED_BOUNCE"}
_EMAIL_SPAM_BOUNCED = {"EC_SENDER_IP_BLACKLISTED", "EC_BLOCKED_AS_SPAM", "EC_SPAM_REVERTED"}
_EMAIL_SOFT_BOUNCED = {"EC_RECIPIENT_INBOX_FULL", "EC_SOFT_BOUNCE"}
#: Error names whose bounce the *sender* caused (its IP on a blacklist): classed as seed 001 says in
#: the reports table, but no reason to suppress the recipient (see
#: :mod:`infobip_provider.respect.suppression`).
SENDER_CAUSED_ERRORS = ("EC_SENDER_IP_BLACKLISTED",)


def email_bounce_class(status: Mapping[str, Any] | None, error: Mapping[str, Any] | None) -> str:
    """Email: Synerise's mapping of Infobip's error groups and names (seed 001).

    DROPPED with a spam or suppression name → spam_bounce, other DROPPED → dropped; BOUNCED with a
    blacklist or spam name → spam_bounce, inbox full or soft bounce → soft_bounce, other BOUNCED →
    hard_bounce; HANDSET_ERRORS, USER_ERRORS and OPERATOR_ERRORS → hard_bounce. Without an error:
    DELIVERED → delivered, PENDING → pending, REJECTED → dropped.
    """
    error_group, name = _group(error), str((error or {}).get("name") or "").upper()
    if error_group == "DROPPED":
        return "spam_bounce" if name in _EMAIL_SPAM_DROPPED else "dropped"
    if error_group == "BOUNCED":
        if name in _EMAIL_SPAM_BOUNCED:
            return "spam_bounce"
        return "soft_bounce" if name in _EMAIL_SOFT_BOUNCED else "hard_bounce"
    if error_group in ("HANDSET_ERRORS", "USER_ERRORS", "OPERATOR_ERRORS"):
        return "hard_bounce"
    group = _group(status)
    if group == "DELIVERED":
        return "delivered"
    if group in ("", "PENDING"):
        return "pending"
    if group == "REJECTED":
        return "dropped"
    return "hard_bounce" if (error or {}).get("permanent") is True else "soft_bounce"


@dataclass(frozen=True)
class ReportChannel:
    """A channel whose delivery reports land in the reports table.

    :param name: the channel's name in the table and the Asset (``sms``).
    :param bounce: its bounce-class rule.
    :param pulled: True when Infobip hands its reports out on a pull endpoint (``GET /sms/3/reports``,
        ``GET /email/4/reports``); WhatsApp's only arrive pushed, at the receiver.
    """

    name: str
    bounce: Callable[[Mapping[str, Any] | None, Mapping[str, Any] | None], str]
    pulled: bool


CHANNELS: dict[str, ReportChannel] = {
    "sms": ReportChannel("sms", sms_bounce_class, pulled=True),
    "email": ReportChannel("email", email_bounce_class, pulled=True),
    "whatsapp": ReportChannel("whatsapp", sms_bounce_class, pulled=False),
}


def bounce_class(channel: str, status: Mapping[str, Any] | None, error: Mapping[str, Any] | None) -> str:
    return CHANNELS[channel].bounce(status, error)


# ------------------------------------------------------------------------------ reports
REPORT_COLUMNS: tuple[Column, ...] = (
    ("channel", "VARCHAR(16) NOT NULL"),
    ("message_id", "VARCHAR(200) NOT NULL"),
    ("bulk_id", "TEXT"),
    ("recipient", "TEXT"),
    ("sender", "TEXT"),
    ("sent_at", "TIMESTAMP"),
    ("done_at", "TIMESTAMP"),
    ("status_group", "TEXT"),
    ("status_name", "TEXT"),
    ("error_group", "TEXT"),
    ("error_name", "TEXT"),
    ("error_permanent", "BOOLEAN"),
    ("bounce_class", "VARCHAR(16)"),
    ("message_count", "INTEGER"),
    ("price", "DOUBLE PRECISION"),
    ("currency", "VARCHAR(8)"),
    ("callback_data", "TEXT"),
    ("source", "VARCHAR(8)"),
    ("collected_at", "TIMESTAMP"),
)
REPORT_KEY = ("channel", "message_id")
_UTC_MILLIS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000\Z")


def message_timestamp(value: Any) -> str | None:
    """An SMS/email timestamp (``2026-11-23T09:00:00.000+0000``) as a UTC SQL timestamp literal."""
    if not value:
        return None
    text = str(value)
    if _UTC_MILLIS.match(text):  # Infobip's usual form, already UTC: no parsing needed
        return f"{text[:10]} {text[11:23]}"
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            moment = datetime.strptime(text, fmt)
        except ValueError:
            continue
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def now_timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def is_final(item: Mapping[str, Any]) -> bool:
    """True when a report or log item carries a final status (not PENDING)."""
    return _group(item.get("status")) not in ("", "PENDING")


def is_report(item: Mapping[str, Any]) -> bool:
    """True for a delivery report (it has a ``status``); a seen report pushed to the same URL has
    ``seenAt`` and no status, and is not a row of the reports table."""
    return bool(item.get("status")) or not item.get("seenAt")


def report_row(channel: str, item: Mapping[str, Any], *, source: str, collected_at: str) -> tuple[Any, ...]:
    """One row of :data:`REPORT_COLUMNS` for a report item (or, from ``source="logs"``, a log item,
    which names the recipient ``destination`` and carries no callback data)."""
    status = item.get("status") or {}
    error = item.get("error") or {}
    price = item.get("price") or {}
    permanent = error.get("permanent")
    amount = price.get("pricePerMessage")
    count = item.get("messageCount", item.get("smsCount"))
    return (
        channel,
        str(item["messageId"]),
        _text(item.get("bulkId")),
        _text(item.get("to", item.get("destination"))),
        _text(item.get("sender", item.get("from"))),
        message_timestamp(item.get("sentAt")),
        message_timestamp(item.get("doneAt")),
        _text(status.get("groupName")),
        _text(status.get("name")),
        _text(error.get("groupName")),
        _text(error.get("name")),
        None if permanent is None else bool(permanent),
        bounce_class(channel, status, error),
        None if count is None else int(count),
        None if amount is None else float(amount),
        _text(price.get("currency")),
        _text(item.get("callbackData")),
        source,
        collected_at,
    )


# ------------------------------------------------------------------------------ replies
#: Words that opt a person out when a reply's keyword (or its first word) is one of them.
OPT_OUT_KEYWORDS = ("STOP", "UNSUBSCRIBE", "STOPALL", "CANCEL", "END", "QUIT")
_FIRST_WORD = re.compile(r"[^\W_]+", re.UNICODE)

REPLY_COLUMNS: tuple[Column, ...] = (
    ("channel", "VARCHAR(16) NOT NULL"),
    ("message_id", "VARCHAR(200) NOT NULL"),
    ("sender", "TEXT"),
    ("recipient", "TEXT"),
    ("text", "TEXT"),
    ("clean_text", "TEXT"),
    ("keyword", "TEXT"),
    ("received_at", "TIMESTAMP"),
    ("message_count", "INTEGER"),
    ("price", "DOUBLE PRECISION"),
    ("currency", "VARCHAR(8)"),
    ("callback_data", "TEXT"),
    ("application_id", "TEXT"),
    ("entity_id", "TEXT"),
    ("campaign_reference_id", "TEXT"),
    ("opt_out", "BOOLEAN"),
    ("opt_out_word", "TEXT"),
    ("collected_at", "TIMESTAMP"),
)
REPLY_KEY = ("channel", "message_id")
#: The channels whose inbound messages are collected: SMS pulled and pushed, WhatsApp pushed.
REPLY_CHANNELS = ("sms", "whatsapp")


def opt_out_words(extra: Iterable[str] | None = ()) -> frozenset[str]:
    """The standard opt-out words plus ``extra`` (case does not matter)."""
    return frozenset(w.strip().upper() for w in (*OPT_OUT_KEYWORDS, *(extra or ())) if w and w.strip())


def opt_out_word(item: Mapping[str, Any], words: frozenset[str]) -> str | None:
    """The opt-out word a reply says: its ``keyword`` when Infobip matched one, else the first word of
    its text (a person writes "stop." or "Stop please"); ``None`` when it is not an opt-out."""
    keyword = str(item.get("keyword") or "").strip().upper()
    if keyword:
        return keyword if keyword in words else None
    found = _FIRST_WORD.search(str(item.get("text") or ""))
    word = found.group(0).upper() if found else ""
    return word if word in words else None


def reply_row(
    channel: str, item: Mapping[str, Any], words: frozenset[str], collected_at: str
) -> tuple[Any, ...]:
    """One row of :data:`REPLY_COLUMNS` for an inbound message."""
    message: Mapping[str, Any] = item.get("message") or {} if isinstance(item.get("message"), dict) else {}
    if item.get("text") is None and message.get("text") is not None:  # WhatsApp: {"message": {"text"}}
        item = {**item, "text": message["text"]}
    price = item.get("price") or {}
    amount = price.get("pricePerMessage")
    count = item.get("smsCount", item.get("messageCount"))
    word = opt_out_word(item, words)
    return (
        channel,
        str(item["messageId"]),
        _text(item.get("from")),
        _text(item.get("to")),
        _text(item.get("text")),
        _text(item.get("cleanText")),
        _text(item.get("keyword")) or None,
        message_timestamp(item.get("receivedAt")),
        None if count is None else int(count),
        None if amount is None else float(amount),
        _text(price.get("currency")),
        _text(item.get("callbackData")),
        _text(item.get("applicationId")),
        _text(item.get("entityId")),
        _text(item.get("campaignReferenceId")),
        word is not None,
        word,
        collected_at,
    )


# ------------------------------------------------------------------------------------------- seen
SEEN_COLUMNS: tuple[Column, ...] = (
    ("channel", "VARCHAR(16) NOT NULL"),
    ("message_id", "VARCHAR(200) NOT NULL"),
    ("recipient", "TEXT"),
    ("sender", "TEXT"),
    ("sent_at", "TIMESTAMP"),
    ("seen_at", "TIMESTAMP"),
    ("application_id", "TEXT"),
    ("entity_id", "TEXT"),
    ("collected_at", "TIMESTAMP"),
)
SEEN_KEY = ("channel", "message_id")


def seen_row(channel: str, item: Mapping[str, Any], collected_at: str) -> tuple[Any, ...]:
    """One row of :data:`SEEN_COLUMNS` for a seen report (``{"messageId", "to", "from", "sentAt",
    "seenAt", ...}``)."""
    return (
        channel,
        str(item["messageId"]),
        _text(item.get("to")),
        _text(item.get("from")),
        message_timestamp(item.get("sentAt")),
        message_timestamp(item.get("seenAt")),
        _text(item.get("applicationId")),
        _text(item.get("entityId")),
        collected_at,
    )
