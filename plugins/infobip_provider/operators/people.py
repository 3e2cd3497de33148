"""PeopleImportOperator: upsert a cohort into Infobip People and keep an audience tag in step with it."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from infobip_provider.engines.sync import SyncOperator, Tally
from infobip_provider.operators.base import CohortOperator
from infobip_provider.people import (
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
    fold_people,
    fold_recovery,
    parse_field_map,
    plan_people,
    snapshot_schema,
    tag_query,
    without_tags,
)
from infobip_provider.values import as_text

if TYPE_CHECKING:
    import pandas as pd
    from airflow.sdk import Context

    from infobip_provider.checkpoint import Lane, Recovery
    from infobip_provider.cohorts import PreparedCohort
    from infobip_provider.state import TargetState

LANES = ("upsert", "tag", "untag")
#: Batches each lane keeps in flight. The gate still spaces the requests by the cooldown; the window
#: only lets the next batch leave at its slot while an earlier answer (a 1000-person upsert) is slow.
#: [assumed] Infobip limits People calls by rate, not by concurrency.
LANE_WINDOW = 4


class PeopleImportOperator(SyncOperator[Snapshot, BuiltPeople, PeoplePlan]):
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
    :param email_column: the column of email addresses (templated; empty: none).
    :param phone_column: the column of phone numbers, used when a row has no valid email (templated).
    :param external_id_column: optional column sent as the person's ``externalId`` (templated).
    :param country_column: optional column of ISO country codes to read national phone numbers with
        (templated); used for the phone only, so map its value under another column if needed.
    :param person_type: ``CUSTOMER`` or ``LEAD`` (templated).
    :param field_map: ``{column: Infobip field}`` (templated); standard fields: firstName, lastName,
        middleName, nickName, gender, birthDate, address, city, country, preferredLanguage, externalId,
        profilePicture; any other target is a custom attribute. ``None`` (the default): the cohort's
        columns named like a standard field (``first_name``, ``last_name``, ``city``, ``language`` ...).
    :param default_region: region of national phone numbers without a country (templated).

    The cohort, batch and safety params are those of
    :class:`~infobip_provider.operators.base.CohortOperator` and the sync engine
    (``max_removal_ratio`` bounds the untags).
    """

    kind = "tags"
    template_fields: Sequence[str] = (
        "tag",
        *CohortOperator.cohort_fields,
        "email_column",
        "phone_column",
        "external_id_column",
        "country_column",
        "person_type",
        "field_map",
        "default_region",
        "batch_size",
        "max_removal_ratio",
    )
    template_fields_renderers = {"cohort_sql": "sql", "field_map": "json"}
    history_counts = ("created", "updated", "tagged", "untagged", "rejected")
    planned_counts = ("to_upsert", "to_tag", "to_untag")

    def __init__(
        self,
        *,
        tag: str | None = None,
        email_column: str | None = "email",
        phone_column: str | None = "phone",
        external_id_column: str | None = None,
        country_column: str | None = None,
        person_type: str = "CUSTOMER",
        field_map: dict[str, str] | str | None = None,
        default_region: str = "US",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.tag = tag
        self.email_column = email_column
        self.phone_column = phone_column
        self.external_id_column = external_id_column
        self.country_column = country_column
        self.person_type = person_type
        self.field_map = field_map
        self.default_region = default_region

    @property
    def missing_errors(self) -> tuple[type[Exception], ...]:  # type: ignore[override]
        from infobip_provider.errors import InfobipListNotFoundError

        return (InfobipListNotFoundError,)  # raised by the tag lanes when the tag vanished

    # ---------------------------------------------------------------------- args
    def target_name(self) -> str:
        """Read the text params as text (a native render gives numbers), check them, name the tag."""
        for name in ("tag", "email_column", "phone_column", "external_id_column", "country_column"):
            setattr(self, name, as_text(getattr(self, name)))
        self.person_type = as_text(self.person_type) or "CUSTOMER"
        self.default_region = as_text(self.default_region) or "US"
        self.mapping()  # a bad field map or person type fails before any call
        return self.tag_name()

    def what(self, name: str) -> str:
        return f"the tag {name!r}"

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
        if not (as_text(self.email_column) or as_text(self.phone_column)):
            raise AirflowFailException(
                "Give email_column or phone_column (or both): people are matched on them"
            )
        external_id = as_text(self.external_id_column) is not None
        given = self.field_map
        automatic = given is None or (isinstance(given, str) and as_text(given) is None)
        if automatic:  # before the cohort is read, only the person type can be checked
            given = {} if columns is None else automatic_field_map(columns, external_id=external_id)
        try:
            parsed = parse_field_map(given, self.person_type, external_id=external_id)
        except FieldMapError as exc:
            raise AirflowFailException(str(exc)) from None
        return None if automatic and columns is None else parsed

    # ----------------------------------------------------------------- snapshot
    def read_snapshot(self, target: TargetState) -> Snapshot:
        return Snapshot(target.read_snapshot_table(snapshot_schema()))

    def write_snapshot(self, target: TargetState, snapshot: Snapshot) -> None:
        target.write_snapshot_table(snapshot.table)

    def fold(self, snapshot: Snapshot, recovery: Recovery) -> Snapshot:
        return fold_recovery(snapshot, recovery)

    def fold_answered(self, snapshot: Snapshot, plan: PeoplePlan, lanes: list[Lane]) -> Snapshot:
        """Every batch was answered: the plan says what was sent (the journal need not be read back)."""
        refused = {lane.name: lane.refused for lane in lanes}
        upsert_refused = refused.get("upsert", {})
        fed = [r for r in plan.upserts if r in plan.tag_after_upsert and r not in upsert_refused]
        return fold_people(
            snapshot,
            [(plan.upserts, upsert_refused)],
            [([*plan.tag_now, *fed], refused.get("tag", {}))],
            [(plan.untags, refused.get("untag", {}))],
        )

    def confirmed(self, snapshot: Snapshot) -> int:
        return confirmed_tagged(snapshot)

    def forget_target(self, target: TargetState, facts: dict[str, Any]) -> Snapshot:
        # The tag was deleted in Infobip since the last run: nobody carries it any more.
        facts.pop("tag_id", None)
        return without_tags(self.read_snapshot(target))

    # --------------------------------------------------------------------- plan
    def prepare(self, context: Context) -> tuple[PreparedCohort, BuiltPeople, pd.DataFrame]:
        from infobip_provider.cohorts import IdentityColumns

        columns = IdentityColumns(
            email=as_text(self.email_column),
            phone=as_text(self.phone_column),
            external_id=as_text(self.external_id_column),
            country=as_text(self.country_column),
        )
        prepared = self.read_cohort(
            context, columns, key="email_or_phone", default_region=self.default_region
        )
        mapping = self.mapping()
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
            built = build_people(prepared, mapping)
        except FieldMapError as exc:
            raise AirflowFailException(str(exc)) from None
        if built.rejected_rows:
            self.log.warning(
                "%d more rows not used: a value Infobip would refuse (see the rejects)", built.rejected_rows
            )
        if built.shared_phones:
            self.log.warning(
                "%d members share a phone with an earlier member: sent without it (matched by email only)",
                built.shared_phones,
            )
        self._person_type, self._members = mapping.person_type, len(built)
        self._shared_phones = built.shared_phones
        return prepared, built, _all_rejects(prepared.rejects, built)

    def check_work(self, prepared: PreparedCohort, built: BuiltPeople) -> None:
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

    def plan(self, work: BuiltPeople, snapshot: Snapshot) -> PeoplePlan:
        return plan_people(work, snapshot)

    def removals(self, plan: PeoplePlan) -> int:
        return len(plan.untags)

    def calls(self, plan: PeoplePlan, batch_size: int) -> dict[str, int]:
        return plan.calls(batch_size)

    def describe(self, name: str, plan: PeoplePlan, snapshot: Snapshot) -> tuple[dict[str, Any], str]:
        counts = {
            "tag": name,
            "person_type": self._person_type,
            "members": self._members,
            "to_upsert": len(plan.upserts),
            "to_tag": plan.tag_adds,
            "to_untag": len(plan.untags),
            "held": plan.held,
            "shared_phones": self._shared_phones,
            "unchanged": plan.unchanged,
        }
        line = (
            f"Plan for the tag {name!r}: {self._members} members; {len(plan.upserts)} people to upsert (new or "
            f"changed), {plan.tag_adds} to tag, {len(plan.untags)} to untag (left the cohort), "
            f"{plan.unchanged} unchanged, {plan.held} held back (a bad value)"
        )
        return counts, line

    # -------------------------------------------------------------------- apply
    def before_apply(self, snapshot: Snapshot, plan: PeoplePlan) -> Snapshot:
        snapshot.discard(plan.dropped)
        return snapshot

    def ensure_target(self, target: TargetState, facts: dict[str, Any], plan: PeoplePlan) -> None:
        """Find the tag, or create it; remember its id so that later runs need no call for it."""
        tag = self.tag_name()
        if not (plan.tag_adds or plan.untags) or (
            facts.get("tag_id") is not None and facts.get("tag") == tag
        ):
            return
        from infobip_provider.errors import InfobipValidationError

        hook = self.hook
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

    def lanes(self, plan: PeoplePlan, batch_size: int, facts: dict[str, Any], tally: Tally) -> list[Lane]:
        from infobip_provider.checkpoint import BatchFeed, Lane, batches

        hook, tag = self.hook, self.tag_name()
        feed = BatchFeed(batch_size, plan.tag_now, expected=plan.tag_adds)

        def upsert(refs: list[str]) -> dict[str, str]:
            answer = hook.upsert_people([plan.payloads[r] for r in refs])
            refused: dict[str, str] = {}
            for error in answer.get("errors") or []:
                index = error.get("index")
                if isinstance(index, int) and 0 <= index < len(refs):
                    refused[refs[index]] = _upsert_reason(error)
            for result in answer.get("results") or []:
                tally.add(str(result.get("status") or ""))
            tally.refuse(refused)
            return refused

        def after_upsert(refs: list[str], refused: dict[str, str]) -> None:
            feed.put([r for r in refs if r in plan.tag_after_upsert and r not in refused])

        def add_tag(refs: list[str]) -> dict[str, str]:
            with tag_vanished(tag):
                hook.tag_people(tag, [tag_query(r) for r in refs])
            tally.add("tagged", len(refs))
            return {}

        def remove_tag(refs: list[str]) -> dict[str, str]:
            with tag_vanished(tag):
                hook.untag_people(tag, [tag_query(r) for r in refs])
            tally.add("untagged", len(refs))
            return {}

        upserts = batches(plan.upserts, batch_size)
        untags = batches(plan.untags, batch_size)
        self.log.info(
            "Sending for the tag %r: %d upsert batches, about %d tag batches (each after its people's "
            "upserts), %d untag batches side by side",
            tag,
            len(upserts),
            math.ceil(plan.tag_adds / batch_size),
            len(untags),
        )
        return [
            Lane(
                "upsert",
                upserts,
                upsert,
                hook.interval("people.upsert"),
                on_ack=after_upsert,
                on_exit=feed.close,
                window=LANE_WINDOW,
            ),
            Lane("tag", feed, add_tag, hook.interval("tags.add"), window=LANE_WINDOW),
            Lane("untag", untags, remove_tag, hook.interval("tags.remove"), window=LANE_WINDOW),
        ]

    def outcome(self, plan: PeoplePlan, tally: Tally, facts: dict[str, Any]) -> dict[str, Any]:
        return {
            "tag_id": facts.get("tag_id"),
            "created": tally.counts["CREATED"],
            "updated": tally.counts["UPDATED"],
            "unchanged": plan.unchanged + tally.counts["NOT_MODIFIED"],
            "tagged": tally.counts["tagged"],
            "untagged": tally.counts["untagged"],
        }

    def outcome_line(self, name: str, summary: dict[str, Any], size: int) -> str:
        return (
            f"Tag {name!r} now on {size} people: {summary['created']} created, {summary['updated']} updated, "
            f"{summary['unchanged']} unchanged, {summary['tagged']} tagged, {summary['untagged']} untagged"
        )

    def refused_frame(self, refused: dict[str, str]) -> pd.DataFrame:
        return _refused_frame(refused)


@contextlib.contextmanager
def tag_vanished(tag: str) -> Iterator[None]:
    """A 404 from a tag's people endpoint means the tag no longer exists (Infobip answers a plain 404
    there): say so with the error the sync engine starts the target afresh on. A 404 anywhere else
    (an upsert, a wrong base URL) stays what it is and fails the task."""
    from infobip_provider.errors import InfobipListNotFoundError, InfobipNotFoundError

    try:
        yield
    except InfobipNotFoundError as exc:
        raise InfobipListNotFoundError(
            f"the tag {tag!r} no longer exists in Infobip ({exc})", status=exc.status
        ) from exc


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
