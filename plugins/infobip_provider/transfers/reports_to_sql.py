"""Delivery reports and replies into warehouse tables, exactly once although Infobip hands each out once.

Infobip gives each delivery report (``GET /sms/3/reports``, ``GET /email/4/reports``) and each inbound message
(``GET /sms/1/inbox/reports``) out **once**: a page fetched and then lost is gone. So every page
travels through the state store:

1. ``inflight.json`` is written before the request (a fetch is under way);
2. the answer is written whole to ``landed-<seq>.json`` (atomic: temporary file, fsync, rename),
   then ``inflight.json`` is removed;
3. the page's rows are upserted by ``(channel, message_id)`` in one transaction (in a worker thread,
   while the next page is fetched: at most one upsert is under way);
4. the landed file is removed.

A run that starts (a retry after a kill, or the next scheduled run) first upserts every landed page
left behind: a crash after landing loses nothing, and a page upserted twice is still one row per
message. An ``inflight.json`` without its landed page means an answer may have been lost on the
way; for SMS and email reports the run then rebuilds the missing rows from ``GET /sms/3/logs`` or
``GET /email/4/logs`` (the last 48 h, final statuses only, rows not yet in the table, ``source`` =
``logs``: no callback data). Inbound
messages have no log to rebuild from: the run says so in its log and summary.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import AssetAlias, BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from infobip_provider.outcomes import (
    CHANNELS,
    REPLY_CHANNELS,
    REPLY_COLUMNS,
    REPLY_KEY,
    REPORT_COLUMNS,
    REPORT_KEY,
    SEEN_COLUMNS,
    SEEN_KEY,
    Column,
    is_final,
    is_report,
    now_timestamp,
    opt_out_words,
    reply_row,
    report_row,
    seen_row,
)
from infobip_provider.pushes import land_page
from infobip_provider.transfers.common import EXPORTS, asset_uri, emit_asset, positive_int, text_list
from infobip_provider.values import as_text

if TYPE_CHECKING:
    from airflow.sdk import Context

    from infobip_provider.hooks.infobip import InfobipHook
    from infobip_provider.state import TargetState
    from infobip_provider.warehouse import SqlTable

INFLIGHT = "inflight.json"
LANDED_PREFIX = "landed-"


def landed_names(state: TargetState) -> list[str]:
    """The landed pages a run left behind, oldest first."""
    if not state.root.exists():
        return []
    names = [p.name for p in state.root.iterdir() if p.name.startswith(LANDED_PREFIX)]
    return sorted(n for n in names if n.endswith(".json"))


class _Inserter:
    """Inserts landed pages one at a time in a worker thread, so that the next page is fetched while
    the last one is upserted; a page's landed file is removed once its upsert committed.

    :meth:`insert` waits for the page before (at most one upsert in flight) and returns its rows;
    :meth:`wait` returns the rows of the last one. An upsert's error is raised by the next call.
    """

    def __init__(self, table: SqlTable, state: TargetState) -> None:
        self.table, self.state = table, state
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="infobip-upsert")
        self.pending: Future[list[tuple[Any, ...]]] | None = None

    def _run(self, rows: list[tuple[Any, ...]], landed: str) -> list[tuple[Any, ...]]:
        self.table.upsert(rows)
        self.state.delete(landed)
        return rows

    def wait(self) -> list[tuple[Any, ...]]:
        pending, self.pending = self.pending, None
        return [] if pending is None else pending.result()

    def insert(self, rows: list[tuple[Any, ...]], landed: str) -> list[tuple[Any, ...]]:
        done = self.wait()
        self.pending = self.pool.submit(self._run, rows, landed)
        return done

    def __enter__(self) -> _Inserter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.shutdown(wait=True)  # an upsert under way finishes (or leaves its page landed)


class _LandedPagesToSqlOperator(BaseOperator):
    """Pull pages that Infobip hands out once into a table, landing each durably first."""

    #: what the rows are, in the state folder's and the Asset's name (``reports``, ``replies``)
    kind: ClassVar[str]
    alias: ClassVar[str]
    columns: ClassVar[tuple[Column, ...]]
    key: ClassVar[tuple[str, ...]] = ("channel", "message_id")
    template_fields: Sequence[str] = ("sql_conn_id", "table", "channels")
    ui_color = "#fde2c8"

    def __init__(
        self,
        *,
        sql_conn_id: str,
        table: str,
        channels: Sequence[str] | str = ("sms",),
        page_size: int = 1000,
        max_pages: int = 10_000,
        infobip_conn_id: str = "infobip_default",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("outlets", [AssetAlias(self.alias)])
        super().__init__(**kwargs)
        self.sql_conn_id = sql_conn_id
        self.table = table
        self.channels = channels
        self.page_size = page_size
        self.max_pages = max_pages
        self.infobip_conn_id = infobip_conn_id

    # ---- what a subclass supplies ---------------------------------------------------------------
    def pulls(self, channel: str) -> bool:
        """True when Infobip hands ``channel``'s items out on a pull endpoint (else only pushed)."""
        raise NotImplementedError

    def fetch(self, hook: InfobipHook, channel: str, limit: int) -> list[dict[str, Any]]:
        raise NotImplementedError

    def rows(
        self, channel: str, items: Sequence[dict[str, Any]], source: str = "report"
    ) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def reconcile(self, hook: InfobipHook, channel: str, table: SqlTable) -> int | None:
        """Rebuild rows a lost answer held; how many (``None``: the channel has nothing to rebuild from)."""
        return None

    def check_channel(self, channel: str) -> None:
        pass

    # ---- the flow ---------------------------------------------------------------------------------
    def _hook(self) -> InfobipHook:
        from infobip_provider.hooks.infobip import InfobipHook

        return InfobipHook(self.infobip_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        from infobip_provider.state import StateStore
        from infobip_provider.warehouse import SqlTable

        conn_id, table_name = as_text(self.sql_conn_id), as_text(self.table)
        if not conn_id or not table_name:
            raise AirflowFailException("Give sql_conn_id and table: the warehouse table the rows go to")
        channels = [c.lower() for c in text_list(self.channels, "channels")] or ["sms"]
        for channel in channels:
            if channel not in CHANNELS:
                raise AirflowFailException(
                    f"Unknown channel {channel!r}: the channels are {', '.join(CHANNELS)}"
                )
            self.check_channel(channel)
        page_size = positive_int(self.page_size, "page_size", 1000)
        max_pages = positive_int(self.max_pages, "max_pages", 10_000_000)
        hook = self._hook()
        table = SqlTable(conn_id, table_name, self.columns, self.key)
        table.ensure()
        destination = f"table {table_name} on {conn_id}"
        summary: dict[str, Any] = {"destination": destination, "channels": {}}
        for channel in channels:
            state = StateStore(hook.state_uri).target(
                hook.state_scope, EXPORTS, f"{self.kind} {channel} to {destination}"
            )
            with state.lock(f"the {channel} {self.kind} into {destination}"):
                summary["channels"][channel] = self._collect(
                    hook, channel, state, table, page_size, max_pages
                )
            uri = asset_uri(hook.state_scope, self.kind, channel)
            summary["channels"][channel]["asset"] = uri
            emit_asset(context, self.alias, uri, {"rows": summary["channels"][channel]["rows"]})
        return summary

    def _collect(
        self,
        hook: InfobipHook,
        channel: str,
        state: TargetState,
        table: SqlTable,
        page_size: int,
        max_pages: int,
    ) -> dict[str, Any]:
        from infobip_provider.errors import InfobipError, InfobipTransportError

        started = time.monotonic()
        tally: Counter[str] = Counter()
        outcome: dict[str, Any] = {"pages": 0, "rows": 0, "recovered_pages": 0, "reconciled": 0}
        outcome.update(self._recover(hook, channel, state, table, tally))
        with _Inserter(table, state) as inserter:
            while self.pulls(channel) and outcome["pages"] < max_pages:
                seq = f"{time.time_ns():020d}"
                state.write_json(INFLIGHT, {"seq": seq})
                try:
                    items = self.fetch(hook, channel, page_size)
                except InfobipError as exc:
                    reached = (isinstance(exc, InfobipTransportError) and exc.sent) or (
                        exc.status or 0
                    ) >= 500
                    if reached:
                        self.log.warning(
                            "Infobip %s %s: the answer may have been lost (%s); rebuilding what it held",
                            channel,
                            self.kind,
                            type(exc).__name__,
                        )
                        self._count(inserter.wait(), tally, outcome)  # the page before is in first
                        outcome["reconciled"] += self._rebuild(hook, channel, table, outcome)
                    state.delete(INFLIGHT)
                    raise
                outcome["pages"] += 1
                if not items:
                    state.delete(INFLIGHT)
                    break
                landed = f"{LANDED_PREFIX}{seq}.json"
                land_page(state, landed, {"channel": channel, "items": items})
                state.delete(INFLIGHT)
                # the page is durable: it is inserted while the next one is fetched
                self._count(inserter.insert(self.rows(channel, items), landed), tally, outcome)
                if outcome["pages"] % 10 == 0:
                    self.log.info(
                        "%s %s: %d pages, %d rows so far",
                        channel,
                        self.kind,
                        outcome["pages"],
                        outcome["rows"],
                    )
                if len(items) < page_size:
                    break
            self._count(inserter.wait(), tally, outcome)
        outcome.update(self._take_pushes(hook, channel, state, table, tally, page_size, max_pages))
        if self.kind == "reports" and channel == "whatsapp":  # the broadcasts' index of arrived reports
            from infobip_provider.pushes import prune_bulk_reports
            from infobip_provider.state import StateStore

            outcome["pruned_reports"] = prune_bulk_reports(StateStore(hook.state_uri), hook.state_scope)
        outcome["rows"] += outcome["pushed_rows"]
        outcome["by_class"] = dict(sorted(tally.items()))
        outcome["seconds"] = round(time.monotonic() - started, 3)
        self.log.info(
            "%s %s into %s: %d rows from %d requests and %d pushes (%s); %d landed pages recovered, "
            "%d rows rebuilt",
            channel,
            self.kind,
            table.table,
            outcome["rows"],
            outcome["pages"],
            outcome["pushes"],
            ", ".join(f"{k} {v}" for k, v in outcome["by_class"].items()) or "none",
            outcome["recovered_pages"],
            outcome["reconciled"],
        )
        return outcome

    def tally_key(self, row: tuple[Any, ...]) -> str:
        return "rows"

    def _count(self, rows: Sequence[tuple[Any, ...]], tally: Counter[str], outcome: dict[str, Any]) -> None:
        tally.update(self.tally_key(row) for row in rows)
        outcome["rows"] += len(rows)

    def _take_pushes(
        self,
        hook: InfobipHook,
        channel: str,
        state: TargetState,
        table: SqlTable,
        tally: Counter[str],
        page_size: int,
        max_pages: int,
    ) -> dict[str, int]:
        """Upsert what the receiver landed for ``channel``: pushes are taken from its inbox into this
        task's state folder as landed pages (about ``page_size`` items each), then upserted."""
        from infobip_provider.pushes import inbox, push_groups, push_names, take_pushes
        from infobip_provider.state import StateStore

        folder = inbox(StateStore(hook.state_uri), hook.state_scope, self.kind, channel)
        taken = {"pushes": 0, "pushed_rows": 0}
        for pages, (names, items) in enumerate(push_groups(folder, push_names(folder), page_size)):
            if pages >= max_pages:
                break
            landed = f"{LANDED_PREFIX}{time.time_ns():020d}.json"
            take_pushes(folder, names, items, state, landed, channel)
            rows = self.rows(channel, items, source="push")
            table.upsert(rows)
            tally.update(self.tally_key(row) for row in rows)
            state.delete(landed)
            taken["pushes"] += len(names)
            taken["pushed_rows"] += len(rows)
        return taken

    def _recover(
        self, hook: InfobipHook, channel: str, state: TargetState, table: SqlTable, tally: Counter[str]
    ) -> dict[str, Any]:
        """Upsert what an earlier run landed but did not finish; rebuild what a lost answer held."""
        inflight = state.read_json(INFLIGHT)
        names = landed_names(state)
        recovered = {"recovered_pages": 0, "rows": 0, "reconciled": 0, "unrecoverable": 0}
        for name in names:
            page = state.read_json(name) or {}
            rows = self.rows(channel, page.get("items") or [], source=str(page.get("source") or "report"))
            table.upsert(rows)
            tally.update(self.tally_key(row) for row in rows)
            state.delete(name)
            recovered["recovered_pages"] += 1
            recovered["rows"] += len(rows)
        if names:
            self.log.info(
                "%d landed %s pages of an earlier run upserted (%d rows)",
                len(names),
                self.kind,
                recovered["rows"],
            )
        if inflight and f"{LANDED_PREFIX}{inflight.get('seq')}.json" not in names:
            self.log.warning(
                "An earlier run stopped while fetching %s %s: its answer may have been lost; rebuilding",
                channel,
                self.kind,
            )
            recovered["reconciled"] += self._rebuild(hook, channel, table, recovered)
        state.delete(INFLIGHT)
        return recovered

    def _rebuild(self, hook: InfobipHook, channel: str, table: SqlTable, outcome: dict[str, Any]) -> int:
        rebuilt = self.reconcile(hook, channel, table)
        if rebuilt is None:
            outcome["unrecoverable"] = outcome.get("unrecoverable", 0) + 1
            self.log.warning(
                "Infobip keeps no log of %s %s to rebuild a lost page from: its messages may be missing",
                channel,
                self.kind,
            )
            return 0
        self.log.info("%d %s %s rebuilt from the logs", rebuilt, channel, self.kind)
        return rebuilt


class InfobipReportsToSqlOperator(_LandedPagesToSqlOperator):
    """Collect delivery reports into a warehouse table: one row per message, with a bounce class.

    Pulls ``GET /sms/3/reports`` and ``GET /email/4/reports`` page by page until a short page (Infobip
    hands each report out once), takes the reports the receiver (:mod:`infobip_provider.webhooks`)
    landed for each channel (WhatsApp's arrive only that way), and upserts by ``(channel, message_id)`` through the connection's own ``common.sql`` hook (the
    table is created when missing). Every page is landed in the state store before it is inserted:
    see :mod:`infobip_provider.transfers.reports_to_sql`.

    Columns: ``channel``, ``message_id``, ``bulk_id``, ``recipient`` (Infobip's ``to``), ``sender``,
    ``sent_at``, ``done_at``, ``status_group``, ``status_name``, ``error_group``, ``error_name``,
    ``error_permanent``, ``bounce_class`` (delivered, soft_bounce, hard_bounce, spam_bounce, dropped,
    pending), ``message_count``, ``price``, ``currency``, ``callback_data``, ``source`` (``report``,
    ``push`` for a report the receiver got, or ``logs`` for a row rebuilt after a lost answer) and
    ``collected_at``.

    :param sql_conn_id: the warehouse connection (templated).
    :param table: the table, optionally schema-qualified (templated).
    :param channels: the channels to collect (templated): ``sms``, ``email`` (bounce classes by
        Synerise's mapping, see :func:`infobip_provider.outcomes.email_bounce_class`), ``whatsapp``
        (pushed reports only).
    :param page_size: reports per request, 1 to 1000.
    :param max_pages: stop after this many requests per channel (the next run goes on).
    :param infobip_conn_id: the Infobip connection.
    """

    kind = "reports"
    alias = "infobip-reports"
    columns = REPORT_COLUMNS
    key = REPORT_KEY

    def pulls(self, channel: str) -> bool:
        return CHANNELS[channel].pulled

    def fetch(self, hook: InfobipHook, channel: str, limit: int) -> list[dict[str, Any]]:
        if channel == "email":
            return hook.email_reports_page(limit=limit)
        return hook.sms_reports_page(limit=limit)

    def rows(
        self, channel: str, items: Sequence[dict[str, Any]], source: str = "report"
    ) -> list[tuple[Any, ...]]:
        stamp = now_timestamp()
        return [
            report_row(channel, item, source=source, collected_at=stamp) for item in items if is_report(item)
        ]

    def tally_key(self, row: tuple[Any, ...]) -> str:
        return str(row[12])  # bounce_class

    def reconcile(self, hook: InfobipHook, channel: str, table: SqlTable) -> int | None:
        read_logs = {"sms": hook.sms_logs, "email": hook.email_logs}.get(channel)
        if read_logs is None:
            return None
        logs = [item for item in read_logs() if is_final(item)]
        have = table.existing("message_id", [item["messageId"] for item in logs], {"channel": channel})
        stamp = now_timestamp()
        rows = [
            report_row(channel, item, source="logs", collected_at=stamp)
            for item in logs
            if item["messageId"] not in have
        ]
        table.upsert(rows)
        return len(rows)


class InfobipRepliesToSqlOperator(_LandedPagesToSqlOperator):
    """Collect inbound replies into a warehouse table, opt-out words marked.

    Pulls ``GET /sms/1/inbox/reports`` (each inbound message handed out once) like
    :class:`InfobipReportsToSqlOperator` pulls reports, landing each page first, and takes the inbound
    SMS and WhatsApp messages the receiver landed. A reply whose
    keyword, or else first word, is STOP, UNSUBSCRIBE, STOPALL, CANCEL, END, QUIT or one of
    ``opt_out_keywords`` has ``opt_out`` true and the word in ``opt_out_word``.

    Columns: ``channel``, ``message_id``, ``sender`` (who replied), ``recipient`` (your number),
    ``text``, ``clean_text``, ``keyword``, ``received_at``, ``message_count``, ``price``, ``currency``,
    ``callback_data``, ``application_id``, ``entity_id``, ``campaign_reference_id``, ``opt_out``,
    ``opt_out_word``, ``collected_at``.

    :param sql_conn_id: the warehouse connection (templated).
    :param table: the table (templated).
    :param channels: ``sms`` and/or ``whatsapp`` (pushed only) (templated).
    :param opt_out_keywords: more opt-out words (templated); case does not matter.
    """

    kind = "replies"
    alias = "infobip-replies"
    columns = REPLY_COLUMNS
    key = REPLY_KEY
    template_fields: Sequence[str] = (*_LandedPagesToSqlOperator.template_fields, "opt_out_keywords")

    def __init__(self, *, opt_out_keywords: Sequence[str] | str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.opt_out_keywords = opt_out_keywords

    def check_channel(self, channel: str) -> None:
        if channel not in REPLY_CHANNELS:
            raise AirflowFailException(
                f"Inbound {channel} messages are not collected: the channels are {', '.join(REPLY_CHANNELS)}"
            )

    def pulls(self, channel: str) -> bool:
        return channel == "sms"

    def fetch(self, hook: InfobipHook, channel: str, limit: int) -> list[dict[str, Any]]:
        return hook.sms_inbox_page(limit=limit)

    def rows(
        self, channel: str, items: Sequence[dict[str, Any]], source: str = "report"
    ) -> list[tuple[Any, ...]]:
        words = opt_out_words(text_list(self.opt_out_keywords, "opt_out_keywords"))
        stamp = now_timestamp()
        return [reply_row(channel, item, words, stamp) for item in items]

    def tally_key(self, row: tuple[Any, ...]) -> str:
        return "opt_out" if row[15] else "reply"


class InfobipSeenToSqlOperator(_LandedPagesToSqlOperator):
    """Collect the seen reports Infobip pushed to the receiver into a warehouse table: one row per
    message that was read, upserted by ``(channel, message_id)``.

    Infobip has no endpoint to pull seen reports from: they arrive only at the receiver's
    ``/<conn_id>/seen/<channel>`` URL (see :mod:`infobip_provider.webhooks`), which lands each push in
    the state store; this task takes them from there like the reports task takes pushed reports.

    Columns: ``channel``, ``message_id``, ``recipient``, ``sender``, ``sent_at``, ``seen_at``,
    ``application_id``, ``entity_id``, ``collected_at``.

    :param sql_conn_id: the warehouse connection (templated).
    :param table: the table (templated).
    :param channels: the channels whose seen reports are taken (templated).
    """

    kind = "seen"
    alias = "infobip-seen"
    columns = SEEN_COLUMNS
    key = SEEN_KEY

    def pulls(self, channel: str) -> bool:
        return False

    def rows(
        self, channel: str, items: Sequence[dict[str, Any]], source: str = "report"
    ) -> list[tuple[Any, ...]]:
        stamp = now_timestamp()
        return [seen_row(channel, item, stamp) for item in items if item.get("messageId")]
