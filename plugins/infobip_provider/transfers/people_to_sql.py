"""InfobipPeopleToSqlOperator: Infobip People into a warehouse table (upsert by person id) or Parquet."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import AssetAlias, BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from infobip_provider.outcomes import (
    PEOPLE_ORDER,
    PERSON_KEY,
    PeopleCursor,
    attribute_columns,
    now_timestamp,
    people_filter,
    person_columns,
    person_row,
)
from infobip_provider.transfers.common import EXPORTS, asset_uri, emit_asset, positive_int, text_list
from infobip_provider.values import as_literal, as_text

if TYPE_CHECKING:
    from airflow.sdk import Context

    from infobip_provider.hooks.infobip import InfobipHook

#: The Asset alias the task's outlets carry; each run adds ``infobip://<account>/people`` to it.
PEOPLE_ALIAS = "infobip-people"


class InfobipPeopleToSqlOperator(BaseOperator):
    """Copy Infobip People into a warehouse table, one row per person, or into Parquet files.

    The first run takes everyone (or everyone carrying one of ``tags``); later runs only the people
    modified since the last confirmed watermark. Pages of ``GET /people/2/persons`` are read in
    ``(modifiedAt, id)`` order and each asks for the people *after* the last one written (keyset
    paging), so ties at a timestamp are never skipped or split, and a person changed while the run
    pages through moves ahead of the cursor: read later in this run or by the next one, never lost.
    The watermark is saved after every page the table committed; a killed run resumes from there.
    A watermark whose second Infobip's clock had not yet passed (the answer's ``Date``) is kept as
    "re-read that second", since a person changed later in that second may sort behind it.

    Rows: ``id``, ``external_id``, ``type``, the standard fields (``first_name`` ... ``profile_picture``,
    ``origin``), ``emails``, ``phones`` and ``tags`` (JSON lists), ``custom_attributes`` (JSON),
    ``created_at``, ``modified_at``, ``exported_at`` and a column per name in ``attribute_columns``.
    A SQL table is created when missing and written through the connection's own ``common.sql`` hook,
    upserting by ``id`` (SQLite, PostgreSQL and any dialect whose hook generates an upsert). Files are
    appended under ``output_uri``, one per page batch. People who lose a filtered tag, or are deleted,
    keep their last row: Infobip's list shows neither.

    Calls are paced by the hook's gate at People's 5 calls/s.

    :param sql_conn_id: the warehouse connection (templated); give it with ``table``, or ``output_uri``.
    :param table: the table, optionally schema-qualified (templated).
    :param output_uri: a folder or object-store URI for Parquet files instead (templated).
    :param tags: export only people carrying any of these tags (templated); empty: everyone.
    :param attribute_columns: custom attributes to give columns of their own: a list of names, or
        ``{attribute: column}`` (templated). All of them are in ``custom_attributes`` anyway.
    :param page_size: people per request, 1 to 1000.
    :param rows_per_file: for ``output_uri``, people per Parquet file (whole pages).
    :param infobip_conn_id: the Infobip connection.
    """

    template_fields: Sequence[str] = ("sql_conn_id", "table", "output_uri", "tags", "attribute_columns")
    ui_color = "#fde2c8"

    def __init__(
        self,
        *,
        sql_conn_id: str | None = None,
        table: str | None = None,
        output_uri: str | None = None,
        tags: Sequence[str] | str | None = None,
        attribute_columns: Mapping[str, str] | Sequence[str] | str | None = None,
        page_size: int = 1000,
        rows_per_file: int = 100_000,
        infobip_conn_id: str = "infobip_default",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("outlets", [AssetAlias(PEOPLE_ALIAS)])
        super().__init__(**kwargs)
        self.sql_conn_id = sql_conn_id
        self.table = table
        self.output_uri = output_uri
        self.tags = tags
        self.attribute_columns = attribute_columns
        self.page_size = page_size
        self.rows_per_file = rows_per_file
        self.infobip_conn_id = infobip_conn_id

    def _hook(self) -> InfobipHook:
        from infobip_provider.hooks.infobip import InfobipHook

        return InfobipHook(self.infobip_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        from infobip_provider.state import StateStore
        from infobip_provider.warehouse import ParquetFolder, SqlTable

        conn_id, table, uri = as_text(self.sql_conn_id), as_text(self.table), as_text(self.output_uri)
        if uri and (table or conn_id):
            raise AirflowFailException("Give sql_conn_id and table, or output_uri, not both")
        if not uri and not (table and conn_id):
            raise AirflowFailException("Give sql_conn_id and table (a warehouse table) or output_uri (files)")
        tags = sorted(set(text_list(self.tags, "tags")))
        try:
            attributes = attribute_columns(as_literal(self.attribute_columns, "attribute_columns"))
        except ValueError as exc:
            raise AirflowFailException(str(exc)) from None
        page_size = positive_int(self.page_size, "page_size", 1000)
        per_file = positive_int(self.rows_per_file, "rows_per_file", 10_000_000)
        columns = person_columns(attributes)
        destination = f"file {uri}" if uri else f"table {table} on {conn_id}"

        hook = self._hook()
        name = f"people to {destination}" + (f" tags {','.join(tags)}" if tags else "")
        state = StateStore(hook.state_uri).target(hook.state_scope, EXPORTS, name)
        sink: SqlTable | ParquetFolder
        if uri:
            sink = ParquetFolder(uri, columns)
        else:
            assert table and conn_id
            sink = SqlTable(conn_id, table, columns, PERSON_KEY)
        started = time.monotonic()
        with state.lock(f"the People export to {destination}"):
            if isinstance(sink, SqlTable):
                sink.ensure()
            start = PeopleCursor.from_dict(state.read_json("watermark.json"))
            self.log.info(
                "People export to %s%s: %s",
                destination,
                f" (tags {', '.join(tags)})" if tags else "",
                f"people modified from {start.modified_at} on" if start else "first run, everyone",
            )
            cursor, pages, people, files = start, 0, 0, 0
            pending: list[tuple[Any, ...]] = []
            pending_from = cursor
            cursor_time: str | None = None  # when Infobip served the page the cursor comes from
            while True:
                page = hook.people_page(
                    filter=people_filter(tags, cursor), order_by=PEOPLE_ORDER, limit=page_size
                )
                pages += 1
                if not page.persons:
                    break
                stamp = now_timestamp()
                rows = [person_row(person, stamp, attributes) for person in page.persons]
                last = page.persons[-1]
                cursor = PeopleCursor(str(last["modifiedAt"]), int(last["id"]))
                cursor_time = page.server_time
                people += len(rows)
                if isinstance(sink, SqlTable):
                    sink.upsert(rows)
                    state.write_json("watermark.json", cursor.settled(cursor_time).as_dict())
                else:
                    pending.extend(rows)
                    if len(pending) >= per_file:
                        sink.write(_file_name(pending_from, cursor), pending)
                        files += 1
                        state.write_json("watermark.json", cursor.settled(cursor_time).as_dict())
                        pending, pending_from = [], cursor
                if pages % 10 == 0:
                    self.log.info("People export: %d pages, %d people so far", pages, people)
                if len(page.persons) < page_size:
                    break
            if isinstance(sink, ParquetFolder) and pending:
                sink.write(_file_name(pending_from, cursor), pending)
                files += 1
            saved = start
            if cursor is not None and cursor != start:
                saved = cursor.settled(cursor_time)
                state.write_json("watermark.json", saved.as_dict())
        elapsed = time.monotonic() - started
        account = hook.state_scope
        uri_out = asset_uri(account, "people")
        summary = {
            "destination": destination,
            "first_run": start is None,
            "people": people,
            "requests": pages,
            "files": files,
            "watermark": None if saved is None else saved.as_dict(),
            "asset": uri_out,
            "seconds": round(elapsed, 3),
        }
        self.log.info(
            "People export done: %d people in %d requests (%.1f s) into %s; watermark %s",
            people,
            pages,
            elapsed,
            destination,
            summary["watermark"],
        )
        emit_asset(context, PEOPLE_ALIAS, uri_out, {"people": people})
        return summary


def _file_name(start: PeopleCursor | None, end: PeopleCursor | None) -> str:
    """A batch's file name from where it starts and ends: the same batch written again (a retried
    run) replaces its file; another batch never does."""
    return f"people-{_mark(start)}-{_mark(end)}"


def _mark(cursor: PeopleCursor | None) -> str:
    if cursor is None:
        return "start"
    stamp = cursor.modified_at.replace(":", "").replace("-", "")
    return f"{stamp}_{cursor.person_id if cursor.person_id is not None else 'all'}"
