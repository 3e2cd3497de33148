"""checkpoint: the journal's records, recovery of an interrupted run, lanes side by side."""

from __future__ import annotations

import pytest

from infobip_provider.checkpoint import BatchLanes, Lane, batches, journal_record, recover
from infobip_provider.state import StateStore


@pytest.fixture
def target(tmp_path):
    return StateStore(str(tmp_path)).target("fp", "lists", "VIP customers")


def test_recover_separates_acked_and_unacked(target):
    rec = lambda **kw: target.append_journal({"run": "r", **kw})  # noqa: E731
    rec(lane="add", batch=0, state="intent", ids=["a", "b"])
    rec(lane="add", batch=0, state="ack", refused={"b": "VALIDATION_ERROR"})
    rec(lane="remove", batch=0, state="intent", ids=["z"])
    rec(lane="add", batch=1, state="intent", ids=["c"])
    recovery = recover(target)
    assert recovery.acked == {"add": [(["a", "b"], {"b": "VALIDATION_ERROR"})]}
    assert recovery.unacked == {"remove": ["z"], "add": ["c"]}


def test_lanes_run_side_by_side_and_journal_every_batch(target):
    import threading
    import time

    inside = set()
    overlap = threading.Event()
    lock = threading.Lock()

    def sender(name):
        def send(ids):
            with lock:
                inside.add(name)
                if len(inside) == 2:
                    overlap.set()
            time.sleep(0.02)
            with lock:
                inside.discard(name)
            return {ids[0]: "VALIDATION_ERROR"} if name == "add" and ids[0] == "a0" else {}

        return send

    add = Lane("add", batches([f"a{i}" for i in range(5)], 2), sender("add"))
    remove = Lane("remove", batches([f"r{i}" for i in range(4)], 2), sender("remove"))
    BatchLanes(target, "run-1").run([add, remove])
    assert overlap.is_set()  # both lanes were in flight at once
    assert (add.done, remove.done, add.sent_ids, remove.sent_ids) == (3, 2, 5, 4)
    assert add.refused == {"a0": "VALIDATION_ERROR"}
    recovery = recover(target)
    assert not recovery.unacked and len(recovery.acked["add"]) == 3


def test_first_failure_stops_every_lane_and_keeps_the_intent(target):
    import time

    def slow(ids):
        time.sleep(0.05)
        return {}

    def boom(ids):
        raise RuntimeError("list gone")

    add = Lane("add", batches([str(i) for i in range(100)], 1), slow)
    remove = Lane("remove", [["x"]], boom)
    with pytest.raises(RuntimeError, match="list gone"):
        BatchLanes(target, "r").run([add, remove])
    assert add.done < 100
    assert recover(target).unacked["remove"] == ["x"]


def test_every_record_has_one_shape():
    record = journal_record("run-1", "add", 3, "intent", ids=["a"])
    assert {k: record[k] for k in ("run", "lane", "batch", "state", "ids")} == {
        "run": "run-1",
        "lane": "add",
        "batch": 3,
        "state": "intent",
        "ids": ["a"],
    }
    assert isinstance(record["t"], float)
    assert journal_record("r", "send", "k", "intent", t=5.0)["t"] == 5.0  # an injected clock wins
    with pytest.raises(ValueError, match="unknown journal state"):
        journal_record("r", "send", "k", "sent")
