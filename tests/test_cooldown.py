"""Tests of the cooldown gates: reservation arithmetic (fake clock), threads, processes, Redis."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infobip_provider import cooldown
from infobip_provider.cooldown import (
    POLICIES,
    ClockOffset,
    CooldownGate,
    FileGate,
    MemoryGate,
    RedisGate,
    Reservation,
    SlotBook,
    fingerprint,
    make_gate,
    min_gap,
    next_slot,
    pushed_back,
    safety_margin,
)
from infobip_provider.errors import CooldownBackendError, InfobipConfigError

FORK = multiprocessing.get_context("fork")


class FakeClock:
    """A clock that only moves when told to; ``sleep`` advances it and records the call."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def step(interval: float) -> float:
    return interval + safety_margin(interval)


# ------------------------------------------------------------------------------- arithmetic
@pytest.mark.parametrize(
    ("next_free", "now", "interval", "expected"),
    [
        pytest.param(None, 100.0, 10.0, (100.0, 100.0 + step(10.0)), id="empty-bucket-goes-now"),
        pytest.param(95.0, 100.0, 10.0, (100.0, 100.0 + step(10.0)), id="past-slot-goes-now"),
        pytest.param(104.0, 100.0, 10.0, (104.0, 104.0 + step(10.0)), id="future-slot-waits"),
        pytest.param(None, 100.0, 0.0, (100.0, 100.0), id="unpaced-does-not-advance"),
        pytest.param(107.0, 100.0, 0.0, (107.0, 107.0), id="unpaced-honours-push-back"),
    ],
)
def test_next_slot(
    next_free: float | None, now: float, interval: float, expected: tuple[float, float]
) -> None:
    assert next_slot(next_free, now, interval) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("next_free", "now", "delay", "expected"),
    [
        pytest.param(None, 50.0, 3.0, 53.0, id="empty"),
        pytest.param(51.0, 50.0, 3.0, 53.0, id="moves-later"),
        pytest.param(60.0, 50.0, 3.0, 60.0, id="never-earlier"),
        pytest.param(40.0, 50.0, -1.0, 50.0, id="negative-delay-is-now"),
    ],
)
def test_pushed_back(next_free: float | None, now: float, delay: float, expected: float) -> None:
    assert pushed_back(next_free, now, delay) == pytest.approx(expected)


def test_safety_margin_is_small_positive_and_capped() -> None:
    assert safety_margin(0) == 0
    assert 0 < safety_margin(0.2) <= 0.2 * 0.07
    assert 0 < safety_margin(10) <= 0.25
    assert safety_margin(1000) == 0.25
    assert safety_margin(0.2) < safety_margin(2.0)


def test_slot_book_first_come_first_served_with_fake_clock() -> None:
    clock = FakeClock()
    book = SlotBook(clock)
    first = [book.take("k:lists.add", 10.0) for _ in range(4)]
    assert [r.slot - clock.now for r in first] == pytest.approx([0, step(10), 2 * step(10), 3 * step(10)])
    assert [r.wait for r in first] == pytest.approx([r.slot - 1000.0 for r in first])
    # another endpoint of the same key is independent: it goes at once
    assert book.take("k:lists.remove", 5.0).wait == 0
    # time passes beyond the queue: the next caller goes at once, the queue does not build up credit
    clock.now += 100
    late = book.take("k:lists.add", 10.0)
    assert late.wait == 0
    assert book.next_free["k:lists.add"] == pytest.approx(clock.now + step(10))


def test_slot_book_push_back_delays_the_next_slot() -> None:
    clock = FakeClock()
    book = SlotBook(clock)
    book.take("b", 1.0)
    book.push_back("b", 30.0)
    assert book.take("b", 1.0).wait == pytest.approx(30.0)
    book.push_back("b", 0.5)  # an earlier push-back never pulls the slot in
    assert book.take("b", 1.0).wait == pytest.approx(30.0 + step(1.0))


def test_reservation_wait_is_never_negative() -> None:
    assert Reservation(slot=5.0, now=7.0).wait == 0
    assert Reservation(slot=7.5, now=7.0).wait == pytest.approx(0.5)


def test_memory_gate_sleeps_once_per_reservation_until_its_slot() -> None:
    clock = FakeClock()
    gate = MemoryGate(clock=clock, sleep=clock.sleep)
    waits = []
    for _ in range(3):
        waits.append(gate.reserve("k:lists.create", 2.0))
    assert waits == pytest.approx([0.0, step(2.0), step(2.0)])
    assert clock.sleeps == pytest.approx([step(2.0), step(2.0)])  # no sleep(0), no polling


def test_unpaced_endpoint_never_sleeps_unless_pushed_back() -> None:
    clock = FakeClock()
    gate = MemoryGate(clock=clock, sleep=clock.sleep)
    assert [gate.reserve("a:sms.send", 0.0) for _ in range(5)] == [0.0] * 5
    gate.push_back("a:sms.send", 4.0)
    assert gate.reserve("a:sms.send", 0.0) == pytest.approx(4.0)
    assert clock.sleeps == pytest.approx([4.0])


def test_policies_cover_the_contract() -> None:
    assert POLICIES["lists.add"].interval == 10.0
    assert POLICIES["lists.remove"].interval == 5.0
    assert POLICIES["lists.create"].interval == 2.0
    assert POLICIES["sms.logs"].interval == pytest.approx(60 / 120)
    assert {p.scope for p in POLICIES.values()} == {"key", "account"}
    assert all(name == p.endpoint for name, p in POLICIES.items())


def test_fingerprint_hides_the_key() -> None:
    key = "abcd1234secretkey-" + uuid.uuid4().hex
    fp = fingerprint(key)
    assert fp == fingerprint(key)
    assert fp != fingerprint(key + "x")
    assert key not in fp
    assert key[:8] not in fp
    assert fp.isalnum()
    assert len(fp) == 16


def test_clock_offset_first_round_trip() -> None:
    offset, uncertainty = ClockOffset().observe(server_now=5_000.0, sent=10.0, received=10.004)
    assert offset == pytest.approx(5_000.0 - 10.002)
    assert uncertainty == pytest.approx(0.002)


def test_clock_offset_keeps_a_tighter_consistent_estimate() -> None:
    clocks = ClockOffset(drift=1e-4)
    clocks.observe(server_now=5_000.0005, sent=10.0, received=10.001)  # round trip 1 ms
    # a slow round trip (a busy host woke the caller 30 ms late) agrees with it: the tight one is used
    offset, uncertainty = clocks.observe(server_now=5_001.0005, sent=11.0, received=11.030)
    assert offset == pytest.approx(4_990.0)
    assert uncertainty == pytest.approx(0.0005 + (11.030 - 10.001) * 1e-4)


def test_clock_offset_follows_a_stepped_clock() -> None:
    clocks = ClockOffset()
    clocks.observe(server_now=5_000.0005, sent=10.0, received=10.001)
    offset, _ = clocks.observe(server_now=5_008.0, sent=12.0, received=12.010)  # server clock stepped +6 s
    assert offset == pytest.approx(5_008.0 - 12.005)
    assert clocks.observe(server_now=5_009.0, sent=13.0, received=13.002)[0] == pytest.approx(
        5_008.0 - 12.005, abs=0.01
    )


@given(
    true_offset=st.floats(-1e6, 1e6),
    trips=st.lists(
        st.tuples(st.floats(0, 0.5), st.floats(0, 0.05), st.floats(0, 1)), min_size=1, max_size=20
    ),
)
def test_clock_offset_never_puts_a_slot_early(
    true_offset: float, trips: list[tuple[float, float, float]]
) -> None:
    """Whatever the round trips, ``offset - uncertainty <= true offset <= offset + uncertainty``, so a
    slot converted with ``slot - offset + uncertainty`` is never before the slot on the local clock."""
    clocks = ClockOffset(drift=0.0)
    local = 100.0
    for gap, rtt, where in trips:
        local += gap
        server_now = local + where * rtt + true_offset  # the server read its clock inside the round trip
        offset, uncertainty = clocks.observe(server_now, local, local + rtt)
        local += rtt
        assert offset - uncertainty <= true_offset + 1e-6
        assert true_offset <= offset + uncertainty + 1e-6


# ---------------------------------------------------------------------------------- threads
def test_memory_gate_threads_get_distinct_evenly_spaced_slots() -> None:
    gate = MemoryGate()
    interval = 0.5
    slots: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        taken = [gate.take("k:lists.add", interval).slot for _ in range(25)]
        with lock:
            slots.extend(taken)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    slots.sort()
    assert len(slots) == 200
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert min(gaps) == pytest.approx(step(interval), abs=1e-6)
    assert max(gaps) == pytest.approx(step(interval), abs=1e-6)


class Recording:
    """Mixin: remember the reservations a gate hands out (per thread), to compare with wake-up times."""

    def take(self, bucket: str, interval: float) -> Reservation:
        reservation = super().take(bucket, interval)  # type: ignore[misc]
        mine = getattr(self._taken, "list", None) or []
        mine.append(reservation)
        self._taken.list = mine
        return reservation

    @property
    def taken(self) -> list[Reservation]:
        return getattr(self._taken, "list", [])


class RecordingMemoryGate(Recording, MemoryGate):
    _taken = threading.local()


class RecordingFileGate(Recording, FileGate):
    _taken = threading.local()


def _woke_after_slots(pairs: list[tuple[float, float]], interval: float) -> None:
    """Every caller woke at or after its own slot (never early), the slots were one step apart, and
    callers slept until their slot rather than for some other length."""
    slots = sorted(slot for slot, _ in pairs)
    assert all(woke >= slot - 1e-6 for slot, woke in pairs)
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert gaps == pytest.approx([step(interval)] * (len(slots) - 1), abs=1e-5)
    lateness = sorted(woke - slot for slot, woke in pairs)
    assert lateness[len(lateness) // 2] < 0.25


def test_memory_gate_threads_really_wait_for_their_slots() -> None:
    gate = RecordingMemoryGate()
    interval = 0.02
    pairs: list[tuple[float, float]] = []
    waits: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        woke = []
        for _ in range(3):
            waits.append(gate.reserve("k:people.create", interval))
            woke.append(time.monotonic())
        with lock:
            pairs.extend((r.slot, w) for r, w in zip(gate.taken, woke))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(pairs) == 12
    assert sum(1 for w in waits if w > 0) >= 8  # most callers had to wait
    _woke_after_slots(pairs, interval)


# ------------------------------------------------------------------------------------- file
def test_file_gate_state_file_name_is_sanitised_and_distinct(tmp_path: Path) -> None:
    gate = FileGate(tmp_path)
    bucket = f"{fingerprint('the-key')}:lists.add"
    path = Path(gate.path(bucket))
    assert path.parent == tmp_path / "cooldown"
    assert ":" not in path.name
    assert "/" not in path.name
    assert path.name.startswith(fingerprint("the-key"))
    assert gate.path("a:b") != gate.path("a_b")
    assert Path(gate.path("../../etc/passwd:x")).parent == tmp_path / "cooldown"


def test_file_gate_arithmetic_through_the_file(tmp_path: Path) -> None:
    clock = FakeClock()
    gate = FileGate(tmp_path, clock=clock, sleep=clock.sleep)
    other = FileGate(tmp_path, clock=clock, sleep=clock.sleep)  # another "process" on the same folder
    assert gate.take("k:lists.add", 10.0).wait == 0
    assert other.take("k:lists.add", 10.0).wait == pytest.approx(step(10.0), abs=1e-6)
    assert gate.reserve("k:lists.add", 10.0) == pytest.approx(2 * step(10.0), abs=1e-6)
    assert clock.sleeps == pytest.approx([2 * step(10.0)], abs=1e-6)
    other.push_back("k:lists.remove", 42.0)
    assert gate.take("k:lists.remove", 5.0).wait == pytest.approx(42.0, abs=1e-6)
    next_free, clear_at = map(float, Path(gate.path("k:lists.add")).read_text().split())
    assert next_free == pytest.approx(clock.now + step(10.0), abs=1e-6)
    assert clear_at == pytest.approx(clock.now + min_gap(10.0), abs=1e-6)  # the confirmed send, recorded


def test_file_gate_recovers_from_a_corrupt_state_file(tmp_path: Path) -> None:
    clock = FakeClock()
    gate = FileGate(tmp_path, clock=clock, sleep=clock.sleep)
    Path(gate.path("k:tags.add")).write_text("garbage\n")
    assert gate.take("k:tags.add", 0.2).wait == 0
    assert gate.take("k:tags.add", 0.2).wait == pytest.approx(step(0.2), abs=1e-6)


@pytest.mark.parametrize(
    "make_dir",
    [
        pytest.param(lambda tmp: tmp / "a-file" / "state", id="parent-is-a-file"),
        pytest.param(lambda tmp: Path("/proc/infobip-cooldown-test"), id="read-only-fs"),
    ],
)
def test_file_gate_unusable_folder_fails_clearly(tmp_path: Path, make_dir) -> None:
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(CooldownBackendError, match="not usable"):
        FileGate(make_dir(tmp_path))


def _file_worker(state_dir: str, bucket: str, interval: float, n: int, start, out) -> None:
    gate = FileGate(state_dir)
    start.wait()
    out.put([(r.now, r.slot) for r in (gate.take(bucket, interval) for _ in range(n))])


def test_file_gate_processes_get_distinct_evenly_spaced_slots(tmp_path: Path) -> None:
    """6 OS processes race for one bucket: slots are one step apart, in the order they were taken."""
    interval, procs, per = 0.2, 6, 30
    start, out = FORK.Event(), FORK.Queue()
    workers = [
        FORK.Process(target=_file_worker, args=(str(tmp_path), "k:lists.add", interval, per, start, out))
        for _ in range(procs)
    ]
    for w in workers:
        w.start()
    start.set()
    taken = [pair for _ in workers for pair in out.get(timeout=30)]
    for w in workers:
        w.join(timeout=30)
        assert w.exitcode == 0
    assert len(taken) == procs * per
    taken.sort()  # by the time each reservation was taken (under the lock)
    slots = [slot for _, slot in taken]
    assert slots == sorted(slots)  # first come, first served
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert min(gaps) == pytest.approx(step(interval), abs=2e-6)
    assert max(gaps) == pytest.approx(step(interval), abs=2e-6)


def _file_sleeper(state_dir: str, interval: float, start, out) -> None:
    gate = RecordingFileGate(state_dir)
    start.wait()
    woke = []
    for _ in range(3):
        gate.reserve("k:lists.create", interval)
        woke.append(time.time())
    out.put([(r.slot, w) for r, w in zip(gate.taken, woke)])


def test_file_gate_processes_really_wait_for_their_slots(tmp_path: Path) -> None:
    interval = 0.03
    start, out = FORK.Event(), FORK.Queue()
    workers = [
        FORK.Process(target=_file_sleeper, args=(str(tmp_path), interval, start, out)) for _ in range(4)
    ]
    for w in workers:
        w.start()
    start.set()
    pairs = [pair for _ in workers for pair in out.get(timeout=30)]
    for w in workers:
        w.join(timeout=30)
    assert len(pairs) == 12
    _woke_after_slots(pairs, interval)


# ------------------------------------------------------------------------------------ redis
@pytest.fixture
def redis_gate(redis_url: str) -> Iterator[RedisGate]:
    gate = RedisGate(redis_url, ttl_grace=0.2)
    yield gate
    gate._client.delete(*gate._client.keys(gate.prefix + "test-*") or ["-"])
    gate.close()


def _bucket(endpoint: str = "lists.add") -> str:
    return f"test-{uuid.uuid4().hex[:12]}:{endpoint}"


@pytest.mark.redis
def test_redis_gate_spaces_slots_on_the_server_clock(redis_gate: RedisGate) -> None:
    bucket = _bucket()
    sec, usec = redis_gate._client.time()
    first = redis_gate.take(bucket, 10.0)
    assert first.wait == 0
    assert abs(first.now - (sec + usec / 1e6)) < 1.0
    follow = [redis_gate.take(bucket, 10.0) for _ in range(3)]
    assert [r.slot - first.slot for r in follow] == pytest.approx(
        [step(10.0), 2 * step(10.0), 3 * step(10.0)], abs=1e-6
    )
    assert follow[-1].wait == pytest.approx(3 * step(10.0), abs=0.05)


@pytest.mark.redis
def test_redis_gate_ignores_the_local_clock(
    redis_gate: RedisGate, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host whose clock is an hour off still gets the same waits: only the server's TIME counts."""
    bucket = _bucket()
    redis_gate.take(bucket, 5.0)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 3600)
    skewed = RedisGate(redis_url)
    assert skewed.take(bucket, 5.0).wait == pytest.approx(step(5.0), abs=0.05)
    skewed.close()


@pytest.mark.redis
def test_redis_gate_push_back_and_ttl(redis_gate: RedisGate) -> None:
    bucket = _bucket("lists.remove")
    client = redis_gate._client
    redis_gate.take(bucket, 5.0)
    ttl_ms = client.pttl(redis_gate.key(bucket))
    assert step(5.0) * 1000 < ttl_ms <= step(5.0) * 1000 + 200 + 5  # next slot + grace 0.2 s
    redis_gate.push_back(bucket, 60.0)
    assert redis_gate.take(bucket, 5.0).wait == pytest.approx(60.0, abs=0.05)
    assert 60_000 < client.pttl(redis_gate.key(bucket)) <= (60 + step(5.0)) * 1000 + 205
    redis_gate.push_back(bucket, 1.0)  # an earlier push-back never pulls the slot in
    assert redis_gate.take(bucket, 5.0).wait == pytest.approx(60.0 + step(5.0), abs=0.05)
    assert client.keys(redis_gate.key(bucket)) == [redis_gate.key(bucket).encode()]


@pytest.mark.redis
def test_redis_gate_idle_bucket_expires(redis_gate: RedisGate) -> None:
    bucket = _bucket("people.create")
    redis_gate.take(bucket, 0.05)
    assert redis_gate._client.exists(redis_gate.key(bucket)) == 1
    time.sleep(0.05 + safety_margin(0.05) + 0.2 + 0.1)
    assert redis_gate._client.exists(redis_gate.key(bucket)) == 0
    assert redis_gate.take(bucket, 0.05).wait == 0


@pytest.mark.redis
def test_redis_gate_reserve_sleeps_until_the_slot(redis_url: str) -> None:
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    gate = RedisGate(redis_url, sleep=sleep)
    bucket = _bucket("lists.create")
    assert gate.reserve(bucket, 0.5) == 0
    assert gate.reserve(bucket, 0.5) == pytest.approx(step(0.5), abs=0.05)
    # one sleep to its slot; a round trip slower than the previous one may add a short second one
    assert slept[0] == pytest.approx(step(0.5), abs=0.05)
    assert sum(slept[1:]) < 0.01
    gate._client.delete(gate.key(bucket), gate.key(bucket) + ":clear")


def _redis_worker(url: str, bucket: str, interval: float, n: int, start, out) -> None:
    gate = RedisGate(url)
    start.wait()
    out.put([(r.now, r.slot) for r in (gate.take(bucket, interval) for _ in range(n))])
    gate.close()


@pytest.mark.redis
def test_redis_gate_processes_get_distinct_evenly_spaced_slots(redis_url: str) -> None:
    bucket, interval, procs, per = _bucket(), 0.2, 6, 30
    start, out = FORK.Event(), FORK.Queue()
    workers = [
        FORK.Process(target=_redis_worker, args=(redis_url, bucket, interval, per, start, out))
        for _ in range(procs)
    ]
    for w in workers:
        w.start()
    start.set()
    taken = sorted(pair for _ in workers for pair in out.get(timeout=30))
    for w in workers:
        w.join(timeout=30)
        assert w.exitcode == 0
    slots = [slot for _, slot in taken]
    assert len(set(slots)) == procs * per
    assert slots == sorted(slots)
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert min(gaps) == pytest.approx(step(interval), abs=2e-6)
    assert max(gaps) == pytest.approx(step(interval), abs=2e-6)
    RedisGate(redis_url)._client.delete(RedisGate.prefix + bucket)


@pytest.mark.redis
def test_redis_gate_failure_after_construction_is_a_backend_error(redis_gate: RedisGate) -> None:
    import redis

    def broken(**_: object) -> None:
        raise redis.ConnectionError("Connection refused")

    redis_gate._reserve = broken
    with pytest.raises(CooldownBackendError, match="failed"):
        redis_gate.reserve(_bucket(), 1.0)


def test_redis_gate_unreachable_fails_at_construction() -> None:
    with pytest.raises(CooldownBackendError, match="unreachable") as info:
        RedisGate("redis://:s3cret-pass@127.0.0.1:1/0", socket_timeout=1)
    assert "s3cret-pass" not in str(info.value)
    assert "127.0.0.1:1" in str(info.value)


def test_redis_gate_bad_url_fails_at_construction() -> None:
    with pytest.raises(CooldownBackendError):
        RedisGate("http://not-redis")


# ---------------------------------------------------------------------------------- factory
@pytest.fixture
def fresh_gates() -> Iterator[None]:
    cooldown.reset_gates()
    yield
    cooldown.reset_gates()


def test_make_gate_memory_is_shared_by_the_process(fresh_gates: None) -> None:
    a, b = make_gate("memory"), make_gate("MEMORY")
    assert isinstance(a, MemoryGate)
    assert a is b
    a.take("k:lists.add", 10.0)
    assert b.take("k:lists.add", 10.0).wait > 9


def test_make_gate_file_and_auto(fresh_gates: None, tmp_path: Path) -> None:
    gate = make_gate("file", state_dir=str(tmp_path))
    assert isinstance(gate, FileGate)
    assert make_gate("auto", state_dir=str(tmp_path)) is gate
    assert make_gate("file", state_dir=str(tmp_path / "other")) is not gate
    assert (tmp_path / "cooldown").is_dir()


def test_make_gate_file_default_folder(fresh_gates: None) -> None:
    gate = make_gate("file")
    assert isinstance(gate, FileGate)
    assert gate.directory == os.path.join(cooldown.default_state_dir(), "cooldown")


@pytest.mark.redis
def test_make_gate_auto_picks_redis_when_a_url_is_given(fresh_gates: None, redis_url: str) -> None:
    gate = make_gate("auto", redis_url=redis_url, state_dir="/nonexistent-never-used")
    assert isinstance(gate, RedisGate)
    assert make_gate("redis", redis_url=redis_url) is gate


@pytest.mark.parametrize(
    ("backend", "kwargs", "error", "match"),
    [
        pytest.param("nosuch", {}, InfobipConfigError, "must be one of", id="unknown-backend"),
        pytest.param("redis", {}, InfobipConfigError, "cooldown_redis_url", id="redis-without-url"),
        pytest.param(
            "redis",
            {"redis_url": "redis://127.0.0.1:1/0"},
            CooldownBackendError,
            "unreachable",
            id="redis-down",
        ),
        pytest.param(
            "auto",
            {"redis_url": "redis://127.0.0.1:1/0"},
            CooldownBackendError,
            "never falls back",
            id="auto-no-fallback",
        ),
        pytest.param(
            "file", {"state_dir": "/proc/nope"}, CooldownBackendError, "not usable", id="file-unwritable"
        ),
    ],
)
def test_make_gate_never_falls_back_silently(fresh_gates: None, backend, kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        make_gate(backend, **kwargs)
    assert cooldown._gates == {}


class _LateSleeper:
    """A sleep that advances a fake clock, oversleeping by ``late`` on the first ``times`` calls."""

    def __init__(self, clock: list[float], late: float, times: int) -> None:
        self.clock, self.late, self.times, self.calls = clock, late, times, []

    def __call__(self, seconds: float) -> None:
        extra = self.late if len(self.calls) < self.times else 0.0
        self.calls.append(seconds)
        self.clock[0] += seconds + extra


def test_a_late_caller_keeps_its_slot_and_passes_on_its_lateness_never_more() -> None:
    now = [100.0]
    sleeper = _LateSleeper(now, late=0.5, times=1)
    gate = MemoryGate(clock=lambda: now[0], sleep=sleeper)
    gate.reserve("fp:lists.add", 1.0)  # first slot: now, no sleep
    before = now[0]
    gate.reserve("fp:lists.add", 1.0)  # sleeps to its slot, oversleeps 0.5 s, sends then: no slot given up
    late_send = now[0]
    assert late_send == pytest.approx(before + step(1.0) + 0.5)
    assert len(sleeper.calls) == 1
    gate.reserve("fp:lists.add", 1.0)  # wakes at its slot, then waits for the gap after the late send
    assert now[0] == pytest.approx(late_send + min_gap(1.0))
    assert sleeper.calls[1:] == pytest.approx([step(1.0) - 0.5, 0.5 + min_gap(1.0) - step(1.0)])
    third = now[0]
    gate.reserve(
        "fp:lists.add", 1.0
    )  # the schedule catches up by half a margin per call, never slips further
    assert now[0] == pytest.approx(third + min_gap(1.0))
    assert now[0] - (before + 3 * step(1.0)) == pytest.approx(0.5 - 2 * (step(1.0) - min_gap(1.0)))


def test_a_caller_woken_after_the_next_slot_has_sent_waits_for_the_gap() -> None:
    clock = FakeClock()
    gate = MemoryGate(clock=clock, sleep=clock.sleep)
    first = gate.take("b", 1.0)
    assert gate.confirm("b", 1.0) == 0
    overslept, on_time = gate.take("b", 1.0), gate.take("b", 1.0)
    clock.now = on_time.slot  # the later slot's caller wakes first and sends
    assert gate.confirm("b", 1.0) == 0
    clock.now += 0.3  # the earlier slot's caller wakes only now
    wait = gate.confirm("b", 1.0)
    assert wait == pytest.approx(min_gap(1.0) - 0.3)  # not sent 0.3 s after the other: waits the rest
    clock.now += wait
    assert gate.confirm("b", 1.0) == 0
    assert first.slot < overslept.slot < on_time.slot


def test_a_slightly_late_caller_costs_the_next_one_nothing() -> None:
    now = [0.0]
    slight = (step(1.0) - min_gap(1.0)) / 2  # within what callers waking on time may differ by
    sleeper = _LateSleeper(now, late=slight, times=1)
    gate = MemoryGate(clock=lambda: now[0], sleep=sleeper)
    gate.reserve("b", 1.0)
    gate.reserve("b", 1.0)
    assert now[0] == pytest.approx(step(1.0) + slight)
    gate.reserve("b", 1.0)  # on its slot: no second sleep
    assert now[0] == pytest.approx(2 * step(1.0))
    assert len(sleeper.calls) == 2


def test_a_push_back_holds_callers_that_already_have_a_slot() -> None:
    clock = FakeClock()
    gate = MemoryGate(clock=clock, sleep=clock.sleep)
    gate.reserve("b", 1.0)
    held = gate.take("b", 1.0)  # a caller sleeping until its slot ...
    gate.push_back("b", 5.0)  # ... when someone else's request is answered 429
    clock.now = held.slot
    assert gate.confirm("b", 1.0) == pytest.approx(5.0 - step(1.0))  # it waits for the push-back too


class _RecordingGate(MemoryGate):
    """A memory gate that notes, under its lock, when each send was confirmed."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.confirmed: list[float] = []

    def confirm(self, bucket: str, interval: float) -> float:
        with self._lock:
            wait = self._book.confirm(bucket, interval)
            if wait <= 0:
                self.confirmed.append(self._clock())
            return wait


def test_threads_that_oversleep_at_random_never_send_closer_than_the_gap() -> None:
    rng = random.Random(7)

    def oversleep(seconds: float) -> None:
        time.sleep(seconds + rng.choice([0.0, 0.0, 0.004, 0.02, 0.06]))

    gate = _RecordingGate(sleep=oversleep)

    def caller() -> None:
        for _ in range(8):
            gate.reserve("b", 0.05)

    threads = [threading.Thread(target=caller) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    gaps = [b - a for a, b in itertools.pairwise(sorted(gate.confirmed))]
    assert len(gaps) == 31
    assert min(gaps) >= min_gap(0.05) - 1e-6  # without the confirmation, late wakers send back to back


def test_a_caller_that_keeps_losing_the_race_takes_a_new_slot() -> None:
    clock = FakeClock()

    class Crowded(MemoryGate):
        refusals = 4
        takes = 0

        def take(self, bucket: str, interval: float) -> Reservation:
            self.takes += 1
            return super().take(bucket, interval)

        def confirm(self, bucket: str, interval: float) -> float:
            if self.refusals:  # someone else always sent first
                self.refusals -= 1
                return 0.01
            return super().confirm(bucket, interval)

    gate = Crowded(clock=clock, sleep=clock.sleep)
    gate.reserve("b", 1.0)
    assert gate.takes == 2  # lost the race twice after the first wait: back in line with a new slot
    assert clock.sleeps[:2] == pytest.approx([0.01, 0.01])


def _confirm_contract(gate: CooldownGate, bucket: str, sleep: Callable[[float], None]) -> None:
    """Confirmations of one bucket, on any backend: at least ``min_gap`` apart, and after a push-back."""
    interval = 0.05
    assert gate.confirm(bucket, interval) == 0
    wait = gate.confirm(bucket, interval)
    assert 0 < wait <= min_gap(interval) + 1e-9
    sleep(wait)
    assert gate.confirm(bucket, interval) == 0
    gate.push_back(bucket, 0.2)
    wait = gate.confirm(bucket, interval)
    assert wait == pytest.approx(0.2, abs=0.02)
    sleep(wait)
    assert gate.confirm(bucket, interval) == 0


def test_memory_gate_confirm() -> None:
    clock = FakeClock()
    _confirm_contract(MemoryGate(clock=clock, sleep=clock.sleep), "b", clock.sleep)


def test_file_gate_confirm(tmp_path: Path) -> None:
    clock = FakeClock()
    _confirm_contract(FileGate(tmp_path, clock=clock, sleep=clock.sleep), "b", clock.sleep)


def test_file_gate_reads_a_state_file_of_an_earlier_version(tmp_path: Path) -> None:
    clock = FakeClock()
    gate = FileGate(tmp_path, clock=clock, sleep=clock.sleep)
    Path(gate.path("b")).write_text(f"{clock.now + 3:.6f}".rjust(31) + "\n")  # next_free only
    assert gate.take("b", 1.0).wait == pytest.approx(3.0)
    assert gate.confirm("b", 1.0) == 0


@pytest.mark.redis
def test_redis_gate_confirm(redis_gate: RedisGate) -> None:
    bucket = _bucket()
    _confirm_contract(redis_gate, bucket, time.sleep)
    clear_key = redis_gate.key(bucket) + ":clear"
    assert 0 < redis_gate._client.pttl(clear_key) <= (min_gap(0.05) + 0.2) * 1000 + 1  # expires by itself


@pytest.mark.redis
def test_redis_gate_push_back_moves_both_keys_and_never_earlier(redis_gate: RedisGate) -> None:
    bucket = _bucket()
    redis_gate.take(bucket, 0.05)
    assert redis_gate.confirm(bucket, 0.05) == 0
    redis_gate.push_back(bucket, 5.0)
    redis_gate.push_back(bucket, 1.0)  # a shorter push after a longer one changes nothing
    assert redis_gate.take(bucket, 0.05).wait == pytest.approx(5.0, abs=0.1)
    assert redis_gate.confirm(bucket, 0.05) == pytest.approx(5.0, abs=0.1)
