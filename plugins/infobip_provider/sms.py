"""SMS building blocks, pure: templating, segment counting, options, ids, batching, the send ledger.

- :class:`MessageTemplate`: ``{{field}}`` tokens filled per recipient; a missing value renders
  empty; an unknown or malformed token is an error before anything is sent.
- :func:`count_segments`: GSM 03.38 rules. GSM-7 fits 160 septets in one SMS and 153 per part when
  split; the extension characters ``^ { } \\ [ ] ~ | €`` (and form feed) take two septets and are
  never split across parts; one character outside GSM-7 makes the whole message UCS-2 (70 UTF-16
  code units, 67 per part, surrogate pairs never split). The result names the characters that
  forced UCS-2.
- :class:`SmsOptions`: every option of ``POST /sms/3/messages``, checked at plan time (sender
  format, ``sendAt`` at most 180 days ahead, a delivery window of at least one hour ...).
- :func:`broadcast_bulk_id` / :func:`message_id`: deterministic ids, so a retried task finds what
  an earlier try sent.
- :func:`plan_batches` / :func:`build_body`: identical texts share one message with many
  destinations; at most 1000 destinations per request.
- :func:`fold_ledger`: what the journal of a broadcast says was sent, and which batches are open.
- :func:`infobip_provider.values.literal`: a list or object that reached the operator as text (a template rendered
  without ``render_template_as_native_obj``), read back as JSON or a Python literal.

Nothing here touches the network, the clock (it is passed in) or pandas.
"""

from __future__ import annotations

import difflib
import inspect
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from infobip_provider.errors import InfobipConfigError
from infobip_provider.options import (
    MAX_CALLBACK_DATA,
    ChannelBase,
    cell_text,
    choice,
    flag,
    max_len,
    message_options,
    parse_send_at,
    parse_sending_speed_limit,
    whole_number,
)
from infobip_provider.values import as_text

MAX_DESTINATIONS = 1000
MAX_BULK_ID = 100
MAX_KOREA_TITLE = 66

GSM7 = "GSM-7"
UCS2 = "UCS-2"

#: GSM 03.38 default alphabet, 0x00-0x7F (0x1B, the escape to the extension table, left out).
GSM7_BASIC_CHARS = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
#: GSM 03.38 extension table: each takes two septets (escape + code).
GSM7_EXTENSION_CHARS = "\f^{}\\[~]|€"
GSM7_BASIC = frozenset(GSM7_BASIC_CHARS)
GSM7_EXTENSION = frozenset(GSM7_EXTENSION_CHARS)
GSM7_ALL = GSM7_BASIC | GSM7_EXTENSION

TRANSLITERATIONS = (
    "NONE",
    "TURKISH",
    "GREEK",
    "CYRILLIC",
    "SERBIAN_CYRILLIC",
    "CENTRAL_EUROPEAN",
    "BALTIC",
    "NON_UNICODE",
    "PORTUGUESE",
    "COLOMBIAN",
    "BULGARIAN_CYRILLIC",
    "ALL",
)
LANGUAGE_CODES = ("NONE", "TR", "ES", "PT", "AUTODETECT")
IYS_RECIPIENT_TYPES = ("BIREYSEL", "TACIR")
CONTENT_TYPES = ("application/json", "application/xml")


class SmsConfigError(InfobipConfigError):
    """An SMS option or the message template is unusable; found before anything is sent."""


# ------------------------------------------------------------------------------------------ templating
TOKEN = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class TemplateError(SmsConfigError):
    """The message template has a malformed token or names a field the cohort does not have."""


@dataclass(frozen=True)
class MessageTemplate:
    """A message text with ``{{field}}`` tokens (Lytics style: ``Hi {{first_name}}``).

    :ivar parts: literal text and field names, alternating, starting and ending with literal text.
    """

    text: str
    parts: tuple[str, ...]

    @classmethod
    def parse(cls, text: Any) -> MessageTemplate:
        """Split ``text`` into literals and fields; a ``{{`` that is not a well-formed token is an error."""
        if not isinstance(text, str) or not text.strip():
            raise TemplateError("The message text is empty")
        parts: list[str] = []
        pos = 0
        bad: list[str] = []
        for match in TOKEN.finditer(text):
            name = match.group(1).strip()
            if not FIELD_NAME.fullmatch(name):
                bad.append(match.group(0))
                continue
            parts.append(text[pos : match.start()])
            parts.append(name)
            pos = match.end()
        parts.append(text[pos:])
        literal = "".join(parts[0::2])
        if bad:
            raise TemplateError(
                f"Malformed tokens in the message text: {', '.join(repr(b) for b in bad)}; a token is "
                "{{field}} with a cohort column name (letters, digits, _)"
            )
        if "{{" in literal or "}}" in literal:
            raise TemplateError("The message text has an unclosed '{{' or a stray '}}'; a token is {{field}}")
        return cls(text, tuple(parts))

    @property
    def fields(self) -> tuple[str, ...]:
        """Distinct field names in order of first use."""
        return tuple(dict.fromkeys(self.parts[1::2]))

    @property
    def literal(self) -> str:
        """The text with every token rendered empty."""
        return "".join(self.parts[0::2])

    def check_fields(self, available: Iterable[str]) -> None:
        """Raise :class:`TemplateError` naming every token the cohort cannot fill, with close matches."""
        known = list(available)
        unknown = [f for f in self.fields if f not in known]
        if not unknown:
            return
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, known, n=1) or [
                k for k in known if k.lower() == name.lower()
            ]
            hints.append(f"{{{{{name}}}}}" + (f" (did you mean {{{{{close[0]}}}}}?)" if close else ""))
        shown = ", ".join(known) if known else "none"
        raise TemplateError(
            f"The message text uses {len(unknown)} field(s) the cohort does not have: {', '.join(hints)}. "
            f"Cohort columns: {shown}"
        )

    def render(self, values: Mapping[str, Any]) -> str:
        """Fill every token; a missing or empty value (None, NaN) renders as empty text."""
        parts = self.parts
        if len(parts) == 1:
            return parts[0]
        out = [parts[0]]
        for i in range(1, len(parts), 2):
            value = values.get(parts[i])
            out.append(cell_text(value))
            out.append(parts[i + 1])
        return "".join(out)

    def render_columns(self, columns: Mapping[str, Sequence[Any]], rows: int) -> list[str]:
        """Render ``rows`` messages from column-wise values (``columns[field][i]`` for row ``i``)."""
        literals = self.parts[0::2]
        if len(literals) == 1:
            return [literals[0]] * rows
        fields = [columns[name] for name in self.parts[1::2]]
        tail = literals[1:]
        out = []
        for values in zip(*fields):
            pieces = [literals[0]]
            for value, literal in zip(values, tail):
                pieces.append(cell_text(value))
                pieces.append(literal)
            out.append("".join(pieces))
        return out


#: Names Airflow puts in a task's template context; ``{{ ds }}`` stays an Airflow template.
def protect_tokens(text: str, context_keys: Iterable[str]) -> str:
    """Wrap ``{{field}}`` tokens that are not Airflow context names in ``{% raw %}`` so that Airflow's
    Jinja rendering of the operator's ``text`` leaves them for the per-recipient templating."""
    keys = set(context_keys)

    def wrap(match: re.Match[str]) -> str:
        name = match.group(1).strip()
        if FIELD_NAME.fullmatch(name) and name not in keys:
            return "{% raw %}" + match.group(0) + "{% endraw %}"
        return match.group(0)

    if "{% raw %}" in text:  # the author took care of it
        return text
    return TOKEN.sub(wrap, text)


# ------------------------------------------------------------------------------------------ segments
@dataclass(frozen=True)
class SegmentCount:
    """How a text travels as SMS.

    :ivar encoding: ``GSM-7`` or ``UCS-2``.
    :ivar length: septets (GSM-7, extension characters count twice) or UTF-16 code units (UCS-2).
    :ivar segments: SMS parts (0 for an empty text).
    :ivar per_segment: the capacity of one part (160/153 or 70/67).
    :ivar remaining: units left in the last part.
    :ivar ucs2_characters: the distinct characters outside GSM-7, in order of first appearance.
    """

    encoding: str
    length: int
    segments: int
    per_segment: int
    remaining: int
    ucs2_characters: tuple[str, ...] = ()


def _pack(sizes: Iterable[int], single: int, per_part: int) -> tuple[int, int]:
    """Parts and units left when items of ``sizes`` are packed in order, none split across parts."""
    parts, used = 1, 0
    for size in sizes:
        if used + size > per_part:
            parts, used = parts + 1, 0
        used += size
    return parts, per_part - used


def count_segments(text: str) -> SegmentCount:
    """Count the SMS parts of ``text`` per GSM 03.38 (see the module docstring)."""
    if not text:
        return SegmentCount(GSM7, 0, 0, 160, 160)
    chars = set(text)
    if chars <= GSM7_ALL:
        extension = chars & GSM7_EXTENSION
        length = len(text) + (sum(text.count(c) for c in extension) if extension else 0)
        if length <= 160:
            return SegmentCount(GSM7, length, 1, 160, 160 - length)
        if not extension:
            parts = -(-length // 153)
            return SegmentCount(GSM7, length, parts, 153, parts * 153 - length)
        parts, left = _pack((2 if c in GSM7_EXTENSION else 1 for c in text), 160, 153)
        return SegmentCount(GSM7, length, parts, 153, left)
    outside = tuple(dict.fromkeys(c for c in text if c not in GSM7_ALL))
    astral = any(ord(c) > 0xFFFF for c in chars)
    length = len(text) + (sum(1 for c in text if ord(c) > 0xFFFF) if astral else 0)
    if length <= 70:
        return SegmentCount(UCS2, length, 1, 70, 70 - length, outside)
    if not astral:
        parts = -(-length // 67)
        return SegmentCount(UCS2, length, parts, 67, parts * 67 - length, outside)
    parts, left = _pack((2 if ord(c) > 0xFFFF else 1 for c in text), 70, 67)
    return SegmentCount(UCS2, length, parts, 67, left, outside)


def describe_character(char: str) -> str:
    """``'ş' U+015F LATIN SMALL LETTER S WITH CEDILLA``: visible even for invisible characters."""
    name = unicodedata.name(char, "")
    shown = char if char.isprintable() and not char.isspace() else ""
    return " ".join(p for p in (repr(shown) if shown else "", f"U+{ord(char):04X}", name) if p)


# ------------------------------------------------------------------------------------------ sender, ids
ALPHANUMERIC_SENDER = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9 ._&-]{3,11}")
NUMERIC_SENDER = re.compile(r"\+?[0-9]{3,16}")


def check_sender(sender: Any) -> str:
    """The sender as Infobip takes it: alphanumeric 3-11 characters or numeric 3-16 digits."""
    text = "" if sender is None else str(sender).strip()
    if ALPHANUMERIC_SENDER.fullmatch(text) or NUMERIC_SENDER.fullmatch(text):
        return text
    raise SmsConfigError(
        f"The sender {text!r} is not valid: use an alphanumeric sender of 3 to 11 characters (letters, "
        "digits, space . _ & -, at least one letter) or a number of 3 to 16 digits"
    )


# ------------------------------------------------------------------------------------------ options
def _regional_options(
    problems: list[str],
    *,
    india_dlt_principal_entity_id: Any,
    india_dlt_content_template_id: Any,
    turkey_iys_brand_code: Any,
    turkey_iys_recipient_type: Any,
    south_korea_reseller_code: Any,
    south_korea_title: Any,
) -> dict[str, Any]:
    """The ``regional`` compliance options: India DLT, Turkey IYS, South Korea."""
    regional: dict[str, Any] = {}
    principal = as_text(india_dlt_principal_entity_id)
    template = as_text(india_dlt_content_template_id)
    if template and not principal:
        problems.append("india_dlt_content_template_id needs india_dlt_principal_entity_id")
    if principal:
        regional["indiaDlt"] = {"principalEntityId": principal}
        if template:
            regional["indiaDlt"]["contentTemplateId"] = template
    brand = whole_number(turkey_iys_brand_code, "turkey_iys_brand_code", problems)
    recipient_type = choice(
        turkey_iys_recipient_type, "turkey_iys_recipient_type", IYS_RECIPIENT_TYPES, problems
    )
    if brand is not None and recipient_type is None and as_text(turkey_iys_recipient_type) is None:
        problems.append("turkey_iys_brand_code needs turkey_iys_recipient_type (BIREYSEL or TACIR)")
    if recipient_type:
        regional["turkeyIys"] = {"recipientType": recipient_type}
        if brand is not None:
            regional["turkeyIys"]["brandCode"] = brand
    reseller = whole_number(south_korea_reseller_code, "south_korea_reseller_code", problems)
    title = as_text(south_korea_title)
    max_len(title, "south_korea_title", MAX_KOREA_TITLE, problems)
    korea: dict[str, Any] = {}
    if reseller is not None:
        korea["resellerCode"] = reseller
    if title:
        korea["title"] = title
    if korea:
        regional["southKorea"] = korea
    return regional


def _webhook_options(
    problems: list[str],
    notify_url: Any,
    notify_content_type: Any,
    intermediate_report: Any,
    callback_data: Any,
) -> dict[str, Any]:
    """The delivery-report ``webhooks``: URL, intermediate reports, content type, callback data."""
    webhooks: dict[str, Any] = {}
    url = as_text(notify_url)
    if url is not None and not re.fullmatch(r"https?://\S+", url):
        problems.append(f"notify_url must be an http(s) URL, got {url!r}")
    intermediate = flag(intermediate_report, "intermediate_report", problems)
    delivery: dict[str, Any] = {}
    if url:
        delivery["url"] = url
    if intermediate is not None:
        delivery["intermediateReport"] = intermediate
    if delivery:
        webhooks["delivery"] = delivery
    content_type = as_text(notify_content_type)
    if content_type is not None and content_type not in CONTENT_TYPES:
        problems.append(
            f"notify_content_type must be one of {', '.join(CONTENT_TYPES)}, got {content_type!r}"
        )
    if content_type or url:
        webhooks["contentType"] = content_type or "application/json"
    data = None if callback_data is None else str(callback_data)
    max_len(data, "callback_data", MAX_CALLBACK_DATA, problems)
    if data:
        webhooks["callbackData"] = data
    return webhooks


def _tracking_options(
    problems: list[str],
    shorten_url: Any,
    track_clicks: Any,
    remove_protocol: Any,
    tracking_url: Any,
    custom_domain: Any,
) -> dict[str, Any]:
    """URL shortening and click ``tracking``."""
    tracking: dict[str, Any] = {}
    for key, value, name in (
        ("shortenUrl", shorten_url, "shorten_url"),
        ("trackClicks", track_clicks, "track_clicks"),
        ("removeProtocol", remove_protocol, "remove_protocol"),
    ):
        given = flag(value, name, problems)
        if given is not None:
            tracking[key] = given
    for key, value in (("trackingUrl", tracking_url), ("customDomain", custom_domain)):
        text = as_text(value)
        if text:
            tracking[key] = text
    if tracking.get("shortenUrl") is False and (
        tracking.get("trackClicks") or "customDomain" in tracking or tracking.get("removeProtocol")
    ):
        problems.append("track_clicks, custom_domain and remove_protocol need shorten_url")
    if tracking and "shortenUrl" not in tracking:
        tracking["shortenUrl"] = True
    return tracking


@dataclass(frozen=True)
class SmsOptions:
    """Every option of a broadcast, checked and in Infobip's shape.

    Build it with :meth:`from_args`, which collects every problem and raises them together.
    """

    sender: str | None = None
    message_options: dict[str, Any] = field(default_factory=dict)
    content_options: dict[str, Any] = field(default_factory=dict)
    webhooks: dict[str, Any] = field(default_factory=dict)
    schedule: dict[str, Any] = field(default_factory=dict)
    tracking: dict[str, Any] = field(default_factory=dict)
    include_sms_count: bool = False
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_args(
        cls,
        *,
        now: datetime,
        sender: Any = None,
        validity_period: Any = None,
        delivery_time_window: Any = None,
        send_at: Any = None,
        sending_speed_limit: Any = None,
        shorten_url: Any = None,
        track_clicks: Any = None,
        tracking_url: Any = None,
        custom_domain: Any = None,
        remove_protocol: Any = None,
        notify_url: Any = None,
        notify_content_type: Any = None,
        intermediate_report: Any = None,
        callback_data: Any = None,
        transliteration: Any = None,
        language_code: Any = None,
        flash: Any = None,
        india_dlt_principal_entity_id: Any = None,
        india_dlt_content_template_id: Any = None,
        turkey_iys_brand_code: Any = None,
        turkey_iys_recipient_type: Any = None,
        south_korea_reseller_code: Any = None,
        south_korea_title: Any = None,
        entity_id: Any = None,
        application_id: Any = None,
        campaign_reference_id: Any = None,
        include_sms_count: Any = None,
    ) -> SmsOptions:
        """Check every option; raise :class:`SmsConfigError` listing all problems at once."""
        problems: list[str] = []
        warnings: list[str] = []
        checked_sender = None
        if as_text(sender) is not None:
            try:
                checked_sender = check_sender(sender)
            except SmsConfigError as exc:
                problems.append(str(exc))
        options = message_options(
            problems,
            warnings,
            entity_id=entity_id,
            application_id=application_id,
            validity_period=validity_period,
            delivery_time_window=delivery_time_window,
            campaign_reference_id=campaign_reference_id,
        )
        is_flash = flag(flash, "flash", problems)
        if is_flash is not None:
            options["flash"] = is_flash
        regional = _regional_options(
            problems,
            india_dlt_principal_entity_id=india_dlt_principal_entity_id,
            india_dlt_content_template_id=india_dlt_content_template_id,
            turkey_iys_brand_code=turkey_iys_brand_code,
            turkey_iys_recipient_type=turkey_iys_recipient_type,
            south_korea_reseller_code=south_korea_reseller_code,
            south_korea_title=south_korea_title,
        )
        if regional:
            options["regional"] = regional
        content: dict[str, Any] = {}
        translit = choice(transliteration, "transliteration", TRANSLITERATIONS, problems)
        if translit:
            content["transliteration"] = translit
        language = choice(language_code, "language_code", LANGUAGE_CODES, problems)
        if language:
            content["language"] = {"languageCode": language}
        webhooks = _webhook_options(
            problems, notify_url, notify_content_type, intermediate_report, callback_data
        )
        schedule: dict[str, Any] = {}
        when = parse_send_at(send_at, now, problems, warnings)
        if when:
            schedule["sendAt"] = when
        speed = parse_sending_speed_limit(sending_speed_limit, problems)
        if speed:
            schedule["sendingSpeedLimit"] = speed
        tracking = _tracking_options(
            problems, shorten_url, track_clicks, remove_protocol, tracking_url, custom_domain
        )
        count = flag(include_sms_count, "include_sms_count", problems)
        if problems:
            raise SmsConfigError(f"{len(problems)} problem(s) with the SMS options: " + "; ".join(problems))
        return cls(
            sender=checked_sender,
            message_options=options,
            content_options=content,
            webhooks=webhooks,
            schedule=schedule,
            tracking=tracking,
            include_sms_count=bool(count),
            warnings=tuple(warnings),
        )

    @property
    def deferral(self) -> tuple[str, ...]:
        """The options that let Infobip hold accepted messages back (``send_at``,
        ``delivery_time_window``, ``sending_speed_limit``): until such a message leaves, Infobip's logs
        may not show it, so its absence there does not prove it was not accepted."""
        found = []
        if self.schedule.get("sendAt"):
            found.append("send_at")
        if self.message_options.get("deliveryTimeWindow"):
            found.append("delivery_time_window")
        if self.schedule.get("sendingSpeedLimit"):
            found.append("sending_speed_limit")
        return tuple(found)

    @property
    def transliterated(self) -> bool:
        """True when Infobip may change the text (transliteration or a national language table)."""
        language = (self.content_options.get("language") or {}).get("languageCode", "NONE")
        return self.content_options.get("transliteration", "NONE") != "NONE" or language != "NONE"


# ------------------------------------------------------------------------------------------ batching
class Recipient(NamedTuple):
    """One message to send: ``message_id`` (deterministic), ``to`` (E.164 digits) and the rendered text.

    A named tuple (immutable, like a frozen dataclass): a plan makes one per member, and a million of
    them are built from columns (``Recipient._make``) in a fraction of a dataclass's time and memory.
    """

    message_id: str
    to: str
    text: str


Group = tuple[str, list[tuple[str, str]]]  # (text, [(to, message_id), ...])


def plan_batches(recipients: Sequence[Recipient], size: int = MAX_DESTINATIONS) -> list[list[Group]]:
    """Requests of at most ``size`` destinations; recipients with the same text share one message.

    Texts keep the order of their first recipient; a text shared by more than ``size`` recipients
    is split over consecutive requests.
    """
    if not 1 <= size <= MAX_DESTINATIONS:
        raise SmsConfigError(f"batch_size must be between 1 and {MAX_DESTINATIONS}, got {size}")
    by_text: dict[str, list[tuple[str, str]]] = {}
    for r in recipients:
        by_text.setdefault(r.text, []).append((r.to, r.message_id))
    batches: list[list[Group]] = []
    current: list[Group] = []
    room = size
    for text, destinations in by_text.items():
        start = 0
        while start < len(destinations):
            take = destinations[start : start + room]
            current.append((text, take))
            start += len(take)
            room -= len(take)
            if room == 0:
                batches.append(current)
                current, room = [], size
    if current:
        batches.append(current)
    return batches


def count_batches(recipients: int, size: int = MAX_DESTINATIONS) -> int:
    """How many requests :func:`plan_batches` makes of ``recipients`` recipients, without building them:
    every request but the last is full (texts share requests), so ``ceil(recipients / size)``."""
    if not 1 <= size <= MAX_DESTINATIONS:
        raise SmsConfigError(f"batch_size must be between 1 and {MAX_DESTINATIONS}, got {size}")
    return -(-recipients // size)


def batch_ids(batch: Sequence[Group]) -> list[str]:
    return [mid for _, destinations in batch for _, mid in destinations]


def build_body(batch: Sequence[Group], options: SmsOptions, bulk_id: str) -> dict[str, Any]:
    """The ``POST /sms/3/messages`` body of one batch."""
    messages = []
    for text, destinations in batch:
        message: dict[str, Any] = {}
        if options.sender:
            message["sender"] = options.sender
        message["destinations"] = [{"to": to, "messageId": mid} for to, mid in destinations]
        message["content"] = {"text": text, **options.content_options}
        if options.message_options:
            message["options"] = options.message_options
        if options.webhooks:
            message["webhooks"] = options.webhooks
        messages.append(message)
    request_options: dict[str, Any] = {"schedule": {"bulkId": bulk_id, **options.schedule}}
    if options.tracking:
        request_options["tracking"] = options.tracking
    if options.include_sms_count:
        request_options["includeSmsCountInResponse"] = True
    return {"messages": messages, "options": request_options}


# ------------------------------------------------------------------------------------------ plan
@dataclass
class SegmentPlan:
    """Segments of a broadcast's messages, for the dry run and ``max_segments``."""

    messages: int = 0
    total_segments: int = 0
    by_segments: Counter[int] = field(default_factory=Counter)
    by_encoding: Counter[str] = field(default_factory=Counter)
    ucs2_characters: Counter[str] = field(default_factory=Counter)
    longest: SegmentCount | None = None
    too_long: int = 0

    def add(self, count: SegmentCount, max_segments: int | None = None, messages: int = 1) -> None:
        """Count ``messages`` messages of one text (its :class:`SegmentCount`); texts are added in the
        order of their first message, so :attr:`longest` is the first of the longest."""
        self.messages += messages
        self.total_segments += count.segments * messages
        self.by_segments[count.segments] += messages
        self.by_encoding[count.encoding] += messages
        for char in count.ucs2_characters:
            self.ucs2_characters[char] += messages
        if self.longest is None or count.segments > self.longest.segments:
            self.longest = count
        if max_segments is not None and count.segments > max_segments:
            self.too_long += messages

    def as_dict(
        self, price_per_segment: float | None = None, top_characters: int = 20, currency: str | None = None
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "messages": self.messages,
            "total_segments": self.total_segments,
            "messages_by_segments": {str(k): v for k, v in sorted(self.by_segments.items())},
            "messages_by_encoding": dict(sorted(self.by_encoding.items())),
            "ucs2_characters": [
                {"character": describe_character(c), "messages": n}
                for c, n in self.ucs2_characters.most_common(top_characters)
            ],
        }
        if self.longest is not None:
            out["longest"] = {
                "segments": self.longest.segments,
                "encoding": self.longest.encoding,
                "length": self.longest.length,
            }
        if price_per_segment is not None:
            out["price_per_segment"] = price_per_segment
            out["estimated_cost"] = round(self.total_segments * price_per_segment, 6)
            if currency:
                out["currency"] = currency
        return out

    def lines(self, price_per_segment: float | None = None, currency: str | None = None) -> list[str]:
        """The plan as a few log lines: encoding (and what forces UCS-2), parts per message, total, cost."""
        if not self.messages:
            return ["No message to send"]
        encodings = ", ".join(f"{n} {name}" for name, n in sorted(self.by_encoding.items()))
        lines = [f"Encoding: {encodings}"]
        if self.ucs2_characters:
            shown = ", ".join(
                f"{describe_character(c)} in {n}" for c, n in self.ucs2_characters.most_common(5)
            )
            more = len(self.ucs2_characters) - 5
            lines[0] += f"; characters forcing UCS-2: {shown}" + (f" and {more} more" if more > 0 else "")
        parts = ", ".join(
            f"{n} messages of {k} part{'s' if k > 1 else ''}" for k, n in sorted(self.by_segments.items())
        )
        lines.append(f"SMS parts per message: {parts}")
        if self.longest is not None:
            lines[-1] += (
                f"; the longest: {self.longest.length} characters, {self.longest.segments} parts "
                f"({self.longest.encoding})"
            )
        total = f"Total: {self.messages} messages, {self.total_segments} SMS parts"
        if price_per_segment is not None:
            unit = f" {currency}" if currency else ""
            total += (
                f"; cost at {price_per_segment:g}{unit} per part: "
                f"{round(self.total_segments * price_per_segment, 6):g}{unit}"
            )
        lines.append(total)
        return lines


def answer_statuses(answer: Any) -> tuple[Counter[str], int]:
    """Status group counts and summed ``messageCount`` of a send answer (or a logs page)."""
    statuses: Counter[str] = Counter()
    segments = 0
    items = answer.get("messages") if isinstance(answer, Mapping) else None
    for item in items or []:
        status = item.get("status") or {}
        statuses[str(status.get("groupName") or "UNKNOWN")] += 1
        details = item.get("details") or {}
        segments += int(details.get("messageCount") or 0)
    return statuses, segments


#: The SMS options an operator takes as keyword arguments: those of :meth:`SmsOptions.from_args`.
SMS_OPTION_NAMES = tuple(name for name in inspect.signature(SmsOptions.from_args).parameters if name != "now")


# ------------------------------------------------------------------------------------------ channel
#: ``/sms/3/logs`` keeps 48 hours; an intent older than this cannot be reconciled safely.
LOGS_HORIZON = 47 * 3600.0
#: message ids per ``/sms/3/logs`` query: Infobip caps the ``messageId`` values at 2048 characters
#: (60 ids of 32 characters and their separators make 1979).
LOG_QUERY_IDS = 60


class SmsChannel(ChannelBase):
    """SMS for the broadcast engine: requests of ``POST /sms/3/messages`` grouped by text, answers'
    status groups, and the lookup in ``GET /sms/3/logs``."""

    send_endpoint = "sms.send"
    logs_name = "GET /sms/3/logs"
    logs_horizon = LOGS_HORIZON

    def batches(self, recipients: Sequence[Recipient], size: int) -> list[list[Group]]:
        return plan_batches(recipients, size)

    def batch_ids(self, batch: Sequence[Group]) -> list[str]:
        return batch_ids(batch)

    def send(self, batch: Sequence[Group], bulk_id: str) -> Any:
        return self.hook.send_sms(build_body(batch, self.options, bulk_id))

    def statuses(self, answer: Any) -> tuple[Counter[str], int]:
        return answer_statuses(answer)

    def lookup(self, bulk_id: str, ids: Sequence[str]) -> Iterable[dict[str, Any]]:
        for start in range(0, len(ids), LOG_QUERY_IDS):
            yield from self.hook.sms_logs(
                bulk_id=bulk_id, message_ids=list(ids[start : start + LOG_QUERY_IDS])
            )
