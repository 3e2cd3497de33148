"""The list plan: what is added, removed and kept, and the guards around it (pure, no calls)."""

from __future__ import annotations

import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowFailException

from infobip_provider.operators.common import check_removal_guard, validate_sync_args
from infobip_provider.operators.lists import ListPlan, fold_into_snapshot, plan_list


def snap(members=(), refused=()):
    ids = [*members, *refused]
    return pd.DataFrame(
        {"id": ids, "status": ["member"] * len(members) + ["refused"] * len(refused)}, dtype="string"
    )


def test_first_run_adds_everyone_in_cohort_order():
    plan = plan_list(["c", "a", "b", "a"], snap(), "mirror")
    assert plan == ListPlan(adds=["c", "a", "b"], removes=[], unchanged=0)


def test_mirror_adds_entrants_and_removes_leavers():
    plan = plan_list(["a", "b", "d"], snap(["a", "b", "c"]), "mirror")
    assert plan == ListPlan(adds=["d"], removes=["c"], unchanged=2)


def test_add_only_never_removes():
    plan = plan_list(["a"], snap(["a", "b", "c"]), "add_only")
    assert plan.removes == [] and plan.adds == []


def test_refused_ids_are_not_resent_nor_removed():
    plan = plan_list(["a", "bad"], snap(["a"], ["bad", "gone-bad"]), "mirror")
    assert plan == ListPlan(adds=[], removes=[], unchanged=1)


def test_fold_applies_acks():
    out = fold_into_snapshot(snap(["a", "b"]), [(["c", "x"], {"x": "VALIDATION_ERROR"})], [["a"]])
    assert dict(zip(out["id"], out["status"])) == {"b": "member", "c": "member", "x": "refused"}


@pytest.mark.parametrize(
    ("removals", "confirmed", "ratio", "refused"),
    [
        pytest.param(6, 10, 0.5, True, id="over"),
        pytest.param(5, 10, 0.5, False, id="at-limit"),
        pytest.param(10, 10, 1.0, False, id="raised"),
        pytest.param(3, 0, 0.5, False, id="nothing-confirmed"),
    ],
)
def test_removal_guard(removals, confirmed, ratio, refused):
    if refused:
        with pytest.raises(AirflowFailException, match="max_removal_ratio"):
            check_removal_guard(removals, confirmed, ratio, "the list 'L'")
    else:
        check_removal_guard(removals, confirmed, ratio, "the list 'L'")


@pytest.mark.parametrize("bad", [0, 1001, "x"])
def test_batch_size_bounds(bad):
    with pytest.raises(AirflowFailException):
        validate_sync_args(bad, 0.5)


def test_unanswered_batches_are_sent_again_whichever_way_the_cohort_went():
    """A remove of b and an add of c were sent, then the task died before either answer."""
    from infobip_provider.checkpoint import Recovery
    from infobip_provider.operators.lists import fold_recovery

    recovery = Recovery(acked={"add": [(["a"], {})]}, unacked={"remove": ["b"], "add": ["c"]})
    snapshot = fold_recovery(snap(["b"]), recovery)
    assert dict(zip(snapshot["id"], snapshot["status"])) == {
        "a": "member",
        "b": "uncertain",
        "c": "uncertain",
    }
    # the cohort changed to {a, b}: b must be added back, c must be removed
    plan = plan_list(["a", "b"], snapshot, "mirror")
    assert plan == ListPlan(adds=["b"], removes=["c"], unchanged=1)
    # in add_only mode nothing is removed, but b is still added back
    assert plan_list(["a", "b"], snapshot, "add_only") == ListPlan(adds=["b"], removes=[], unchanged=1)
