"""The broadcast engine: send each member of a cohort one message, exactly once, on a channel.

How "exactly once" holds (Infobip has no idempotency key):

1. The broadcast's ``bulkId`` comes from the DAG, the run (for ``airflow tasks test``, its logical
   date) and the task ids, and each recipient's ``messageId`` from the bulk id and the address, so
   every try of the task names the same messages.
2. The broadcast's journal in the state store is the ledger: an *intent* (the batch's message ids)
   is written durably before a request leaves, an *ack* after Infobip answered it.
3. A try that starts with intents without an ack (the last one was killed) asks the channel's logs
   by bulk and message id which of those messages Infobip has; the known ones count as sent, only
   the unknown ones are sent again.
4. A lost answer inside a try (a 5xx, or a timeout after the request left) is reconciled the same
   way at once, after a short settling delay, and only the unknown rest is sent again (bounded).
   A 429 or a failure to connect needs no reconciliation: Infobip did nothing.
5. The logs are asked twice, ``reconcile_delay`` apart, before a message counts as unknown.
6. A broadcast with options that let Infobip hold messages back (a send time, a delivery window,
   a speed limit) is never resent from the logs: its accepted messages may be missing from them
   until they leave. Unknown ones stop the task (:class:`BroadcastUncertainError`) and stay open in
   the ledger, so every later try refuses too until the logs show them.

7. A channel without logs to ask (WhatsApp: ``has_logs = False``) never resends an unanswered batch
   blindly. Its members follow ``on_unconfirmed``: ``"fail"`` (default) keeps the batch open in the
   ledger, sends the rest of the broadcast, and fails the task naming the ledger and the choices
   (every later try sends only what is neither confirmed nor open, and fails again while batches
   stay open); ``"skip"`` records them as unconfirmed (counted, never sent again); ``"resend"``
   closes the batch as not sent, so it goes again (the user accepts possible duplicates).

8. Before planning, every broadcast respects its recipients (:meth:`BroadcastOperator.respect`, see
   :mod:`infobip_provider.respect`): members on the account's suppression list and members at the
   frequency cap are skipped (rejects, summary, dry run), and with quiet hours each member's zone
   group sends its own requests carrying that zone's UTC delivery window (:class:`ZonedChannel`).
   Message ids stay the recipients' own, so a resumed try names the same messages.

A channel (:class:`Channel`) supplies what is its own: how recipients are batched, the request of a
batch, its answer's statuses, and the lookup in its logs. SMS is the first
(:class:`infobip_provider.sms.SmsChannel`), email (:class:`infobip_provider.email.EmailChannel`) and
WhatsApp (:class:`infobip_provider.whatsapp.WhatsAppChannel`) follow.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import logging
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from airflow.sdk.exceptions import AirflowFailException

from infobip_provider.checkpoint import journal_record, log_progress
from infobip_provider.operators.base import CohortOperator
from infobip_provider.operators.common import run_key, validate_batch_size
from infobip_provider.values import as_flag, as_literal, as_text, blank_to_none

#: Infobip's longest ``bulkId``.
MAX_BULK_ID = 100

if TYPE_CHECKING:
    from airflow.sdk import Context

    from infobip_provider.cohorts import PreparedCohort
    from infobip_provider.respect.plan import RespectPlan
    from infobip_provider.state import TargetState


@dataclass
class Ledger:
    """What a broadcast's journal says.

    :ivar sent: message ids Infobip accepted (answered, or found in its logs).
    :ivar open: batches written before sending without an answer: key -> (time, message ids).
    :ivar statuses: status group name -> messages, from the answers and the logs.
    :ivar reported_segments: ``messageCount`` summed from answers that carried it.
    :ivar reconciled: message ids found in the logs after a lost answer or a crash.
    :ivar not_sent: batches closed because Infobip provably did not take them.
    :ivar unconfirmed: message ids of unanswered batches closed without proof either way
        (``on_unconfirmed="skip"`` on a channel without logs): never sent again.
    """

    sent: set[str] = field(default_factory=set)
    open: dict[str, tuple[float, list[str]]] = field(default_factory=dict)
    statuses: Counter[str] = field(default_factory=Counter)
    reported_segments: int = 0
    reconciled: int = 0
    not_sent: int = 0
    unconfirmed: set[str] = field(default_factory=set)

    @property
    def open_ids(self) -> set[str]:
        """Message ids of the batches still open."""
        return {i for _, ids in self.open.values() for i in ids}


def fold_ledger(records: Iterable[Mapping[str, Any]]) -> Ledger:
    """Fold journal records (``intent``, ``ack``, ``reconciled``, ``not_sent``, ``unconfirmed``) into a
    :class:`Ledger`."""
    ledger = Ledger()
    for record in records:
        state, key = record.get("state"), str(record.get("batch"))
        if state == "intent":
            ledger.open[key] = (float(record.get("t", 0.0)), list(record.get("ids") or []))
        elif state == "ack" and key in ledger.open:
            ledger.sent.update(ledger.open.pop(key)[1])
            ledger.statuses.update(record.get("statuses") or {})
            ledger.reported_segments += int(record.get("segments") or 0)
        elif state == "reconciled" and key in ledger.open:
            ledger.open.pop(key)
            known = list(record.get("known") or [])
            ledger.sent.update(known)
            ledger.reconciled += len(known)
            ledger.statuses.update(record.get("statuses") or {})
        elif state == "not_sent" and key in ledger.open:
            ledger.open.pop(key)
            ledger.not_sent += 1
        elif state == "unconfirmed" and key in ledger.open:
            ledger.unconfirmed.update(ledger.open.pop(key)[1])
    return ledger


def broadcast_bulk_id(dag_id: str, run_id: str, task_id: str, suffix: str = "", map_index: int = -1) -> str:
    """A bulk id that is the same on every try of one task in one run, and unique across runs.

    A readable prefix plus a hash of the exact ids (so two runs never share a bulk id even when
    the readable part is cut or cleaned), at most 100 characters. ``map_index`` (when 0 or more)
    keeps the instances of a mapped task (``.expand``) apart; an unmapped task's id is unchanged.
    """
    parts = [dag_id, run_id, task_id, suffix]
    task = task_id
    if map_index is not None and map_index >= 0:
        parts.append(str(map_index))
        task = f"{task_id}-{map_index}"
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{dag_id}.{task}.{run_id}{suffix}").strip("-.")
    return f"{readable[: MAX_BULK_ID - len(digest) - 1]}-{digest}"


def message_id(bulk_id: str, phone: str) -> str:
    """The recipient's message id within a broadcast: 32 hex characters, the same on every try."""
    return hashlib.sha256(f"{bulk_id}\x1f{phone}".encode()).hexdigest()[:32]


def message_ids(bulk_id: str, addresses: Iterable[Any]) -> list[str]:
    """:func:`message_id` of each address in one pass (the bulk id's part of the hash is taken once)."""
    prefix = hashlib.sha256(f"{bulk_id}\x1f".encode()).copy
    out: list[str] = []
    append = out.append
    for address in addresses:
        digest = prefix()
        digest.update(f"{address}".encode())
        append(digest.hexdigest()[:32])
    return out


class Channel(Protocol):
    """What the broadcast engine needs of a channel (SMS, email, WhatsApp)."""

    #: the cooldown policy name of the send endpoint (``sms.send``)
    send_endpoint: str
    #: the logs the channel reconciles against, for messages (``GET /sms/3/logs``)
    logs_name: str
    #: seconds the logs keep a message: an older unconfirmed batch cannot be reconciled
    logs_horizon: float

    @property
    def deferral(self) -> tuple[str, ...]:
        """The options set that let Infobip hold accepted messages back (their absence from the logs
        then proves nothing)."""

    def batches(self, recipients: Sequence[Any], size: int) -> list[Any]:
        """The requests for ``recipients`` (each with ``message_id``), at most ``size`` messages each."""

    def batch_ids(self, batch: Any) -> list[str]:
        """The message ids of one request."""

    def send(self, batch: Any, bulk_id: str) -> Any:
        """Send one request; return Infobip's answer."""

    def statuses(self, answer: Any) -> tuple[Counter[str], int]:
        """Status group counts of an answer, and the parts it reports (0 when none)."""

    def lookup(self, bulk_id: str, ids: Sequence[str]) -> Iterable[dict[str, Any]]:
        """Log items of the bulk among ``ids`` (``messageId``, ``bulkId``, ``status.groupName``).

        A channel with no logs to ask sets ``has_logs = False`` (read with ``getattr``, default True)
        and is never asked; its unanswered batches follow ``on_unconfirmed``."""


class ZonedChannel:
    """A channel whose requests each carry one zone group's delivery window (quiet hours in UTC).

    Recipients are grouped by their zone group (groups in a stable order, members in cohort order) and
    each group is batched by the channel of that group (:meth:`ChannelBase.scheduled`), so a request
    never mixes windows: Infobip's ``sendAt`` is per request. Message ids are the recipients' own, so a
    resumed try names the same messages whatever the grouping. Everything else is the channel's.
    """

    def __init__(self, channel: Any, group_of: Mapping[str, Any], variants: Mapping[Any, Any]) -> None:
        self.channel = channel
        self.group_of = group_of
        self.variants = variants
        self.send_endpoint = channel.send_endpoint
        self.logs_name = channel.logs_name
        self.logs_horizon = channel.logs_horizon
        self.has_logs = getattr(channel, "has_logs", True)

    @property
    def deferral(self) -> tuple[str, ...]:
        """Quiet hours let Infobip hold messages until their window opens."""
        return (*self.channel.deferral, "quiet_hours")

    def batches(self, recipients: Sequence[Any], size: int) -> list[Any]:
        by_group: dict[Any, list[Any]] = {}
        for r in recipients:
            by_group.setdefault(self.group_of[r.message_id], []).append(r)
        return [
            (key, batch)
            for key in sorted(by_group)
            for batch in self.variants[key].batches(by_group[key], size)
        ]

    def batch_ids(self, batch: Any) -> list[str]:
        key, inner = batch
        return list(self.variants[key].batch_ids(inner))

    def send(self, batch: Any, bulk_id: str) -> Any:
        key, inner = batch
        return self.variants[key].send(inner, bulk_id)

    def statuses(self, answer: Any) -> tuple[Counter[str], int]:
        return self.channel.statuses(answer)

    def lookup(self, bulk_id: str, ids: Sequence[str]) -> Iterable[dict[str, Any]]:
        return self.channel.lookup(bulk_id, ids)


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


class BroadcastUnconfirmedError(BroadcastLedgerError):
    """Batches of a channel without logs (WhatsApp) got no answer: whether they were sent cannot be
    asked, so they were not sent again; the rest of the broadcast went out."""


#: What becomes of the members of an unanswered batch on a channel without logs.
ON_UNCONFIRMED = ("fail", "skip", "resend")


class BroadcastReuseError(AirflowFailException):
    """An explicit ``bulk_id`` already names a broadcast of another DAG run."""


class BroadcastRun:
    """Sends the recipients of one bulk through the ledger, on one channel.

    :param hook: the :class:`InfobipHook` (for the send endpoint's interval in the progress line).
    :param target: the broadcast's state (its journal is the ledger).
    :param channel: how this channel builds, sends, reads and looks up its messages.
    :param reconcile_delay: seconds an unanswered request is given to settle before the logs are asked.
    :param max_send_attempts: requests per batch when answers are lost (each followed by reconciliation).
    :param on_unconfirmed: ``fail``, ``skip`` or ``resend``: an unanswered batch of a channel without
        logs (see the module's point 7).
    """

    def __init__(
        self,
        hook: Any,
        target: TargetState,
        bulk_id: str,
        channel: Channel,
        *,
        batch_size: int = 1000,
        reconcile_delay: float = 15.0,
        max_send_attempts: int = 3,
        on_unconfirmed: str = "fail",
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        log: Any = None,
    ) -> None:
        self.hook = hook
        self.target = target
        self.bulk_id = bulk_id
        self.channel = channel
        self.batch_size = batch_size
        self.reconcile_delay = reconcile_delay
        self.max_send_attempts = max(1, int(max_send_attempts))
        if on_unconfirmed not in ON_UNCONFIRMED:
            raise AirflowFailException(
                f"on_unconfirmed must be one of {', '.join(ON_UNCONFIRMED)}, got {on_unconfirmed!r}"
            )
        self.on_unconfirmed = on_unconfirmed
        self.has_logs: bool = getattr(channel, "has_logs", True)
        self.clock = clock
        self.sleep = sleep
        self.log = log or logging.getLogger(__name__)
        self.attempt = uuid.uuid4().hex[:8]
        self._seq = 0
        self.ledger: Ledger = fold_ledger(target.read_journal())
        #: options that let Infobip hold messages back: the logs cannot prove those were not sent.
        self.deferral: tuple[str, ...] = channel.deferral
        self.sent_now = 0
        self.resent = 0
        self.requests = 0

    # ----------------------------------------------------------------- journal
    def _record(self, state: str, key: str, **fields: Any) -> None:
        self.target.append_journal(journal_record(self.attempt, "send", key, state, **fields))

    def _intent(self, ids: list[str]) -> str:
        self._seq += 1
        key = f"{self.attempt}-{self._seq}"
        now = self.clock()
        self._record("intent", key, ids=ids, t=now)
        self.ledger.open[key] = (now, ids)
        return key

    def _ack(self, key: str, statuses: Counter[str], segments: int) -> None:
        self._record("ack", key, statuses=dict(statuses), segments=segments)
        _, ids = self.ledger.open.pop(key)
        self.ledger.sent.update(ids)
        self.ledger.statuses.update(statuses)
        self.ledger.reported_segments += segments
        self.sent_now += len(ids)

    def _not_sent(self, key: str, reason: str) -> None:
        self._record("not_sent", key, reason=reason)
        self.ledger.open.pop(key, None)
        self.ledger.not_sent += 1

    # --------------------------------------------------------------- reconcile
    def _ask_logs(self, ids: Sequence[str]) -> tuple[set[str], Counter[str]]:
        """Which of ``ids`` Infobip's logs show in this bulk, with their status groups."""
        wanted = set(ids)
        known: set[str] = set()
        statuses: Counter[str] = Counter()
        for item in self.channel.lookup(self.bulk_id, ids):
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
        if age > self.channel.logs_horizon:
            raise BroadcastLedgerError(
                f"A batch of {len(ids)} messages of the broadcast {self.bulk_id} was sent {age / 3600:.0f} h ago "
                f"without a confirmed answer, and Infobip's logs only cover {self.channel.logs_horizon / 3600 + 1:.0f} h: "
                "whether they were "
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
        self._record("reconciled", key, known=sorted(known), statuses=dict(statuses))
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
            f"back and leave them out of its logs ({self.channel.logs_name}) until they leave, so not finding them "
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
        if not self.has_logs:
            return self._unanswered(key)
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
        if not self.has_logs:
            for key in open_batches:
                self._unanswered(key)
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

    def _unanswered(self, key: str) -> set[str]:
        """An unanswered batch of a channel without logs, by ``on_unconfirmed``; returns the message ids
        not to send again (all but for ``resend``)."""
        ids = self.ledger.open[key][1]
        if self.on_unconfirmed == "resend":
            self.log.warning(
                "%d unanswered messages are sent again (on_unconfirmed=resend): some may arrive twice",
                len(ids),
            )
            self._not_sent(key, "on_unconfirmed=resend")
            return set()
        if self.on_unconfirmed == "skip":
            self._record("unconfirmed", key)
            self.ledger.open.pop(key)
            self.ledger.unconfirmed.update(ids)
            self.log.warning(
                "%d unanswered messages are recorded as unconfirmed and not sent again", len(ids)
            )
        else:
            self.log.warning(
                "%d messages got no answer and %s has no logs to ask: they stay unconfirmed in the ledger "
                "and are not sent again",
                len(ids),
                self.channel.logs_name,
            )
        return set(ids)

    def unconfirmed_error(self) -> BroadcastUnconfirmedError:
        """The error that ends a try leaving batches of a channel without logs open."""
        count = len(self.ledger.open_ids)
        return BroadcastUnconfirmedError(
            f"{count} recipients of the broadcast {self.bulk_id} are unconfirmed: their request got no "
            f"answer, and {self.channel.logs_name} has no logs to ask whether Infobip took it. They were not "
            "sent again; the rest of the broadcast went out. Choose, then run the task again: "
            'on_unconfirmed="skip" records them as unconfirmed and never sends them (delivery reports '
            'tell later whether they arrived); on_unconfirmed="resend" sends them again (whoever got the '
            "first one gets a second); or check the bulk id in the Infobip portal and, for messages it does "
            'not have, append {"state": "not_sent", "batch": "<batch>"} to the ledger\'s journal.jsonl. '
            f"The ledger is {self.target.root} ({len(self.ledger.open)} open batches)."
        )

    # -------------------------------------------------------------------- send
    def send(self, recipients: Sequence[Any]) -> None:
        """Send every recipient not yet in the ledger (confirmed, unconfirmed or open), batch by batch."""
        channel = self.channel
        with paused_gc():
            settled = self.ledger.sent | self.ledger.unconfirmed | self.ledger.open_ids
            pending = [r for r in recipients if r.message_id not in settled]
            batches = channel.batches(pending, self.batch_size)
        self.log.info("Sending %d messages in %d requests", len(pending), len(batches))
        by_id = {r.message_id: r for r in pending}
        started, done = time.monotonic(), 0
        interval = self.hook.interval(channel.send_endpoint)
        for number, batch in enumerate(batches, 1):
            size = len(channel.batch_ids(batch))
            self._send_batch(batch, by_id)
            done += size
            if number % max(1, len(batches) // 10) == 0 or number == len(batches):
                log_progress(
                    channel.send_endpoint,
                    number,
                    len(batches),
                    size,
                    done,
                    time.monotonic() - started,
                    (len(batches) - number) * interval,
                )

    def _send_batch(self, batch: Any, by_id: dict[str, Any]) -> None:
        from infobip_provider.errors import InfobipError, InfobipServerError, InfobipTransportError

        channel = self.channel
        for attempt in range(1, self.max_send_attempts + 1):
            ids = channel.batch_ids(batch)
            key = self._intent(ids)
            try:
                self.requests += 1
                answer = channel.send(batch, self.bulk_id)
            except (InfobipServerError, InfobipTransportError) as exc:
                if isinstance(exc, InfobipTransportError) and not exc.sent:
                    self._not_sent(key, type(exc).__name__)
                    raise
                self.log.warning(
                    "The answer to a request of %d messages was lost (%s)%s",
                    len(ids),
                    type(exc).__name__,
                    "; checking Infobip's logs before sending any of them again" if self.has_logs else "",
                )
                known = self.reconcile(key)
                rest = [by_id[i] for i in ids if i not in known]
                if self.has_logs:
                    self.log.warning(
                        "Infobip had %d of the %d messages; %d remain", len(known), len(ids), len(rest)
                    )
                if not rest:
                    return
                if attempt == self.max_send_attempts:
                    raise
                self.resent += len(rest)
                batch = channel.batches(rest, self.batch_size)[0]
                continue
            except InfobipError as exc:
                # An answer arrived (4xx, or 429 after every retry): Infobip took nothing.
                self._not_sent(key, type(exc).__name__)
                raise
            statuses, segments = channel.statuses(answer)
            self._ack(key, statuses, segments)
            return


def _outcome(
    run: BroadcastRun, recipients: Sequence[Any], already: int, rejects_uri: str | None, not_used: int
) -> tuple[dict[str, Any], dict[str, int]]:
    """A finished send's summary fields, and the counts kept in the broadcast's history."""
    result: dict[str, Any] = {
        "sent": sum(1 for r in recipients if r.message_id in run.ledger.sent),
        "sent_this_try": run.sent_now,
        "already_sent": already,
        "reconciled": run.ledger.reconciled,
        "resent_after_lost_answer": run.resent,
        "rejected": int(run.ledger.statuses.get("REJECTED", 0)),
        "statuses": dict(sorted(run.ledger.statuses.items())),
        "rejects_uri": rejects_uri,
    }
    counts = {"sent": run.sent_now, "rejected": result["rejected"], "not_used": not_used}
    if not run.has_logs:
        wanted = {r.message_id for r in recipients}
        # recorded unconfirmed and confirmed since (a delivery report arrived): sent, not unconfirmed
        unconfirmed = (run.ledger.unconfirmed - run.ledger.sent) | run.ledger.open_ids
        result["unconfirmed"] = counts["unconfirmed"] = len(unconfirmed & wanted)
    return result, counts


class BroadcastOperator(CohortOperator):
    """Base of the broadcast operators: the bulk id, the ledger's target and lock, sending through
    :class:`BroadcastRun` on the operator's channel, and the run's end.

    :param batch_size: messages per request, at most 1000.
    :param bulk_id: override the bulk id (default: derived from the DAG, run and task ids and the
        map index of a mapped task). An explicit bulk id that an earlier DAG run already used stops
        the task, unless ``allow_bulk_id_reuse``.
    :param allow_bulk_id_reuse: let this run continue the broadcast an earlier run started under the
        same explicit ``bulk_id`` (recipients it sent are not sent again).
    :param reconcile_delay: seconds a request whose answer was lost is given to settle before the
        logs are asked what it did.
    :param max_send_attempts: requests per batch when answers keep getting lost.
    :param quiet_hours: ``{"from": "21:00", "to": "09:00", "days": [...]}``: quiet from 21:00 to 09:00
        in each member's *local* time (templated; see :mod:`infobip_provider.respect.quiet_hours`).
        Members are grouped by time zone and each group's messages carry the Infobip delivery window
        (and/or send time) that is that local window in UTC; on a channel without delivery windows
        (WhatsApp) members whose local window is closed are not sent (reason ``quiet_hours``) and a
        later try of the run sends them. Not with ``delivery_time_window``.
    :param default_timezone: the zone of members whose row and number name none (templated).
    :param timezone_column: the cohort column with members' IANA time zones, used when present.
    :param max_per_person: ``{"count": 1, "hours": 24}``: members who already got ``count`` messages
        of this library's broadcasts on this channel within ``hours`` (read from the account's
        ledgers) are not sent, with the reason ``frequency_cap`` (templated). Never for test sends.
    :param respect_suppression: skip the members on the account's suppression list (reason
        ``suppressed``; see :mod:`infobip_provider.respect.suppression`); ``False`` turns it off for
        this broadcast. Never for test sends.
    :param suppression_path: a file (CSV, Parquet, JSON Lines) of addresses to add to the suppression
        list, for every channel: its ``phone`` and ``email`` columns, both whatever the channel (a file
        of one column: by its values; otherwise one of them is needed) (templated).
    :param suppression_sql: a query (or ``.sql`` file) on ``cohort_conn_id`` returning such addresses.
    :param suppression_max_removal_ratio: the share of the entries a file or query listed before that
        it may drop by listing them no more (default 0.5; a list read as empty drops them all): above
        it the task fails before sending; 1 allows emptying it (templated).
    :param outcomes_conn_id: the SQL connection of the outcomes tables the reports DAG fills; when
        given, their opt-outs and hard or spam bounces feed the suppression list before each broadcast.
    :param replies_table: the replies table there (``opt_out`` rows suppress the sender everywhere).
    :param reports_table: the delivery reports table there (``hard_bounce`` and ``spam_bounce`` rows
        suppress the address on their channel).
    """

    kind = "broadcasts"
    #: The channel's name in the ledgers (``sms``, ``email``, ``whatsapp``): the frequency cap and
    #: the suppression list are per channel.
    channel_name: ClassVar[str] = ""
    #: The members' address column: ``phone`` or ``email``.
    identity: ClassVar[str] = "phone"
    #: Whether the channel's messages take a delivery window and a send time (WhatsApp's do not).
    takes_windows: ClassVar[bool] = True
    _clock: Callable[[], float] = staticmethod(time.time)
    _sleep: Callable[[float], None] = staticmethod(time.sleep)

    #: The channel's options: the keywords of its options class's ``from_args``. The constructor
    #: takes them by name and keeps each as an attribute; a new option is added there only.
    option_names: ClassVar[tuple[str, ...]] = ()
    #: Templated fields whose ``{{name}}`` tokens are the recipients' (filled per member), not Airflow's.
    token_fields: ClassVar[tuple[str, ...]] = ()
    #: Templated fields every broadcast has.
    broadcast_fields: ClassVar[tuple[str, ...]] = (
        "test_recipients",
        "bulk_id",
        "quiet_hours",
        "default_timezone",
        "timezone_column",
        "max_per_person",
        "respect_suppression",
        "suppression_path",
        "suppression_sql",
        "suppression_max_removal_ratio",
        "outcomes_conn_id",
        "replies_table",
        "reports_table",
    )
    #: Options the connection fills when a task leaves them empty.
    connection_defaults: ClassVar[tuple[str, ...]] = ("entity_id", "application_id")

    def __init__(
        self,
        *,
        test_recipients: Sequence[str] | str | None = None,
        batch_size: int = 1000,
        bulk_id: str | None = None,
        allow_bulk_id_reuse: bool = False,
        reconcile_delay: float = 15.0,
        max_send_attempts: int = 3,
        quiet_hours: Mapping[str, Any] | str | None = None,
        default_timezone: str = "UTC",
        timezone_column: str = "timezone",
        max_per_person: Mapping[str, Any] | str | None = None,
        respect_suppression: bool | str = True,
        suppression_path: str | None = None,
        suppression_sql: str | None = None,
        suppression_max_removal_ratio: float | str = 0.5,
        outcomes_conn_id: str | None = None,
        replies_table: str | None = "infobip_replies",
        reports_table: str | None = "infobip_delivery_reports",
        **kwargs: Any,
    ) -> None:
        options = {name: kwargs.pop(name, None) for name in self.option_names}
        super().__init__(**kwargs)
        self.quiet_hours = quiet_hours
        self.default_timezone = default_timezone
        self.timezone_column = timezone_column
        self.max_per_person = max_per_person
        self.respect_suppression = respect_suppression
        self.suppression_path = suppression_path
        self.suppression_sql = suppression_sql
        self.suppression_max_removal_ratio = suppression_max_removal_ratio
        self.outcomes_conn_id = outcomes_conn_id
        self.replies_table = replies_table
        self.reports_table = reports_table
        self.test_recipients = test_recipients
        self.batch_size = batch_size
        self.bulk_id = bulk_id
        self.allow_bulk_id_reuse = allow_bulk_id_reuse
        self.reconcile_delay = reconcile_delay
        self.max_send_attempts = max_send_attempts
        for name, value in options.items():
            setattr(self, name, value)

    def render_template_fields(self, context: Context, jinja_env: Any = None) -> None:
        """Render as usual, but leave the recipients' ``{{name}}`` tokens of :attr:`token_fields` alone."""
        from infobip_provider.sms import protect_tokens

        for name in self.token_fields:
            value = getattr(self, name, None)
            if isinstance(value, str):
                setattr(self, name, protect_tokens(value, context.keys()))
        super().render_template_fields(context, jinja_env)

    def given_options(self) -> dict[str, Any]:
        """The options as given, the connection's extras filling :attr:`connection_defaults` left empty."""
        given = {name: getattr(self, name) for name in self.option_names}
        defaults = self.hook.defaults
        for name in self.connection_defaults:
            given[name] = as_text(given.get(name)) or defaults.get(name)
        if "callback_data" in given:
            given["callback_data"] = blank_to_none(given["callback_data"])
        return given

    def test_addresses(self, normalize: Callable[[str], str | None], what: str) -> list[str]:
        """The ``test_recipients`` (a list, its text, or addresses separated by commas or new lines),
        each normalised and once; ``what`` names them in errors (``valid phone numbers (E.164 ...)``)."""
        raw = as_literal(self.test_recipients, "test_recipients")
        if raw is None or (isinstance(raw, (list, tuple, set)) and not raw):
            return []
        if isinstance(raw, str):
            raw = [p for p in raw.replace(",", "\n").splitlines() if p.strip()]
        elif not isinstance(raw, (list, tuple, set)):
            kind = what.removeprefix("valid ").split(" (")[0]
            raise AirflowFailException(f"test_recipients must be a list of {kind}, got {type(raw).__name__}")
        found = [normalize(str(value)) for value in raw]
        bad = sum(1 for value in found if value is None)
        if bad:
            raise AirflowFailException(f"{bad} of {len(raw)} test_recipients are not {what}")
        return list(dict.fromkeys(value for value in found if value))

    def broadcast_id(self, context: Context, *, test: bool) -> tuple[str, bool]:
        """The bulk id of this run's broadcast (its test sends have their own), and whether the user gave it."""
        given = blank_to_none(self.bulk_id)
        if given:
            return (f"{str(given)[:95]}-test" if test else str(given)[:MAX_BULK_ID]), True
        map_index = getattr(context.get("ti"), "map_index", None)
        index = map_index if isinstance(map_index, int) else -1
        return broadcast_bulk_id(
            self.dag_id, run_key(context), self.task_id, ":test" if test else "", index
        ), False

    # ----------------------------------------------------------------- respect
    def respect(
        self,
        context: Context,
        prepared: PreparedCohort,
        recipients: Sequence[Any],
        bulk_id: str,
        *,
        test: bool,
    ) -> tuple[list[Any], RespectPlan]:
        """Respect the recipients: skip the suppressed and those at the frequency cap (never for test
        recipients), and put quiet hours in each zone group's window. Skipped members go to the
        cohort's rejects with the reason; the plan's lines go to the log."""
        from infobip_provider.respect.plan import RespectPlan

        plan = RespectPlan()
        now = datetime.fromtimestamp(self._clock(), UTC)
        # members an earlier try of this broadcast settled (sent, or never to be sent again) are not
        # skipped now: they stay out of the rejects and in the counts of what was sent
        ledger = fold_ledger(self.target(bulk_id).read_journal())
        settled = ledger.sent | ledger.unconfirmed | ledger.open_ids
        unsettled = [r for r in recipients if r.message_id not in settled] if settled else recipients
        if not test:
            self._suppress(context, unsettled, plan, now)
            self._cap(plan.keep(unsettled), plan, bulk_id, now)
        self._quiet(prepared, plan.keep(recipients), plan, now, settled)
        kept = plan.keep(recipients)
        if plan.skipped_ids and not test:
            self._reject_skipped(prepared, recipients, plan)
        for line in plan.lines():
            self.log.info("%s", line)
        return kept, plan

    def respect_summary(self, summary: dict[str, Any], plan: RespectPlan) -> None:
        """The respect step's counts in a plan's summary (``skipped_by_reason`` too)."""
        summary["plan"]["respect"] = plan.as_dict()
        if plan.skipped:
            summary["skipped_by_reason"] = {**summary["skipped_by_reason"], **plan.skipped}
            summary["skipped"] = sum(summary["skipped_by_reason"].values())

    def _suppression_state(self) -> TargetState:
        from infobip_provider.state import StateStore, TargetState

        return TargetState(StateStore(self.hook.state_uri).root / self.hook.state_scope / "suppression")

    def _suppress(
        self, context: Context, recipients: Sequence[Any], plan: RespectPlan, now: datetime
    ) -> None:
        """Feed the account's suppression list (outcomes tables, the user's file or query) and skip the
        members on it; a dry run reads what it would add without writing it."""
        from infobip_provider.respect.plan import SUPPRESSED
        from infobip_provider.respect.suppression import ANY_CHANNEL, SuppressionList

        if not as_flag(self.respect_suppression, "respect_suppression"):
            plan.notes.append("Suppression list not applied: respect_suppression is off for this broadcast")
            plan.facts["suppression"] = {"applied": False}
            return
        listing = SuppressionList(self._suppression_state())
        added_at = now.isoformat(timespec="seconds")
        rows, replace, marks, notes = self._suppression_rows(context, listing, added_at)
        dry_run = self.is_dry_run()
        added = 0
        if dry_run:  # writes nothing, takes no lock
            frame = listing.read()
            self._check_shrink(frame, rows, replace)
        else:
            with listing.state.lock("the suppression list", wait=float(self.lock_wait), log=self.log):
                frame = listing.read()  # once: checked, merged, and applied as written
                self._check_shrink(frame, rows, replace)
                added, frame = listing.merge_into(frame, rows, replace, marks)
        suppressed = listing.addresses(self.channel_name, frame)
        if dry_run:
            suppressed |= {r[1] for r in rows if r[0] in (ANY_CHANNEL, self.channel_name)}
        if suppressed:
            for r in recipients:
                if r.to in suppressed:
                    plan.skip(r.message_id, SUPPRESSED)
        plan.facts["suppression"] = {
            "applied": True,
            "uri": listing.uri,
            "entries": len(frame),
            "read_from_sources": len(rows),
            "added": added,
            "members_suppressed": plan.skipped[SUPPRESSED],
        }
        plan.notes.extend(f"Suppression list: {note}" for note in notes)
        plan.notes.append(
            f"Suppression list ({listing.uri}): {len(frame)} entries, {len(rows)} read from the outcomes "
            f"tables and your list{' (not written: dry run)' if dry_run else f', {added} new'}; "
            f"{plan.skipped[SUPPRESSED]} members suppressed"
        )

    def _outcomes_never_set_up(self, conn_id: str, listing: Any) -> bool:
        """True when the outcomes connection is not defined and the list never read from it: the
        reports DAG, which writes through the same connection, has collected nothing yet (a first
        run on the sample files). A connection that was read before and is gone fails instead."""
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            BaseHook.get_connection(conn_id)
        except AirflowNotFoundException:
            if listing.marks():
                return False
            self.log.info(
                "No connection %r is defined: no opt-outs or bounces have been collected there yet, so "
                "the suppression list has only what it holds; once the delivery reports DAG writes "
                "through it, broadcasts read it first",
                conn_id,
            )
            return True
        return False

    def _suppression_rows(
        self, context: Context, listing: Any, added_at: str
    ) -> tuple[list[Any], list[str], dict[str, str], list[str]]:
        """Rows from the outcomes tables (since their marks) and the user's file and query."""
        from infobip_provider.operators.common import sql_text
        from infobip_provider.respect.suppression import (
            OutcomesUnreadable,
            SuppressionSourceError,
            listed_rows,
            outcome_rows,
            source_name,
        )

        rows: list[Any] = []
        replace: list[str] = []
        marks: dict[str, str] = {}
        notes: list[str] = []
        conn_id = as_text(self.outcomes_conn_id)
        replies_table, reports_table = as_text(self.replies_table), as_text(self.reports_table)
        if conn_id and (replies_table or reports_table) and not self._outcomes_never_set_up(conn_id, listing):
            try:
                from airflow.sdk import BaseHook

                hook = BaseHook.get_connection(conn_id).get_hook()
            except Exception as exc:
                raise AirflowFailException(
                    f"The outcomes connection {conn_id!r} (tables {replies_table!r}, {reports_table!r}) is "
                    f"not usable ({type(exc).__name__}: {str(exc)[:300]}). Nothing was sent: the broadcast "
                    "would miss its opt-outs and bounces. Fix the connection, or leave outcomes_conn_id "
                    "empty on purpose, or turn the suppression list off (respect_suppression=False)"
                ) from exc
            try:
                refresh = outcome_rows(
                    hook,
                    replies_table=replies_table,
                    reports_table=reports_table,
                    marks=listing.marks(),
                    added_at=added_at,
                    conn_id=conn_id,
                )
            except OutcomesUnreadable as exc:
                raise AirflowFailException(str(exc)) from exc
            rows += refresh.rows
            marks.update(refresh.marks)
            notes += refresh.notes
        path, sql = as_text(self.suppression_path), as_text(self.suppression_sql)
        normalizers = self._address_normalizers()
        listed: list[tuple[str, Any]] = []
        if path:
            from infobip_provider.cohorts import FileSource

            listed.append((source_name("file", path), lambda: FileSource(path)))
        if sql:
            from infobip_provider.cohorts import SqlSource

            text = sql_text(sql, self, context)
            conn = as_text(self.cohort_conn_id) or "warehouse_default"
            listed.append((source_name("sql", text), lambda: SqlSource(text, conn)))
        for name, make in listed:
            try:
                rows += listed_rows(_read_all(make()), name, added_at, normalizers)
            except SuppressionSourceError as exc:
                raise AirflowFailException(f"The suppression list {exc}. Nothing was sent.") from exc
            replace.append(name)
        return rows, replace, marks, notes

    def _check_shrink(self, frame: Any, rows: Sequence[Any], replace: Sequence[str]) -> None:
        """Refuse to let a file or query replace more than ``suppression_max_removal_ratio`` of the
        entries it listed before (all of them when it reads as empty): a mis-read file must not wipe
        a do-not-contact list."""
        from infobip_provider.respect.suppression import removals

        try:
            ratio = float(self.suppression_max_removal_ratio)
        except (TypeError, ValueError):
            raise AirflowFailException(
                f"suppression_max_removal_ratio must be a number, got {self.suppression_max_removal_ratio!r}"
            ) from None
        for source, (removed, before) in removals(frame, rows, replace).items():
            if before and removed / before > ratio:
                raise AirflowFailException(
                    f"Refusing to remove {removed} of the {before} suppression list entries {source} gave "
                    f"before ({removed / before:.0%} > suppression_max_removal_ratio {ratio:.0%}): an empty "
                    "or mis-read list must not wipe who may not be contacted. Nothing was sent. Check the "
                    "list, or raise suppression_max_removal_ratio (1 allows emptying it) for this run."
                )

    def _address_normalizers(self) -> dict[str, Callable[[Any], str | None]]:
        """The user's list's normalisers by identity (``email``, ``phone``), whatever the channel;
        national numbers take the operator's ``default_region`` when it has one."""
        from infobip_provider.cohorts.identities import normalize_email, phone_normalizer

        region = as_text(getattr(self, "default_region", None))
        try:  # one caching normaliser for the whole list (an unknown region reads no number)
            normalizer: Callable[[Any], str | None] | None = phone_normalizer(
                region.upper() if region else region
            )
        except ValueError:
            normalizer = None

        def phone(value: Any) -> str | None:
            if value is None or normalizer is None:
                return None
            return normalizer(str(value))

        return {"email": lambda v: normalize_email(str(v)) if v is not None else None, "phone": phone}

    def _cap(self, recipients: Sequence[Any], plan: RespectPlan, bulk_id: str, now: datetime) -> None:
        """Skip members who got ``max_per_person`` messages on this channel within its hours."""
        from infobip_provider.respect.frequency import FrequencyCap, LedgerView, recent_counts
        from infobip_provider.respect.plan import FREQUENCY_CAP
        from infobip_provider.state import TargetState

        cap = FrequencyCap.parse(self.max_per_person)
        if cap is None:
            return
        folder = self.target(bulk_id).root.parent

        def ledgers() -> Iterator[LedgerView]:
            if not folder.exists():
                return
            for path in sorted(folder.iterdir(), key=lambda p: p.name):
                if not path.is_dir():
                    continue
                state = TargetState(path)
                facts = state.read_json("target.json") or {}
                if not facts.get("bulk_id") or facts["bulk_id"] == bulk_id or facts.get("test"):
                    continue  # this broadcast and test sends never count: their journals stay unread
                if facts.get("channel") not in (None, "", self.channel_name):
                    continue
                yield LedgerView(
                    str(facts["bulk_id"]), facts.get("channel"), bool(facts.get("test")), state.read_journal()
                )

        candidates = [r for r in recipients if r.message_id not in plan.skipped_ids]
        counts, broadcasts = recent_counts(
            ledgers(),
            [r.to for r in candidates],
            channel=self.channel_name,
            since=now.timestamp() - cap.hours * 3600,
            exclude_bulk=bulk_id,
            message_ids=message_ids,
        )
        if counts:
            for r in candidates:
                if counts.get(r.to, 0) >= cap.count:
                    plan.skip(r.message_id, FREQUENCY_CAP)
        plan.facts["frequency_cap"] = {
            "count": cap.count,
            "hours": cap.hours,
            "broadcasts_in_window": broadcasts,
            "members_at_cap": plan.skipped[FREQUENCY_CAP],
        }
        plan.notes.append(
            f"Frequency cap ({self.channel_name}): {cap.describe()}; {broadcasts} earlier broadcasts of this "
            f"account sent on this channel in that time; {plan.skipped[FREQUENCY_CAP]} members are at the cap"
        )

    def _quiet(
        self,
        prepared: PreparedCohort,
        recipients: Sequence[Any],
        plan: RespectPlan,
        now: datetime,
        settled: set[str] | frozenset[str] = frozenset(),
    ) -> None:
        """Each recipient's zone and its group's window (or, without windows, hold back the closed)."""
        from infobip_provider.respect.plan import QUIET_HOURS
        from infobip_provider.respect.quiet_hours import QuietHours, ZoneResolver, windows_for_zones

        quiet = QuietHours.parse(self.quiet_hours)
        if quiet is None:
            return
        if blank_to_none(as_literal(getattr(self, "delivery_time_window", None), "delivery_time_window")):
            raise AirflowFailException(
                "Give quiet_hours (in each member's local time) or delivery_time_window (one window in UTC "
                "for everyone; the DAG's form calls it delivery_window), not both"
            )
        at = max(now, self._send_time() or now)
        resolver = ZoneResolver(as_text(self.default_timezone) or "UTC", at)
        phones, column = self._zone_inputs(prepared, recipients)
        zones = resolver.zones(phones, column, len(recipients))
        windows = windows_for_zones(quiet, zones, at, self._validity())
        plan.quiet, plan.at, plan.windows = quiet, at.isoformat(timespec="minutes"), windows
        plan.zone_sources.update(resolver.counts)
        if self.takes_windows:  # each zone's group key is worked out once, not per member
            key_of = {zone: window.key for zone, window in windows.items()}
            plan.group_of.update(zip([r.message_id for r in recipients], map(key_of.__getitem__, zones)))
            plan.zone_members.update(zones)
        else:
            for r, zone in zip(recipients, zones):
                if windows[zone].open_now or r.message_id in settled:
                    plan.zone_members[zone] += 1
                else:
                    plan.skip(r.message_id, QUIET_HOURS)
        if not self.takes_windows and plan.skipped[QUIET_HOURS]:
            plan.notes.append(
                f"{plan.skipped[QUIET_HOURS]} members are in their quiet hours now and this channel has no "
                "delivery window: they are not sent by this try; run the task again once their window opens "
                "(members already sent are never sent twice)"
            )

    def _validity(self) -> timedelta:
        """How long Infobip keeps the messages: the ``validity_period`` given (the channel's options
        report a bad one), else Infobip's default, 48 hours."""
        from infobip_provider.options import VALIDITY_CAP, VALIDITY_UNITS, parse_validity_period

        given = parse_validity_period(getattr(self, "validity_period", None), [], [])
        if not given:
            return VALIDITY_CAP
        return min(VALIDITY_CAP, timedelta(seconds=given["amount"] * VALIDITY_UNITS[given["timeUnit"]]))

    def _send_time(self) -> datetime | None:
        """The ``send_at`` the task gave, if any, as an aware datetime."""
        from infobip_provider.options import read_moment

        value = blank_to_none(getattr(self, "send_at", None))
        return None if value is None else read_moment(value if isinstance(value, datetime) else str(value))

    def _zone_inputs(
        self, prepared: PreparedCohort, recipients: Sequence[Any]
    ) -> tuple[list[str | None] | None, list[Any] | None]:
        """Each recipient's phone number (its address on a phone channel, else the cohort's ``phone``
        column) and ``timezone`` column value, when the cohort has one. The members frame is built
        only when a column of it is needed (a phone channel without a time zone column needs none)."""
        from infobip_provider.cohorts.prepare import MEMBER_COLUMNS

        if not len(prepared.keys):
            return ([r.to for r in recipients] if self.identity == "phone" else None), None
        held = {*MEMBER_COLUMNS, *prepared.columns}  # the members frame's columns
        available = cohort_columns(self.identity, self.identity, prepared.columns)
        zone_column = available.get(as_text(self.timezone_column) or "timezone")
        column = None
        if zone_column and zone_column in held:
            members = prepared.members
            by_address = dict(zip(members[self.identity].tolist(), members[zone_column].tolist()))
            column = [by_address.get(r.to) for r in recipients]
        if self.identity == "phone":
            return [r.to for r in recipients], column
        phone_column = available.get("phone")
        if not phone_column or phone_column not in held:
            return None, column
        members = prepared.members
        raw = dict(zip(members[self.identity].tolist(), members[phone_column].tolist()))
        phones = []
        for r in recipients:
            value = str(raw.get(r.to) or "").strip()
            digits = re.sub(r"\D", "", value)
            phones.append(digits if value.startswith(("+", "00")) and digits else None)
        return phones, column

    def _reject_skipped(self, prepared: PreparedCohort, recipients: Sequence[Any], plan: RespectPlan) -> None:
        """Add the members the respect step skipped to the cohort's rejects, with the reason."""
        import pandas as pd

        rows: dict[str, Any] = {}
        skipped = [r for r in recipients if r.message_id in plan.skipped_ids]
        if skipped and len(prepared.keys):
            columns = prepared.arrow_columns()  # the members frame is not built for this
            addresses, numbers = columns.get(self.identity), columns.get("row")
            if addresses is not None and numbers is not None:
                rows = _rows_of(addresses, numbers, {r.to for r in skipped})
        frame = pd.DataFrame(
            {
                "row": [rows.get(r.to) for r in skipped],
                "key": [r.to for r in skipped],
                "value": None,
                "reason": [plan.skipped_ids[r.message_id] for r in skipped],
            }
        )
        merged = pd.concat([prepared.rejects, frame], ignore_index=True) if len(prepared.rejects) else frame
        prepared.rejects = merged.sort_values("row", kind="stable").reset_index(drop=True)

    def deliver(
        self,
        context: Context,
        prepared: PreparedCohort,
        bulk_id: str,
        channel: Channel,
        recipients: Sequence[Any],
        *,
        explicit: bool,
        on_unconfirmed: str = "fail",
        respect: RespectPlan | None = None,
        test: bool = False,
    ) -> tuple[BroadcastRun, dict[str, Any]]:
        """Send ``recipients`` (each with ``message_id``) once, through the ledger of ``bulk_id``.

        :param on_unconfirmed: for a channel without logs, what becomes of an unanswered batch's
            members (``fail``, ``skip``, ``resend``; see :class:`BroadcastRun`).
        :param respect: the respect step's plan: with quiet hours, each zone group's requests carry
            its window.
        :param test: a send to test recipients (its ledger does not count towards the frequency cap).
        :raises BroadcastUnconfirmedError: with ``fail``, after the rest was sent, while batches stay open.
        """
        if respect is not None and respect.group_of:
            variants = {key: channel.scheduled(w.window, w.send_at) for key, w in respect.groups.items()}  # type: ignore[attr-defined]
            channel = ZonedChannel(channel, respect.group_of, variants)
        target = self.target(bulk_id)
        with self.locked(target, f"the broadcast {bulk_id}"):
            self._claim(target, context, bulk_id, explicit=explicit, test=test)
            rejects_uri = target.write_rejects(run_key(context), prepared.rejects)
            if rejects_uri:
                self.log.info("Cohort rows not used, with reasons: %s", rejects_uri)
            run = BroadcastRun(
                self.hook,
                target,
                bulk_id,
                channel,
                batch_size=validate_batch_size(self.batch_size),
                reconcile_delay=float(self.reconcile_delay),
                max_send_attempts=int(self.max_send_attempts),
                on_unconfirmed=on_unconfirmed,
                clock=self._clock,
                sleep=self._sleep,
                log=self.log,
            )
            run.resume()
            already = len(run.ledger.sent)
            run.send(recipients)
            target.write_json(
                "target.json",
                {
                    **(target.read_json("target.json") or {}),
                    "sent": len(run.ledger.sent),
                    "complete": not run.ledger.open,
                },
            )
            result, counts = _outcome(run, recipients, already, rejects_uri, len(prepared.rejects))
            # inside the lock: the history line is appended by one run at a time
            self.finish(
                context, target, bulk_id, result, counts=counts, size=len(run.ledger.sent), dry_run=False
            )
        if not run.has_logs and run.ledger.open:
            raise run.unconfirmed_error()
        return run, result

    def log_outcome(self, summary: dict[str, Any], recipients: int, extra: str = "") -> None:
        """The broadcast's outcome in one log line (``extra``: the channel's own counts)."""
        how = [f"{summary['sent_this_try']} by this try", f"{summary['already_sent']} before it"]
        if summary.get("reconciled"):
            how.append(f"{summary['reconciled']} of them confirmed from Infobip's logs")
        line = f"Broadcast {summary['bulk_id']}: {summary['sent']} of {recipients} recipients sent ({', '.join(how)})"
        if summary.get("unconfirmed"):
            line += f", {summary['unconfirmed']} unconfirmed"
        line += (
            f", {summary['rejected']} rejected by Infobip, {summary['skipped']} cohort rows not used{extra}"
        )
        self.log.info("%s", line)

    def _claim(
        self, target: TargetState, context: Context, bulk_id: str, *, explicit: bool, test: bool = False
    ) -> None:
        """Record who started the broadcast (and its channel, for the frequency cap), or say which run
        this one continues; refuse an explicit bulk id another DAG run started (unless
        ``allow_bulk_id_reuse``)."""
        run_id = run_key(context)
        facts = target.read_json("target.json") or {}
        if not facts:
            record: dict[str, Any] = {
                "bulk_id": bulk_id,
                "dag_id": self.dag_id,
                "run_id": run_id,
                "task_id": self.task_id,
                "channel": self.channel_name,
                "test": test,
                "created": datetime.fromtimestamp(self._clock(), UTC).isoformat(),
            }
            map_index = getattr(context.get("ti"), "map_index", None)
            if isinstance(map_index, int) and map_index >= 0:
                record["map_index"] = map_index
            target.write_json("target.json", record)
            return
        self.log.info(
            "This run continues the broadcast %s started by the run %s (%s sent so far)",
            bulk_id,
            facts.get("run_id"),
            facts.get("sent", "none"),
        )
        if not explicit or facts.get("run_id") in (None, run_id):
            return
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


def _read_all(source: Any) -> Any:
    """Every row of a file or query source as one frame."""
    import pandas as pd

    chunks = list(source.iter_chunks())
    return pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame()


def _rows_of(addresses: Any, rows: Any, wanted: set[str]) -> dict[Any, Any]:
    """Address -> cohort row of the members whose address is ``wanted`` (one vectorised pass over the
    members' address column: Arrow, or a list once the members frame was built)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(addresses, (pa.Array, pa.ChunkedArray)) and (
        pa.types.is_string(addresses.type) or pa.types.is_large_string(addresses.type)
    ):
        hit = pc.fill_null(
            pc.is_in(addresses, value_set=pa.array(sorted(wanted), type=addresses.type)), False
        )
        picked = pc.filter(addresses, hit).to_pylist()
        mask = hit.to_numpy(zero_copy_only=False)
    else:
        if isinstance(addresses, (pa.Array, pa.ChunkedArray)):
            addresses = addresses.to_pylist()
        values = pd.Series(addresses, dtype=object)
        mask = values.isin(wanted).to_numpy()
        picked = values[mask].tolist()
    return dict(zip(picked, np.asarray(rows)[mask].tolist()))


def cohort_columns(identity_column: str, identity: str, member_columns: Sequence[str]) -> dict[str, str]:
    """Cohort column name -> member column of a prepared cohort: each source column under its own name
    (a source column the members reserve is kept as ``source_<name>``), the identity column giving
    the normalised address (``identity``: ``phone`` or ``email``)."""
    from infobip_provider.cohorts.prepare import MEMBER_COLUMNS

    available: dict[str, str] = {}
    for column in member_columns:
        original = column
        if column.startswith("source_") and column[len("source_") :] in MEMBER_COLUMNS:
            original = column[len("source_") :]
        available.setdefault(original, column)
    available[identity_column] = identity
    return available


class PhoneBroadcastOperator(BroadcastOperator):
    """A broadcast to phone numbers (SMS, WhatsApp): the phone column, read per row with its country.

    :param phone_column: the column of phone numbers (E.164, or national read with the region).
    :param country_column: optional column of ISO country codes to read national numbers per row.
    :param default_region: region for national numbers (None: international numbers only).
    """

    phone_fields: ClassVar[tuple[str, ...]] = ("phone_column", "country_column", "default_region")

    def __init__(
        self,
        *,
        phone_column: str = "phone",
        country_column: str | None = None,
        default_region: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.phone_column = phone_column
        self.country_column = country_column
        self.default_region = default_region

    def read_phones(self, context: Context) -> PreparedCohort:
        """Read the cohort keyed by phone number; log what became of its rows, fail above the reject ratio."""
        from infobip_provider.cohorts import IdentityColumns

        prepared = self.read_cohort(
            context,
            IdentityColumns(email=None, phone=self.phone_column, country=as_text(self.country_column)),
            key="phone",
            default_region=as_text(self.default_region),
        )
        prepared.check_reject_ratio(self.max_reject_ratio, self.log)
        return prepared

    def columns_of(self, prepared: PreparedCohort) -> dict[str, str]:
        """The cohort's columns a template may name (the phone column gives the E.164 number)."""
        return cohort_columns(self.phone_column, "phone", prepared.columns)

    def test_numbers(self) -> list[str]:
        """The test recipients as E.164 numbers."""
        from infobip_provider.cohorts import normalize_phone

        region = as_text(self.default_region)
        try:
            return self.test_addresses(
                lambda v: normalize_phone(v, region), "valid phone numbers (use E.164, e.g. +41793026727)"
            )
        except ValueError as exc:  # an unknown default_region
            raise AirflowFailException(f"default_region: {exc}") from None
