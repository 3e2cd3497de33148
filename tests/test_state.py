"""State store and checkpoint journal: atomic writes, torn lines, recovery, locks."""

from __future__ import annotations

import multiprocessing
import os

import pandas as pd
import pytest

from infobip_provider.state import StateStore, TargetLockedError, slug


@pytest.fixture
def target(tmp_path):
    return StateStore(str(tmp_path)).target("fp", "lists", "VIP customers")


def test_targets_are_separated_by_key_kind_and_name(tmp_path):
    store = StateStore(str(tmp_path))
    paths = {
        str(store.target(k, kind, n).root)
        for k in ("a", "b")
        for kind in ("lists", "tags")
        for n in ("x", "X")
    }
    assert len(paths) == 8
    assert slug("a/b c") != slug("a b/c")  # readable forms collide, the digest keeps them apart


def test_json_and_snapshot_round_trip(target):
    assert target.read_json("target.json", {}) == {}
    target.write_json("target.json", {"list_id": 7})
    assert target.read_json("target.json") == {"list_id": 7}
    empty = target.read_snapshot({"id": "string", "status": "string"})
    assert list(empty.columns) == ["id", "status"] and empty.empty
    frame = pd.DataFrame({"id": ["a@x.com", "b@x.com"], "status": ["member", "refused"]})
    target.write_snapshot(frame)
    assert target.read_snapshot().to_dict("list") == frame.to_dict("list")
    assert not [p for p in os.listdir(target.root.path) if p.endswith(".tmp")]


def test_file_uri_works_like_a_path(tmp_path):
    store = StateStore("file://" + str(tmp_path / "state"))
    t = store.target("fp", "lists", "x")
    t.write_json("target.json", {"list_id": 1})
    assert (tmp_path / "state").exists() and t.read_json("target.json") == {"list_id": 1}


def test_journal_ignores_a_torn_last_line(target):
    target.append_journal({"run": "r", "lane": "add", "batch": 0, "state": "intent", "ids": ["a"]})
    with open(os.path.join(target.root.path, "journal.jsonl"), "a") as fh:
        fh.write('{"run": "r", "lane": "add", "ba')
    assert len(target.read_journal()) == 1


def _hold_lock(path, ready, release):
    t = StateStore(path).target("fp", "lists", "L")
    with t.lock("L"):
        ready.set()
        release.wait(10)


def test_one_sync_per_target_across_processes(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(tmp_path), ready, release))
    holder.start()
    try:
        assert ready.wait(60)
        t = StateStore(str(tmp_path)).target("fp", "lists", "L")
        with pytest.raises(TargetLockedError, match="Another run"), t.lock("L"):
            pass
    finally:
        release.set()
        holder.join(30)
    with t.lock("L"):  # released with its holder
        pass


def test_a_later_try_waits_for_the_earlier_one_to_finish_then_runs(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(tmp_path), ready, release))
    holder.start()
    said: list[str] = []

    class Log:
        def warning(self, msg, *args):
            said.append(msg % args)

    waits: list[float] = []

    def sleep(seconds):  # the earlier try finishes while this one waits
        waits.append(seconds)
        release.set()
        holder.join(30)

    try:
        assert ready.wait(60)
        t = StateStore(str(tmp_path)).target("fp", "lists", "L")
        with t.lock("the list 'L'", wait=60, log=Log(), sleep=sleep):
            entered = True
    finally:
        release.set()
        holder.join(30)
    assert entered and len(waits) == 1
    assert len(said) == 1 and "waiting up to" in said[0] and "nothing is sent meanwhile" in said[0]


def test_waiting_is_bounded(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(tmp_path), ready, release))
    holder.start()
    try:
        assert ready.wait(60)
        t = StateStore(str(tmp_path)).target("fp", "lists", "L")
        with pytest.raises(TargetLockedError, match="did not finish within 1 s"), t.lock("L", wait=1.0):
            pass
    finally:
        release.set()
        holder.join(30)


def test_rejects_file(target):
    uri = target.write_rejects(
        "manual__2026-01-01T00:00:00",
        pd.DataFrame({"row": [3], "key": [None], "value": ["x"], "reason": ["invalid email"]}),
    )
    assert uri and uri.endswith(".csv") and ":" not in os.path.basename(uri)
    assert "invalid email" in open(uri.replace("file://", "")).read()
    assert target.write_rejects("r", pd.DataFrame()) is None


@pytest.mark.parametrize(
    ("base_url", "scope"),
    [
        ("https://abc12.api.infobip.com", "abc12.api.infobip.com"),
        ("https://ABC12.api.infobip.com/", "abc12.api.infobip.com"),
        ("https://api.infobip.com", "key-fp"),  # the shared host names no account
        ("http://127.0.0.1:8765", "key-fp"),  # a sandbox
        ("https://abc12.api.infobip.com.evil.example", "key-fp"),
    ],
)
def test_an_account_specific_base_url_is_the_scope(base_url, scope):
    from infobip_provider.state import state_scope

    assert state_scope(base_url, "key-fp") == scope


def test_a_target_kept_under_the_key_fingerprint_moves_to_the_account(tmp_path):
    store = StateStore(str(tmp_path))
    old = store.target("fp-old", "lists", "VIP")
    old.write_json("target.json", {"list_id": 7})
    old.append_run({"name": "VIP", "counts": {"added": 3}})
    moved = store.target("abc12.api.infobip.com", "lists", "VIP", legacy_scope="fp-old")
    assert moved.read_json("target.json") == {"list_id": 7}
    assert moved.read_runs() == [{"name": "VIP", "counts": {"added": 3}}]
    assert not (tmp_path / "fp-old" / "lists" / slug("VIP")).exists()
    # once moved, a later key's fingerprint changes nothing
    again = store.target("abc12.api.infobip.com", "lists", "VIP", legacy_scope="fp-new")
    assert again.read_json("target.json") == {"list_id": 7}
    assert [(scope, kind) for scope, kind, _ in store.iter_targets()] == [("abc12.api.infobip.com", "lists")]
