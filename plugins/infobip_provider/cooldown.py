"""Endpoint cooldowns and the gates that enforce them across threads, processes and hosts.

Every Infobip endpoint has a cooldown (``POLICIES``). Before each request the hook asks a
:class:`CooldownGate` for a **reservation** on a bucket (``"<key or account fingerprint>:<endpoint>"``):
the gate atomically takes the bucket's next free slot, moves the next free slot one interval
(plus :func:`safety_margin`) later, and the caller sleeps once until its slot. Slots are first come,
first served and nobody polls. Waking up, the caller **confirms** its send: the gate checks that the
bucket's last confirmed send is at least :func:`min_gap` back and records this one; a caller that
woke late, after the holder of the next slot has gone, waits just the difference (and takes a new
slot if it keeps losing that race). Slots keep the line moving; confirmations make late wake-ups
harmless. The arithmetic is the pure :func:`next_slot` and :func:`cleared`; the backends only
differ in where ``next_free`` and ``clear_at`` live and what makes the read-modify-write atomic:

- :class:`MemoryGate`: a dict under a thread lock (threads of one process);
- :class:`FileGate`: one small file per bucket under ``<state_dir>/cooldown/``, guarded by
  ``fcntl.flock`` (processes on one host);
- :class:`RedisGate`: one Lua script per reservation on the Redis server's own clock (processes on
  many hosts, whatever their clock skew).

:func:`make_gate` builds the backend a connection names, checks that it works, and caches one gate
per process and configuration. A backend that cannot be reached raises
:class:`~infobip_provider.errors.CooldownBackendError`: there is never a silent fallback to a
weaker guarantee.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from infobip_provider.errors import CooldownBackendError, InfobipConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EndpointPolicy:
    """How often one Infobip endpoint may be called.

    :param endpoint: the project's name for the endpoint (``"lists.add"``), also used by the sandbox.
    :param interval: seconds between two calls at ``cooldown_scale`` 1.0; 0 means unpaced.
    :param scope: ``"key"`` when Infobip counts per API key, ``"account"`` when per account.
    """

    endpoint: str
    interval: float
    scope: Literal["key", "account"]


def _p(endpoint: str, interval: float, scope: Literal["key", "account"]) -> tuple[str, EndpointPolicy]:
    return endpoint, EndpointPolicy(endpoint, interval, scope)


#: Every endpoint the library calls. Intervals as Infobip publishes them.
POLICIES: dict[str, EndpointPolicy] = dict(
    [
        _p("account.balance", 0.0, "key"),
        _p("lists.create", 2.0, "key"),
        _p("lists.add", 10.0, "key"),
        _p("lists.remove", 5.0, "key"),
        _p("people.get", 0.2, "account"),
        _p("people.list", 0.2, "account"),
        _p("people.create", 0.1, "account"),
        _p("people.update", 0.2, "account"),
        _p("people.upsert", 0.2, "account"),
        _p("tags.get", 0.2, "account"),
        _p("tags.create", 0.2, "account"),
        _p("tags.add", 0.2, "account"),
        _p("tags.remove", 0.2, "account"),
        _p("sms.send", 0.0, "account"),
        _p("sms.logs", 0.5, "account"),
        _p("sms.reports", 0.5, "account"),  # [assumed] same as logs: no limit is published
        _p("sms.preview", 0.0, "account"),
        _p("sms.inbox", 0.5, "account"),  # [assumed] like reports: no limit is published
        _p("email.send", 1 / 4000, "account"),  # 4000 requests/s
        _p("email.logs", 0.5, "account"),  # 120/min
        _p("email.reports", 0.5, "account"),  # 120/min
        _p("whatsapp.template", 1 / 4000, "account"),  # 4000 requests/s
        _p("whatsapp.text", 1 / 4000, "account"),  # [assumed] as the template send
        _p("blocklist.add", 1.0, "account"),  # 1 request/s
        _p("blocklist.remove", 1.0, "account"),  # 1 request/s
        _p("blocklist.get", 1.0, "account"),  # 1 request/s
        _p("email.suppressions.add", 0.01, "account"),  # 100 requests/s
        _p("email.suppressions.remove", 0.01, "account"),  # 100 requests/s
        _p("email.suppressions.get", 0.01, "account"),  # 100 requests/s
    ]
)


def fingerprint(secret: str) -> str:
    """A short, irreversible name for a secret (API key) or an account, safe for keys and file names."""
    return hashlib.sha256(("infobip-cooldown:" + secret).encode()).hexdigest()[:16]


def safety_margin(interval: float) -> float:
    """Extra spacing added to every slot, so jitter cannot make two arrivals too close.

    2 % of the interval plus 3 ms, at most 0.25 s. Slots are spaced by interval + margin; confirmed
    sends must be at least :func:`min_gap` apart, 2 ms less, so callers that wake on time pass their
    confirmation without waiting. What the gap adds to the interval (2 % + 1 ms), with the 2 % the
    server tolerates, covers what happens after a confirmation: sending ready bytes, a lane thread
    waiting up to a GIL switch interval (5 ms) for another that decodes an answer, the network. At
    the 10 s list-add cooldown the margin is 0.2 s; at People's 0.2 s, 7 ms.
    """
    return 0.0 if interval <= 0 else min(0.02 * interval + 0.003, 0.25)


#: How much closer than their slots two confirmed sends may be: the jitter of callers waking on time.
_ON_TIME = 0.002


def slot_step(interval: float) -> float:
    """How far apart the gate hands out slots of one bucket: interval + :func:`safety_margin`."""
    return max(interval, 0.0) + safety_margin(interval)


def min_gap(interval: float) -> float:
    """The least time between two confirmed sends of a bucket: the slot step less :data:`_ON_TIME`."""
    margin = safety_margin(interval)
    return max(interval, 0.0) + max(margin - _ON_TIME, margin / 2)


# ---------------------------------------------------------------------------------- arithmetic
@dataclass(frozen=True)
class Reservation:
    """One slot handed out by a gate, in the gate's clock (local time, or the Redis server's).

    :param slot: when the caller may send.
    :param now: when the reservation was taken.
    :param local: for gates on a remote clock (Redis): the slot on the local ``time.monotonic()`` clock.
    """

    slot: float
    now: float
    local: float | None = None

    @property
    def wait(self) -> float:
        """Seconds the caller has to sleep before its slot."""
        return max(self.slot - self.now, 0.0)


def next_slot(next_free: float | None, now: float, interval: float) -> tuple[float, float]:
    """The reservation step: ``(slot, new_next_free)`` for a bucket whose next free slot is ``next_free``.

    ``slot = max(now, next_free)``; ``new_next_free = slot + interval + safety_margin(interval)``.
    An unpaced bucket (``interval <= 0``) still honours a slot pushed back after a 429.
    """
    slot = now if next_free is None else max(now, next_free)
    return slot, slot + slot_step(interval)


def cleared(clear_at: float | None, now: float, interval: float) -> tuple[float, float]:
    """The confirmation step: ``(wait, new_clear_at)`` for a caller about to send.

    ``clear_at`` is the earliest time the bucket's next send may leave (one :func:`min_gap` after
    the last confirmed send, or later after a 429). Before it, the caller must wait ``clear_at -
    now`` and nothing changes; from it on, the send is confirmed (wait 0) and ``clear_at`` moves to
    ``now + min_gap``.
    """
    if clear_at is not None and now < clear_at:
        return clear_at - now, clear_at
    return 0.0, now + min_gap(interval)


def pushed_back(next_free: float | None, now: float, delay: float) -> float:
    """The 429 step: the bucket's next free slot (and its ``clear_at``) becomes at least ``now + delay``."""
    target = now + max(delay, 0.0)
    return target if next_free is None else max(next_free, target)


class SlotBook:
    """The reservation arithmetic over a dict of buckets, with an injected clock; not thread safe.

    :param clock: seconds (any epoch), e.g. ``time.time`` or a fake clock in tests.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.next_free: dict[str, float] = {}
        self.clear_at: dict[str, float] = {}

    def take(self, bucket: str, interval: float) -> Reservation:
        now = self._clock()
        slot, self.next_free[bucket] = next_slot(self.next_free.get(bucket), now, interval)
        return Reservation(slot, now)

    def confirm(self, bucket: str, interval: float) -> float:
        wait, self.clear_at[bucket] = cleared(self.clear_at.get(bucket), self._clock(), interval)
        return wait

    def push_back(self, bucket: str, delay: float) -> float:
        now = self._clock()
        self.next_free[bucket] = pushed_back(self.next_free.get(bucket), now, delay)
        self.clear_at[bucket] = pushed_back(self.clear_at.get(bucket), now, delay)
        return self.next_free[bucket]


# -------------------------------------------------------------------------------------- gates
class CooldownGate(ABC):
    """Hands out reservations: each caller gets the next free slot of a bucket and sleeps until it.

    Backends implement :meth:`take` and :meth:`confirm` (atomic, never sleep) and :meth:`push_back`;
    :meth:`reserve` is ``take``, one sleep, and ``confirm`` (which rarely asks for a second, short one).
    """

    #: the name :func:`make_gate` knows the backend by
    backend = "abstract"

    def __init__(
        self, *, clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep
    ):
        self._clock = clock
        self._sleep = sleep

    @abstractmethod
    def take(self, bucket: str, interval: float) -> Reservation:
        """Atomically take the next free slot of ``bucket`` and move it ``interval`` + margin later."""

    #: Confirmations a caller tries before it gives up racing for the gap and takes a new slot: the
    #: first refusal is the gap after a late send (one short wait settles it); more mean that callers
    #: of later slots keep sending first, and a slot of its own puts this one back in line.
    confirm_attempts = 3

    @abstractmethod
    def confirm(self, bucket: str, interval: float) -> float:
        """Atomically: 0 when a send may leave now (and record it), else the seconds to wait first."""

    def reserve(self, bucket: str, interval: float) -> float:
        """Take the next free slot of ``bucket`` (spaced ``interval`` + margin), sleep until it, confirm.

        A caller woken late (a descheduled process on a busy host, a thread waiting for the GIL) may
        find that the caller of the next slot has sent already; the confirmation then makes it wait
        until a :func:`min_gap` after that send. Its lateness is passed on to the callers after it,
        never more, and no two sends of a bucket leave closer than the gap. A caller that keeps
        losing that race (:attr:`confirm_attempts`) takes a new slot instead of racing forever. An
        unpaced bucket (``interval <= 0``) needs no confirmation.

        :return: seconds slept.
        """
        slept = 0.0
        while True:
            wait = self.remaining(self.take(bucket, interval))
            if wait > 0:
                log.debug("Cooldown %s: sleeping %.3fs until the reserved slot", _endpoint_of(bucket), wait)
                self._sleep(wait)
                slept += wait
            if interval <= 0:
                return slept
            for attempt in range(self.confirm_attempts):
                wait = self.confirm(bucket, interval)
                if wait <= 0:
                    return slept
                if attempt == self.confirm_attempts - 1:
                    break
                log.debug(
                    "Cooldown %s: the previous send left late; waiting %.3fs more to keep the gap",
                    _endpoint_of(bucket),
                    wait,
                )
                self._sleep(wait)
                slept += wait
            log.info(
                "Cooldown %s: other callers sent first %d times; taking a new slot in line",
                _endpoint_of(bucket),
                self.confirm_attempts - 1,
            )

    def remaining(self, reservation: Reservation) -> float:
        """Seconds from now to the reservation's slot: time spent since it was taken already counts,
        so a caller descheduled between taking and sleeping does not arrive late."""
        return reservation.slot - self._clock()

    @abstractmethod
    def push_back(self, bucket: str, delay: float) -> None:
        """After a 429: no slot or send of ``bucket`` earlier than now + ``delay``, for every caller."""

    def close(self) -> None:  # noqa: B027 - optional hook for backends holding resources
        """Release connections or files. Idempotent; the gate stays usable (it reconnects)."""


def _endpoint_of(bucket: str) -> str:
    return bucket.rpartition(":")[2]


class MemoryGate(CooldownGate):
    """Threads in one process: a :class:`SlotBook` under a lock, on the monotonic clock by default
    (no other process reads it, and it cannot jump back)."""

    backend = "memory"

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        super().__init__(clock=clock, sleep=sleep)
        self._lock = threading.Lock()
        self._book = SlotBook(clock)

    def take(self, bucket: str, interval: float) -> Reservation:
        with self._lock:
            return self._book.take(bucket, interval)

    def confirm(self, bucket: str, interval: float) -> float:
        with self._lock:
            return self._book.confirm(bucket, interval)

    def push_back(self, bucket: str, delay: float) -> None:
        with self._lock:
            self._book.push_back(bucket, delay)


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_FILE_WIDTH = 31  # bytes of each number in a state file: one small pwrite, never truncated
_Slots = tuple[float | None, float | None]  # next_free, clear_at


class FileGate(CooldownGate):
    """Processes on one host: one state file per bucket under ``<state_dir>/cooldown/``, ``flock``-ed.

    Each reservation (and confirmation) opens the bucket's file, takes an exclusive ``flock``, reads
    ``next_free`` and ``clear_at``, writes the new ones, releases and closes; then the caller sleeps.
    A file descriptor is never kept between calls, so threads and forked children each lock their
    own open file.

    :param state_dir: a local, writable folder shared by every process on the host.
    :param clock: wall-clock seconds shared by all processes of the host (default ``time.time``).
    """

    backend = "file"

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(clock=clock, sleep=sleep)
        self.directory = os.path.join(os.fspath(state_dir), "cooldown")
        try:
            os.makedirs(self.directory, exist_ok=True)
            fd = os.open(os.path.join(self.directory, ".probe"), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                os.pwrite(fd, b"ok\n", 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        except OSError as exc:
            raise CooldownBackendError(
                f"Cooldown file gate: state folder {self.directory!r} is not usable "
                f"({exc.strerror or exc}); give the connection a writable local state_uri, "
                "or use cooldown_backend 'redis'"
            ) from exc

    def path(self, bucket: str) -> str:
        """The state file of ``bucket``: a readable, sanitised name plus a hash that keeps names distinct."""
        digest = hashlib.sha256(bucket.encode()).hexdigest()[:10]
        return os.path.join(self.directory, f"{_UNSAFE.sub('_', bucket)[:80]}-{digest}.slot")

    def _update(
        self, bucket: str, step: Callable[[_Slots, float], tuple[float, _Slots]]
    ) -> tuple[float, float]:
        """Run ``step((next_free, clear_at), now) -> (result, new state)`` under the bucket's file lock;
        return ``(result, now)``.

        The file holds both numbers, each right-aligned in :data:`_FILE_WIDTH` characters (a file
        with one number, from an earlier version, reads as having no ``clear_at``).
        """
        try:
            fd = os.open(self.path(bucket), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise CooldownBackendError(
                f"Cooldown file gate: cannot open a state file in {self.directory!r} ({exc.strerror or exc})"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            raw = os.pread(fd, 2 * (_FILE_WIDTH + 1), 0)
            try:
                numbers = [float(x) for x in raw.split()]
                state: _Slots = (numbers[0] if numbers else None, numbers[1] if len(numbers) > 1 else None)
            except ValueError:
                log.warning(
                    "Cooldown file gate: unreadable state file for %s, starting afresh", _endpoint_of(bucket)
                )
                state = (None, None)
            now = self._clock()
            result, new_state = step(state, now)
            if new_state != state:
                os.pwrite(fd, _slot_record(new_state), 0)
            return result, now
        except OSError as exc:
            raise CooldownBackendError(
                f"Cooldown file gate: state file I/O failed in {self.directory!r} ({exc.strerror or exc})"
            ) from exc
        finally:
            os.close(fd)  # closing the only descriptor of this open file releases the flock

    def take(self, bucket: str, interval: float) -> Reservation:
        def step(state: _Slots, now: float) -> tuple[float, _Slots]:
            slot, next_free = next_slot(state[0], now, interval)
            return slot, (next_free, state[1])

        return Reservation(*self._update(bucket, step))

    def confirm(self, bucket: str, interval: float) -> float:
        def step(state: _Slots, now: float) -> tuple[float, _Slots]:
            wait, clear_at = cleared(state[1], now, interval)
            return wait, (state[0], clear_at)

        return self._update(bucket, step)[0]

    def push_back(self, bucket: str, delay: float) -> None:
        def step(state: _Slots, now: float) -> tuple[float, _Slots]:
            return 0.0, (pushed_back(state[0], now, delay), pushed_back(state[1], now, delay))

        self._update(bucket, step)


def _slot_record(state: _Slots) -> bytes:
    """``next_free clear_at\n``, each number fixed-width (0 for none: every clock reads later)."""
    return " ".join(f"{x or 0.0:.6f}".rjust(_FILE_WIDTH) for x in state).encode() + b"\n"


#: Reservation on the server's clock, in integer microseconds (exact in Lua's doubles).
#: KEYS[1] bucket key; ARGV[1] interval + margin (us); ARGV[2] TTL grace (ms). Returns {slot - now, slot}.
_RESERVE_LUA = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local next_free = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local slot = math.max(now, next_free)
local new_free = slot + tonumber(ARGV[1])
local ttl = math.floor((new_free - now) / 1000) + tonumber(ARGV[2])
redis.call('SET', KEYS[1], string.format('%.0f', new_free), 'PX', ttl)
return {slot - now, slot}
"""

#: A send about to leave: KEYS[1] the bucket's clear-at key; ARGV[1] min gap (us); ARGV[2] TTL grace
#: (ms). Returns 0 (confirmed, clear-at moved to now + gap) or the microseconds to wait first.
_CONFIRM_LUA = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local clear_at = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if now < clear_at then
  return clear_at - now
end
local new_clear = now + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%.0f', new_clear), 'PX', math.floor((new_clear - now) / 1000) + tonumber(ARGV[2]))
return 0
"""

#: After a 429: KEYS the bucket's next-free and clear-at keys; ARGV[1] delay (us); ARGV[2] TTL grace
#: (ms). Each key becomes at least now + delay. Returns the next free slot.
_PUSH_BACK_LUA = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local target = now + tonumber(ARGV[1])
local result = target
for i, key in ipairs(KEYS) do
  local value = tonumber(redis.call('GET', key) or '0') or 0
  if target > value then
    redis.call('SET', key, string.format('%.0f', target), 'PX', math.floor((target - now) / 1000) + tonumber(ARGV[2]))
  elseif i == 1 then
    result = value
  end
end
return result
"""


class ClockOffset:
    """Where the Redis server's clock stands against the local monotonic clock, NTP style.

    Each reservation is a round trip: the server read its clock (``server_now``) somewhere between
    ``sent`` and ``received`` (local monotonic), so ``offset = server_now - midpoint`` is off by at
    most half the round trip. The tightest recent estimate is kept (its uncertainty grows with age
    by ``drift``); an estimate that disagrees with it beyond both uncertainties means a clock was
    stepped, and the new one wins. Converting a slot to the local clock with
    ``slot - offset + uncertainty`` never lands before the slot, and does not count the time a
    busy host took to wake the caller after the answer arrived.

    :param drift: seconds per second the two clocks may drift apart (100 ppm by default).
    """

    def __init__(self, drift: float = 1e-4) -> None:
        self.drift = drift
        self._lock = threading.Lock()
        self._best: tuple[float, float, float] | None = None  # offset, uncertainty, when (local)

    def observe(self, server_now: float, sent: float, received: float) -> tuple[float, float]:
        """Fold in one round trip; return ``(offset, uncertainty)`` to use for it."""
        offset, uncertainty = server_now - (sent + received) / 2, max(received - sent, 0.0) / 2
        with self._lock:
            if self._best is not None:
                best_offset, best_uncertainty, at = self._best
                best_uncertainty += max(received - at, 0.0) * self.drift
                agrees = abs(offset - best_offset) <= uncertainty + best_uncertainty
                if agrees and best_uncertainty < uncertainty:
                    return best_offset, best_uncertainty
            self._best = (offset, uncertainty, received)
        return offset, uncertainty


def redact_url(url: str) -> str:
    """``redis://user:secret@host:6379/0`` -> ``redis://host:6379/0``: safe for messages."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparseable url>"
    return f"{parts.scheme}://{host}{port}{parts.path}"


class RedisGate(CooldownGate):
    """Processes on many hosts: one atomic Lua script per reservation, on the Redis server's clock.

    Keys are ``infobip:cooldown:<bucket>`` holding the next free slot and
    ``infobip:cooldown:<bucket>:clear`` holding the bucket's ``clear_at``, in microseconds of the
    server's ``TIME``; each key expires ``ttl_grace`` after the time it holds has passed, when it no
    longer matters, so idle buckets leave nothing behind.

    :param url: ``redis://[user:password@]host:port/db`` (or ``rediss://``, ``unix://``).
    :param ttl_grace: seconds a key outlives its next free slot.
    :param socket_timeout: seconds to wait for the server on connect and on each call.
    """

    backend = "redis"
    prefix = "infobip:cooldown:"

    def __init__(
        self,
        url: str,
        *,
        ttl_grace: float = 1.0,
        socket_timeout: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(sleep=sleep)
        self.url = redact_url(url)
        self.ttl_grace_ms = max(int(ttl_grace * 1000), 1)
        try:
            import redis
        except ImportError as exc:
            raise CooldownBackendError(
                "Cooldown backend 'redis' needs the redis package: pip install 'airflow-provider-infobip[redis]'"
            ) from exc
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        try:
            self._client: Any = redis.Redis.from_url(
                url, socket_connect_timeout=socket_timeout, socket_timeout=socket_timeout
            )
            self._client.ping()
        except (*self._errors, ValueError) as exc:
            raise CooldownBackendError(
                f"Cooldown backend 'redis' at {self.url} is unreachable ({type(exc).__name__}: {exc}); "
                "fix cooldown_redis_url or start Redis. The gate never falls back to a weaker backend."
            ) from exc
        self._reserve = self._client.register_script(_RESERVE_LUA)
        self._push_back = self._client.register_script(_PUSH_BACK_LUA)
        self._confirm = self._client.register_script(_CONFIRM_LUA)
        self.clock_offset = ClockOffset()

    def key(self, bucket: str) -> str:
        """The key of the bucket's next free slot (its clear-at key adds ``:clear``)."""
        return self.prefix + bucket

    def _call(self, script: Any, keys: list[str], arg_us: int) -> Any:
        try:
            return script(keys=keys, args=[arg_us, self.ttl_grace_ms])
        except self._errors as exc:
            raise CooldownBackendError(
                f"Cooldown backend 'redis' at {self.url} failed ({type(exc).__name__}: {exc})"
            ) from exc

    def take(self, bucket: str, interval: float) -> Reservation:
        step_us = round(slot_step(interval) * 1e6)
        sent = time.monotonic()
        wait_us, slot_us = self._call(self._reserve, [self.key(bucket)], step_us)
        received = time.monotonic()
        slot = int(slot_us) / 1e6
        now = slot - int(wait_us) / 1e6
        offset, uncertainty = self.clock_offset.observe(now, sent, received)
        return Reservation(slot, now, local=slot - offset + uncertainty)

    def remaining(self, reservation: Reservation) -> float:
        if reservation.local is None:
            return reservation.wait
        return reservation.local - time.monotonic()

    def confirm(self, bucket: str, interval: float) -> float:
        wait_us = self._call(self._confirm, [self.key(bucket) + ":clear"], round(min_gap(interval) * 1e6))
        return int(wait_us) / 1e6

    def push_back(self, bucket: str, delay: float) -> None:
        keys = [self.key(bucket), self.key(bucket) + ":clear"]
        self._call(self._push_back, keys, round(max(delay, 0.0) * 1e6))

    def close(self) -> None:
        self._client.connection_pool.disconnect()


# ------------------------------------------------------------------------------------- factory
BACKENDS = ("auto", "memory", "file", "redis")

_gates: dict[tuple[str, str | None, str | None], CooldownGate] = {}
_gates_lock = threading.Lock()


def default_state_dir() -> str:
    """The host-wide folder of the file gate when the connection names none."""
    return os.path.join(tempfile.gettempdir(), "airflow-provider-infobip")


def make_gate(backend: str, *, redis_url: str | None = None, state_dir: str | None = None) -> CooldownGate:
    """Build the gate a connection asks for (``auto``|``memory``|``file``|``redis``), once per process.

    ``auto`` is ``redis`` when ``redis_url`` is set, else ``file``. Gates are cached per
    (backend, url, folder) so that every hook of a process shares one gate: for ``memory`` that
    sharing is what makes the gate mean anything.

    :raises InfobipConfigError: unknown backend, or ``redis`` without a URL.
    :raises CooldownBackendError: the backend cannot be reached or used (checked here, at once).
    """
    name = (backend or "auto").strip().lower()
    if name not in BACKENDS:
        raise InfobipConfigError(f"cooldown_backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if name == "auto":
        name = "redis" if redis_url else "file"
    if name == "redis" and not redis_url:
        raise InfobipConfigError("cooldown_backend 'redis' needs the connection extra cooldown_redis_url")
    if name == "file":
        state_dir = os.path.abspath(os.path.expanduser(state_dir or default_state_dir()))
    cache_key = (name, redis_url if name == "redis" else None, state_dir if name == "file" else None)
    with _gates_lock:
        gate = _gates.get(cache_key)
        if gate is None:
            if name == "memory":
                gate = MemoryGate()
            elif name == "file":
                gate = FileGate(state_dir)  # type: ignore[arg-type]
            else:
                gate = RedisGate(redis_url)  # type: ignore[arg-type]
            _gates[cache_key] = gate
            log.info("Cooldown gate: %s backend", name)
        return gate


def reset_gates() -> None:
    """Forget the process-wide gates (tests, or after a configuration change)."""
    with _gates_lock:
        for gate in _gates.values():
            gate.close()
        _gates.clear()


__all__ = [
    "BACKENDS",
    "POLICIES",
    "ClockOffset",
    "CooldownGate",
    "EndpointPolicy",
    "FileGate",
    "MemoryGate",
    "RedisGate",
    "Reservation",
    "SlotBook",
    "cleared",
    "fingerprint",
    "make_gate",
    "min_gap",
    "next_slot",
    "pushed_back",
    "reset_gates",
    "safety_margin",
    "slot_step",
]
