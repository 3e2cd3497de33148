"""The event loop stays free while a heavy request is handled: arrival stamps stay punctual.

A 1000-person upsert keeps the sandbox busy for tens of milliseconds. That work runs on the
store thread, so a cheap request sent meanwhile is read and stamped at once; were the upsert
run on the event loop, the cheap request would be stamped only once the upsert is done, and a
client pacing itself on its own clock would see false 429s.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests

from infobip_provider.sandbox.testing import SandboxProcess

pytestmark = pytest.mark.sandbox

UPSERT = "/people/3/persons/upsert"
BALANCE = "/account/1/balance"
PUNCTUAL = 0.02  # seconds between the client sending and the sandbox stamping the arrival


def _batch(round_: int) -> dict:
    return {
        "persons": [
            {
                "externalId": f"r{round_}-{i}",
                "firstName": f"P{i}",
                "tags": [f"t{i % 7}", f"u{i % 5}", "all"],
                "contactInformation": [
                    *({"type": "EMAIL", "identifier": f"r{round_}.p{i}.{k}@example.com"} for k in range(3)),
                    *({"type": "PHONE", "identifier": f"41{k}9{round_:02d}{i:05d}"} for k in range(3)),
                ],
            }
            for i in range(1000)
        ]
    }


def test_cheap_request_is_stamped_on_time_during_a_heavy_upsert(sandbox: SandboxProcess) -> None:
    heavy, cheap = requests.Session(), requests.Session()
    for session in (heavy, cheap):  # open both connections first: no connect time in the measure
        session.get(sandbox.url(BALANCE), headers=sandbox.headers(), timeout=5).raise_for_status()
    overlapped: list[float] = []
    for round_ in range(8):  # retry only when the cheap request missed the upsert's handling
        body = json.dumps(_batch(round_)).encode()  # encoded up front: no client CPU in the race
        finished: list[float] = []

        def upsert(data: bytes = body, done: list = finished) -> None:
            headers = {**sandbox.headers(), "Content-Type": "application/json"}
            answer = heavy.patch(sandbox.url(UPSERT), data=data, headers=headers, timeout=10)
            done.append(time.time())
            assert answer.status_code == 207, answer.text

        since = sandbox.journal()[-1]["seq"]
        worker = threading.Thread(target=upsert)
        worker.start()
        deadline = time.time() + 5
        while time.time() < deadline:  # wait until the sandbox has taken the upsert in
            if any(e["endpoint"] == "people.upsert" for e in sandbox.journal(since=since)):
                break
            time.sleep(0.002)
        sent_at = time.time()
        answer = cheap.get(sandbox.url(BALANCE), headers=sandbox.headers(), timeout=10)
        worker.join(10)
        assert answer.status_code == 200
        entries = sandbox.journal(since=since)
        stamped = next(e for e in entries if e["endpoint"] == "account.balance")
        upserted = next(e for e in entries if e["endpoint"] == "people.upsert")
        assert upserted["status"] == 207
        if upserted["arrival"] < sent_at < finished[0]:  # sent while the upsert was in the sandbox
            overlapped.append(stamped["arrival"] - sent_at)
            break
    assert overlapped, "the cheap request never overlapped the upsert"
    assert -0.005 < overlapped[0] < PUNCTUAL, f"stamped {overlapped[0] * 1000:.1f} ms after it was sent"
