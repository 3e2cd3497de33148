"""The sandbox's moving parts besides the data: request journal, counters, fault queue, autosave.

:class:`SandboxCore` bundles them with the store and the cooldown ledger; the app keeps one core
in ``app.state.sandbox`` and every handler reaches it from there.

Threads: the journal, counters, faults and ledger live on the event loop. Everything that reads or
changes the store runs on the core's single store thread (:meth:`SandboxCore.run`), one job at a
time, so the loop stays free to stamp arrivals while a 1000-person batch is handled, and the store
needs no locks.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from infobip_provider.sandbox.config import SandboxConfig
from infobip_provider.sandbox.cooldowns import CooldownLedger
from infobip_provider.sandbox.endpoints import BY_NAME, ENDPOINTS
from infobip_provider.sandbox.sms import sms_status_fields
from infobip_provider.sandbox.store import SandboxStore, write_atomic

log = logging.getLogger(__name__)

T = TypeVar("T")
FAULT_KINDS = ("error_500", "error_429", "slow", "commit_then_500")


@dataclass
class Fault:
    """The next ``count`` requests to ``endpoint`` fail in the way ``kind`` says."""

    endpoint: str
    kind: str
    count: int
    delay: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "kind": self.kind, "count": self.count, "delay": self.delay}


class FaultQueue:
    """Pending faults per endpoint, first in first out."""

    def __init__(self) -> None:
        self._queues: dict[str, deque[Fault]] = {}

    def add(self, fault: Fault) -> None:
        if fault.endpoint not in BY_NAME:
            raise ValueError(f"unknown endpoint {fault.endpoint!r}")
        if fault.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {fault.kind!r}; one of {', '.join(FAULT_KINDS)}")
        if fault.count < 1:
            raise ValueError("count must be >= 1")
        if fault.delay is not None and fault.delay < 0:
            raise ValueError("delay must be >= 0")
        self._queues.setdefault(fault.endpoint, deque()).append(fault)

    def take(self, endpoint: str) -> Fault | None:
        """Consume one occurrence of the oldest pending fault of ``endpoint``."""
        queue = self._queues.get(endpoint)
        if not queue:
            return None
        fault = queue[0]
        fault.count -= 1
        if fault.count <= 0:
            queue.popleft()
        return Fault(fault.endpoint, fault.kind, 1, fault.delay)

    def pending(self) -> list[dict[str, Any]]:
        return [fault.as_dict() for queue in self._queues.values() for fault in queue]

    def clear(self) -> None:
        self._queues.clear()


def decode_body(raw: bytes | None) -> Any:
    """A request body for the journal: decoded JSON, else text, ``None`` when empty."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return raw.decode("utf-8", "replace")


class Journal:
    """Every API request, appended at arrival and completed when answered.

    Request bodies are kept raw for the newest ``bodies_kept`` requests only (a 1000-id batch is
    tens of kilobytes), and decoded when asked for.
    """

    def __init__(self, size: int, bodies_kept: int = 2000) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=size)
        self._with_bodies: deque[dict[str, Any]] = deque()
        self._bodies_kept = bodies_kept
        self._seq = 0

    def attach_body(self, entry: dict[str, Any], raw: bytes | None) -> None:
        entry["body"] = raw
        self._with_bodies.append(entry)
        while len(self._with_bodies) > self._bodies_kept:
            self._with_bodies.popleft()["body"] = None

    def open(
        self, arrival: float, method: str, path: str, query: str, endpoint: str | None
    ) -> dict[str, Any]:
        self._seq += 1
        entry: dict[str, Any] = {
            "seq": self._seq,
            "arrival": arrival,
            "method": method,
            "path": path,
            "query": query,
            "endpoint": endpoint,
            "key": None,
            "status": None,
            "outcome": None,
            "duration": None,
            "body": None,
        }
        self._entries.append(entry)
        return entry

    def entries(
        self, *, bodies: bool = False, endpoint: str | None = None, since: int = 0, limit: int | None = None
    ) -> list[dict[str, Any]]:
        selected = [
            e for e in self._entries if e["seq"] > since and (endpoint is None or e["endpoint"] == endpoint)
        ]
        if limit is not None:
            selected = selected[-limit:]
        if bodies:
            return [{**e, "body": decode_body(e["body"])} for e in selected]
        return [{k: v for k, v in e.items() if k != "body"} for e in selected]

    def clear(self) -> None:
        self._entries.clear()
        self._with_bodies.clear()


class Counters:
    """Per endpoint: requests, 429 answers (all, and those due to a cooldown), faults, answers by status."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self._by_endpoint: dict[str, dict[str, Any]] = {spec.name: self._empty() for spec in ENDPOINTS}

    @staticmethod
    def _empty() -> dict[str, Any]:
        return {"requests": 0, "429s": 0, "cooldown_429s": 0, "faults": 0, "by_status": {}}

    def record(self, endpoint: str | None, status: int | None, outcome: str) -> None:
        row = self._by_endpoint.setdefault(endpoint or "unmatched", self._empty())
        row["requests"] += 1
        if status == 429:
            row["429s"] += 1
        if outcome == "cooldown":
            row["cooldown_429s"] += 1
        if outcome.startswith("fault:"):
            row["faults"] += 1
        key = str(status)
        row["by_status"][key] = row["by_status"].get(key, 0) + 1

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {name: {**row, "by_status": dict(row["by_status"])} for name, row in self._by_endpoint.items()}


def _frozen_after(work: Callable[[], T]) -> T:
    """Run ``work``, then move every object alive to the collector's permanent generation.

    The store of a large sandbox holds millions of tracked objects (50,000 people). Left to the
    cyclic collector, each full pass over them holds the GIL for 40-150 ms, and a request arriving
    meanwhile is stamped that much late, so the next one looks too close and gets a false 429. What
    the store keeps is acyclic and freed by reference counting when dropped; freezing it after each
    job leaves the collector only what is new since (``gc.freeze`` is a constant-time list splice).
    """
    try:
        return work()
    finally:
        gc.freeze()


class SandboxCore:
    """State, ledger, journal, counters and faults of one sandbox."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.clock = config.clock
        self.api_keys = frozenset(config.api_keys)
        self.key_scopes = {key: frozenset(scopes) for key, scopes in config.scoped_keys.items()}
        self.store = SandboxStore()
        self.ledger = CooldownLedger(config.cooldown_scale)
        self.journal = Journal(config.journal_size, config.journal_bodies)
        self.counters = Counters()
        self.faults = FaultQueue()
        self.dirty = False
        self._executor: ThreadPoolExecutor | None = None
        if config.state_file:
            loaded = self.store.load_file(config.state_file)
            log.warning("Sandbox state %s", "loaded" if loaded else "starts empty (no state file yet)")

    def knows(self, key: str) -> bool:
        """Whether ``key`` is one of the sandbox's keys (full access or scoped)."""
        return key in self.api_keys or key in self.key_scopes

    def may_call(self, key: str, scopes: tuple[str, ...]) -> bool:
        """Whether ``key`` opens an endpoint that any of ``scopes`` opens (full-access keys open all)."""
        held = self.key_scopes.get(key)
        return held is None or not held.isdisjoint(scopes)

    def mark_dirty(self) -> None:
        self.dirty = True

    # ---- the store thread ------------------------------------------------------------------------
    async def run(self, work: Callable[[], T]) -> T:
        """Run ``work`` (anything touching the store) on the store thread, after the jobs before it."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandbox-store")
        job: Callable[[], T] = (lambda: _frozen_after(work)) if self.config.freeze_heap else work
        return await asyncio.get_running_loop().run_in_executor(self._executor, job)

    def shutdown(self) -> None:
        """Wait for the store thread's pending jobs and stop it (a later :meth:`run` starts a new one)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)

    # ---- state -------------------------------------------------------------------------------------
    def dump(self) -> dict[str, Any]:
        """The state with every SMS's current status, as served by ``/_sandbox/state`` and saved to disk."""
        data = self.store.dump()
        now = self.clock()
        data["messages"] = [{**m, **sms_status_fields(m, now)} for m in data["messages"]]
        return data

    def serialised(self) -> str:
        return json.dumps(self.dump(), ensure_ascii=False, separators=(",", ":"))

    async def reset(self) -> None:
        """Wipe the store (on the store thread), the cooldown windows, journal, counters and faults."""
        await self.run(self.store.clear)
        self.ledger.reset()
        self.journal.clear()
        self.counters.clear()
        self.faults.clear()
        self.mark_dirty()

    def save(self) -> str | None:
        """Write the state file now (if configured); returns its path. Only when no request is served."""
        if not self.config.state_file:
            return None
        self.dirty = False
        write_atomic(Path(self.config.state_file), self.serialised())
        return self.config.state_file

    async def save_async(self) -> str | None:
        """:meth:`save` while serving, as a store-thread job: writes land in the order they were asked."""
        if not self.config.state_file:
            return None
        self.dirty = False
        target = Path(self.config.state_file)
        await self.run(lambda: write_atomic(target, self.serialised()))
        return self.config.state_file

    def save_if_dirty(self) -> None:
        if self.dirty:
            self.save()

    async def autosave(self) -> None:
        """Save a changed state every ``save_interval`` seconds, as a store-thread job."""
        assert self.config.state_file
        while True:
            await asyncio.sleep(self.config.save_interval)
            if not self.dirty:
                continue
            try:
                await self.save_async()
            except OSError as exc:  # keep serving; the next change retries
                self.dirty = True
                log.warning("Sandbox could not save its state: %s", exc)
            except asyncio.CancelledError:  # shutting down: the job may not have run, the final save will
                self.dirty = True
                raise
