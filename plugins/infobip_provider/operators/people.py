"""PeopleImportOperator: upsert a cohort into Infobip People and keep an audience tag in step with it."""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from infobip_provider.links import LINKS, set_links
from infobip_provider.operators.common import (
    check_removal_guard,
    cohort_source_for,
    record_run,
    run_key,
    target_state,
    validate_sync_args,
)
from infobip_provider.people import (
    SNAPSHOT_COLUMNS,
    TAG_MAX,
    BuiltPeople,
    FieldMapError,
    PeoplePlan,
    PersonMapping,
    Snapshot,
    automatic_field_map,
    build_people,
    confirmed_tagged,
    default_tag_name,
    fold_recovery,
    parse_field_map,
    plan_people,
    snapshot_from_frame,
    snapshot_to_frame,
    tag_query,
    without_tags,
)
from infobip_provider.values import as_flag, as_text

if TYPE_CHECKING:
    import pandas as pd
    from airflow.sdk import Context

    from infobip_provider.hooks.infobip import InfobipHook
    from infobip_provider.state import TargetState

LANES = ("upsert", "tag", "untag")
#: Batches each lane keeps in flight. The gate still spaces the requests by the cooldown; the window
#: only lets the next batch leave at its slot while an earlier answer (a 1000-person upsert) is slow.
#: [assumed] Infobip limits People calls by rate, not by concurrency.
LANE_WINDOW = 4


@dataclass
class Tally:
    """What Infobip answered during this task (all attempts of :meth:`PeopleImportOperator._apply`)."""

    statuses: dict[str, int] = field(default_factory=lambda: {"CREATED": 0, "UPDATED": 0, "NOT_MODIFIED": 0})
    refused: dict[str, str] = field(default_factory=dict)
    tagged: int = 0
    untagged: int = 0


class PeopleImportOperator(BaseOperator):
    """Upsert every cohort member into Infobip People and keep an audience tag on exactly the members.

    Each member is matched by email, falling back to the phone when there is no email; it becomes a
    person of ``person_type`` with the mapped fields (standard Person fields top-level, everything
    else in ``customAttributes``) and carries ``tag`` while in the cohort. People who leave lose the
    tag and are never deleted. A value that breaks the contract (too long, a bad ``gender``,
    ``birthDate`` or ``preferredLanguage``) rejects its row with the reason; such a member is left as
    Infobip has it (neither updated nor untagged). Empty values are not sent, so nothing is cleared.

    Only what changed since the last confirmed run is sent: people whose payload hash differs from
    the tag's snapshot are upserted (``PATCH /people/3/persons/upsert``, ≤ 1000 per request, read
    per index from the 207 answer: refused people go to the rejects), untagged members are tagged,
    tagged leavers are untagged. The tag is created when missing.

    **Order.** Lytics' Infobip audience export applies, within a flush, upserts before tag additions before tag removals,
    so that a person exists before its tag is attached. This operator keeps that guarantee *per
    person* while pipelining the endpoints, whose cooldowns are independent: a tag-addition batch
    only holds people whose upsert Infobip already acknowledged (or who needed none), so it starts
    as soon as the first upsert batch is answered instead of after the last; tag removals concern
    only leavers, who are neither upserted nor tagged in the same run, so they run side by side from
    the start (a leaver who is the same person as a member under another identity keeps the tag).
    The run takes about the slowest endpoint's ``(calls − 1) × interval`` instead of their sum; each
    lane keeps up to ``LANE_WINDOW`` batches in flight, so a slow answer does not hold back the next
    batch's slot.

    Every batch is journaled before it is sent and acknowledged after Infobip answered; a killed or
    retried task folds the acknowledged batches into the snapshot and sends only the rest. People of
    a batch sent without an answer are sent again: upserted whatever their fields, and tagged when in
    the cohort or untagged when not (their tag is *uncertain*; both calls are safe to repeat).

    Text params are read as text: a tag ``2026`` or ``0`` rendered as a number by
    ``render_template_as_native_obj`` is the tag ``"2026"`` or ``"0"``; only ``None`` and ``""``
    mean "not given". ``field_map`` may also be given as its JSON or Python-literal text.

    :param tag: the audience tag (templated, ≤ 256 characters); empty: ``<dag_id>.<task_id>``.
    :param cohort_path: a CSV/Parquet/JSONL file, relative to ``include/`` or any URI (templated).
    :param cohort_sql: SQL or a ``.sql`` file under ``include/sql`` (templated); give this or ``cohort_path``.
    :param cohort_conn_id: the warehouse connection for ``cohort_sql`` (any common.sql database) (templated).
    :param email_column: the column of email addresses (templated; empty: none).
    :param phone_column: the column of phone numbers, used when a row has no valid email (templated).
    :param external_id_column: optional column sent as the person's ``externalId`` (templated).
    :param country_column: optional column of ISO country codes to read national phone numbers with
        (templated); used for the phone only, so map its value under another column if needed.
    :param person_type: ``CUSTOMER`` or ``LEAD`` (templated).
    :param field_map: ``{column: Infobip field}`` (templated); standard fields: firstName, lastName,
        middleName, gender, birthDate, address, city, country, preferredLanguage, externalId,
        profilePicture; any other target is a custom attribute. ``None`` (the default): the cohort's
        columns named like a standard field (``first_name``, ``last_name``, ``city``, ``language`` ...).
    :param default_region: region of national phone numbers without a country (templated).
    :param batch_size: people per request, at most 1000.
    :param max_removal_ratio: refuse to untag more than this share of the tagged people.
    :param max_reject_ratio: fail when more than this share of the cohort rows is unusable (None: warn).
    :param dry_run: compute and return the plan without any call to Infobip (templated).
    :param infobip_conn_id: the ``infobip`` connection.
    """

    template_fields: Sequence[str] = (
        "tag",
        "cohort_path",
        "cohort_sql",
        "cohort_conn_id",
        "email_column",
        "phone_column",
        "external_id_column",
        "country_column",
        "person_type",
        "field_map",
        "default_region",
        "dry_run",
        "batch_size",
        "max_removal_ratio",
    )
    template_ext: Sequence[str] = (".sql",)
    template_fields_renderers = {"cohort_sql": "sql", "field_map": "json"}
    ui_color = "#ff8a3d"
    operator_extra_links = LINKS

    def __init__(
        self,
        *,
        tag: str | None = None,
        cohort_path: str | None = None,
        cohort_sql: str | None = None,
        cohort_conn_id: str = "warehouse_default",
        email_column: str | None = "email",
        phone_column: str | None = "phone",
        external_id_column: str | None = None,
        country_column: str | None = None,
        person_type: str = "CUSTOMER",
        field_map: dict[str, str] | str | None = None,
        default_region: str = "US",
        batch_size: int = 1000,
        max_removal_ratio: float = 0.5,
        max_reject_ratio: float | None = None,
        dry_run: bool | str = False,
        infobip_conn_id: str = "infobip_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.tag = tag
        self.cohort_path = cohort_path
        self.cohort_sql = cohort_sql
        self.cohort_conn_id = cohort_conn_id
        self.email_column = email_column
        self.phone_column = phone_column
        self.external_id_column = external_id_column
        self.country_column = country_column
        self.person_type = person_type
        self.field_map = field_map
        self.default_region = default_region
        self.batch_size = batch_size
        self.max_removal_ratio = max_removal_ratio
        self.max_reject_ratio = max_reject_ratio
        self.dry_run = dry_run  # type: ignore[assignment,method-assign]  # the param users know
        self.infobip_conn_id = infobip_conn_id

    # ---------------------------------------------------------------------- args
    @staticmethod
    def _column(value: Any) -> str | None:
        """A text param as text (a native render may give a number); ``None`` when empty."""
        return as_text(value)

    def _text_params(self) -> None:
        """Read the text params as text once rendered (``render_template_as_native_obj`` gives numbers)."""
        self.tag = as_text(self.tag)
        self.email_column = as_text(self.email_column)
        self.phone_column = as_text(self.phone_column)
        self.external_id_column = as_text(self.external_id_column)
        self.country_column = as_text(self.country_column)
        self.person_type = as_text(self.person_type) or "CUSTOMER"
        self.default_region = as_text(self.default_region) or "US"

    def tag_name(self) -> str:
        """The tag this task keeps in step: ``tag``, or one derived from the DAG and task ids."""
        name = as_text(self.tag)
        if not name:
            dag_id = self.dag_id if self.has_dag() else None
            return default_tag_name(dag_id, self.task_id)
        if len(name) > TAG_MAX:
            raise AirflowFailException(f"tag must have at most {TAG_MAX} characters, got {len(name)}")
        return name

    def mapping(self, columns: Sequence[str] | None = None) -> PersonMapping | None:
        """The field map as given; without one, the automatic map of ``columns`` (None before the
        cohort is read)."""
        if not (self._column(self.email_column) or self._column(self.phone_column)):
            raise AirflowFailException(
                "Give email_column or phone_column (or both): people are matched on them"
            )
        field_map = self.field_map
        if field_map is None or (isinstance(field_map, str) and as_text(field_map) is None):
            if columns is None:
                try:
                    parse_field_map({}, self.person_type)  # checks the person type early
                except FieldMapError as exc:
                    raise AirflowFailException(str(exc)) from None
                return None
            field_map = automatic_field_map(
                columns, external_id=self._column(self.external_id_column) is not None
            )
        try:
            return parse_field_map(
                field_map,
                self.person_type,
                external_id=self._column(self.external_id_column) is not None,
            )
        except FieldMapError as exc:
            raise AirflowFailException(str(exc)) from None

    # ------------------------------------------------------------------- execute
    def execute(self, context: Context) -> dict[str, Any]:
        from infobip_provider.hooks.infobip import InfobipHook

        self._text_params()
        batch_size, max_removal_ratio = validate_sync_args(self.batch_size, self.max_removal_ratio)
        mapping = self.mapping()
        dry_run = as_flag(self.dry_run, "dry_run")
        tag = self.tag_name()
        hook = InfobipHook(self.infobip_conn_id)
        target = target_state(hook, "tags", tag, self.log)
        with target.lock(f"the tag {tag!r}"):
            return self._sync(hook, target, context, tag, mapping, batch_size, max_removal_ratio, dry_run)

    def _read_cohort(self, context: Context) -> Any:
        from infobip_provider.cohorts import IdentityColumns, prepare_cohort

        source = cohort_source_for(self, context)
        columns = IdentityColumns(
            email=self._column(self.email_column),
            phone=self._column(self.phone_column),
            external_id=self._column(self.external_id_column),
            country=self._column(self.country_column),
        )
        return prepare_cohort(source, columns, key="email_or_phone", default_region=self.default_region)

    def _check_value_rejects(self, prepared: Any, built: BuiltPeople) -> None:
        """Rows held back for a bad value count towards ``max_reject_ratio`` with the identity rejects."""
        if self.max_reject_ratio is None or not built.rejects:
            return
        rows = int(prepared.stats.get("rows_read") or 0)
        bad = int(prepared.stats.get("invalid") or 0) + built.rejected_rows
        if rows and bad / rows > float(self.max_reject_ratio):
            raise AirflowFailException(
                f"{bad} of {rows} cohort rows ({bad / rows:.1%}) were rejected (identities and field values), "
                f"above max_reject_ratio {float(self.max_reject_ratio):.1%}; see the rejects file"
            )

    def _sync(
        self,
        hook: InfobipHook,
        target: TargetState,
        context: Context,
        tag: str,
        mapping: PersonMapping | None,
        batch_size: int,
        max_removal_ratio: float,
        dry_run: bool,
    ) -> dict[str, Any]:
        from infobip_provider.checkpoint import recover

        started = time.monotonic()
        facts = target.read_json("target.json", {}) or {}
        snapshot = snapshot_from_frame(target.read_snapshot(SNAPSHOT_COLUMNS))
        recovery = recover(target)
        if not recovery.empty:
            snapshot = fold_recovery(snapshot, recovery)
            self.log.info(
                "Resuming an interrupted import: %d acknowledged batches folded into the snapshot; "
                "%d people of unanswered batches will be sent again",
                sum(len(v) for v in recovery.acked.values()),
                sum(len(v) for v in recovery.unacked.values()),
            )
            if not dry_run:
                target.write_snapshot(snapshot_to_frame(snapshot))
                target.clear_journal()

        prepared = self._read_cohort(context)
        if mapping is None:
            mapping = self.mapping(prepared.columns)
            assert mapping is not None
            unmapped = [c for c in prepared.columns if c not in mapping.columns]
            self.log.info(
                "Field map (none given, taken from the column names): %s%s",
                ", ".join(f"{c} → {f}" for c, f in mapping.standard) or "nothing",
                f"; not sent: {', '.join(unmapped)} (name them in field_map to send them as custom "
                "attributes)"
                if unmapped
                else "",
            )
        try:
            built = build_people(prepared.members, mapping)
        except FieldMapError as exc:
            raise AirflowFailException(str(exc)) from None
        run_id = run_key(context)
        rejects = _all_rejects(prepared.rejects, built)
        rejects_uri = target.write_rejects(run_id, rejects)
        prepared.check_reject_ratio(self.max_reject_ratio, self.log)
        if built.rejected_rows:
            self.log.warning(
                "%d more rows not used: a value Infobip would refuse (see the rejects)", built.rejected_rows
            )
        if rejects_uri:
            self.log.info("Cohort rows not used, with reasons: %s", rejects_uri)
        self._check_value_rejects(prepared, built)
        if built.shared_phones:
            self.log.warning(
                "%d members share a phone with an earlier member: sent without it (matched by email only)",
                built.shared_phones,
            )
        plan = plan_people(built, snapshot)
        check_removal_guard(
            len(plan.untags), confirmed_tagged(snapshot), max_removal_ratio, f"the tag {tag!r}"
        )
        summary: dict[str, Any] = {
            "tag": tag,
            "tag_id": facts.get("tag_id"),
            "person_type": mapping.person_type,
            "dry_run": dry_run,
            "cohort": prepared.stats,
            "members": len(built.people),
            "to_upsert": len(plan.upserts),
            "to_tag": plan.tag_adds,
            "to_untag": len(plan.untags),
            "held": plan.held,
            "shared_phones": built.shared_phones,
            "unchanged": plan.unchanged,
            "rejects_uri": rejects_uri,
        }
        calls = plan.calls(batch_size)
        bound = round(max([(n - 1) * hook.interval(e) for e, n in calls.items() if n] or [0.0]), 3)
        self.log.info(
            "Plan for the tag %r: %d members; %d people to upsert (new or changed), %d to tag, %d to "
            "untag (left the cohort), %d unchanged, %d held back (a bad value); %d requests, at least "
            "%.0f s at Infobip's pace",
            tag,
            len(built.people),
            len(plan.upserts),
            plan.tag_adds,
            len(plan.untags),
            plan.unchanged,
            plan.held,
            sum(calls.values()),
            bound,
        )
        if dry_run:
            summary["calls_planned"] = calls
            summary["seconds_bound"] = bound
            self.log.info("Dry run, nothing sent. Turn dry_run off to apply this plan.")
            record_run(
                target,
                context,
                kind="tags",
                name=tag,
                dry_run=True,
                size=confirmed_tagged(snapshot),
                counts={
                    "to_upsert": len(plan.upserts),
                    "to_tag": plan.tag_adds,
                    "to_untag": len(plan.untags),
                    "not_used": len(rejects),
                },
                rejects_uri=rejects_uri,
            )
            set_links(context, hook, target, dry_run=True)
            return summary

        from infobip_provider.errors import InfobipListNotFoundError, InfobipNotFoundError

        tally = Tally()
        try:
            self._apply(hook, target, facts, snapshot, plan, tag, batch_size, run_id, tally)
        except (InfobipNotFoundError, InfobipListNotFoundError):
            # The tag was deleted in Infobip since the last run: nobody carries it any more.
            self.log.warning(
                "The tag %r no longer exists in Infobip: creating it again and tagging every member (%d)",
                tag,
                len(built.people),
            )
            facts.pop("tag_id", None)
            snapshot = without_tags(snapshot_from_frame(target.read_snapshot(SNAPSHOT_COLUMNS)))
            target.write_snapshot(snapshot_to_frame(snapshot))
            plan = plan_people(built, snapshot)
            self._apply(hook, target, facts, snapshot, plan, tag, batch_size, run_id, tally)
            summary["tag_recreated"] = True
        if tally.refused:
            self.log.warning(
                "Infobip refused %d people (see the rejects); they are not tagged", len(tally.refused)
            )
            target.write_rejects(run_id + "-refused", _refused_frame(tally.refused))
        summary.update(
            tag_id=facts.get("tag_id"),
            created=tally.statuses["CREATED"],
            updated=tally.statuses["UPDATED"],
            unchanged=plan.unchanged + tally.statuses["NOT_MODIFIED"],
            tagged=tally.tagged,
            untagged=tally.untagged,
            refused_by_infobip=len(tally.refused),
            rejected=int(prepared.stats.get("rejected", 0)) + built.rejected_rows + len(tally.refused),
            calls=dict(hook.calls),
            seconds_waited=round(sum(hook.waited.values()), 3),
            seconds=round(time.monotonic() - started, 3),
        )
        size = confirmed_tagged(snapshot_from_frame(target.read_snapshot(SNAPSHOT_COLUMNS)))
        link = set_links(context, hook, target, dry_run=False)
        record_run(
            target,
            context,
            kind="tags",
            name=tag,
            dry_run=False,
            size=size,
            counts={
                "created": summary["created"],
                "updated": summary["updated"],
                "tagged": summary["tagged"],
                "untagged": summary["untagged"],
                "rejected": summary["rejected"],
            },
            rejects_uri=rejects_uri,
            link=link,
        )
        self.log.info(
            "Tag %r now on %d people: %d created, %d updated, %d unchanged, %d tagged, %d untagged; %d "
            "rows not used, %d refused by Infobip; %d calls, %.1f s waiting for cooldowns",
            tag,
            size,
            summary["created"],
            summary["updated"],
            summary["unchanged"],
            summary["tagged"],
            summary["untagged"],
            summary["rejected"] - len(tally.refused),
            len(tally.refused),
            sum(hook.calls.values()),
            summary["seconds_waited"],
        )
        return summary

    # --------------------------------------------------------------------- apply
    def _ensure_tag(self, hook: InfobipHook, target: TargetState, facts: dict[str, Any], tag: str) -> None:
        """Find the tag, or create it; remember its id so that later runs need no call for it."""
        if facts.get("tag_id") is not None and facts.get("tag") == tag:
            return
        from infobip_provider.errors import InfobipValidationError

        found = hook.get_tag(tag)
        if found is None:
            try:
                found = hook.create_tag(tag)
                self.log.info("Created the Infobip tag %r", tag)
            except InfobipValidationError as exc:
                if exc.status != 409:  # 409: created meanwhile by someone else
                    raise
                found = hook.get_tag(tag)
                if found is None:
                    raise
        facts.update(tag=tag, tag_id=found.get("id"))
        target.write_json("target.json", facts)

    def _apply(
        self,
        hook: InfobipHook,
        target: TargetState,
        facts: dict[str, Any],
        snapshot: Snapshot,
        plan: PeoplePlan,
        tag: str,
        batch_size: int,
        run_id: str,
        tally: Tally,
    ) -> None:
        from infobip_provider.checkpoint import BatchFeed, BatchLanes, Lane, batches, recover

        for key in plan.dropped:
            snapshot.pop(key, None)
        if plan.tag_adds or plan.untags:
            self._ensure_tag(hook, target, facts, tag)

        feed = BatchFeed(batch_size, plan.tag_now, expected=plan.tag_adds)
        counting = threading.Lock()  # lanes send from several threads

        def upsert(refs: list[str]) -> dict[str, str]:
            answer = hook.upsert_people([plan.payloads[r] for r in refs])
            refused: dict[str, str] = {}
            for error in answer.get("errors") or []:
                index = error.get("index")
                if isinstance(index, int) and 0 <= index < len(refs):
                    refused[refs[index]] = _upsert_reason(error)
            with counting:
                for result in answer.get("results") or []:
                    status = str(result.get("status") or "")
                    tally.statuses[status] = tally.statuses.get(status, 0) + 1
                tally.refused.update(refused)
            return refused

        def after_upsert(refs: list[str], refused: dict[str, str]) -> None:
            feed.put([r for r in refs if r in plan.tag_after_upsert and r not in refused])

        def add_tag(refs: list[str]) -> dict[str, str]:
            hook.tag_people(tag, [tag_query(r) for r in refs])
            with counting:
                tally.tagged += len(refs)
            return {}

        def remove_tag(refs: list[str]) -> dict[str, str]:
            hook.untag_people(tag, [tag_query(r) for r in refs])
            with counting:
                tally.untagged += len(refs)
            return {}

        lanes = [
            Lane(
                "upsert",
                batches(plan.upserts, batch_size),
                upsert,
                hook.interval("people.upsert"),
                on_ack=after_upsert,
                on_exit=feed.close,
                window=LANE_WINDOW,
            ),
            Lane("tag", feed, add_tag, hook.interval("tags.add"), window=LANE_WINDOW),
            Lane(
                "untag",
                batches(plan.untags, batch_size),
                remove_tag,
                hook.interval("tags.remove"),
                window=LANE_WINDOW,
            ),
        ]
        self.log.info(
            "Sending for tag %r: %d upsert batches, about %d tag batches (each after its people's upserts), "
            "%d untag batches side by side",
            tag,
            len(lanes[0].batches),
            math.ceil(plan.tag_adds / batch_size),
            len(lanes[2].batches),
        )
        attempt = f"{run_id}:{uuid.uuid4().hex[:8]}"
        try:
            BatchLanes(target, attempt).run(lanes)
        finally:
            # Whatever happened, what Infobip acknowledged becomes the snapshot, and the people of
            # unanswered batches are marked to be sent again.
            recovery = recover(target)
            confirmed = fold_recovery(snapshot, recovery)
            target.write_snapshot(snapshot_to_frame(confirmed))
            target.clear_journal()
            snapshot.clear()
            snapshot.update(confirmed)


def _upsert_reason(error: dict[str, Any]) -> str:
    details = "; ".join(
        f"{d.get('property')}: {d.get('message')}" for d in error.get("details") or [] if isinstance(d, dict)
    )
    text = f"refused by Infobip: {error.get('code')} {error.get('message') or ''}".strip()
    return f"{text} ({details})" if details else text


def _all_rejects(cohort_rejects: pd.DataFrame, built: BuiltPeople) -> pd.DataFrame:
    import pandas as pd

    if not built.rejects:
        return cohort_rejects
    extra = pd.DataFrame(built.rejects, columns=["row", "key", "value", "reason"])
    frames = [f for f in (cohort_rejects, extra) if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else cohort_rejects


def _refused_frame(refused: dict[str, str]) -> pd.DataFrame:
    import pandas as pd

    from infobip_provider.people import parse_ref

    keys = [parse_ref(r)[1] for r in refused]
    return pd.DataFrame({"row": None, "key": keys, "value": keys, "reason": list(refused.values())})
