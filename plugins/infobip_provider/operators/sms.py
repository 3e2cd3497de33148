"""SmsBroadcastOperator: one personalised SMS per cohort member, exactly once, with every Infobip option.

The exactly-once machinery is the broadcast engine's (:mod:`infobip_provider.engines.broadcast`);
this operator supplies the SMS channel (:class:`infobip_provider.sms.SmsChannel`), the message
template, Infobip's SMS options, the segment plan and its words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from infobip_provider.engines.broadcast import (
    BroadcastLedgerError,
    BroadcastOperator,
    BroadcastReuseError,
    BroadcastUncertainError,
    PhoneBroadcastOperator,
    paused_gc,
)
from infobip_provider.operators.base import CohortOperator
from infobip_provider.operators.common import validate_batch_size
from infobip_provider.sms import LOG_QUERY_IDS, SMS_OPTION_NAMES
from infobip_provider.values import as_number, as_text

if TYPE_CHECKING:
    from airflow.sdk import Context

    from infobip_provider.sms import MessageTemplate, Recipient, SmsOptions

__all__ = [
    "LOG_QUERY_IDS",
    "BroadcastLedgerError",
    "BroadcastReuseError",
    "BroadcastUncertainError",
    "SmsBroadcastOperator",
]


class SmsBroadcastOperator(PhoneBroadcastOperator):
    """Send one personalised SMS to every member of a cohort, exactly once, with Infobip's options.

    The message ``text`` takes ``{{column}}`` tokens filled from each recipient's cohort row (a
    missing value renders empty; an unknown column fails before anything is sent). Recipients with
    the same text share one message; at most ``batch_size`` destinations go in one request.
    ``dry_run`` returns the plan: counts, segments per message (GSM-7 or UCS-2, naming the characters
    that force UCS-2), total segments and the cost at ``price_per_segment``. ``test_recipients`` sends
    the first rows' messages to those numbers only.

    Numbers and texts are never logged. The JSON summary: ``bulk_id``; ``recipients``; ``sent``
    (recipients Infobip accepted in this broadcast, every try counted); ``sent_this_try``;
    ``already_sent`` (confirmed before this try sent anything); ``reconciled`` (found in Infobip's
    logs after a lost answer or a crash); ``skipped`` with ``skipped_by_reason`` (no usable number,
    duplicate, empty message); ``rejected`` (status group REJECTED); ``segments``; ``statuses``
    (group name -> messages, from the answers and the logs); ``calls`` and ``seconds_waited``; ``plan``
    (with ``respect``: the suppressed, those at the frequency cap, and with quiet hours the members and
    UTC window of each zone); ``rejects_uri``.

    :param text: the message, with ``{{column}}`` tokens (templated; Airflow context names such as
        ``{{ ds }}`` are rendered by Airflow first, other bare names are left for the recipients).
    :param phone_column: the column of phone numbers (E.164 or national, read with the region).
    :param country_column: optional column of ISO country codes to read national numbers per row.
    :param default_region: region for national numbers (None: international numbers only).
    :param sender: the sender id (templated; default: the connection's ``sender`` extra), alphanumeric
        3-11 characters or numeric 3-16 digits.
    :param validity_period: minutes (int), a timedelta, ``"48h"`` or ``{"amount", "timeUnit"}``.
    :param delivery_time_window: ``{"days": ["MONDAY", ...], "from": "09:00", "to": "20:00"}`` in UTC
        (templated; JSON or Python-literal text is read back); at least one hour long; days default
        to every day.
    :param send_at: a datetime or ISO text (templated), at most 180 days ahead.
    :param sending_speed_limit: messages per minute or ``{"amount", "timeUnit": MINUTE|HOUR|DAY}``.
    :param shorten_url: shorten URLs in the text; ``track_clicks``, ``tracking_url``,
        ``custom_domain``, ``remove_protocol``: Infobip's URL options.
    :param notify_url: delivery report webhook (templated); ``intermediate_report``,
        ``notify_content_type``, ``callback_data`` (templated, ≤ 4000 characters) go with it.
    :param transliteration: ``NONE``, ``TURKISH``, ``GREEK``, ``CYRILLIC`` ... ``ALL``.
    :param language_code: ``NONE``, ``TR``, ``ES``, ``PT`` or ``AUTODETECT``.
    :param flash: send flash SMS.
    :param india_dlt_principal_entity_id: India DLT principal entity id; ``india_dlt_content_template_id``.
    :param turkey_iys_brand_code: Turkey IYS brand code; ``turkey_iys_recipient_type`` BIREYSEL or TACIR.
    :param south_korea_reseller_code: South Korea reseller code; ``south_korea_title``.
    :param entity_id: platform entity id (default: the connection's ``entity_id`` extra).
    :param application_id: platform application id (default: the connection's ``application_id`` extra).
    :param campaign_reference_id: campaign reference id (templated).
    :param include_sms_count: ask Infobip for the SMS count in the answer (summed in the summary).
    :param test_recipients: numbers that get the first rows' messages instead of the cohort (templated):
        a list, a JSON or Python-literal list as text (``"['+41...']"``, ``"[]"``), or numbers separated
        by commas or new lines; empty means none.
    :param max_segments: refuse to send when a message would take more SMS parts than this.
    :param price_per_segment: price of one SMS part, for the cost estimate.
    :param currency: the currency of ``price_per_segment`` (e.g. ``EUR``), shown with the cost.

    The cohort and safety params (``cohort_path``, ``cohort_sql``, ``cohort_conn_id``,
    ``max_reject_ratio``, ``dry_run``, ``infobip_conn_id``) are those of
    :class:`~infobip_provider.operators.base.CohortOperator`; ``batch_size``, ``bulk_id``,
    ``allow_bulk_id_reuse``, ``reconcile_delay`` and ``max_send_attempts`` those of the broadcast
    engine's :class:`~infobip_provider.engines.broadcast.BroadcastOperator`, and so are the ones that
    respect the recipients: ``quiet_hours``, ``default_timezone``, ``timezone_column``,
    ``max_per_person``, ``respect_suppression``, ``suppression_path``, ``suppression_sql``,
    ``outcomes_conn_id``, ``replies_table``, ``reports_table``.
    """

    template_fields: Sequence[str] = (
        "text",
        *CohortOperator.cohort_fields,
        "sender",
        "delivery_time_window",
        "send_at",
        "validity_period",
        "notify_url",
        "callback_data",
        "campaign_reference_id",
        "max_segments",
        "price_per_segment",
        "currency",
        *PhoneBroadcastOperator.phone_fields,
        *BroadcastOperator.broadcast_fields,
    )
    template_fields_renderers = {"cohort_sql": "sql", "text": "md", "delivery_time_window": "json"}
    ui_color = "#f9c74f"

    option_names = SMS_OPTION_NAMES
    channel_name = "sms"
    token_fields = ("text",)
    connection_defaults = ("sender", "entity_id", "application_id")

    def __init__(
        self,
        *,
        text: str,
        max_segments: int | None = None,
        price_per_segment: float | None = None,
        currency: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.text = text
        self.max_segments = max_segments
        self.price_per_segment = price_per_segment
        self.currency = currency

    # ------------------------------------------------------------------ checks
    def _options(self) -> SmsOptions:
        from infobip_provider.sms import SmsOptions

        return SmsOptions.from_args(now=datetime.fromtimestamp(self._clock(), UTC), **self.given_options())

    def _numbers(self) -> tuple[int | None, float | None, int]:
        max_segments = as_number(self.max_segments, "max_segments", int, 1)
        price = as_number(self.price_per_segment, "price_per_segment", float, 0)
        return max_segments, price, validate_batch_size(self.batch_size)

    # ----------------------------------------------------------------- execute
    def execute(self, context: Context) -> dict[str, Any]:
        from infobip_provider.sms import MessageTemplate, SmsChannel

        template = MessageTemplate.parse("" if self.text is None else str(self.text))
        options = self._options()
        for warning in options.warnings:
            self.log.warning("SMS option: %s", warning)
        max_segments, price, batch_size = self._numbers()
        dry_run = self.is_dry_run()
        test_numbers = self.test_numbers()
        bulk_id, explicit = self.broadcast_id(context, test=bool(test_numbers))
        with paused_gc():
            prepared = self._read_cohort(context, template)
            recipients, empty = self._recipients(bulk_id, *self._messages(prepared, template, test_numbers))
            recipients, respect = self.respect(
                context, prepared, recipients, bulk_id, test=bool(test_numbers)
            )
            plan, counts = self._segment_plan(recipients, max_segments, options)
        summary = self._plan_summary(bulk_id, dry_run, test_numbers, prepared, recipients, empty, plan, price)
        self.respect_summary(summary, respect)
        if plan.too_long:
            summary["plan"]["too_long"] = {"messages": plan.too_long, "max_segments": max_segments}
        if options.transliterated:
            summary["plan"]["segments_note"] = (
                "transliteration or a language table is set: Infobip may fit the text in fewer segments"
            )
        if dry_run:
            return self._dry_run(summary, recipients, batch_size, plan, max_segments, respect)
        if plan.too_long:
            longest = plan.longest
            raise AirflowFailException(
                f"{plan.too_long} of {len(recipients)} messages would take more than max_segments="
                f"{max_segments} SMS parts (the longest takes {longest.segments if longest else 0}, "
                f"{longest.encoding if longest else ''}); shorten the text or raise max_segments. "
                "Nothing was sent."
            )
        channel = SmsChannel(self.hook, options)
        run, result = self.deliver(
            context,
            prepared,
            bulk_id,
            channel,
            recipients,
            explicit=explicit,
            respect=respect,
            test=bool(test_numbers),
        )
        summary.update(result)
        summary["segments"] = sum(counts[r.text] for r in recipients if r.message_id in run.ledger.sent)
        if options.include_sms_count:
            summary["segments_reported"] = run.ledger.reported_segments
        if price is not None:
            summary["estimated_cost"] = round(summary["segments"] * price, 6)
        self.log_outcome(summary, len(recipients), f", {summary['segments']} SMS parts")
        return summary

    def _messages(self, prepared: Any, template: Any, test_numbers: list[str]) -> tuple[list[str], list[str]]:
        """Each recipient's number and rendered text (test numbers get the first rows' texts)."""
        columns = prepared.arrow_columns()  # the members' columns, without building the members frame
        texts = self._render_texts(prepared, template, columns)
        if not test_numbers:
            return _cells(columns.get("phone"), len(prepared.keys)), texts
        if not texts:
            raise AirflowFailException("The cohort has no usable row to render the test messages from")
        return test_numbers, [texts[i % len(texts)] for i in range(len(test_numbers))]

    def _plan_summary(
        self,
        bulk_id: str,
        dry_run: bool,
        test_numbers: list[str],
        prepared: Any,
        recipients: list[Recipient],
        empty: int,
        plan: Any,
        price: float | None,
    ) -> dict[str, Any]:
        """The plan's summary, and its lines in the log."""
        skipped = dict(prepared.stats.get("rejected_by_reason") or {})
        if empty:
            skipped["empty message"] = empty
        currency = as_text(self.currency)
        who = f"{len(test_numbers)} test recipients" if test_numbers else f"{len(recipients)} recipients"
        self.log.info("Plan for the broadcast %s: one message to each of %s", bulk_id, who)
        for line in plan.lines(price, currency):
            self.log.info("%s", line)
        return {
            "bulk_id": bulk_id,
            "dry_run": dry_run,
            "test": bool(test_numbers),
            "cohort": prepared.stats,
            "recipients": len(recipients),
            "skipped": 0 if test_numbers else sum(skipped.values()),
            "skipped_by_reason": {} if test_numbers else skipped,
            "plan": plan.as_dict(price, currency=currency),
        }

    def _dry_run(
        self,
        summary: dict[str, Any],
        recipients: list[Recipient],
        batch_size: int,
        plan: Any,
        max_segments: Any,
        respect: Any,
    ) -> dict[str, Any]:
        from infobip_provider.sms import count_batches

        summary["requests_planned"] = respect.count_requests(
            recipients, lambda some: count_batches(len(some), batch_size)
        )
        self.log.info(
            "Dry run, nothing sent: it would take %d requests. Turn dry_run off to send.",
            summary["requests_planned"],
        )
        if plan.too_long:
            self.log.warning(
                "%d messages would take more than max_segments=%s segments", plan.too_long, max_segments
            )
        return summary

    def _read_cohort(self, context: Context, template: Any) -> Any:
        """Read and normalise the cohort; check the template's tokens against its columns."""
        prepared = self.read_phones(context)
        if not (prepared.empty and not prepared.columns):
            template.check_fields(self.columns_of(prepared))
        return prepared

    def _render_texts(self, prepared: Any, template: Any, columns: Mapping[str, Any]) -> list[str]:
        """Each member's text, from the members' columns (:meth:`PreparedCohort.arrow_columns`)."""
        rows = len(prepared.keys)
        if not rows:
            return []
        available = self.columns_of(prepared)
        fields = {name: columns.get(available[name]) for name in template.fields}
        return render_texts(template, {k: [None] * rows if v is None else v for k, v in fields.items()}, rows)

    def _recipients(self, bulk_id: str, phones: list[str], texts: list[str]) -> tuple[list[Recipient], int]:
        """A recipient per number whose text is not blank (each distinct text is looked at once)."""
        from itertools import compress

        from infobip_provider.engines.broadcast import message_ids
        from infobip_provider.sms import Recipient

        blank = {text: not text.strip() for text in set(texts)}
        empty = 0
        if any(blank.values()):
            keep = [not blank[text] for text in texts]
            empty = len(keep) - sum(keep)
            phones, texts = list(compress(phones, keep)), list(compress(texts, keep))
        recipients = list(map(Recipient._make, zip(message_ids(bulk_id, phones), phones, texts)))
        if empty:
            self.log.warning("%d recipients skipped: their message renders empty", empty)
        return recipients, empty

    @staticmethod
    def _segment_plan(
        recipients: Sequence[Recipient], max_segments: int | None, options: SmsOptions
    ) -> tuple[Any, dict[str, int]]:
        """The segment plan of the recipients' messages, counted once per distinct text (in the order
        of their first recipient), and each text's segments."""
        from collections import Counter

        from infobip_provider.sms import SegmentPlan, count_segments

        plan = SegmentPlan()
        per_text: dict[str, int] = {}
        for text, messages in Counter(r.text for r in recipients).items():
            count = count_segments(text)
            plan.add(count, max_segments, messages)
            per_text[text] = count.segments
        return plan, per_text


def _cells(values: Any, rows: int) -> list[Any]:
    """A member column (Arrow, NumPy or a list; None: the cohort has none) as the members frame holds
    its cells, in a list."""
    if values is None:
        return [None] * rows
    return _objects(values).tolist()


def _objects(values: Any) -> Any:
    """A member column as an object array, cell for cell as the members frame holds it (an Arrow column
    as :func:`~infobip_provider.cohorts.prepare.PreparedCohort.members` converts it)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        values = values.to_numpy(zero_copy_only=False)
    if isinstance(values, np.ndarray):
        return values if values.dtype == object else pd.Series(values, dtype=object).to_numpy()
    return np.fromiter(values, dtype=object, count=len(values))


def _field_texts(values: Any) -> tuple[Any, list[str]]:
    """Each row's code among a column's distinct texts (``-1``: missing), and those texts as a message
    shows them (:func:`~infobip_provider.options.cell_text`; the last one, code ``-1``, is empty).

    An Arrow text column is dictionary-encoded by Arrow (no Python object per row). Other text cells
    (and None or NaN) are told apart by value; a column with other cells (numbers, whose equal values
    may show differently: ``1``, ``1.0``, ``True``) is shown cell by cell first.
    """
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    from infobip_provider.options import cell_text

    if isinstance(values, (pa.Array, pa.ChunkedArray)) and (
        pa.types.is_string(values.type) or pa.types.is_large_string(values.type)
    ):
        array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
        encoded = pc.dictionary_encode(array)
        codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        return codes, [*encoded.dictionary.to_pylist(), ""]
    values = _objects(values)
    codes, uniques = pd.factorize(values)
    kinds = set(map(type, values))
    if not kinds <= {str, type(None), float} or not all(type(u) is str for u in uniques):
        shown = np.empty(len(values), dtype=object)
        shown[:] = [cell_text(v) for v in values]
        codes, uniques = pd.factorize(shown)
    return codes, [*uniques.tolist(), ""]


def render_texts(template: MessageTemplate, columns: Mapping[str, Any], rows: int) -> list[str]:
    """``template.render_columns(columns, rows)``, worked out once per distinct combination of the
    fields' values: rows with the same values share one text object (a million members with a few
    thousand distinct first names and plans render a few thousand texts)."""
    import numpy as np
    import pandas as pd

    literals = template.parts[0::2]
    if len(literals) == 1:
        return [literals[0]] * rows
    fields = template.fields
    coded = {name: _field_texts(columns[name]) for name in fields}
    combination = np.zeros(rows, dtype=np.int64)
    for name in fields:
        codes, texts = coded[name]
        combination = combination * len(texts) + (codes + 1)  # below rows * (distinct + 1)
        combination = pd.factorize(combination)[0]
    first = np.unique(combination, return_index=True)[1]  # a row of each combination, in code order
    values = {
        name: np.asarray(texts, dtype=object)[codes[first]].tolist() for name, (codes, texts) in coded.items()
    }
    rendered = np.empty(len(first), dtype=object)
    rendered[:] = template.render_columns(values, len(first))
    return rendered[combination].tolist()
