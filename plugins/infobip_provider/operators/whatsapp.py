"""WhatsAppBroadcastOperator: one WhatsApp message per cohort member, never twice, on the broadcast engine.

The exactly-once machinery is the broadcast engine's (:mod:`infobip_provider.engines.broadcast`); this
operator supplies the WhatsApp channel (:class:`infobip_provider.whatsapp.WhatsAppChannel`), the
template and its placeholders per member, and the plan's words. WhatsApp has no logs to ask what
arrived, so an unanswered request is never sent again blindly: ``on_unconfirmed`` decides.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from infobip_provider.engines.broadcast import (
    ON_UNCONFIRMED,
    BroadcastOperator,
    PhoneBroadcastOperator,
    paused_gc,
)
from infobip_provider.operators.base import CohortOperator
from infobip_provider.values import as_number, as_text
from infobip_provider.whatsapp import WHATSAPP_OPTION_NAMES

if TYPE_CHECKING:
    from airflow.sdk import Context

    from infobip_provider.whatsapp import Confirmed, WhatsAppChannel, WhatsAppOptions, WhatsAppRecipient

__all__ = ["WhatsAppBroadcastOperator"]
PREVIEW_ROWS = 3


class WhatsAppBroadcastOperator(PhoneBroadcastOperator):
    """Send one WhatsApp template message to every member of a cohort, never twice.

    ``template_name`` and ``language`` name a template Meta approved; ``placeholders=["column", ...]``
    fill its body's ``{{1}}``, ``{{2}}`` ... in order from each member's row. Infobip refuses an empty
    placeholder, so a member with an empty value is rejected with that reason (in the rejects file)
    and the rest go on; a column the cohort does not have stops the run before anything is sent.
    ``mode="text"`` sends ``text`` (with ``{{column}}`` tokens) on ``POST /whatsapp/1/message/text``
    instead, one request per message, delivered only inside the customer's 24-hour window.

    **No logs.** Infobip keeps no WhatsApp logs to ask, so a request whose answer was lost (a 5xx, a
    timeout, a crash after the ledger's intent) is never sent again blindly. ``on_unconfirmed``:
    ``"fail"`` (default) keeps those members open in the ledger, sends the rest, and fails the task
    with their count, the ledger and the choices; ``"skip"`` records them as unconfirmed (counted in
    the summary, never sent); ``"resend"`` sends them again (whoever got the first gets a second).
    **Delivery reports confirm them**: when ``notify_url`` (or the account's webhook) points at the
    receiver (``/infobip-webhooks/<conn_id>/reports/whatsapp``), a later run of the same broadcast
    (the same DAG run, or the same ``bulk_id``) counts every unconfirmed member whose report arrived
    as sent and sends nobody again (``confirmed_by_reports`` in the summary).

    The JSON summary: as the SMS broadcast's (``bulk_id``, ``recipients``, ``sent``, ``sent_this_try``,
    ``already_sent``, ``skipped`` with ``skipped_by_reason``, ``rejected``, ``statuses``, ``calls``,
    ``plan``, ``rejects_uri``), plus ``unconfirmed`` and ``confirmed_by_reports``; in a dry run ``requests_planned`` and ``preview``
    (the first ``preview_rows`` members: the log carries counts only).

    :param sender: the registered WhatsApp sender number (templated).
    :param template_name: the approved template's name (templated).
    :param language: the template's language code, e.g. ``en`` (templated).
    :param placeholders: cohort columns for the body placeholders, in order (templated; a list or its text).
    :param header: the template's header object as Infobip takes it, e.g. ``{"type": "TEXT",
        "placeholder": "Spring"}`` (templated; the same for every member).
    :param buttons: the template's button values as Infobip takes them, e.g. ``[{"type": "URL",
        "parameter": "spring"}]`` (templated; the same for every member).
    :param mode: ``template`` (default) or ``text``.
    :param text: the text of ``text`` mode, with ``{{column}}`` tokens (templated).
    :param phone_column: the column of phone numbers (E.164 or national, read with the region).
    :param country_column: optional column of ISO country codes to read national numbers per row.
    :param default_region: region for national numbers (None: international numbers only).
    :param notify_url: delivery and seen reports webhook (templated); ``callback_data`` (templated).
    :param shorten_url: Infobip's URL options: ``track_clicks``, ``tracking_url``, ``remove_protocol``,
        ``custom_domain``.
    :param entity_id: platform entity id (default: the connection's ``entity_id`` extra).
    :param application_id: platform application id (default: the connection's ``application_id`` extra).
    :param failover_sender: SMS sender for members WhatsApp cannot reach; ``failover_text`` its text
        with ``{{column}}`` tokens (templated).
    :param on_unconfirmed: ``fail``, ``skip`` or ``resend`` (above).
    :param test_recipients: numbers that get the first rows' messages instead of the cohort (templated).
    :param preview_rows: members previewed in a dry run's summary.

    The cohort and safety params are those of :class:`~infobip_provider.operators.base.CohortOperator`;
    ``batch_size``, ``bulk_id``, ``allow_bulk_id_reuse`` and ``max_send_attempts`` those of
    :class:`~infobip_provider.engines.broadcast.BroadcastOperator`.
    """

    template_fields: Sequence[str] = (
        "sender",
        "template_name",
        "language",
        "placeholders",
        "header",
        "buttons",
        "text",
        *CohortOperator.cohort_fields,
        "notify_url",
        "callback_data",
        "failover_text",
        "on_unconfirmed",
        *PhoneBroadcastOperator.phone_fields,
        *BroadcastOperator.broadcast_fields,
    )
    template_fields_renderers = {"cohort_sql": "sql", "header": "json", "buttons": "json"}
    ui_color = "#43aa8b"

    option_names = WHATSAPP_OPTION_NAMES
    channel_name = "whatsapp"
    takes_windows = False  # WhatsApp messages take no delivery window: quiet members wait for a later try
    token_fields = ("text", "failover_text")

    def __init__(
        self,
        *,
        placeholders: Sequence[str] | str | None = None,
        on_unconfirmed: str = "fail",
        preview_rows: int = PREVIEW_ROWS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.placeholders = placeholders
        self.on_unconfirmed = on_unconfirmed
        self.preview_rows = preview_rows

    def _options(self) -> WhatsAppOptions:
        from infobip_provider.whatsapp import WhatsAppOptions

        given = self.given_options()
        given["mode"] = as_text(given["mode"]) or "template"
        return WhatsAppOptions.from_args(**given)

    def _on_unconfirmed(self) -> str:
        choice = (as_text(self.on_unconfirmed) or "fail").lower()
        if choice not in ON_UNCONFIRMED:
            raise AirflowFailException(
                f"on_unconfirmed must be one of {', '.join(ON_UNCONFIRMED)}, got {choice!r}"
            )
        return choice

    # ----------------------------------------------------------------- execute
    def execute(self, context: Context) -> dict[str, Any]:
        from infobip_provider.whatsapp import WhatsAppChannel, parse_placeholders

        options = self._options()
        columns = parse_placeholders(self.placeholders)
        if options.mode == "text" and columns:
            raise AirflowFailException(
                "placeholders fill a template's body: in text mode use {{column}} in text"
            )
        on_unconfirmed = self._on_unconfirmed()
        preview_rows = as_number(self.preview_rows, "preview_rows", int, 0) or 0
        dry_run = self.is_dry_run()
        test_numbers = self.test_numbers()
        bulk_id, explicit = self.broadcast_id(context, test=bool(test_numbers))
        with paused_gc():
            prepared = self._read_cohort(context, columns, options)
            recipients, empty = self._recipients(bulk_id, prepared, columns, options, test_numbers)
            recipients, respect = self.respect(
                context, prepared, recipients, bulk_id, test=bool(test_numbers)
            )
        summary = self._plan_summary(
            bulk_id, dry_run, test_numbers, prepared, recipients, empty, options, columns
        )
        self.respect_summary(summary, respect)
        if dry_run:
            return self._dry_run(summary, recipients, options, preview_rows)
        channel = WhatsAppChannel(self.hook, options)
        confirmed = self._confirm_from_reports(channel, bulk_id, recipients)
        _, result = self.deliver(
            context,
            prepared,
            bulk_id,
            channel,
            recipients,
            explicit=explicit,
            on_unconfirmed=on_unconfirmed,
            respect=respect,
            test=bool(test_numbers),
        )
        summary.update(result)
        summary["confirmed_by_reports"] = len(confirmed)
        self.log_outcome(summary, len(recipients))
        return summary

    def _confirm_from_reports(
        self, channel: WhatsAppChannel, bulk_id: str, recipients: Sequence[WhatsAppRecipient]
    ) -> Confirmed:
        """Before sending: members an earlier try left unconfirmed whose delivery reports reached the
        receiver count as sent (never sent again, no longer unconfirmed)."""
        target = self.target(bulk_id)
        with self.locked(target, f"the broadcast {bulk_id}"):
            confirmed = channel.confirm_from_reports(target, bulk_id)
        if confirmed:
            self.log.info(
                "%d unconfirmed members of the broadcast %s are confirmed by delivery reports that reached "
                "the receiver (%d of unanswered batches, %d recorded unconfirmed)",
                len(confirmed),
                bulk_id,
                len(confirmed.open),
                len(confirmed.skipped),
            )
        return confirmed

    def _read_cohort(self, context: Context, columns: list[str], options: WhatsAppOptions) -> Any:
        from infobip_provider.whatsapp import WhatsAppConfigError

        prepared = self.read_phones(context)
        if prepared.empty and not prepared.columns:
            return prepared
        available = self.columns_of(prepared)
        unknown = [c for c in dict.fromkeys([*columns, *options.columns]) if c not in available]
        if unknown:
            raise WhatsAppConfigError(
                f"The placeholders or texts use {len(unknown)} column(s) the cohort does not have: "
                f"{', '.join(unknown)}. Cohort columns: {', '.join(available) or 'none'}. Nothing was sent."
            )
        return prepared

    def _recipients(
        self,
        bulk_id: str,
        prepared: Any,
        columns: list[str],
        options: WhatsAppOptions,
        test_numbers: list[str],
    ) -> tuple[list[WhatsAppRecipient], dict[str, int]]:
        """One recipient per member; members with an empty placeholder go to the rejects with the reason."""
        from infobip_provider.engines.broadcast import message_id
        from infobip_provider.whatsapp import WhatsAppRecipient, template_values

        members = prepared.members
        rows = 0 if members.empty else len(members)
        available = self.columns_of(prepared) if rows else {}
        values = (
            {c: members[available[c]].tolist() for c in dict.fromkeys([*columns, *options.columns])}
            if rows
            else {}
        )
        placeholders, row_reasons = template_values(columns, values, rows)
        texts = options.text.render_columns(values, rows) if options.text and rows else [None] * rows
        failovers = (
            options.failover_text.render_columns(values, rows)
            if options.failover_text and rows
            else [None] * rows
        )
        for i in range(rows):
            if row_reasons[i] is None and options.mode == "text" and not (texts[i] or "").strip():
                row_reasons[i] = "empty message"
        keep = [i for i in range(rows) if row_reasons[i] is None]
        dropped = [i for i in range(rows) if row_reasons[i] is not None]
        if dropped and not test_numbers:
            self._reject(prepared, dropped, row_reasons)
        phones = members["phone"].tolist() if rows else []
        if test_numbers:
            if not keep:
                raise AirflowFailException("The cohort has no usable row to render the test messages from")
            picks = [keep[i % len(keep)] for i in range(len(test_numbers))]
            to = test_numbers
        else:
            picks, to = keep, [phones[i] for i in keep]
        recipients = [
            WhatsAppRecipient(
                message_id(bulk_id, number), number, placeholders[i] or (), texts[i], failovers[i]
            )
            for number, i in zip(to, picks)
        ]
        return recipients, dict(Counter(r for r in row_reasons if r is not None))

    @staticmethod
    def _reject(prepared: Any, rows: list[int], reasons: list[str | None]) -> None:
        """Add members that cannot be sent (an empty placeholder or text) to the cohort's rejects."""
        import pandas as pd

        members = prepared.members.iloc[rows]
        frame = pd.DataFrame(
            {
                "row": members["row"].to_numpy(),
                "key": members["phone"].to_numpy(),
                "value": None,
                "reason": [reasons[i] for i in rows],
            }
        )
        merged = pd.concat([prepared.rejects, frame], ignore_index=True) if len(prepared.rejects) else frame
        prepared.rejects = merged.sort_values("row", kind="stable").reset_index(drop=True)

    def _plan_summary(
        self,
        bulk_id: str,
        dry_run: bool,
        test_numbers: list[str],
        prepared: Any,
        recipients: list[WhatsAppRecipient],
        empty: dict[str, int],
        options: WhatsAppOptions,
        columns: list[str],
    ) -> dict[str, Any]:
        skipped = {**dict(prepared.stats.get("rejected_by_reason") or {}), **empty}
        who = f"{len(test_numbers)} test recipients" if test_numbers else f"{len(recipients)} recipients"
        self.log.info("Plan for the broadcast %s: one WhatsApp message to each of %s", bulk_id, who)
        self.log.info(
            "Content: %s; %d body placeholders (%s)%s; %d members not sent for an empty placeholder or text",
            options.describe(),
            len(columns),
            ", ".join(columns) or "none",
            "; SMS failover set" if options.failover_sender else "",
            sum(empty.values()),
        )
        return {
            "bulk_id": bulk_id,
            "dry_run": dry_run,
            "test": bool(test_numbers),
            "cohort": prepared.stats,
            "recipients": len(recipients),
            "skipped": 0 if test_numbers else sum(skipped.values()),
            "skipped_by_reason": {} if test_numbers else skipped,
            "plan": {
                "messages": len(recipients),
                "content": options.describe(),
                "placeholders": list(columns),
            },
        }

    def _dry_run(
        self,
        summary: dict[str, Any],
        recipients: list[WhatsAppRecipient],
        options: WhatsAppOptions,
        rows: int,
    ) -> dict[str, Any]:
        from infobip_provider.operators.common import validate_batch_size
        from infobip_provider.whatsapp import plan_batches, render_preview

        batches = plan_batches(recipients, validate_batch_size(self.batch_size), options.mode)
        summary["requests_planned"] = len(batches)
        summary["preview"] = [render_preview(r, options) for r in recipients[:rows]]
        if options.mode == "text":
            summary["plan"]["note"] = "text messages reach only customers who wrote within the last 24 hours"
        self.log.info(
            "Dry run, nothing sent: it would take %d requests%s. The summary previews the first %d messages. "
            "Turn dry_run off to send.",
            summary["requests_planned"],
            " (text mode: one message per request, delivered only inside the 24-hour window)"
            if options.mode == "text"
            else "",
            len(summary["preview"]),
        )
        return summary
