"""Checkpointed batches: an intent before each batch is sent, an ack after Infobip answered.

Operators run their batches through :class:`BatchLanes`: one lane per endpoint, lanes side by side
(their cooldowns are independent), each batch journaled in the target's state so a killed or
retried task can fold what Infobip acknowledged into its snapshot and send only the rest.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

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


def batches(items: Sequence[str], size: int) -> list[list[str]]:
    """Split ``items`` into consecutive batches of at most ``size``."""
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


@dataclass
class Lane:
    """One endpoint's batches and the call that sends one batch.

    :param send: sends a batch and returns the refused ids with their reasons.
    :param interval: the endpoint's cooldown (for the ETA in the log).
    """

    name: str
    batches: list[list[str]]
    send: Callable[[list[str]], dict[str, str]]
    interval: float = 0.0
    done: int = 0
    sent_ids: int = 0
    refused: dict[str, str] = field(default_factory=dict)


class BatchLanes:
    """Run lanes side by side, journaling every batch; the first failure stops every lane."""

    def __init__(self, target: TargetState, run_id: str, *, clock: Callable[[], float] = time.monotonic):
        self.target = target
        self.run_id = run_id
        self._clock = clock
        self._stop = threading.Event()

    def run(self, lanes: Sequence[Lane]) -> None:
        errors: list[BaseException] = []
        threads = [
            threading.Thread(
                target=self._run_lane, args=(lane, errors), name=f"infobip-{lane.name}", daemon=True
            )
            for lane in lanes
            if lane.batches
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    def _run_lane(self, lane: Lane, errors: list[BaseException]) -> None:
        started = self._clock()
        total = len(lane.batches)
        try:
            for number, ids in enumerate(lane.batches):
                if self._stop.is_set():
                    return
                record: dict[str, Any] = {"run": self.run_id, "lane": lane.name, "batch": number}
                self.target.append_journal({**record, "state": "intent", "ids": ids})
                refused = lane.send(ids)
                self.target.append_journal({**record, "state": "ack", "refused": refused})
                lane.done += 1
                lane.sent_ids += len(ids)
                lane.refused.update(refused)
                remaining = total - lane.done
                if lane.done == total or lane.done % max(1, total // 10) == 0:
                    log.info(
                        "%s: batch %d/%d acknowledged (%d ids), %.1fs elapsed, ETA %.1fs",
                        lane.name,
                        lane.done,
                        total,
                        lane.sent_ids,
                        self._clock() - started,
                        remaining * lane.interval,
                    )
        except BaseException as exc:
            errors.append(exc)
            self._stop.set()
