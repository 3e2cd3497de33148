"""SmsBroadcastOperator: one personalised SMS per cohort member, exactly once, with every Infobip option.

How "exactly once" holds (Infobip has no idempotency key):

1. The broadcast's ``bulkId`` comes from the DAG, run and task ids, and each recipient's
   ``messageId`` from the bulk id and the number, so every try of the task names the same messages.
2. The broadcast's journal in the state store is the ledger: an *intent* (the batch's message ids)
   is written durably before a request leaves, an *ack* after Infobip answered it.
3. A try that starts with intents without an ack (the last one was killed) asks
   ``GET /sms/3/logs`` by bulk and message id which of those messages Infobip has; the known ones
   count as sent, only the unknown ones are sent again.
4. A lost answer inside a try (a 5xx, or a timeout after the request left) is reconciled the same
   way at once, after a short settling delay, and only the unknown rest is sent again (bounded).
   A 429 or a failure to connect needs no reconciliation: Infobip did nothing.
5. The logs are asked twice, ``reconcile_delay`` apart, before a message counts as unknown.
6. A broadcast with ``send_at``, a ``delivery_time_window`` or a ``sending_speed_limit`` is never
   resent from the logs: Infobip may hold its accepted messages back and leave them out of the
   logs until they leave. Unknown ones stop the task (:class:`BroadcastUncertainError`) and stay
   open in the ledger, so every later try refuses too until the logs show them.
"""

from __future__ import annotations

import contextlib
import gc
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from infobip_provider.checkpoint import log_progress
from infobip_provider.links import set_links
from infobip_provider.operators.common import (
    cohort_source_for,
    record_run,
    run_key,
    target_state,
    validate_batch_size,
)
from infobip_provider.values import as_flag, as_literal, as_number, as_text, blank_to_none

if TYPE_CHECKING:
    import logging

    from airflow.sdk import Context

    from infobip_provider.hooks.infobip import InfobipHook
    from infobip_provider.sms import Group, Ledger, Recipient, SmsOptions
    from infobip_provider.state import TargetState

#: ``/sms/3/logs`` keeps 48 hours; an intent older than this cannot be reconciled safely.
RECONCILE_HORIZON = 47 * 3600.0
#: message ids per ``/sms/3/logs`` query: Infobip caps the ``messageId`` values at 2048 characters
#: (60 ids of 32 characters and their separators make 1979).
LOG_QUERY_IDS = 60
RESERVED_MEMBER_COLUMNS = ("key", "email", "phone", "external_id", "row")


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many small acyclic objects.

    A 100,000-recipient plan makes millions of strings, tuples and lists, none in a cycle; the
    collector's repeated full passes over them cost more than the work itself (3-5x measured).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class BroadcastLedgerError(AirflowFailException):
    """The ledger cannot tell what was sent (an unconfirmed batch is older than Infobip's logs)."""


class BroadcastUncertainError(BroadcastLedgerError):
    """An unconfirmed batch of a held-back broadcast (scheduled, delivery window, speed limit) is not
    all in Infobip's logs: its absence proves nothing, so none of it is sent again."""


class BroadcastReuseError(AirflowFailException):
    """An explicit ``bulk_id`` already names a broadcast of another DAG run."""


class BroadcastRun:
    """Sends recipients of one bulk through the ledger; used by :class:`SmsBroadcastOperator`.

    :param hook: an :class:`InfobipHook` (or anything with ``send_sms`` and ``sms_logs``).
    :param target: the broadcast's state (its journal is the ledger).
    :param reconcile_delay: seconds an unanswered request is given to settle before the logs are asked.
    :param max_send_attempts: requests per batch when answers are lost (each followed by reconciliation).
    """

    def __init__(
        self,
        hook: Any,
        target: TargetState,
        bulk_id: str,
        options: SmsOptions,
        *,
        batch_size: int = 1000,
        reconcile_delay: float = 15.0,
        max_send_attempts: int = 3,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        log: logging.Logger | Any = None,
    ) -> None:
        from infobip_provider.sms import fold_ledger

        self.hook = hook
        self.target = target
        self.bulk_id = bulk_id
        self.options = options
        self.batch_size = batch_size
        self.reconcile_delay = reconcile_delay
        self.max_send_attempts = max(1, int(max_send_attempts))
        self.clock = clock
        self.sleep = sleep
        self.log = log or _null_log()
        self.attempt = uuid.uuid4().hex[:8]
        self._seq = 0
        self.ledger: Ledger = fold_ledger(target.read_journal())
        #: options that let Infobip hold messages back: the logs cannot prove those were not sent.
        self.deferral: tuple[str, ...] = options.deferral
        self.sent_now = 0
        self.resent = 0
        self.requests = 0

    # ----------------------------------------------------------------- journal
    def _record(self, record: dict[str, Any]) -> None:
        self.target.append_journal(record)

    def _intent(self, ids: list[str]) -> str:
        self._seq += 1
        key = f"{self.attempt}-{self._seq}"
        now = self.clock()
        self._record({"state": "intent", "batch": key, "t": now, "ids": ids})
        self.ledger.open[key] = (now, ids)
        return key

    def _ack(self, key: str, statuses: Counter[str], segments: int) -> None:
        self._record({"state": "ack", "batch": key, "statuses": dict(statuses), "segments": segments})
        _, ids = self.ledger.open.pop(key)
        self.ledger.sent.update(ids)
        self.ledger.statuses.update(statuses)
        self.ledger.reported_segments += segments
        self.sent_now += len(ids)

    def _not_sent(self, key: str, reason: str) -> None:
        self._record({"state": "not_sent", "batch": key, "reason": reason})
        self.ledger.open.pop(key, None)
        self.ledger.not_sent += 1

    # --------------------------------------------------------------- reconcile
    def _ask_logs(self, ids: Sequence[str]) -> tuple[set[str], Counter[str]]:
        """Which of ``ids`` Infobip's logs show in this bulk, with their status groups."""
        wanted = set(ids)
        known: set[str] = set()
        statuses: Counter[str] = Counter()
        for start in range(0, len(ids), LOG_QUERY_IDS):
            chunk = list(ids[start : start + LOG_QUERY_IDS])
            for item in self.hook.sms_logs(bulk_id=self.bulk_id, message_ids=chunk):
                mid = item.get("messageId")
                if mid in wanted and mid not in known and item.get("bulkId", self.bulk_id) == self.bulk_id:
                    known.add(mid)
                    statuses[str((item.get("status") or {}).get("groupName") or "UNKNOWN")] += 1
        return known, statuses

    def _check(self, key: str) -> tuple[set[str], Counter[str]]:
        """Ask the logs about the open batch ``key`` once it settled, and again ``reconcile_delay``
        later about the messages the first answer did not show."""
        started, ids = self.ledger.open[key]
        age = self.clock() - started
        if age > RECONCILE_HORIZON:
            raise BroadcastLedgerError(
                f"A batch of {len(ids)} messages of the broadcast {self.bulk_id} was sent {age / 3600:.0f} h ago "
                "without a confirmed answer, and Infobip's logs only cover 48 h: whether they were "
                "delivered cannot be checked, so nothing is sent again. Check the bulk in the Infobip "
                f"portal; the ledger is {self.target.root}"
            )
        if age < self.reconcile_delay:
            self.sleep(self.reconcile_delay - age)
        known, statuses = self._ask_logs(ids)
        missing = [i for i in ids if i not in known]
        if missing:
            if self.reconcile_delay > 0:
                self.sleep(self.reconcile_delay)
            late, late_statuses = self._ask_logs(missing)
            known |= late
            statuses.update(late_statuses)
        return known, statuses

    def _close(self, key: str, known: set[str], statuses: Counter[str]) -> None:
        self._record(
            {"state": "reconciled", "batch": key, "known": sorted(known), "statuses": dict(statuses)}
        )
        self.ledger.open.pop(key)
        self.ledger.sent.update(known)
        self.ledger.reconciled += len(known)
        self.ledger.statuses.update(statuses)

    def _uncertain(self, unknown: dict[str, int]) -> BroadcastUncertainError:
        count = sum(unknown.values())
        keys = sorted(unknown)
        shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
        return BroadcastUncertainError(
            f"{count} recipients of the broadcast {self.bulk_id} are uncertain: a request for them got no "
            f"confirmed answer, and with {', '.join(self.deferral)} set Infobip may hold accepted messages "
            "back and leave them out of its logs (GET /sms/3/logs) until they leave, so not finding them "
            "there proves nothing. Nothing was sent again. Check the bulk id "
            f"{self.bulk_id} in the Infobip portal (Analyze > Logs, or the broadcast's report, filtered by "
            "bulk id): if the messages are there (scheduled or sent), nothing is missing - mark this task "
            "successful, or run it again once they left (the logs then show them and the rest of the "
            "broadcast goes out). If Infobip does not have them, append "
            '{"state": "not_sent", "batch": "<batch>"} for each open batch to the ledger\'s journal.jsonl '
            "and run the task again to send them. Until then the ledger keeps these batches open "
            f"({shown}; ledger {self.target.root}) and every later run refuses to resend them."
        )

    def reconcile(self, key: str) -> set[str]:
        """Ask Infobip's logs which messages of the open batch ``key`` it has; close the batch.

        :raises BroadcastUncertainError: a held-back broadcast's batch is not all in the logs (the
            batch stays open).
        """
        known, statuses = self._check(key)
        missing = len(self.ledger.open[key][1]) - len(known)
        if missing and self.deferral:
            raise self._uncertain({key: missing})
        self._close(key, known, statuses)
        return known

    def resume(self) -> int:
        """Reconcile every batch an earlier try left open; returns how many of their messages Infobip had.

        :raises BroadcastUncertainError: after checking every batch, when a held-back broadcast's
            batch is not all in the logs (those batches stay open; the others are closed).
        """
        open_batches = list(self.ledger.open)
        if not open_batches:
            return 0
        total = sum(len(self.ledger.open[k][1]) for k in open_batches)
        self.log.info(
            "Resuming broadcast: %d unconfirmed batches (%d messages) are checked against Infobip's logs",
            len(open_batches),
            total,
        )
        found = 0
        uncertain: dict[str, int] = {}
        for key in open_batches:
            known, statuses = self._check(key)
            found += len(known)
            missing = len(self.ledger.open[key][1]) - len(known)
            if missing and self.deferral:
                uncertain[key] = missing
                continue
            self._close(key, known, statuses)
        if uncertain:
            raise self._uncertain(uncertain)
        self.log.info("Of %d unconfirmed messages, Infobip had %d; the rest will be sent", total, found)
        return found

    # -------------------------------------------------------------------- send
    def send(self, recipients: Sequence[Recipient]) -> None:
        """Send every recipient not yet in the ledger, batch by batch."""
        from infobip_provider.sms import plan_batches

        with paused_gc():
            pending = [r for r in recipients if r.message_id not in self.ledger.sent]
            batches = plan_batches(pending, self.batch_size)
        self.log.info("Sending %d messages in %d requests", len(pending), len(batches))
        by_id = {r.message_id: r for r in pending}
        started, done = time.monotonic(), 0
        interval = self.hook.interval("sms.send")
        for number, batch in enumerate(batches, 1):
            self._send_batch(batch, by_id)
            size = sum(len(destinations) for _, destinations in batch)
            done += size
            if number % max(1, len(batches) // 10) == 0 or number == len(batches):
                log_progress(
                    "sms.send",
                    number,
                    len(batches),
                    size,
                    done,
                    time.monotonic() - started,
                    (len(batches) - number) * interval,
                )

    def _send_batch(self, batch: list[Group], by_id: dict[str, Recipient]) -> None:
        from infobip_provider.errors import InfobipError, InfobipServerError, InfobipTransportError
        from infobip_provider.sms import answer_statuses, batch_ids, build_body, plan_batches

        for attempt in range(1, self.max_send_attempts + 1):
            ids = batch_ids(batch)
            key = self._intent(ids)
            body = build_body(batch, self.options, self.bulk_id)
            try:
                self.requests += 1
                answer = self.hook.send_sms(body)
            except (InfobipServerError, InfobipTransportError) as exc:
                if isinstance(exc, InfobipTransportError) and not exc.sent:
                    self._not_sent(key, type(exc).__name__)
                    raise
                self.log.warning(
                    "The answer to a request of %d messages was lost (%s); checking Infobip's logs before "
                    "sending any of them again",
                    len(ids),
                    type(exc).__name__,
                )
                known = self.reconcile(key)
                rest = [by_id[i] for i in ids if i not in known]
                self.log.warning(
                    "Infobip had %d of the %d messages; %d remain", len(known), len(ids), len(rest)
                )
                if not rest:
                    return
                if attempt == self.max_send_attempts:
                    raise
                self.resent += len(rest)
                batch = plan_batches(rest, self.batch_size)[0]
                continue
            except InfobipError as exc:
                # An answer arrived (4xx, or 429 after every retry): Infobip took nothing.
                self._not_sent(key, type(exc).__name__)
                raise
            statuses, segments = answer_statuses(answer)
            self._ack(key, statuses, segments)
            return


class _NullLog:
    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


def _null_log() -> Any:
    return _NullLog()


class SmsBroadcastOperator(BaseOperator):
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
    (group name -> messages, from the answers and the logs); ``requests``; ``plan``; ``rejects_uri``.

    :param text: the message, with ``{{column}}`` tokens (templated; Airflow context names such as
        ``{{ ds }}`` are rendered by Airflow first, other bare names are left for the recipients).
    :param cohort_path: a CSV/Parquet/JSONL file, relative to ``include/`` or a URI (templated).
    :param cohort_sql: SQL or a ``.sql`` file under ``include/sql`` (templated); wins over ``cohort_path``.
    :param cohort_conn_id: the warehouse connection for ``cohort_sql``.
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
    :param dry_run: plan only, send nothing (templated).
    :param test_recipients: numbers that get the first rows' messages instead of the cohort (templated):
        a list, a JSON or Python-literal list as text (``"['+41...']"``, ``"[]"``), or numbers separated
        by commas or new lines; empty means none.
    :param max_segments: refuse to send when a message would take more SMS parts than this.
    :param price_per_segment: price of one SMS part, for the cost estimate.
    :param currency: the currency of ``price_per_segment`` (e.g. ``EUR``), shown with the cost.
    :param batch_size: destinations per request, at most 1000.
    :param max_reject_ratio: fail when more than this share of cohort rows is unusable (None: warn only).
    :param bulk_id: override the bulk id (default: derived from the DAG, run and task ids and the
        map index of a mapped task). An explicit bulk id that an earlier DAG run already used stops
        the task, unless ``allow_bulk_id_reuse``.
    :param allow_bulk_id_reuse: let this run continue the broadcast an earlier run started under the
        same explicit ``bulk_id`` (recipients it sent are not sent again).
    :param reconcile_delay: seconds a request whose answer was lost is given to settle before the
        logs are asked what it did.
    :param max_send_attempts: requests per batch when answers keep getting lost.
    :param infobip_conn_id: the ``infobip`` connection.
    """

    template_fields: Sequence[str] = (
        "text",
        "cohort_path",
        "cohort_sql",
        "cohort_conn_id",
        "phone_column",
        "country_column",
        "default_region",
        "sender",
        "delivery_time_window",
        "send_at",
        "validity_period",
        "notify_url",
        "callback_data",
        "campaign_reference_id",
        "dry_run",
        "test_recipients",
        "max_segments",
        "price_per_segment",
        "bulk_id",
    )
    template_ext: Sequence[str] = (".sql",)
    template_fields_renderers = {"cohort_sql": "sql", "text": "md", "delivery_time_window": "json"}
    ui_color = "#f9c74f"

    _clock: Callable[[], float] = staticmethod(time.time)
    _sleep: Callable[[float], None] = staticmethod(time.sleep)

    def __init__(
        self,
        *,
        text: str,
        cohort_path: str | None = None,
        cohort_sql: str | None = None,
        cohort_conn_id: str = "warehouse_default",
        phone_column: str = "phone",
        country_column: str | None = None,
        default_region: str | None = None,
        sender: str | None = None,
        validity_period: Any = None,
        delivery_time_window: Any = None,
        send_at: Any = None,
        sending_speed_limit: Any = None,
        shorten_url: bool | None = None,
        track_clicks: bool | None = None,
        tracking_url: str | None = None,
        custom_domain: str | None = None,
        remove_protocol: bool | None = None,
        notify_url: str | None = None,
        notify_content_type: str | None = None,
        intermediate_report: bool | None = None,
        callback_data: str | None = None,
        transliteration: str | None = None,
        language_code: str | None = None,
        flash: bool | None = None,
        india_dlt_principal_entity_id: str | None = None,
        india_dlt_content_template_id: str | None = None,
        turkey_iys_brand_code: int | None = None,
        turkey_iys_recipient_type: str | None = None,
        south_korea_reseller_code: int | None = None,
        south_korea_title: str | None = None,
        entity_id: str | None = None,
        application_id: str | None = None,
        campaign_reference_id: str | None = None,
        include_sms_count: bool = False,
        dry_run: bool = False,
        test_recipients: Sequence[str] | str | None = None,
        max_segments: int | None = None,
        price_per_segment: float | None = None,
        currency: str | None = None,
        batch_size: int = 1000,
        max_reject_ratio: float | None = None,
        bulk_id: str | None = None,
        allow_bulk_id_reuse: bool = False,
        reconcile_delay: float = 15.0,
        max_send_attempts: int = 3,
        infobip_conn_id: str = "infobip_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.text = text
        self.cohort_path = cohort_path
        self.cohort_sql = cohort_sql
        self.cohort_conn_id = cohort_conn_id
        self.phone_column = phone_column
        self.country_column = country_column
        self.default_region = default_region
        self.sender = sender
        self.validity_period = validity_period
        self.delivery_time_window = delivery_time_window
        self.send_at = send_at
        self.sending_speed_limit = sending_speed_limit
        self.shorten_url = shorten_url
        self.track_clicks = track_clicks
        self.tracking_url = tracking_url
        self.custom_domain = custom_domain
        self.remove_protocol = remove_protocol
        self.notify_url = notify_url
        self.notify_content_type = notify_content_type
        self.intermediate_report = intermediate_report
        self.callback_data = callback_data
        self.transliteration = transliteration
        self.language_code = language_code
        self.flash = flash
        self.india_dlt_principal_entity_id = india_dlt_principal_entity_id
        self.india_dlt_content_template_id = india_dlt_content_template_id
        self.turkey_iys_brand_code = turkey_iys_brand_code
        self.turkey_iys_recipient_type = turkey_iys_recipient_type
        self.south_korea_reseller_code = south_korea_reseller_code
        self.south_korea_title = south_korea_title
        self.entity_id = entity_id
        self.application_id = application_id
        self.campaign_reference_id = campaign_reference_id
        self.include_sms_count = include_sms_count
        self.dry_run = dry_run  # type: ignore[assignment,method-assign]  # the param users know
        self.test_recipients = test_recipients
        self.max_segments = max_segments
        self.price_per_segment = price_per_segment
        self.currency = currency
        self.batch_size = batch_size
        self.max_reject_ratio = max_reject_ratio
        self.bulk_id = bulk_id
        self.allow_bulk_id_reuse = allow_bulk_id_reuse
        self.reconcile_delay = reconcile_delay
        self.max_send_attempts = max_send_attempts
        self.infobip_conn_id = infobip_conn_id

    def render_template_fields(self, context: Context, jinja_env: Any = None) -> None:
        """Render as usual, but leave the per-recipient ``{{column}}`` tokens of ``text`` alone."""
        from infobip_provider.sms import protect_tokens

        if isinstance(self.text, str):
            self.text = protect_tokens(self.text, context.keys())
        super().render_template_fields(context, jinja_env)

    @cached_property
    def hook(self) -> InfobipHook:
        from infobip_provider.hooks.infobip import InfobipHook

        return InfobipHook(self.infobip_conn_id)

    # ------------------------------------------------------------------ checks
    def _options(self) -> SmsOptions:
        from infobip_provider.sms import SmsOptions

        defaults = self.hook.defaults
        return SmsOptions.from_args(
            now=datetime.fromtimestamp(self._clock(), UTC),
            sender=blank_to_none(self.sender) or defaults.get("sender"),
            validity_period=self.validity_period,
            delivery_time_window=self.delivery_time_window,
            send_at=self.send_at,
            sending_speed_limit=self.sending_speed_limit,
            shorten_url=self.shorten_url,
            track_clicks=self.track_clicks,
            tracking_url=self.tracking_url,
            custom_domain=self.custom_domain,
            remove_protocol=self.remove_protocol,
            notify_url=self.notify_url,
            notify_content_type=self.notify_content_type,
            intermediate_report=self.intermediate_report,
            callback_data=blank_to_none(self.callback_data),
            transliteration=self.transliteration,
            language_code=self.language_code,
            flash=self.flash,
            india_dlt_principal_entity_id=self.india_dlt_principal_entity_id,
            india_dlt_content_template_id=self.india_dlt_content_template_id,
            turkey_iys_brand_code=self.turkey_iys_brand_code,
            turkey_iys_recipient_type=self.turkey_iys_recipient_type,
            south_korea_reseller_code=self.south_korea_reseller_code,
            south_korea_title=self.south_korea_title,
            entity_id=blank_to_none(self.entity_id) or defaults.get("entity_id"),
            application_id=blank_to_none(self.application_id) or defaults.get("application_id"),
            campaign_reference_id=self.campaign_reference_id,
            include_sms_count=self.include_sms_count,
        )

    def _numbers(self) -> tuple[int | None, float | None, int]:
        max_segments = as_number(self.max_segments, "max_segments", int, 1)
        price = as_number(self.price_per_segment, "price_per_segment", float, 0)
        return max_segments, price, validate_batch_size(self.batch_size)

    def _test_numbers(self) -> list[str]:
        from infobip_provider.cohorts import normalize_phone

        raw = as_literal(self.test_recipients, "test_recipients")
        if raw is None or (isinstance(raw, (list, tuple, set)) and not raw):
            return []
        if isinstance(raw, str):
            raw = [p for p in raw.replace(",", "\n").splitlines() if p.strip()]
        elif not isinstance(raw, (list, tuple, set)):
            raise AirflowFailException(
                f"test_recipients must be a list of phone numbers, got {type(raw).__name__}"
            )
        numbers: list[str] = []
        bad = 0
        for value in raw:
            try:
                number = normalize_phone(str(value), self.default_region)
            except ValueError as exc:
                raise AirflowFailException(f"default_region: {exc}") from None
            if number is None:
                bad += 1
            elif number not in numbers:
                numbers.append(number)
        if bad:
            raise AirflowFailException(
                f"{bad} of {len(raw)} test_recipients are not valid phone numbers (use E.164, e.g. +41793026727)"
            )
        return numbers

    # ----------------------------------------------------------------- execute
    def execute(self, context: Context) -> dict[str, Any]:
        from infobip_provider.sms import MessageTemplate, broadcast_bulk_id

        text = "" if self.text is None else str(self.text)
        template = MessageTemplate.parse(text)
        options = self._options()
        for warning in options.warnings:
            self.log.warning("SMS option: %s", warning)
        max_segments, price, batch_size = self._numbers()
        dry_run = as_flag(self.dry_run, "dry_run")
        test_numbers = self._test_numbers()
        run_id = run_key(context)
        map_index = getattr(context.get("ti"), "map_index", None)
        map_index = map_index if isinstance(map_index, int) else -1
        given = blank_to_none(self.bulk_id)
        if given:
            bulk_id = f"{str(given)[:95]}-test" if test_numbers else str(given)[:100]
        else:
            suffix = ":test" if test_numbers else ""
            bulk_id = broadcast_bulk_id(self.dag_id, run_id, self.task_id, suffix, map_index)

        with paused_gc():
            prepared = self._read_cohort(context, template)
            texts = self._render_texts(prepared, template)
            phones: list[str] = prepared.members["phone"].tolist()
            if test_numbers:
                if not texts:
                    raise AirflowFailException(
                        "The cohort has no usable row to render the test messages from"
                    )
                phones = test_numbers
                texts = [texts[i % len(texts)] for i in range(len(test_numbers))]
            recipients, empty = self._recipients(bulk_id, phones, texts)
            plan, counts = self._segment_plan(recipients, max_segments, options)
        skipped = dict(prepared.stats.get("rejected_by_reason") or {})
        if empty:
            skipped["empty message"] = empty
        currency = as_text(self.currency)
        summary: dict[str, Any] = {
            "bulk_id": bulk_id,
            "dry_run": dry_run,
            "test": bool(test_numbers),
            "cohort": prepared.stats,
            "recipients": len(recipients),
            "skipped": 0 if test_numbers else sum(skipped.values()),
            "skipped_by_reason": {} if test_numbers else skipped,
            "plan": plan.as_dict(price, currency=currency),
        }
        who = f"{len(test_numbers)} test recipients" if test_numbers else f"{len(recipients)} recipients"
        self.log.info("Plan for the broadcast %s: one message to each of %s", bulk_id, who)
        for line in plan.lines(price, currency):
            self.log.info("%s", line)
        if options.transliterated:
            summary["plan"]["segments_note"] = (
                "transliteration or a language table is set: Infobip may fit the text in fewer segments"
            )
        if plan.too_long:
            summary["plan"]["too_long"] = {"messages": plan.too_long, "max_segments": max_segments}
        if dry_run:
            from infobip_provider.sms import plan_batches

            summary["requests_planned"] = len(plan_batches(recipients, batch_size))
            self.log.info(
                "Dry run, nothing sent: it would take %d requests. Turn dry_run off to send.",
                summary["requests_planned"],
            )
            if plan.too_long:
                self.log.warning(
                    "%d messages would take more than max_segments=%s segments", plan.too_long, max_segments
                )
            return summary
        if plan.too_long:
            raise AirflowFailException(
                f"{plan.too_long} of {len(recipients)} messages would take more than max_segments="
                f"{max_segments} SMS parts (the longest takes {plan.longest.segments if plan.longest else 0}, "
                f"{plan.longest.encoding if plan.longest else ''}); shorten the text or raise max_segments. "
                "Nothing was sent."
            )
        summary.update(
            self._send(
                context,
                prepared,
                bulk_id,
                options,
                recipients,
                counts,
                batch_size,
                run_id,
                map_index,
                explicit=bool(given),
            )
        )
        if price is not None:
            summary["estimated_cost"] = round(summary["segments"] * price, 6)
        self.log.info(
            "Broadcast %s: %d of %d recipients sent (%d by this try, %d by earlier tries, %d found in "
            "Infobip's logs), %d rejected by Infobip, %d cohort rows not used, %d SMS parts",
            bulk_id,
            summary["sent"],
            len(recipients),
            summary["sent_this_try"],
            summary["already_sent"],
            summary["reconciled"],
            summary["rejected"],
            summary["skipped"],
            summary["segments"],
        )
        return summary

    def _read_cohort(self, context: Context, template: Any) -> Any:
        """Read and normalise the cohort; check the template's tokens against its columns."""
        from infobip_provider.cohorts import IdentityColumns, prepare_cohort

        source = cohort_source_for(self, context)
        prepared = prepare_cohort(
            source,
            IdentityColumns(email=None, phone=self.phone_column, country=as_text(self.country_column)),
            key="phone",
            default_region=blank_to_none(self.default_region),
        )
        prepared.check_reject_ratio(self.max_reject_ratio, self.log)
        if not (prepared.empty and not prepared.columns):
            template.check_fields(token_columns(self.phone_column, prepared.columns))
        return prepared

    def _render_texts(self, prepared: Any, template: Any) -> list[str]:
        members = prepared.members
        if members.empty:
            return []
        available = token_columns(self.phone_column, prepared.columns)
        columns = {name: members[available[name]].tolist() for name in template.fields}
        return template.render_columns(columns, len(members))

    def _recipients(self, bulk_id: str, phones: list[str], texts: list[str]) -> tuple[list[Recipient], int]:
        from infobip_provider.sms import Recipient, message_id

        recipients = []
        empty = 0
        for phone, text in zip(phones, texts):
            if not text.strip():
                empty += 1
                continue
            recipients.append(Recipient(message_id(bulk_id, phone), phone, text))
        if empty:
            self.log.warning("%d recipients skipped: their message renders empty", empty)
        return recipients, empty

    @staticmethod
    def _segment_plan(
        recipients: Sequence[Recipient], max_segments: int | None, options: SmsOptions
    ) -> tuple[Any, dict[str, int]]:
        from infobip_provider.sms import SegmentPlan, count_segments

        plan = SegmentPlan()
        cache: dict[str, Any] = {}
        per_id: dict[str, int] = {}
        for r in recipients:
            count = cache.get(r.text)
            if count is None:
                count = cache[r.text] = count_segments(r.text)
            plan.add(count, max_segments)
            per_id[r.message_id] = count.segments
        return plan, per_id

    def _send(
        self,
        context: Context,
        prepared: Any,
        bulk_id: str,
        options: SmsOptions,
        recipients: list[Recipient],
        counts: dict[str, int],
        batch_size: int,
        run_id: str,
        map_index: int,
        *,
        explicit: bool,
    ) -> dict[str, Any]:
        hook = self.hook
        target = target_state(hook, "broadcasts", bulk_id, self.log)
        with target.lock(f"the broadcast {bulk_id}"):
            facts = target.read_json("target.json") or {}
            if facts:
                self.log.info(
                    "This run continues the broadcast %s started by the run %s (%s sent so far)",
                    bulk_id,
                    facts.get("run_id"),
                    facts.get("sent", "none"),
                )
            if not facts:
                record: dict[str, Any] = {
                    "bulk_id": bulk_id,
                    "dag_id": self.dag_id,
                    "run_id": run_id,
                    "task_id": self.task_id,
                    "created": datetime.fromtimestamp(self._clock(), UTC).isoformat(),
                }
                if map_index >= 0:
                    record["map_index"] = map_index
                target.write_json("target.json", record)
            elif explicit and facts.get("run_id") not in (None, run_id):
                if not as_flag(self.allow_bulk_id_reuse, "allow_bulk_id_reuse"):
                    raise BroadcastReuseError(
                        f"The bulk id {bulk_id} was already used by the run {facts.get('run_id')} (DAG "
                        f"{facts.get('dag_id')}, task {facts.get('task_id')}, created {facts.get('created')}); "
                        f"this is the run {run_id}. Reusing it would skip every recipient that run sent "
                        "and mix both broadcasts in Infobip's reports. Nothing was sent. Give a bulk_id "
                        "unique to the run (e.g. with {{ run_id }}), leave bulk_id empty for a derived "
                        "one, or set allow_bulk_id_reuse=True to continue the earlier broadcast."
                    )
                self.log.warning(
                    "The bulk id %s was started by another run; continuing it (allow_bulk_id_reuse)", bulk_id
                )
            rejects_uri = target.write_rejects(run_id, prepared.rejects)
            if rejects_uri:
                self.log.info("Cohort rows not used, with reasons: %s", rejects_uri)
            run = BroadcastRun(
                hook,
                target,
                bulk_id,
                options,
                batch_size=batch_size,
                reconcile_delay=float(self.reconcile_delay),
                max_send_attempts=int(self.max_send_attempts),
                clock=self._clock,
                sleep=self._sleep,
                log=self.log,
            )
            run.resume()
            already = len(run.ledger.sent)
            run.send(recipients)
            ledger = run.ledger
            target.write_json(
                "target.json",
                {**(target.read_json("target.json") or {}), "sent": len(ledger.sent), "complete": True},
            )
        ours = [r.message_id for r in recipients if r.message_id in ledger.sent]
        link = set_links(context, hook, target, dry_run=False)
        record_run(
            target,
            context,
            kind="broadcasts",
            name=bulk_id,
            dry_run=False,
            size=len(ledger.sent),
            counts={
                "sent": run.sent_now,
                "rejected": int(ledger.statuses.get("REJECTED", 0)),
                "not_used": int(prepared.stats.get("rejected", 0)),
            },
            rejects_uri=rejects_uri,
            link=link,
        )
        result: dict[str, Any] = {
            "sent": len(ours),
            "sent_this_try": run.sent_now,
            "already_sent": already,
            "reconciled": ledger.reconciled,
            "resent_after_lost_answer": run.resent,
            "rejected": int(ledger.statuses.get("REJECTED", 0)),
            "segments": sum(counts[i] for i in ours),
            "statuses": dict(sorted(ledger.statuses.items())),
            "requests": dict(hook.calls),
            "rejects_uri": rejects_uri,
        }
        if options.include_sms_count:
            result["segments_reported"] = ledger.reported_segments
        return result


def token_columns(phone_column: str, member_columns: Sequence[str]) -> dict[str, str]:
    """Template field name -> member column: source names, the phone column giving the E.164 number."""
    available: dict[str, str] = {}
    for column in member_columns:
        original = column
        if column.startswith("source_") and column[len("source_") :] in RESERVED_MEMBER_COLUMNS:
            original = column[len("source_") :]
        available.setdefault(original, column)
    available[phone_column] = "phone"
    return available
