"""EmailBroadcastOperator: one email per cohort member, exactly once, on ``POST /email/4/messages``.

The exactly-once machinery is the broadcast engine's (:mod:`infobip_provider.engines.broadcast`);
this operator supplies the email channel (:class:`infobip_provider.email.EmailChannel`), the content
(an Infobip template or an inline subject and body), the placeholders per recipient and the plan's
words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from infobip_provider.email import EMAIL_OPTION_NAMES
from infobip_provider.engines.broadcast import BroadcastOperator, cohort_columns, paused_gc
from infobip_provider.operators.base import CohortOperator
from infobip_provider.values import as_number, as_text

if TYPE_CHECKING:
    from airflow.sdk import Context

    from infobip_provider.email import EmailOptions, EmailRecipient

__all__ = ["EmailBroadcastOperator"]
#: The members whose rendered email the dry run's summary previews, unless told otherwise.
PREVIEW_ROWS = 3


class EmailBroadcastOperator(BroadcastOperator):
    """Send one email to every member of a cohort, exactly once, with Infobip's options.

    The content is an Infobip email template (``template_id``) or inline: a ``subject`` with an
    ``html`` and/or ``text`` body. Per-recipient values go to Infobip as placeholders (a JSON string
    per recipient, as Infobip requires): ``placeholders={"placeholder": "column"}``; the inline
    content's ``{{name}}`` tokens are also filled from the same-named column. A missing value is
    empty text; a column the cohort does not have stops the run before anything is sent. At most
    ``batch_size`` recipients go in one request.

    ``dry_run`` returns the plan: counts, the planned requests and a preview of the first
    ``preview_rows`` members' emails with their placeholders filled (in the summary only: the task log
    carries counts, never addresses or values). ``test_recipients`` sends the first rows' emails to
    those addresses only.

    The JSON summary: ``bulk_id``; ``recipients``; ``sent`` (every try counted); ``sent_this_try``;
    ``already_sent``; ``reconciled`` (found in ``GET /email/4/logs`` after a lost answer or a crash);
    ``skipped`` with ``skipped_by_reason``; ``rejected``; ``statuses``; ``calls``; ``seconds_waited``;
    ``plan``; ``rejects_uri``; in a dry run ``requests_planned`` and ``preview``.

    :param template_id: an Infobip email template id (templated).
    :param subject: inline subject, ≤ 1000 characters (templated; ``{{name}}`` tokens are left for
        Infobip, Airflow context names such as ``{{ ds }}`` are rendered by Airflow).
    :param html: inline HTML body (templated, like ``subject``).
    :param text: inline plain-text body (templated, like ``subject``).
    :param placeholders: ``{"placeholder": "column"}`` (templated; JSON or Python-literal text is read back).
    :param email_column: the column of email addresses (lower-cased and checked; rows without a usable
        address are rejected with the reason).
    :param sender: ``"Name <address>"`` or an address (templated); required for inline content, optional
        when the template defines it.
    :param reply_to: the reply-to address (templated).
    :param send_at: a datetime or ISO text (templated), at most 180 days ahead.
    :param validity_period: minutes (int), a timedelta, ``"48h"`` or ``{"amount", "timeUnit"}``.
    :param delivery_time_window: ``{"days": [...], "from": "09:00", "to": "20:00"}`` in UTC (templated).
    :param track_opens: track opens; ``track_clicks``, ``tracking_url``: Infobip's tracking options.
    :param notify_url: delivery report webhook (templated); ``intermediate_report`` and ``callback_data``
        (templated, ≤ 4000 characters) go with it.
    :param campaign_reference_id: campaign reference id (templated).
    :param entity_id: platform entity id (default: the connection's ``entity_id`` extra).
    :param application_id: platform application id (default: the connection's ``application_id`` extra).
    :param test_recipients: addresses that get the first rows' emails instead of the cohort (templated):
        a list, its JSON or Python-literal text, or addresses separated by commas or new lines.
    :param preview_rows: members previewed in a dry run's summary.

    The cohort and safety params are those of :class:`~infobip_provider.operators.base.CohortOperator`;
    ``batch_size``, ``bulk_id``, ``allow_bulk_id_reuse``, ``reconcile_delay`` and ``max_send_attempts``
    those of :class:`~infobip_provider.engines.broadcast.BroadcastOperator`.
    """

    template_fields: Sequence[str] = (
        "template_id",
        "subject",
        "html",
        "text",
        "placeholders",
        *CohortOperator.cohort_fields,
        "email_column",
        "sender",
        "reply_to",
        "send_at",
        "validity_period",
        "delivery_time_window",
        "notify_url",
        "callback_data",
        "campaign_reference_id",
        *BroadcastOperator.broadcast_fields,
    )
    template_fields_renderers = {
        "cohort_sql": "sql",
        "html": "html",
        "placeholders": "json",
        "delivery_time_window": "json",
    }
    ui_color = "#90be6d"

    option_names = EMAIL_OPTION_NAMES
    channel_name = "email"
    identity = "email"
    token_fields = ("subject", "html", "text")  # the inline content's placeholders are Infobip's

    def __init__(
        self,
        *,
        placeholders: Mapping[str, str] | str | None = None,
        email_column: str = "email",
        preview_rows: int = PREVIEW_ROWS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.placeholders = placeholders
        self.email_column = email_column
        self.preview_rows = preview_rows

    # ------------------------------------------------------------------ checks
    def _options(self) -> EmailOptions:
        from infobip_provider.email import EmailOptions

        return EmailOptions.from_args(now=datetime.fromtimestamp(self._clock(), UTC), **self.given_options())

    def _test_addresses(self) -> list[str]:
        from infobip_provider.cohorts import normalize_email

        return self.test_addresses(normalize_email, "valid email addresses")

    # ----------------------------------------------------------------- execute
    def execute(self, context: Context) -> dict[str, Any]:
        from infobip_provider.email import EmailChannel, effective_placeholders, parse_placeholders

        options = self._options()
        for warning in options.warnings:
            self.log.warning("Email option: %s", warning)
        mapping = effective_placeholders(parse_placeholders(self.placeholders), options)
        preview_rows = as_number(self.preview_rows, "preview_rows", int, 0) or 0
        dry_run = self.is_dry_run()
        test_addresses = self._test_addresses()
        bulk_id, explicit = self.broadcast_id(context, test=bool(test_addresses))
        with paused_gc():
            prepared = self._read_cohort(context, mapping)
            recipients = self._recipients(bulk_id, prepared, mapping, test_addresses)
            recipients, respect = self.respect(
                context, prepared, recipients, bulk_id, test=bool(test_addresses)
            )
        summary = self._plan_summary(bulk_id, dry_run, test_addresses, prepared, recipients, options, mapping)
        self.respect_summary(summary, respect)
        if dry_run:
            return self._dry_run(summary, recipients, options, preview_rows, respect)
        channel = EmailChannel(self.hook, options)
        _, result = self.deliver(
            context,
            prepared,
            bulk_id,
            channel,
            recipients,
            explicit=explicit,
            respect=respect,
            test=bool(test_addresses),
        )
        summary.update(result)
        self.log_outcome(summary, len(recipients))
        return summary

    def _read_cohort(self, context: Context, mapping: Mapping[str, str]) -> Any:
        """Read and normalise the cohort; check the placeholders' columns against it."""
        from infobip_provider.cohorts import IdentityColumns
        from infobip_provider.email import EmailConfigError

        column = as_text(self.email_column) or "email"
        prepared = self.read_cohort(context, IdentityColumns(email=column, phone=None), key="email")
        prepared.check_reject_ratio(self.max_reject_ratio, self.log)
        if prepared.empty and not prepared.columns:
            return prepared
        available = cohort_columns(column, "email", prepared.columns)
        unknown = sorted({c for c in mapping.values() if c not in available})
        if unknown:
            raise EmailConfigError(
                f"The placeholders use {len(unknown)} column(s) the cohort does not have: {', '.join(unknown)}. "
                f"Cohort columns: {', '.join(available) or 'none'}. Nothing was sent."
            )
        return prepared

    def _recipients(
        self, bulk_id: str, prepared: Any, mapping: Mapping[str, str], test_addresses: list[str]
    ) -> list[EmailRecipient]:
        from infobip_provider.email import EmailRecipient, placeholder_json
        from infobip_provider.engines.broadcast import message_id

        members = prepared.members
        addresses: list[str] = [] if members.empty else members["email"].tolist()
        texts: list[str | None] = [None] * len(addresses)
        if mapping and addresses:
            available = cohort_columns(as_text(self.email_column) or "email", "email", prepared.columns)
            columns = {name: members[available[column]].tolist() for name, column in mapping.items()}
            texts = [
                placeholder_json({name: values[i] for name, values in columns.items()})
                for i in range(len(addresses))
            ]
        if test_addresses:
            if not addresses:
                raise AirflowFailException("The cohort has no usable row to render the test emails from")
            texts = [texts[i % len(texts)] for i in range(len(test_addresses))]
            addresses = test_addresses
        return [EmailRecipient(message_id(bulk_id, a), a, t) for a, t in zip(addresses, texts)]

    def _plan_summary(
        self,
        bulk_id: str,
        dry_run: bool,
        test_addresses: list[str],
        prepared: Any,
        recipients: list[EmailRecipient],
        options: EmailOptions,
        mapping: Mapping[str, str],
    ) -> dict[str, Any]:
        skipped = dict(prepared.stats.get("rejected_by_reason") or {})
        who = f"{len(test_addresses)} test recipients" if test_addresses else f"{len(recipients)} recipients"
        self.log.info("Plan for the broadcast %s: one email to each of %s", bulk_id, who)
        self.log.info(
            "Content: %s; %d placeholders per recipient (%s)%s",
            options.describe(),
            len(mapping),
            ", ".join(mapping) or "none",
            f"; held back by {', '.join(options.deferral)}" if options.deferral else "",
        )
        return {
            "bulk_id": bulk_id,
            "dry_run": dry_run,
            "test": bool(test_addresses),
            "cohort": prepared.stats,
            "recipients": len(recipients),
            "skipped": 0 if test_addresses else sum(skipped.values()),
            "skipped_by_reason": {} if test_addresses else skipped,
            "plan": {
                "messages": len(recipients),
                "content": options.describe(),
                "placeholders": dict(mapping),
            },
        }

    def _dry_run(
        self,
        summary: dict[str, Any],
        recipients: list[EmailRecipient],
        options: EmailOptions,
        rows: int,
        respect: Any,
    ) -> dict[str, Any]:
        from infobip_provider.email import plan_batches, render_preview
        from infobip_provider.operators.common import validate_batch_size

        size = validate_batch_size(self.batch_size)
        summary["requests_planned"] = respect.count_requests(
            recipients, lambda some: len(plan_batches(some, size))
        )
        summary["preview"] = [render_preview(r, options) for r in recipients[:rows]]
        self.log.info(
            "Dry run, nothing sent: it would take %d requests. The summary previews the first %d emails. "
            "Turn dry_run off to send.",
            summary["requests_planned"],
            len(summary["preview"]),
        )
        return summary
