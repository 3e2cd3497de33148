"""Email building blocks, pure: options, placeholders, batching, bodies and the broadcast channel.

- :class:`EmailOptions`: every option of ``POST /email/4/messages`` (a JSON body, not multipart:
  that is the older ``/email/3/send``), checked at plan time: the content (an Infobip template id, or
  an inline subject with an HTML and/or text body), the sender (``Name <address>`` or an address),
  reply-to, ``sendAt`` at most 180 days ahead, validity, delivery window, open and click tracking,
  the delivery-report webhook, campaign reference and platform ids.
- :func:`parse_placeholders`: ``{"placeholder": "column"}`` as given (an object, or its JSON or
  Python-literal text). Inline content's own ``{{name}}`` tokens are filled from the same-named
  column unless the mapping names another one.
- :func:`placeholder_json`: one recipient's placeholders as the JSON **string** Infobip requires.
- :func:`plan_batches` / :func:`build_body`: one message per request, one destination per recipient
  (each with its deterministic ``messageId`` and placeholders), at most 1000 per request.
- :func:`render_preview`: a recipient's subject and bodies with the placeholders filled, for the
  dry run's preview (Infobip renders the real ones).
- :class:`EmailChannel`: the broadcast engine's channel, reconciled against ``GET /email/4/logs``.

Nothing here touches the network, the clock (it is passed in) or pandas.
"""

from __future__ import annotations

import inspect
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from infobip_provider.cohorts.identities import normalize_email
from infobip_provider.errors import InfobipConfigError
from infobip_provider.options import (
    MAX_CALLBACK_DATA,
    ChannelBase,
    cell_text,
    flag,
    max_len,
    message_options,
    parse_send_at,
)
from infobip_provider.sms import FIELD_NAME, TOKEN, answer_statuses
from infobip_provider.values import BadValue, as_literal, as_text

MAX_DESTINATIONS = 1000  # [assumed] per request, as for SMS: Infobip publishes no email limit
MAX_SUBJECT = 1000
#: ``/email/4/logs`` keeps 48 hours [assumed, as SMS]; an older unconfirmed batch cannot be reconciled.
LOGS_HORIZON = 47 * 3600.0
#: message ids per ``/email/4/logs`` query, as for SMS (2048 characters of ``messageId`` values).
LOG_QUERY_IDS = 60
CONTENT_TYPES = ("application/json", "application/xml")

_SENDER = re.compile(r"\s*(?:(?P<name>[^<>]*?)\s*<(?P<angle>[^<>\s]+)>|(?P<bare>[^<>\s]+))\s*")


class EmailConfigError(InfobipConfigError):
    """An email option, the content or the placeholders are unusable; found before anything is sent."""


def check_sender(sender: Any) -> str:
    """The sender as Infobip takes it: ``Name <address>`` or an address (the address checked)."""
    text = "" if sender is None else str(sender).strip()
    found = _SENDER.fullmatch(text)
    address = (found.group("angle") or found.group("bare")) if found else None
    if not address or normalize_email(address) is None:
        raise EmailConfigError(
            f"The sender {text!r} is not valid: use 'Name <address@example.com>' or an address"
        )
    name = (found.group("name") or "").strip() if found else ""
    return f"{name} <{address}>" if name else address


def tokens(text: str | None) -> tuple[str, ...]:
    """The ``{{name}}`` placeholders of inline content, in order of first use (other ``{{...}}`` kept)."""
    if not text:
        return ()
    names = (m.group(1).strip() for m in TOKEN.finditer(text))
    return tuple(dict.fromkeys(n for n in names if FIELD_NAME.fullmatch(n)))


def parse_placeholders(value: Any) -> dict[str, str]:
    """``{"placeholder": "column"}`` (an object, or its text); empty when not given."""
    try:
        value = as_literal(value, "placeholders")
    except BadValue as exc:
        raise EmailConfigError(str(exc)) from None
    if value in (None, "", {}):
        return {}
    if not isinstance(value, Mapping):
        raise EmailConfigError(
            'placeholders must be an object {"placeholder": "column"}, e.g. {"first_name": "first_name"}, '
            f"got {value!r}"
        )
    out: dict[str, str] = {}
    bad = []
    for name, column in value.items():
        name_text, column_text = str(name).strip(), as_text(column)
        if not FIELD_NAME.fullmatch(name_text) or column_text is None:
            bad.append(f"{name!r}: {column!r}")
            continue
        out[name_text] = column_text
    if bad:
        raise EmailConfigError(
            "placeholders need names of letters, digits and _ and a cohort column each: " + ", ".join(bad)
        )
    return out


def placeholder_json(values: Mapping[str, Any]) -> str:
    """One recipient's placeholders as the JSON string Infobip wants (missing values as empty text)."""
    return json.dumps(
        {name: cell_text(value) for name, value in values.items()}, ensure_ascii=False, separators=(",", ":")
    )


def _content(problems: list[str], template_id: Any, subject: Any, html: Any, text: Any) -> dict[str, Any]:
    """An Infobip template id, or an inline subject with an HTML and/or text body; not both."""
    template = as_text(template_id)
    inline = {k: v for k, v in (("subject", subject), ("html", html), ("text", text)) if as_text(v)}
    if template and inline:
        problems.append(
            f"give template_id or inline content ({', '.join(inline)}), not both: a template's content wins"
        )
        return {}
    if template:
        return {"templateId": template}
    if not inline:
        problems.append("give template_id (an Infobip email template) or a subject with html and/or text")
        return {}
    if "subject" not in inline:
        problems.append("inline content needs a subject")
    if not ({"html", "text"} & set(inline)):
        problems.append("inline content needs html or text")
    content = {key: str(value) for key, value in inline.items()}
    max_len(content.get("subject"), "subject", MAX_SUBJECT, problems)
    return content


def _webhooks(
    problems: list[str], notify_url: Any, intermediate_report: Any, callback_data: Any
) -> dict[str, Any]:
    webhooks: dict[str, Any] = {}
    url = as_text(notify_url)
    if url is not None and not re.fullmatch(r"https?://\S+", url):
        problems.append(f"notify_url must be an http(s) URL, got {url!r}")
    delivery: dict[str, Any] = {}
    if url:
        delivery["url"] = url
    intermediate = flag(intermediate_report, "intermediate_report", problems)
    if intermediate is not None:
        delivery["intermediateReport"] = intermediate
    if delivery:
        webhooks["delivery"] = delivery
        webhooks["contentType"] = "application/json"
    data = None if callback_data is None else str(callback_data)
    max_len(data, "callback_data", MAX_CALLBACK_DATA, problems)
    if data:
        webhooks["callbackData"] = data
    return webhooks


@dataclass(frozen=True)
class EmailOptions:
    """Every option of an email broadcast, checked and in Infobip's shape (see :meth:`from_args`)."""

    content: dict[str, Any]
    sender: str | None = None
    reply_to: str | None = None
    message_options: dict[str, Any] = field(default_factory=dict)
    webhooks: dict[str, Any] = field(default_factory=dict)
    schedule: dict[str, Any] = field(default_factory=dict)
    tracking: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_args(
        cls,
        *,
        now: datetime,
        template_id: Any = None,
        subject: Any = None,
        html: Any = None,
        text: Any = None,
        sender: Any = None,
        reply_to: Any = None,
        send_at: Any = None,
        validity_period: Any = None,
        delivery_time_window: Any = None,
        track_opens: Any = None,
        track_clicks: Any = None,
        tracking_url: Any = None,
        notify_url: Any = None,
        intermediate_report: Any = None,
        callback_data: Any = None,
        campaign_reference_id: Any = None,
        entity_id: Any = None,
        application_id: Any = None,
    ) -> EmailOptions:
        """Check every option; raise :class:`EmailConfigError` listing all problems at once."""
        problems: list[str] = []
        warnings: list[str] = []
        content = _content(problems, template_id, subject, html, text)
        checked_sender = None
        if as_text(sender) is not None:
            try:
                checked_sender = check_sender(sender)
            except EmailConfigError as exc:
                problems.append(str(exc))
        elif content and "templateId" not in content:
            problems.append("inline content needs a sender ('Name <address@example.com>')")
        reply = as_text(reply_to)
        if reply is not None and normalize_email(reply) is None:
            problems.append(f"reply_to must be an email address, got {reply!r}")
        options = message_options(
            problems,
            warnings,
            entity_id=entity_id,
            application_id=application_id,
            validity_period=validity_period,
            delivery_time_window=delivery_time_window,
            campaign_reference_id=campaign_reference_id,
        )
        webhooks = _webhooks(problems, notify_url, intermediate_report, callback_data)
        schedule: dict[str, Any] = {}
        when = parse_send_at(send_at, now, problems, warnings)
        if when:
            schedule["sendAt"] = when
        tracking: dict[str, Any] = {}
        for key, value, name in (
            ("trackOpens", track_opens, "track_opens"),
            ("trackClicks", track_clicks, "track_clicks"),
        ):
            given = flag(value, name, problems)
            if given is not None:
                tracking[key] = given
        url = as_text(tracking_url)
        if url:
            tracking["trackingUrl"] = url
        if problems:
            raise EmailConfigError(
                f"{len(problems)} problem(s) with the email options: " + "; ".join(problems)
            )
        return cls(
            content=content,
            sender=checked_sender,
            reply_to=reply.lower() if reply else None,
            message_options=options,
            webhooks=webhooks,
            schedule=schedule,
            tracking=tracking,
            warnings=tuple(warnings),
        )

    @property
    def inline_tokens(self) -> tuple[str, ...]:
        """The ``{{name}}`` placeholders the inline subject and bodies use (none for a template)."""
        found: dict[str, None] = {}
        for key in ("subject", "text", "html"):
            found.update(dict.fromkeys(tokens(self.content.get(key))))
        return tuple(found)

    @property
    def deferral(self) -> tuple[str, ...]:
        """Options that let Infobip hold accepted messages back (``send_at``, ``delivery_time_window``):
        until such a message leaves, the logs may not show it."""
        found = []
        if self.schedule.get("sendAt"):
            found.append("send_at")
        if self.message_options.get("deliveryTimeWindow"):
            found.append("delivery_time_window")
        return tuple(found)

    def describe(self) -> str:
        """The content in a few words, for the plan line (no personal data)."""
        if "templateId" in self.content:
            return f"Infobip template {self.content['templateId']}"
        bodies = " and ".join(k for k in ("html", "text") if k in self.content)
        return f"inline subject with {bodies}"


#: The email options an operator takes as keyword arguments: those of :meth:`EmailOptions.from_args`.
EMAIL_OPTION_NAMES = tuple(
    name for name in inspect.signature(EmailOptions.from_args).parameters if name != "now"
)


def effective_placeholders(mapping: Mapping[str, str], options: EmailOptions) -> dict[str, str]:
    """Placeholder -> column: the inline content's tokens from the same-named column, then ``mapping``."""
    return {**{name: name for name in options.inline_tokens}, **mapping}


# ------------------------------------------------------------------------------------------ batching
@dataclass(frozen=True)
class EmailRecipient:
    """One email: ``message_id`` (deterministic), ``to`` (the address) and its placeholders (JSON text)."""

    message_id: str
    to: str
    placeholders: str | None = None


def plan_batches(
    recipients: Sequence[EmailRecipient], size: int = MAX_DESTINATIONS
) -> list[list[EmailRecipient]]:
    """Requests of at most ``size`` recipients, in cohort order."""
    if not 1 <= size <= MAX_DESTINATIONS:
        raise EmailConfigError(f"batch_size must be between 1 and {MAX_DESTINATIONS}, got {size}")
    return [list(recipients[i : i + size]) for i in range(0, len(recipients), size)]


def batch_ids(batch: Sequence[EmailRecipient]) -> list[str]:
    return [r.message_id for r in batch]


def _destination(recipient: EmailRecipient, reply_to: str | None) -> dict[str, Any]:
    to: dict[str, Any] = {"destination": recipient.to, "messageId": recipient.message_id}
    if recipient.placeholders is not None:
        to["placeholders"] = recipient.placeholders
    destination: dict[str, Any] = {"to": [to]}
    if reply_to:
        destination["replyTo"] = reply_to
    return destination


def build_body(batch: Sequence[EmailRecipient], options: EmailOptions, bulk_id: str) -> dict[str, Any]:
    """The ``POST /email/4/messages`` body of one batch: one message, one destination per recipient."""
    message: dict[str, Any] = {}
    if options.sender:
        message["sender"] = options.sender
    message["destinations"] = [_destination(r, options.reply_to) for r in batch]
    message["content"] = dict(options.content)
    if options.message_options:
        message["options"] = options.message_options
    if options.webhooks:
        message["webhooks"] = options.webhooks
    request_options: dict[str, Any] = {"schedule": {"bulkId": bulk_id, **options.schedule}}
    if options.tracking:
        request_options["tracking"] = options.tracking
    return {"messages": [message], "options": request_options}


def fill(text: str, values: Mapping[str, Any]) -> str:
    """``text`` with its ``{{name}}`` placeholders filled from ``values`` (others left as they are)."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1).strip()
        return cell_text(values.get(name)) if name in values else match.group(0)

    return TOKEN.sub(one, text)


def render_preview(recipient: EmailRecipient, options: EmailOptions, limit: int = 500) -> dict[str, Any]:
    """What ``recipient`` would get, for the dry run: placeholders, and the inline content filled."""
    values = json.loads(recipient.placeholders) if recipient.placeholders else {}
    preview: dict[str, Any] = {"to": recipient.to, "placeholders": values}
    if "templateId" in options.content:
        preview["template_id"] = options.content["templateId"]
    for key in ("subject", "text", "html"):
        if key in options.content:
            filled = fill(options.content[key], values)
            preview[key] = filled if len(filled) <= limit else filled[:limit] + "…"
    return preview


# ------------------------------------------------------------------------------------------ channel
class EmailChannel(ChannelBase):
    """Email for the broadcast engine: requests of ``POST /email/4/messages``, answers' status groups,
    and the lookup in ``GET /email/4/logs``."""

    send_endpoint = "email.send"
    logs_name = "GET /email/4/logs"
    logs_horizon = LOGS_HORIZON

    def batches(self, recipients: Sequence[EmailRecipient], size: int) -> list[list[EmailRecipient]]:
        return plan_batches(recipients, size)

    def batch_ids(self, batch: Sequence[EmailRecipient]) -> list[str]:
        return batch_ids(batch)

    def send(self, batch: Sequence[EmailRecipient], bulk_id: str) -> Any:
        return self.hook.send_email(build_body(batch, self.options, bulk_id))

    def statuses(self, answer: Any) -> tuple[Counter[str], int]:
        statuses, _ = answer_statuses(answer)
        return statuses, 0

    def lookup(self, bulk_id: str, ids: Sequence[str]) -> Iterable[dict[str, Any]]:
        for start in range(0, len(ids), LOG_QUERY_IDS):
            yield from self.hook.email_logs(
                bulk_id=bulk_id, message_ids=list(ids[start : start + LOG_QUERY_IDS])
            )
