"""The pipelined lanes of the People import: a follower lane fed by its leader's acknowledgements."""

from __future__ import annotations

import threading
import time

import pytest

from infobip_provider.checkpoint import BatchFeed, BatchLanes, Lane, batches, recover
from infobip_provider.state import StateStore


def _record(sent: list[list[str]], ids: list[str]) -> dict[str, str]:
    """A lane send that only records its batch (and has nothing refused)."""
    sent.append(ids)
    return {}


@pytest.fixture
def target(tmp_path):
    return StateStore(str(tmp_path)).target("fp", "tags", "VIP")


def test_feed_yields_full_batches_then_the_rest_once_closed():
    feed = BatchFeed(3, ["a"], expected=7)
    feed.put(["b", "c", "d"])
    got: list[list[str]] = []
    reader = threading.Thread(target=lambda: got.extend(feed))
    reader.start()
    time.sleep(0.05)
    assert got == [["a", "b", "c"]]  # "d" waits for a full batch or the close
    feed.put(["e", "f", "g"])
    feed.close()
    reader.join(2)
    assert not reader.is_alive()
    assert got == [["a", "b", "c"], ["d", "e", "f"], ["g"]]
    assert len(feed) == 3 and not feed
    with pytest.raises(RuntimeError):
        feed.put(["late"])


def test_follower_sends_only_what_the_leader_acknowledged_while_both_run(target):
    events: list[tuple[str, str]] = []
    lock = threading.Lock()
    overlap = threading.Event()
    in_flight: set[str] = set()
    feed = BatchFeed(2, ["ready"], expected=7)

    def sender(lane: str):
        def send(ids: list[str]) -> dict[str, str]:
            with lock:
                in_flight.add(lane)
                if len(in_flight) == 2:
                    overlap.set()
                events.extend((lane + ":start", i) for i in ids)
            time.sleep(0.02)
            with lock:
                in_flight.discard(lane)
                events.extend((lane + ":ack", i) for i in ids)
            return {"p3": "refused"} if "p3" in ids else {}

        return send

    leader = Lane(
        "upsert",
        batches([f"p{i}" for i in range(6)], 2),
        sender("upsert"),
        on_ack=lambda ids, refused: feed.put([i for i in ids if i not in refused]),
        on_exit=feed.close,
    )
    follower = Lane("tag", feed, sender("tag"))
    BatchLanes(target, "run").run([leader, follower])

    assert overlap.is_set()  # the follower did not wait for the leader's last batch
    tagged = [i for kind, i in events if kind == "tag:start"]
    assert sorted(tagged) == sorted(["ready", "p0", "p1", "p2", "p4", "p5"])  # p3 was refused
    for person in tagged:
        if person != "ready":
            assert events.index(("upsert:ack", person)) < events.index(("tag:start", person))
    acked = recover(target).acked
    assert sum(len(ids) for ids, _ in acked["tag"]) == 6 and len(acked["upsert"]) == 3


def test_a_failing_leader_closes_the_feed_and_nothing_hangs(target):
    feed = BatchFeed(10)
    sent: list[list[str]] = []

    def boom(ids: list[str]) -> dict[str, str]:
        raise RuntimeError("upsert failed")

    leader = Lane("upsert", [["a"], ["b"]], boom, on_exit=feed.close)
    follower = Lane("tag", feed, lambda ids: _record(sent, ids))
    raised: list[BaseException] = []

    def run() -> None:
        try:
            BatchLanes(target, "r").run([leader, follower])
        except RuntimeError as exc:
            raised.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    runner.join(5)
    assert not runner.is_alive() and sent == []
    assert [str(e) for e in raised] == ["upsert failed"]
    assert recover(target).unacked == {"upsert": ["a"]}


def test_a_leader_with_nothing_to_send_still_releases_its_follower(target):
    feed = BatchFeed(2, ["a", "b", "c"])
    exits: list[str] = []
    sent: list[list[str]] = []

    def close() -> None:
        exits.append("upsert")
        feed.close()

    leader = Lane("upsert", [], lambda ids: {}, on_exit=close)
    follower = Lane("tag", feed, lambda ids: _record(sent, ids))
    BatchLanes(target, "r").run([leader, follower])
    assert exits == ["upsert"] and sent == [["a", "b"], ["c"]]


def test_a_failing_follower_stops_the_leader(target):
    feed = BatchFeed(1)
    leader_sent: list[str] = []

    def slow(ids: list[str]) -> dict[str, str]:
        leader_sent.extend(ids)
        time.sleep(0.01)
        return {}

    def boom(ids: list[str]) -> dict[str, str]:
        raise RuntimeError("tag gone")

    leader = Lane(
        "upsert",
        batches([str(i) for i in range(200)], 1),
        slow,
        on_ack=lambda i, r: feed.put(i),
        on_exit=feed.close,
    )
    follower = Lane("tag", feed, boom)
    with pytest.raises(RuntimeError, match="tag gone"):
        BatchLanes(target, "r").run([leader, follower])
    assert len(leader_sent) < 200


def test_a_window_keeps_several_batches_in_flight_and_journals_each(target):
    lock = threading.Lock()
    in_flight = [0, 0]  # now, most seen
    exits: list[int] = []

    def slow(ids: list[str]) -> dict[str, str]:
        with lock:
            in_flight[0] += 1
            in_flight[1] = max(in_flight[1], in_flight[0])
        time.sleep(0.05)
        with lock:
            in_flight[0] -= 1
        return {ids[0]: "refused"} if ids[0] == "p0" else {}

    acked: list[str] = []
    lane = Lane(
        "upsert",
        batches([f"p{i}" for i in range(12)], 2),
        slow,
        on_ack=lambda ids, refused: acked.extend(ids),
        on_exit=lambda: exits.append(len(acked)),
        window=3,
    )
    started = time.monotonic()
    BatchLanes(target, "run").run([lane])
    elapsed = time.monotonic() - started
    assert in_flight[1] == 3 and elapsed < 6 * 0.05  # 6 batches, 3 at a time
    assert (lane.done, lane.sent_ids, lane.refused) == (6, 12, {"p0": "refused"})
    assert exits == [12]  # on_exit after every answer
    recovery = recover(target)
    assert not recovery.unacked and sorted(i for ids, _ in recovery.acked["upsert"] for i in ids) == sorted(
        acked
    )


def test_a_failure_in_a_window_stops_the_lane_and_leaves_its_intent(target):
    def send(ids: list[str]) -> dict[str, str]:
        if ids == ["p2"]:
            raise RuntimeError("server error")
        time.sleep(0.02)
        return {}

    lane = Lane("upsert", batches([f"p{i}" for i in range(40)], 1), send, window=2)
    with pytest.raises(RuntimeError, match="server error"):
        BatchLanes(target, "r").run([lane])
    recovery = recover(target)
    assert "p2" in recovery.unacked["upsert"] and lane.done < 39
