"""Checkpointed batches: an intent before each batch is sent, an ack after Infobip answered.

Operators run their batches through :class:`BatchLanes`: one lane per endpoint, lanes side by side
(their cooldowns are independent), each batch journaled in the target's state so a killed or
retried task can fold what Infobip acknowledged into its snapshot and send only the rest.

A lane may *follow* another: its batches come from a :class:`BatchFeed` that the leading lane fills
from its ``on_ack`` callback, so a follower sends only what the leader had acknowledged (a person's
tag after its upsert) while both run side by side.

A lane sends one batch at a time by default. With ``window`` > 1 it keeps up to that many batches in
flight, each journaled (intent, then ack) on its own: when an answer takes longer than the endpoint's
cooldown, the next batch still goes out at its slot instead of after the answer.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from infobip_provider.state import TargetState

log = logging.getLogger(__name__)


@dataclass
class Recovery:
    """What the journal of an interrupted sync says.

    :param acked: per lane, the acknowledged batches as ``(ids, refused ids → reason)``.
    :param unacked: per lane, ids of batches that were sent (or about to be) without an answer.
    """

    acked: dict[str, list[tuple[list[str], dict[str, str]]]] = field(default_factory=dict)
    unacked: dict[str, list[str]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.acked and not self.unacked


def recover(target: TargetState) -> Recovery:
    """Read the journal left by an interrupted sync."""
    intents: dict[tuple[str, str, int], list[str]] = {}
    recovery = Recovery()
    for record in target.read_journal():
        key = (record.get("run", ""), record["lane"], int(record["batch"]))
        if record["state"] == "intent":
            intents[key] = list(record["ids"])
        elif record["state"] == "ack" and key in intents:
            ids = intents.pop(key)
            recovery.acked.setdefault(key[1], []).append((ids, dict(record.get("refused") or {})))
    for (_, lane, _), ids in intents.items():
        recovery.unacked.setdefault(lane, []).extend(ids)
    return recovery


#: The journal's states: ``intent`` (written before a batch leaves, with its ``ids``), ``ack`` (Infobip
#: answered), and for a lane that is not safe to repeat (a broadcast's sends) ``reconciled`` (the
#: logs said which ids Infobip had), ``not_sent`` (Infobip provably took nothing) and ``unconfirmed``
#: (a channel without logs lost the answer and the user chose not to send those ids again).
JOURNAL_STATES = ("intent", "ack", "reconciled", "not_sent", "unconfirmed")


def journal_record(run: str, lane: str, batch: int | str, state: str, **fields: Any) -> dict[str, Any]:
    """One record of a target's journal, the same shape for every flow: the attempt (``run``), the
    lane (endpoint), the batch, its state, the time, and the state's own fields."""
    if state not in JOURNAL_STATES:
        raise ValueError(f"unknown journal state {state!r}")
    return {"run": run, "lane": lane, "batch": batch, "state": state, "t": time.time(), **fields}


class Batches(Sequence[list[str]]):
    """``items`` in consecutive batches of at most ``size``, each made when it is reached (so a plan of
    millions holds no list per batch before it is sent)."""

    def __init__(self, items: Sequence[str], size: int) -> None:
        if size < 1:
            raise ValueError("a batch holds at least one id")
        self.items, self.size = items, size

    def __len__(self) -> int:
        return math.ceil(len(self.items) / self.size)

    @overload
    def __getitem__(self, index: int) -> list[str]: ...
    @overload
    def __getitem__(self, index: slice) -> list[list[str]]: ...
    def __getitem__(self, index: int | slice) -> list[str] | list[list[str]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return list(self.items[index * self.size : (index + 1) * self.size])

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


def batches(items: Sequence[str], size: int) -> Batches:
    """Split ``items`` into consecutive batches of at most ``size`` (made one at a time)."""
    return Batches(items, size)


class BatchFeed:
    """Batches that become ready while lanes run: a leading lane puts ids in, a following lane sends them.

    Iterating blocks until ``size`` ids are ready (a full batch) or the feed is closed (what is left,
    then the end). The leader's ``on_exit`` should close the feed, whatever happened to it.

    :param size: ids per batch.
    :param ids: ids ready from the start.
    :param expected: how many ids should arrive in all (only for the ETA in the log).
    """

    def __init__(self, size: int, ids: Iterable[str] = (), expected: int | None = None) -> None:
        if size < 1:
            raise ValueError("a batch holds at least one id")
        self.size = size
        self._pending: deque[str] = deque(ids)
        self._closed = False
        self._ready = threading.Condition()
        self.expected = len(self._pending) if expected is None else expected

    def put(self, ids: Iterable[str]) -> None:
        with self._ready:
            if self._closed:
                raise RuntimeError("the feed is closed")
            self._pending.extend(ids)
            if len(self._pending) >= self.size:
                self._ready.notify_all()

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def __bool__(self) -> bool:
        """True while the feed may still yield a batch (a lane thread is worth starting)."""
        with self._ready:
            return bool(self._pending) or not self._closed

    def __len__(self) -> int:
        """The expected number of batches (an estimate: for the ETA only)."""
        return math.ceil(self.expected / self.size)

    def __iter__(self) -> Iterator[list[str]]:
        while True:
            with self._ready:
                self._ready.wait_for(lambda: len(self._pending) >= self.size or self._closed)
                if not self._pending:
                    return
                take = min(self.size, len(self._pending))
                batch = [self._pending.popleft() for _ in range(take)]
            yield batch


@dataclass
class Lane:
    """One endpoint's batches and the call that sends one batch.

    :param send: sends a batch and returns the refused ids with their reasons.
    :param interval: the endpoint's cooldown (for the ETA in the log).
    :param on_ack: called with ``(ids, refused)`` after each batch's ack is journaled (feeds a follower).
    :param on_exit: called once when the lane ends, whether it finished, stopped or failed
        (closes the feed of a follower), also when it had nothing to send; after every batch in
        flight was answered.
    :param window: batches in flight at once (``send`` is then called from several threads; the
        cooldown gate still spaces the requests).
    """

    name: str
    batches: Sequence[list[str]] | BatchFeed
    send: Callable[[list[str]], dict[str, str]]
    interval: float = 0.0
    done: int = 0
    sent_ids: int = 0
    refused: dict[str, str] = field(default_factory=dict)
    on_ack: Callable[[list[str], dict[str, str]], None] | None = None
    on_exit: Callable[[], None] | None = None
    window: int = 1


def log_progress(
    what: str, done: int, total: int, size: int, running: int, elapsed: float, eta: float
) -> None:
    """One progress line: the batch's number and size, the running total, the time left."""
    log.info(
        "%s: batch %d of %d done (%d in this batch, %d so far), %.1f s elapsed, about %.1f s left",
        what,
        done,
        total,
        size,
        running,
        elapsed,
        eta,
    )


class BatchLanes:
    """Run lanes side by side, journaling every batch; the first failure stops every lane."""

    def __init__(self, target: TargetState, run_id: str, *, clock: Callable[[], float] = time.monotonic):
        self.target = target
        self.run_id = run_id
        self._clock = clock
        self._stop = threading.Event()

    def run(self, lanes: Sequence[Lane]) -> None:
        errors: list[BaseException] = []
        for lane in lanes:
            if not lane.batches and lane.on_exit is not None:
                lane.on_exit()
        threads = [
            threading.Thread(
                target=self._run_lane, args=(lane, errors), name=f"infobip-{lane.name}", daemon=True
            )
            for lane in lanes
            if lane.batches
        ]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                thread.join()
        except BaseException:
            # The task is being stopped (SIGTERM, timeout): no lane may go on sending while the
            # caller folds the journal; each finishes the batch in flight and stops.
            self._stop.set()
            for thread in threads:
                thread.join()
            raise
        if errors:
            raise errors[0]

    def _run_lane(self, lane: Lane, errors: list[BaseException]) -> None:
        started = self._clock()
        total = len(lane.batches)
        try:
            if lane.window > 1:
                self._run_window(lane, errors, started)
                return
            for number, ids in enumerate(lane.batches):
                if self._stop.is_set():
                    return
                record: dict[str, Any] = {"run": self.run_id, "lane": lane.name, "batch": number}
                self.target.append_journal(journal_record(**record, state="intent", ids=ids))
                refused = lane.send(ids)
                self.target.append_journal(journal_record(**record, state="ack", refused=refused))
                lane.done += 1
                lane.sent_ids += len(ids)
                lane.refused.update(refused)
                if lane.on_ack is not None:
                    lane.on_ack(ids, refused)
                total = max(total, lane.done)
                remaining = total - lane.done
                if lane.done == total or lane.done % max(1, total // 10) == 0:
                    log_progress(
                        lane.name,
                        lane.done,
                        total,
                        len(ids),
                        lane.sent_ids,
                        self._clock() - started,
                        remaining * lane.interval,
                    )
        except BaseException as exc:
            errors.append(exc)
            self._stop.set()
        finally:
            if lane.on_exit is not None:
                lane.on_exit()

    def _run_window(self, lane: Lane, errors: list[BaseException], started: float) -> None:
        """Up to ``lane.window`` batches in flight; every one is journaled and joined before returning."""
        free = threading.Semaphore(lane.window)
        counts = threading.Lock()
        workers: list[threading.Thread] = []

        def send(record: dict[str, Any], ids: list[str]) -> None:
            try:
                refused = lane.send(ids)
                self.target.append_journal(journal_record(**record, state="ack", refused=refused))
                with counts:
                    lane.done += 1
                    lane.sent_ids += len(ids)
                    lane.refused.update(refused)
                    done, sent_ids = lane.done, lane.sent_ids
                if lane.on_ack is not None:
                    lane.on_ack(ids, refused)
                total = max(len(lane.batches), done)
                if done == total or done % max(1, total // 10) == 0:
                    log_progress(
                        lane.name,
                        done,
                        total,
                        len(ids),
                        sent_ids,
                        self._clock() - started,
                        (total - done) * lane.interval,
                    )
            except BaseException as exc:
                errors.append(exc)
                self._stop.set()
            finally:
                free.release()

        try:
            for number, ids in enumerate(lane.batches):
                free.acquire()
                if self._stop.is_set():
                    free.release()
                    return
                record: dict[str, Any] = {"run": self.run_id, "lane": lane.name, "batch": number}
                self.target.append_journal(journal_record(**record, state="intent", ids=ids))
                worker = threading.Thread(
                    target=send, args=(record, ids), name=f"infobip-{lane.name}-{number}", daemon=True
                )
                workers.append(worker)
                worker.start()
        finally:
            for worker in workers:
                worker.join()
