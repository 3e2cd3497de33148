"""WhatsApp building blocks, pure: options, placeholders, batching, bodies and the broadcast channel.

- :class:`WhatsAppOptions`: the options of ``POST /whatsapp/1/message/template`` (and, in ``text``
  mode, ``POST /whatsapp/1/message/text``), checked at plan time: the registered sender number, the
  template's name (lowercase letters, digits, ``_``) and language, optional static header and buttons,
  ``notifyUrl``, callback data, URL options, platform ids and an SMS failover.
- :func:`template_values`: each member's body placeholders, in order (``{{1}}``, ``{{2}}`` ...);
  Infobip refuses an empty placeholder, so a member with an empty value is rejected with the reason.
- :func:`plan_batches` / :func:`build_template_body` / :func:`build_text_body`: template messages go
  up to ``size`` per request; a text message goes alone (the endpoint takes one per request).
- :class:`WhatsAppChannel`: the broadcast engine's channel. **WhatsApp has no logs to ask** what
  arrived (delivery reports are only pushed to ``notifyUrl``), so ``has_logs`` is False: the engine
  never resends an unanswered batch blindly (see ``on_unconfirmed`` in
  :mod:`infobip_provider.engines.broadcast`). Reports that reached the receiver
  (:mod:`infobip_provider.webhooks`) confirm such members later: :meth:`WhatsAppChannel.confirm_from_reports`.

Nothing here touches the network or pandas; only the channel's report lookup reads the state store.
"""

from __future__ import annotations

import inspect
import re
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from infobip_provider.errors import InfobipConfigError
from infobip_provider.options import ChannelBase, cell_text, flag, platform_options
from infobip_provider.sms import MessageTemplate, TemplateError
from infobip_provider.values import BadValue, as_literal, as_text

if TYPE_CHECKING:
    from infobip_provider.engines.broadcast import Ledger
    from infobip_provider.state import TargetState

MAX_MESSAGES = 1000  # [assumed] per template request, as for SMS: Infobip publishes no limit
MAX_SENDER = 24
MAX_CALLBACK_DATA = 4000
MAX_NOTIFY_URL = 2048
MAX_TEXT = 4096
MODES = ("template", "text")
TEMPLATE_NAME = re.compile(r"[a-z0-9_]{1,512}")
LANGUAGE = re.compile(r"[a-z]{2,3}(?:_[A-Za-z]{2,4})?")
SENDER = re.compile(r"\+?[0-9]{3,24}")


class WhatsAppConfigError(InfobipConfigError):
    """A WhatsApp option or the placeholders are unusable; found before anything is sent."""


def _literal(value: Any, name: str, kind: type, problems: list[str]) -> Any:
    try:
        value = as_literal(value, name)
    except BadValue as exc:
        problems.append(str(exc))
        return None
    if value in (None, "", {}, []):
        return None
    if not isinstance(value, kind):
        problems.append(f"{name} must be {'an object' if kind is dict else 'a list'}, got {value!r}")
        return None
    return value


def parse_placeholders(value: Any) -> list[str]:
    """``["column", ...]`` (a list, its JSON or Python-literal text, or columns separated by commas)."""
    try:
        value = as_literal(value, "placeholders")
    except BadValue as exc:
        raise WhatsAppConfigError(str(exc)) from None
    if value in (None, "", []):
        return []
    if isinstance(value, str):
        value = [v for v in value.split(",")]
    if not isinstance(value, (list, tuple)):
        raise WhatsAppConfigError(f"placeholders must be a list of cohort columns in order, got {value!r}")
    columns = [as_text(v) for v in value]
    if any(c is None for c in columns):
        raise WhatsAppConfigError(f"placeholders name an empty column: {value!r}")
    return [c for c in columns if c is not None]


@dataclass(frozen=True)
class WhatsAppOptions:
    """The options of a WhatsApp broadcast, checked and in Infobip's shape (see :meth:`from_args`)."""

    sender: str
    mode: str = "template"
    template_name: str | None = None
    language: str | None = None
    header: dict[str, Any] | None = None
    buttons: list[Any] | None = None
    text: MessageTemplate | None = None
    message_fields: dict[str, Any] = field(default_factory=dict)
    failover_sender: str | None = None
    failover_text: MessageTemplate | None = None

    @classmethod
    def from_args(
        cls,
        *,
        sender: Any = None,
        mode: Any = "template",
        template_name: Any = None,
        language: Any = None,
        header: Any = None,
        buttons: Any = None,
        text: Any = None,
        notify_url: Any = None,
        callback_data: Any = None,
        shorten_url: Any = None,
        track_clicks: Any = None,
        tracking_url: Any = None,
        remove_protocol: Any = None,
        custom_domain: Any = None,
        entity_id: Any = None,
        application_id: Any = None,
        failover_sender: Any = None,
        failover_text: Any = None,
    ) -> WhatsAppOptions:
        """Check every option; raise :class:`WhatsAppConfigError` listing all problems at once."""
        problems: list[str] = []
        chosen = (as_text(mode) or "template").lower()
        if chosen not in MODES:
            problems.append(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        number = as_text(sender)
        if number is None or not SENDER.fullmatch(number):
            problems.append(
                f"sender must be the registered WhatsApp number (3 to {MAX_SENDER} digits), got {sender!r}"
            )
        name, lang, body_text = as_text(template_name), as_text(language), None
        if chosen == "template":
            if name is None or not TEMPLATE_NAME.fullmatch(name):
                problems.append(
                    f"template_name must be the approved template's name (lowercase letters, digits, _), got {template_name!r}"
                )
            if lang is None or not LANGUAGE.fullmatch(lang):
                problems.append(
                    f"language must be the template's language code (e.g. en, en_GB), got {language!r}"
                )
        elif chosen == "text":
            try:
                body_text = MessageTemplate.parse(text)
            except TemplateError as exc:
                problems.append(f"text mode: {exc}")
            if body_text is not None and len(body_text.literal) > MAX_TEXT:
                problems.append(f"text must have at most {MAX_TEXT} characters")
        fields: dict[str, Any] = {}
        data = None if callback_data is None else str(callback_data)
        if data and len(data) > MAX_CALLBACK_DATA:
            problems.append(f"callback_data must have at most {MAX_CALLBACK_DATA} characters")
        if data:
            fields["callbackData"] = data
        url = as_text(notify_url)
        if url is not None and (not re.fullmatch(r"https?://\S+", url) or len(url) > MAX_NOTIFY_URL):
            problems.append(f"notify_url must be an http(s) URL of at most {MAX_NOTIFY_URL} characters")
        elif url:
            fields["notifyUrl"] = url
        url_options: dict[str, Any] = {}
        for key, value, label in (
            ("shortenUrl", shorten_url, "shorten_url"),
            ("trackClicks", track_clicks, "track_clicks"),
            ("removeProtocol", remove_protocol, "remove_protocol"),
        ):
            given = flag(value, label, problems)
            if given is not None:
                url_options[key] = given
        for key, value in (("trackingUrl", tracking_url), ("customDomain", custom_domain)):
            if as_text(value):
                url_options[key] = as_text(value)
        if url_options:
            url_options.setdefault("shortenUrl", True)
            fields["urlOptions"] = url_options
        fields.update(platform_options(entity_id, application_id, problems))
        fail_sender, fail_text = as_text(failover_sender), None
        if (fail_sender is None) != (as_text(failover_text) is None):
            problems.append("an SMS failover needs both failover_sender and failover_text")
        elif fail_sender is not None and chosen == "text":
            problems.append("an SMS failover goes with template messages only (the text endpoint has none)")
        elif fail_sender is not None:
            from infobip_provider.sms import SmsConfigError, check_sender

            try:
                check_sender(fail_sender)
                fail_text = MessageTemplate.parse(failover_text)
            except SmsConfigError as exc:
                problems.append(f"SMS failover: {exc}")
        header_value = _literal(header, "header", dict, problems)
        buttons_value = _literal(buttons, "buttons", list, problems)
        if problems:
            raise WhatsAppConfigError(
                f"{len(problems)} problem(s) with the WhatsApp options: " + "; ".join(problems)
            )
        return cls(
            sender=str(number).lstrip("+"),
            mode=chosen,
            template_name=name if chosen == "template" else None,
            language=lang if chosen == "template" else None,
            header=header_value,
            buttons=buttons_value,
            text=body_text,
            message_fields=fields,
            failover_sender=fail_sender,
            failover_text=fail_text,
        )

    @property
    def send_endpoint(self) -> str:
        return "whatsapp.template" if self.mode == "template" else "whatsapp.text"

    @property
    def columns(self) -> tuple[str, ...]:
        """The cohort columns the text and the failover text use (``{{column}}`` tokens)."""
        found: dict[str, None] = {}
        for template in (self.text, self.failover_text):
            if template is not None:
                found.update(dict.fromkeys(template.fields))
        return tuple(found)

    def describe(self) -> str:
        if self.mode == "text":
            return "free text (delivered only inside the customer's 24-hour window)"
        return f"template {self.template_name} ({self.language})"


#: The WhatsApp options an operator takes as keyword arguments: those of :meth:`WhatsAppOptions.from_args`.
WHATSAPP_OPTION_NAMES = tuple(inspect.signature(WhatsAppOptions.from_args).parameters)


def template_values(
    columns: Sequence[str], values: Mapping[str, Sequence[Any]], rows: int
) -> tuple[list[tuple[str, ...] | None], list[str | None]]:
    """Each row's body placeholders in order, and the reason a row cannot be sent (``None`` when it
    can): Infobip refuses an empty placeholder."""
    out: list[tuple[str, ...] | None] = []
    reasons: list[str | None] = []
    lists = [values[c] for c in columns]
    for i in range(rows):
        row = tuple(cell_text(v[i]).strip() for v in lists)
        empty = [n for n, v in enumerate(row, 1) if not v]
        out.append(None if empty else row)
        reasons.append(empty_reason(empty[0], columns[empty[0] - 1]) if empty else None)
    return out, reasons


def empty_reason(position: int, column: str) -> str:
    return f"empty placeholder {{{{{position}}}}} ({column})"


# ------------------------------------------------------------------------------------------ batching
@dataclass(frozen=True)
class WhatsAppRecipient:
    """One message: ``message_id`` (deterministic), ``to`` (E.164 digits), the body placeholders (template
    mode) or the text (text mode), and the rendered SMS failover text when one is set."""

    message_id: str
    to: str
    placeholders: tuple[str, ...] = ()
    text: str | None = None
    failover_text: str | None = None


def plan_batches(
    recipients: Sequence[WhatsAppRecipient], size: int, mode: str = "template"
) -> list[list[WhatsAppRecipient]]:
    """Template requests of at most ``size`` messages; a text message alone in its request."""
    if not 1 <= size <= MAX_MESSAGES:
        raise WhatsAppConfigError(f"batch_size must be between 1 and {MAX_MESSAGES}, got {size}")
    step = size if mode == "template" else 1
    return [list(recipients[i : i + step]) for i in range(0, len(recipients), step)]


def batch_ids(batch: Sequence[WhatsAppRecipient]) -> list[str]:
    return [r.message_id for r in batch]


def _failover(recipient: WhatsAppRecipient, options: WhatsAppOptions) -> dict[str, Any]:
    if options.failover_sender and recipient.failover_text:
        return {"smsFailover": {"from": options.failover_sender, "text": recipient.failover_text}}
    return {}


def build_template_body(
    batch: Sequence[WhatsAppRecipient], options: WhatsAppOptions, bulk_id: str
) -> dict[str, Any]:
    """The ``POST /whatsapp/1/message/template`` body of one batch."""
    messages = []
    for r in batch:
        data: dict[str, Any] = {"body": {"placeholders": list(r.placeholders)}}
        if options.header:
            data["header"] = options.header
        if options.buttons:
            data["buttons"] = options.buttons
        messages.append(
            {
                "from": options.sender,
                "to": r.to,
                "messageId": r.message_id,
                "content": {
                    "templateName": options.template_name,
                    "templateData": data,
                    "language": options.language,
                },
                **options.message_fields,
                **_failover(r, options),
            }
        )
    return {"messages": messages, "bulkId": bulk_id}


def build_text_body(recipient: WhatsAppRecipient, options: WhatsAppOptions) -> dict[str, Any]:
    """The ``POST /whatsapp/1/message/text`` body of one message (the endpoint has no bulk id)."""
    return {
        "from": options.sender,
        "to": recipient.to,
        "messageId": recipient.message_id,
        "content": {"text": recipient.text or "", "previewUrl": False},
        **options.message_fields,
    }


def answer_statuses(answer: Any) -> Counter[str]:
    """Status group counts of a template answer (``messages[]``) or a text answer (one message)."""
    statuses: Counter[str] = Counter()
    if not isinstance(answer, Mapping):
        return statuses
    items = answer.get("messages") if "messages" in answer else [answer]
    for item in items or []:
        statuses[str(((item or {}).get("status") or {}).get("groupName") or "UNKNOWN")] += 1
    return statuses


def render_preview(recipient: WhatsAppRecipient, options: WhatsAppOptions) -> dict[str, Any]:
    """What ``recipient`` would get, for the dry run."""
    preview: dict[str, Any] = {"to": recipient.to}
    if options.mode == "template":
        preview["template"] = options.template_name
        preview["placeholders"] = list(recipient.placeholders)
    else:
        preview["text"] = recipient.text
    if recipient.failover_text:
        preview["sms_failover"] = recipient.failover_text
    return preview


# ------------------------------------------------------------------------------------------ channel
class WhatsAppChannel(ChannelBase):
    """WhatsApp for the broadcast engine. There are no logs to reconcile against (``has_logs`` False):
    an unanswered batch is never resent blindly; the engine applies ``on_unconfirmed``."""

    logs_name = "WhatsApp (no logs endpoint: reports are only pushed to notifyUrl)"
    logs_horizon = 0.0
    has_logs = False

    def __init__(self, hook: Any, options: WhatsAppOptions) -> None:
        super().__init__(hook, options)
        self.send_endpoint = options.send_endpoint

    def batches(self, recipients: Sequence[WhatsAppRecipient], size: int) -> list[list[WhatsAppRecipient]]:
        return plan_batches(recipients, size, self.options.mode)

    def batch_ids(self, batch: Sequence[WhatsAppRecipient]) -> list[str]:
        return batch_ids(batch)

    def send(self, batch: Sequence[WhatsAppRecipient], bulk_id: str) -> Any:
        if self.options.mode == "text":
            (only,) = batch
            return self.hook.send_whatsapp_text(build_text_body(only, self.options))
        return self.hook.send_whatsapp_template(build_template_body(batch, self.options, bulk_id))

    def statuses(self, answer: Any) -> tuple[Counter[str], int]:
        return answer_statuses(answer), 0

    def lookup(self, bulk_id: str, ids: Sequence[str] | set[str]) -> Iterable[dict[str, Any]]:
        """The delivery reports of ``ids`` that reached the receiver (:mod:`infobip_provider.webhooks`),
        as log-like items. Never asked by the engine (``has_logs`` is False: a report that has not
        arrived proves nothing); :meth:`confirm_from_reports` reads it before a run sends."""
        from infobip_provider.pushes import reported
        from infobip_provider.state import StateStore

        state_uri = getattr(self.hook, "state_uri", None)  # a hook without a state store has no reports
        if not ids or not state_uri:
            return []
        return reported(StateStore(state_uri), self.hook.state_scope, bulk_id, ids)

    def confirm_from_reports(self, target: TargetState, bulk_id: str) -> Confirmed:
        """Count as sent the members the ledger holds unconfirmed (batches left open by a lost answer,
        or recorded unconfirmed with ``on_unconfirmed="skip"``) whose delivery report has arrived since:
        a report is Infobip's proof that it took the message. Written to the ledger's journal as the
        engine's own records (see :func:`confirmation_records`), so every later try folds them in."""
        from infobip_provider.engines.broadcast import fold_ledger

        ledger = fold_ledger(target.read_journal())
        waiting = ledger.open_ids | (ledger.unconfirmed - ledger.sent)
        if not waiting:
            return Confirmed()
        found = {
            str(item["messageId"]): str((item.get("status") or {}).get("groupName") or "UNKNOWN")
            for item in self.lookup(bulk_id, waiting)
        }
        records, confirmed = confirmation_records(ledger, found, uuid.uuid4().hex[:8])
        for record in records:
            target.append_journal(record)
        return confirmed


@dataclass(frozen=True)
class Confirmed:
    """Members :meth:`WhatsAppChannel.confirm_from_reports` confirmed: ``open`` from batches left open,
    ``skipped`` from those recorded unconfirmed (the ledger then holds them unconfirmed *and* sent;
    the engine counts them sent)."""

    open: frozenset[str] = frozenset()
    skipped: frozenset[str] = frozenset()

    def __len__(self) -> int:
        return len(self.open) + len(self.skipped)


def confirmation_records(
    ledger: Ledger, found: Mapping[str, str], attempt: str
) -> tuple[list[dict[str, Any]], Confirmed]:
    """The journal records that confirm the members of ``found`` (message id -> status group of the
    report that arrived) which the ledger holds open or unconfirmed.

    An open batch with reports for every member is closed as ``reconciled``; with reports for some, a
    new ``intent`` keeps the others open (with the batch's time) before the batch is closed with the
    reported ones. Members recorded ``unconfirmed`` are opened again and closed as ``reconciled`` at
    once. The engine folds these records like its own; nothing is sent for them.
    """
    from infobip_provider.checkpoint import journal_record

    records: list[dict[str, Any]] = []
    from_open: set[str] = set()
    for key, (started, ids) in ledger.open.items():
        known = [i for i in ids if i in found]
        if not known:
            continue
        rest = [i for i in ids if i not in found]
        if rest:
            records.append(journal_record(attempt, "reports", f"{key}-rest", "intent", ids=rest, t=started))
        statuses = Counter(found[i] for i in known)
        records.append(
            journal_record(attempt, "reports", key, "reconciled", known=known, statuses=dict(statuses))
        )
        from_open.update(known)
    late = sorted(i for i in ledger.unconfirmed - ledger.sent if i in found)
    if late:
        key = f"{attempt}-reported"
        records.append(journal_record(attempt, "reports", key, "intent", ids=late))
        statuses = Counter(found[i] for i in late)
        records.append(
            journal_record(attempt, "reports", key, "reconciled", known=late, statuses=dict(statuses))
        )
    return records, Confirmed(frozenset(from_open), frozenset(late))
