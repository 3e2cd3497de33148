"""The suppression list mirrored into the sandbox's blocklist and email suppressions: only the
changes are sent, blocklist requests paced at one per second (scaled), a resumed run repeats nothing
Infobip confirmed."""

from __future__ import annotations

import itertools

import pytest

from infobip_provider.respect.mirror import SuppressionMirrorOperator, mirror_items
from infobip_provider.respect.suppression import SuppressionList
from infobip_provider.state import StateStore, TargetState
from tests.integration.conftest import run_operator

pytestmark = pytest.mark.sandbox

#: Infobip's own pace (one blocklist call per second): the gate's safety margin (2 % + 3 ms) then
#: covers the sandbox's arrival stamps, which lag by several milliseconds on a loaded machine.
SANDBOX_SCALE = 1.0


def listing(infobip_conn, sandbox) -> SuppressionList:
    from infobip_provider.hooks.infobip import InfobipHook

    hook = InfobipHook()
    return SuppressionList(
        TargetState(StateStore(str(infobip_conn["state"])).root / hook.state_scope / "suppression")
    )


def row(channel: str, address: str, reason: str, source: str = "test") -> tuple:
    return (channel, address, reason, source, "2026-11-24T10:00:00+00:00", None)


def mirror(**kwargs) -> dict:
    kwargs.setdefault("email_domain", "acme.example")
    return run_operator(SuppressionMirrorOperator(task_id="mirror", batch_size=2, **kwargs))


def blocklist(sandbox) -> set[tuple[str, str]]:
    return {(c, t) for c, t, _ in sandbox.state()["blocklist"]}


def requests(sandbox, endpoint: str) -> list[dict]:
    return sandbox.journal(endpoint=endpoint)


def test_the_mirror_sends_only_changes_paced(sandbox, infobip_conn):
    suppression = listing(infobip_conn, sandbox)
    suppression.merge(
        [
            row("*", "41790000001", "opt_out"),
            row("*", "41790000002", "opt_out"),
            row("sms", "41790000003", "hard_bounce"),
            row("*", "ana@x.example", "opt_out"),
            row("email", "bob@x.example", "hard_bounce"),
        ]
    )
    plan = mirror(dry_run=True)
    assert plan["to_add"] == 7 and plan["calls_planned"]["blocklist.add"] == 3
    assert blocklist(sandbox) == set()
    first = mirror()
    assert first["added"] == 7 and first["removed"] == 0
    assert blocklist(sandbox) == {
        ("SMS", "41790000001"),
        ("WHATSAPP", "41790000001"),
        ("SMS", "41790000002"),
        ("WHATSAPP", "41790000002"),
        ("SMS", "41790000003"),
    }
    assert sorted(sandbox.state()["email_suppressions"]) == [
        "acme.example|ana@x.example|UNSUBSCRIBE",
        "acme.example|bob@x.example|BOUNCE",
    ]
    adds = requests(sandbox, "blocklist.add")
    assert len(adds) == 3  # 5 blocklist items in batches of 2 (the 4th batch holds the 2 emails)
    arrivals = [entry["arrival"] for entry in adds]
    assert all(b - a >= 1.0 * SANDBOX_SCALE for a, b in itertools.pairwise(arrivals)), (
        "one blocklist call per second"
    )
    # nothing changed: nothing is sent
    before = len(sandbox.journal())
    again = mirror()
    assert again["added"] == again["removed"] == 0 and again["unchanged"] == 7
    assert [e for e in sandbox.journal()[before:] if e.get("endpoint")] == []
    # an address leaves the list, another joins: one removal, two additions (SMS and WhatsApp)
    frame = suppression.read()
    suppression.write(frame[frame["address"] != "41790000002"])
    suppression.merge([row("*", "41790000004", "listed")])
    third = mirror()
    assert (third["added"], third["removed"], third["unchanged"]) == (2, 2, 5)
    assert ("SMS", "41790000002") not in blocklist(sandbox) and ("WHATSAPP", "41790000004") in blocklist(
        sandbox
    )


def test_without_a_domain_emails_are_counted_not_mirrored():
    items, unmirrored = mirror_items(
        [row("*", "a@x.example", "opt_out"), row("whatsapp", "41790000001", "opt_out")],
        ["SMS", "WHATSAPP"],
        None,
    )
    assert items == {"bl|WHATSAPP|41790000001"} and unmirrored == 1
