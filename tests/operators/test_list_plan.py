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
    assert dict(zip(out["id"].to_pylist(), out["status"].to_pylist())) == {
        "b": "member",
        "c": "member",
        "x": "refused",
    }


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
    assert dict(zip(snapshot["id"].to_pylist(), snapshot["status"].to_pylist())) == {
        "a": "member",
        "b": "uncertain",
        "c": "uncertain",
    }
    # the cohort changed to {a, b}: b must be added back, c must be removed
    plan = plan_list(["a", "b"], snapshot, "mirror")
    assert plan == ListPlan(adds=["b"], removes=["c"], unchanged=1)
    # in add_only mode nothing is removed, but b is still added back
    assert plan_list(["a", "b"], snapshot, "add_only") == ListPlan(adds=["b"], removes=[], unchanged=1)


# ----------------------------------------------------------- the column-wise plan and fold, checked
# against the rule applied one id at a time (what the plan and the fold were before they went
# column-wise): same adds in the same order, same removes, same snapshot.

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

IDS = st.sampled_from([f"u{i}@x.com" for i in range(12)])
STATUS = st.sampled_from(["member", "refused", "uncertain"])


def plan_by_id(cohort, status, mode):
    order = dict.fromkeys(cohort)
    adds = [i for i in order if status.get(i) not in ("member", "refused")]
    leaving = sorted(i for i, s in status.items() if s in ("member", "uncertain") and i not in order)
    return adds, leaving if mode == "mirror" else [], sum(1 for i in order if status.get(i) == "member")


def fold_by_id(status, added, removed, uncertain):
    status = dict(status)
    for ids, refused in added:
        for i in ids:
            status[i] = "refused" if i in refused else "member"
    for ids in removed:
        for i in ids:
            status.pop(i, None)
    for i in uncertain:
        status[i] = "uncertain"
    return status


@given(
    st.lists(IDS, max_size=15),
    st.dictionaries(IDS, STATUS, max_size=12),
    st.sampled_from(["mirror", "add_only"]),
    st.lists(st.tuples(st.lists(IDS, max_size=4), st.sets(IDS, max_size=2)), max_size=3),
    st.lists(st.lists(IDS, max_size=4), max_size=2),
    st.lists(IDS, max_size=4),
)
@settings(max_examples=300, deadline=None)
def test_column_wise_plan_and_fold_agree_with_the_rule_per_id(
    cohort, status, mode, added, removed, uncertain
):
    frame = pd.DataFrame({"id": list(status), "status": list(status.values())}, dtype="string")
    plan = plan_list(cohort, frame, mode)
    adds, removes, unchanged = plan_by_id(cohort, status, mode)
    assert (list(plan.adds), list(plan.removes), plan.unchanged) == (adds, removes, unchanged)
    journal = [(ids, {i: "REFUSED" for i in refused}) for ids, refused in added]
    out = fold_into_snapshot(frame, journal, removed, uncertain)
    folded = dict(zip(out["id"].to_pylist(), out["status"].to_pylist()))
    assert len(folded) == out.num_rows  # one row per id
    assert folded == fold_by_id(status, journal, removed, uncertain)


@given(
    st.lists(IDS, max_size=15),
    st.dictionaries(IDS, STATUS, max_size=12),
    st.sampled_from(["mirror", "add_only"]),
    st.sets(IDS, max_size=3),
    st.integers(min_value=1, max_value=4),
)
@settings(max_examples=200, deadline=None)
def test_folding_an_answered_plan_equals_folding_its_journal(cohort, status, mode, refused, size):
    """The fold of a sync whose batches were all answered, from the plan, equals the journal's."""
    from infobip_provider.cohorts.columnar import hash_keys
    from infobip_provider.operators.lists import fold_plan

    frame = pd.DataFrame({"id": list(status), "status": list(status.values())}, dtype="string")
    plan = plan_list(cohort, frame, mode)
    adds, removes = list(plan.adds), list(plan.removes)
    said = {i: "REFUSED" for i in refused if i in adds}
    journal = [
        (adds[i : i + size], {k: v for k, v in said.items() if k in adds[i : i + size]})
        for i in range(0, len(adds), size)
    ]
    want = fold_into_snapshot(frame, journal, [removes[i : i + size] for i in range(0, len(removes), size)])
    got = fold_plan(frame, plan, said)
    as_dict = lambda t: dict(zip(t["id"].to_pylist(), t["status"].to_pylist()))  # noqa: E731
    assert as_dict(got) == as_dict(want) and got.num_rows == want.num_rows
    assert got["h"].to_pylist() == hash_keys(got["id"]).tolist()  # each id keeps its own hash
