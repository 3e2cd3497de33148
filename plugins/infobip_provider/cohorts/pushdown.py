"""A list's diff pushed down to the warehouse: only the rows that may have changed travel.

A cohort query returns every member on every run, and most of them are members already. With
``diff_in_warehouse`` the list sync writes the ids of its snapshot to a table in the warehouse
(:func:`snapshot_table`, created afresh and dropped again each run) and lets the warehouse find

- the cohort rows whose *cheap form* (``lower(trim(id))``) is not a settled id of the snapshot (a
  member, or an id Infobip refused): the candidate adds, every row whose id is invalid, and the rows
  that only Python can judge;
- the snapshot ids (members, or ids of a batch left unanswered) that no cohort row's cheap form
  matches: the candidate removes.

Python then prepares the rows that travelled with :func:`~infobip_provider.cohorts.prepare_cohort`,
the one place where ids are normalised and checked, and a candidate remove that one of those rows
normalises to stays.

**Why the result is the full read's.** The cheap form is computed only for a value that is printable
ASCII (a guard each dialect states), and for such a value the prepare rules are exactly ``trim`` of
spaces, ASCII lower case and a syntax check. The warehouse table holds only ids those rules keep as
they are. So a row whose cheap form equals a settled id would be prepared into that very id: it is a
valid, unchanged row and need not travel. Every other row travels: invalid ones, new ones, and those
with a control or non-ASCII character (Python strips and lower-cases them by Unicode rules that SQL
does not share: ``lower('İ')`` is ``i`` in PostgreSQL, not in Python). Duplicates: when a settled
id's cheap form matches more than one row, all of its rows travel (Python names the first and rejects
the others, as in a full read); when a row that travelled normalises to a settled id whose one
matching row stayed behind, that row is fetched too (one more query, rare) and the rows are prepared
again in their order. The stats (rows read, members) count the rows that stayed behind, each a member
and the only row of its id. Rejects are the full read's: every rejected row travels.

Snapshot ids the current rules would not keep as they are (written by older rules) are not put in
the table: no row can be prepared into them, so they leave as a full read would have them leave.

What may differ from a full read: the row numbers of the rejects are the warehouse's
``row_number() OVER ()`` over the query, the order a full read sees when the query has an ``ORDER BY``
(without one, neither order is defined). The query runs once, inside one statement (and, in the rare
case above, once more: both in one transaction that sees one state of the data, ``REPEATABLE READ``
on PostgreSQL, one read transaction on SQLite). The user's query must be a single ``SELECT``.

Dialects: SQLite and PostgreSQL (:data:`DIALECTS`). Others are refused with a clear error: their
``lower``, ``trim`` and collations need their own guard before the rule above holds.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from infobip_provider.cohorts.sources import CohortError, CohortSource, SqlSource

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from infobip_provider.cohorts.prepare import PreparedCohort

__all__ = ["DIALECTS", "Dialect", "PushedDiff", "diff_in_warehouse", "snapshot_table"]

_log = logging.getLogger(__name__)

SETTLED = ("member", "refused")  # in the cohort: nothing to send
LEAVING = ("member", "uncertain")  # not in the cohort: removed (mirror mode)
WHAT = "infobip_pd_what"  # what a line of the answer is: a cohort row, or a count
ROW = "infobip_pd_row"  # the row number of a cohort row that travels
MATCHED = "infobip_pd_key"  # the settled id a row's cheap form matched (rows of a repeated id)
ITEM, COUNT = "infobip_pd_item", "infobip_pd_count"  # a count's status, a leaving id; a count
_LOAD_BLOCK = 100_000
_IN_LIST = 500


@dataclass(frozen=True)
class Dialect:
    """What the diff needs to say in one SQL dialect."""

    name: str
    #: true when the text ``{v}`` holds printable ASCII only (0x20-0x7e); NULL for NULL
    plain: str
    #: the collation of the cheap forms and of the table's ids: text compared byte by byte
    binary: str
    #: the snapshot table's id column
    id_type: str
    #: statements opening a read transaction that sees one state of the data
    begin: tuple[str, ...]
    #: true when no cohort row's cheap form is the snapshot id ``s.id`` (the anti-join each planner
    #: runs in one pass: SQLite indexes an ``IN`` list once, PostgreSQL hashes a ``NOT EXISTS``)
    absent: str


DIALECTS: dict[str, Dialect] = {
    "sqlite": Dialect(
        "sqlite",
        plain="{v} NOT GLOB '*[^ -~]*'",
        binary="COLLATE BINARY",
        id_type="TEXT",
        begin=("BEGIN",),
        absent="s.id NOT IN (SELECT infobip_k FROM infobip_n WHERE infobip_k IS NOT NULL)",
    ),
    "postgresql": Dialect(
        "postgresql",
        plain="{v} !~ '[^ -~]'",
        binary='COLLATE "C"',
        id_type='TEXT COLLATE "C"',
        begin=("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",),
        absent="NOT EXISTS (SELECT 1 FROM infobip_n n WHERE n.infobip_k = s.id)",
    ),
}
_CONN_TYPES = {"sqlite": "sqlite", "postgres": "postgresql", "postgresql": "postgresql"}


def snapshot_table(scope: str, name: str) -> str:
    """The warehouse table of a list's snapshot: ``infobip_snapshot_<hash of account and list>``."""
    digest = hashlib.sha256(f"{scope}\x00lists\x00{name}".encode()).hexdigest()[:16]
    return f"infobip_snapshot_{digest}"


@dataclass
class PushedDiff:
    """What the warehouse sent back, prepared.

    :ivar prepared: the rows that travelled, prepared (their rejects are the cohort's rejects); its
        stats count the whole cohort.
    :ivar leaving: snapshot ids that may leave: members and unanswered ids none of whose rows matched.
    :ivar unchanged: confirmed members whose one row stayed in the warehouse.
    :ivar facts: for the summary: the table, rows in the cohort, rows and snapshot ids that travelled.
    """

    prepared: PreparedCohort
    leaving: pa.Array
    unchanged: int
    facts: dict[str, Any] = field(default_factory=dict)


def dialect_for(hook: Any, conn_id: str) -> Dialect:
    """The dialect of a ``DbApiHook``; a clear error for one the push-down does not speak."""
    name = None
    try:
        name = str(hook.dialect_name or "")
    except Exception:  # dialect_name builds a SQLAlchemy URL: any failure means "unknown"
        name = ""
    dialect = DIALECTS.get(name) or DIALECTS.get(_CONN_TYPES.get(str(getattr(hook, "conn_type", "")), ""))
    if dialect is None:
        raise CohortError(
            f"diff_in_warehouse runs on SQLite and PostgreSQL warehouses; connection {conn_id!r} is "
            f"{name or getattr(hook, 'conn_type', 'unknown')}: turn diff_in_warehouse off (the cohort is then "
            "read in full)"
        )
    return dialect


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _subquery(sql: str) -> str:
    """The user's query as a subquery: one statement, without comments or a final ``;`` (a trailing
    ``-- comment`` would swallow the closing parenthesis)."""
    import sqlparse

    statements = [
        text
        for text in (sqlparse.format(part, strip_comments=True).strip() for part in sqlparse.split(sql))
        if text
    ]
    if len(statements) != 1:
        raise CohortError(
            f"diff_in_warehouse runs the cohort query inside its own, so the query must be one SELECT; "
            f"it has {len(statements)} statements"
        )
    text = statements[0]
    while text.endswith(";"):
        text = text[:-1].rstrip()
    return text


class _Statements:
    """The SQL of one push-down: the numbered cohort with each row's cheap form, and the queries."""

    def __init__(self, query: str, column: str, table: str, dialect: Dialect) -> None:
        self.table, self.dialect, self.column = table, dialect, column
        v = "CAST(infobip_r.infobip_v AS TEXT)"
        numbered = (
            "SELECT infobip_r.infobip_rn, infobip_r.infobip_v, "
            f"CASE WHEN {dialect.plain.format(v=v)} THEN lower(trim({v})) {dialect.binary} END AS infobip_k "
            f"FROM (SELECT row_number() OVER () AS infobip_rn, infobip_q.{_quote(column)} AS infobip_v "
            f"FROM (\n{_subquery(query)}\n) infobip_q) infobip_r"
        )
        self.numbered = numbered
        # each row once, with the status of the settled id its cheap form names; then per settled id
        # matched, its rows
        self.with_ = (
            "WITH infobip_n AS MATERIALIZED (SELECT r.infobip_rn, r.infobip_v, r.infobip_k, "
            f"s.status AS infobip_s FROM ({numbered}) r LEFT JOIN {table} s ON s.id = r.infobip_k "
            f"AND {self.settled('s')}), "
            "infobip_g AS (SELECT infobip_k, infobip_s, count(*) AS infobip_c FROM infobip_n "
            "WHERE infobip_s IS NOT NULL GROUP BY infobip_k, infobip_s) "
        )

    def settled(self, alias: str) -> str:
        return f"{alias}.status IN ({', '.join(map(_literal, SETTLED))})"

    def diff(self, removals: bool) -> str:
        """One statement (the query runs once): the rows that travel, in the cohort's order, each with
        its row number and the settled id its cheap form matched (the rows of a repeated settled id);
        then ``rows`` (the cohort's rows), ``kept`` per status (settled ids whose one row stays behind)
        and, with ``removals``, ``gone`` (each snapshot id no row's cheap form matches)."""
        nothing = f"CAST(NULL AS TEXT) AS {ITEM}, CAST(NULL AS BIGINT) AS {COUNT}"
        sql = (
            f"{self.with_}SELECT 'row' AS {WHAT}, n.infobip_rn AS {ROW}, n.infobip_v AS {_quote(self.column)}, "
            f"CASE WHEN n.infobip_s IS NULL THEN NULL ELSE n.infobip_k END AS {MATCHED}, {nothing} "
            "FROM infobip_n n WHERE n.infobip_s IS NULL "
            "OR n.infobip_k IN (SELECT infobip_k FROM infobip_g WHERE infobip_c > 1) "
            "UNION ALL SELECT 'rows', NULL, NULL, NULL, NULL, count(*) FROM infobip_n "
            "UNION ALL SELECT 'kept', NULL, NULL, NULL, infobip_s, count(*) FROM infobip_g "
            "WHERE infobip_c = 1 GROUP BY infobip_s"
        )
        if removals:
            sql += (
                f" UNION ALL SELECT 'gone', NULL, NULL, NULL, s.id, NULL FROM {self.table} s "
                f"WHERE {self.dialect.absent} AND s.status IN ({', '.join(map(_literal, LEAVING))})"
            )
        return sql + " ORDER BY 2"

    def rows_of(self, ids: Sequence[str]) -> str:
        """The rows whose cheap form is one of ``ids`` (ids the snapshot keeps: plain, quoted safely)."""
        listed = ", ".join(_literal(i) for i in ids)
        return (
            f"SELECT 'row' AS {WHAT}, n.infobip_rn AS {ROW}, n.infobip_v AS {_quote(self.column)}, "
            f"n.infobip_k AS {MATCHED}, CAST(NULL AS TEXT) AS {ITEM}, CAST(NULL AS BIGINT) AS {COUNT} "
            f"FROM ({self.numbered}) n WHERE n.infobip_k IN ({listed}) ORDER BY 2"
        )


class _Travelled(CohortSource):
    """The rows that travelled (row numbers and raw ids, in the cohort's order) as a cohort source."""

    def __init__(self, rows: np.ndarray, values: pa.Array, column: str, description: str) -> None:
        self.rows, self.values, self.column, self.description = rows, values, column, description

    def iter_chunks(self, chunk_size: int = 100_000) -> Iterator[pd.DataFrame]:
        import pandas as pd

        for start in range(0, max(len(self.rows), 1), chunk_size):
            part = self.values.slice(start, chunk_size).to_numpy(zero_copy_only=False)
            yield pd.DataFrame({self.column: pd.Series(part, dtype=object)})

    def describe(self) -> str:
        return self.description


def _valid_ids(snapshot: pa.Table) -> tuple[pa.Array, pa.Array, pa.Array]:
    """``(ids, statuses)`` the warehouse table holds (ids the prepare rules keep unchanged), and the
    snapshot's other ids that may leave (written by older rules: no cohort row can match them)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from infobip_provider.cohorts.columnar import normalize_emails, text_array

    ids = text_array(snapshot["id"])
    status = text_array(snapshot["status"].cast(pa.string()))
    if not len(ids):
        return ids, status, ids
    kept = pc.fill_null(pc.equal(normalize_emails(ids), ids), False)
    odd = pc.and_(pc.invert(kept), pc.is_in(status, value_set=pa.array(LEAVING)))
    return ids.filter(kept), status.filter(kept), ids.filter(odd)


def _kind(conn: Any) -> str:
    return str(type(conn).__module__).split(".")[0]


def _write(conn: Any, dialect: Dialect, table: str, ids: pa.Array, status: pa.Array, conn_id: str) -> None:
    """Create the table afresh and load the ids in bulk (COPY on PostgreSQL, ``executemany`` elsewhere),
    in one transaction. Never logs an id (a failed load names the error's class only)."""
    import pyarrow.compute as pc

    def refused(exc: Exception, detail: str) -> CohortError:
        return CohortError(
            f"diff_in_warehouse cannot write the snapshot table {table} on connection {conn_id!r} "
            f"({detail}). The connection's user needs the right to create and drop a table in its "
            "schema; or turn diff_in_warehouse off (the cohort is then read in full)"
        )

    cursor = conn.cursor()
    try:
        try:
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
            cursor.execute(
                f"CREATE TABLE {table} (id {dialect.id_type} PRIMARY KEY, status VARCHAR(16) NOT NULL)"
            )
        except Exception as exc:  # the driver's error (permission, read-only database ...)
            conn.rollback()
            raise refused(exc, f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}") from exc
        kind = _kind(conn)
        try:
            for start in range(0, len(ids), _LOAD_BLOCK):
                part_ids, part_status = ids.slice(start, _LOAD_BLOCK), status.slice(start, _LOAD_BLOCK)
                if kind in ("psycopg", "psycopg2"):  # ids are valid addresses: no tab, backslash or newline
                    lines = pc.binary_join_element_wise(part_ids, part_status, "\t").to_pylist()
                    text = "\n".join(lines) + "\n"
                    copy_sql = f"COPY {table} (id, status) FROM STDIN"
                    if kind == "psycopg":
                        with cursor.copy(copy_sql) as copy:
                            copy.write(text)
                    else:
                        cursor.copy_expert(copy_sql, io.StringIO(text))
                else:
                    placeholder = "?" if kind == "sqlite3" else "%s"
                    cursor.executemany(
                        f"INSERT INTO {table} (id, status) VALUES ({placeholder}, {placeholder})",
                        list(zip(part_ids.to_pylist(), part_status.to_pylist())),
                    )
            conn.commit()
        except Exception as exc:  # a message could quote an id: only the class and SQLSTATE
            conn.rollback()
            state = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
            raise refused(exc, f"loading failed: {type(exc).__name__}{f' {state}' if state else ''}") from exc
    finally:
        with contextlib.suppress(Exception):  # a failed transaction's cursor may refuse
            cursor.close()


def _drop(conn: Any, table: str, log: Any) -> None:
    try:
        conn.rollback()
        cursor = conn.cursor()
        cursor.execute(f"DROP TABLE IF EXISTS {table}")
        conn.commit()
        cursor.close()
    except Exception as exc:  # the diff is done: a table left behind is replaced next run
        log.warning("Could not drop the snapshot table %s (%s); the next run replaces it", table, exc)


def _columns(conn: Any, query: str, conn_id: str) -> list[str]:
    """The query's column names (it runs once with ``WHERE 1 = 0``)."""
    cursor = conn.cursor()
    try:
        cursor.execute(f"SELECT * FROM (\n{_subquery(query)}\n) infobip_q WHERE 1 = 0")
        names = [str(d[0]) for d in cursor.description or ()]
        cursor.fetchall()
    except Exception as exc:  # the driver's error
        conn.rollback()
        raise CohortError(f"cohort query on connection {conn_id!r} failed: {exc}") from exc
    finally:
        with contextlib.suppress(Exception):  # a failed transaction's cursor may refuse
            cursor.close()
    conn.rollback()
    return names


def _fetch(
    source: SqlSource, conn: Any, sql: str, column: str, chunk_size: int
) -> tuple[np.ndarray, pa.Array, set[str], list[tuple[str, str | None, int]]]:
    """Of the rows a statement returns: the cohort rows' numbers, raw ids and matched settled ids, and
    the other lines ``(what, item, count)``."""
    import numpy as np
    import pyarrow as pa

    rows: list[np.ndarray] = []
    values: list[pa.Array] = []
    matched: set[str] = set()
    lines: list[tuple[str, str | None, int]] = []
    for frame in source.chunks_on(conn, sql, chunk_size):
        if not len(frame):
            continue
        row = (frame[WHAT] == "row").to_numpy(dtype=bool)
        if not row.all():
            other = frame[~row]
            lines.extend(
                (str(what), item, int(float(n)) if n is not None else 0)
                for what, item, n in zip(other[WHAT], other[ITEM], other[COUNT])
            )
            frame = frame[row]
        rows.append(frame[ROW].astype("int64").to_numpy(dtype=np.int64))
        values.append(
            pa.array(frame[column].to_numpy(dtype=object, na_value=None), type=pa.string(), from_pandas=True)
        )
        matched.update(v for v in frame[MATCHED].dropna().tolist())
    return (
        np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64),
        pa.concat_arrays(values) if values else pa.array([], type=pa.string()),
        matched,
        lines,
    )


def _prepare(
    rows: np.ndarray, values: pa.Array, column: str, description: str, chunk_size: int
) -> PreparedCohort:
    """Prepare the rows that travelled, then give their rejects the cohort's row numbers."""

    from infobip_provider.cohorts.prepare import IdentityColumns, prepare_cohort

    source = _Travelled(rows, values, column, description)
    prepared = prepare_cohort(
        source, IdentityColumns(email=column, phone=None), key="email", keep_columns=(), chunk_size=chunk_size
    )
    prepared.renumber(rows)
    return prepared


def diff_in_warehouse(
    source: SqlSource,
    snapshot: pa.Table,
    column: str,
    table: str,
    *,
    removals: bool = True,
    chunk_size: int = 100_000,
    log: Any = None,
) -> PushedDiff:
    """Run a list's diff in the warehouse of ``source`` (see the module's doc).

    :param snapshot: the list's snapshot (``id``, ``status``).
    :param column: the cohort's id column (found as a full read finds it).
    :param table: the warehouse table the snapshot's ids are written to (replaced, then dropped).
    :param removals: find the snapshot ids that may leave (mirror mode).
    :raises CohortError: a warehouse other than SQLite or PostgreSQL, a table that cannot be
        written, a query that fails.
    """
    import pyarrow as pa

    from infobip_provider.cohorts.prepare import IdentityColumns, identity_layout

    logger = log or _log
    dialect = dialect_for(source.get_hook(), source.conn_id)
    query = source.query()
    started = time.monotonic()
    ids, status, odd = _valid_ids(snapshot)
    conn = source.connect()
    try:
        found = _columns(conn, query, source.conn_id)
        layout = identity_layout(found, IdentityColumns(email=column, phone=None), "email", source, "US")
        column = str(layout.email)
        _write(conn, dialect, table, ids, status, source.conn_id)
        written = time.monotonic()
        try:
            diff = _diff(
                source, conn, _Statements(query, column, table, dialect), ids, status, removals, chunk_size
            )
        finally:
            _drop(conn, table, logger)
    finally:
        conn.close()

    prepared, rows, total, kept, gone, fetched = diff
    leaving = pa.array(gone, type=pa.string())
    if len(odd) and removals:
        leaving = pa.concat_arrays([leaving, odd])
    stayed = sum(kept.values())
    stats = prepared.stats
    stats["rows_read"] = total
    stats["members"] = stats["members"] + stayed
    stats["empty"] = stats["members"] == 0
    prepared.source = f"{source.describe()}, diffed in the warehouse ({rows} of {total} rows travelled)"
    facts = {
        "table": table,
        "rows_in_cohort": total,
        "rows_travelled": rows,
        "rows_fetched_again": fetched,
        "snapshot_ids_written": len(ids),
        "snapshot_ids_travelled": len(gone),
        "seconds_writing_snapshot": round(written - started, 3),
        "seconds": round(time.monotonic() - started, 3),
    }
    logger.info(
        "Diff in the warehouse (%s): %d snapshot ids written to %s in %.1f s; %d of %d cohort rows and %d "
        "snapshot ids travelled back; %.1f s in all",
        dialect.name,
        len(ids),
        table,
        facts["seconds_writing_snapshot"],
        rows,
        total,
        len(gone),
        facts["seconds"],
    )
    return PushedDiff(prepared, leaving, kept.get("member", 0), facts)


def _diff(
    source: SqlSource,
    conn: Any,
    sql: _Statements,
    ids: pa.Array,
    status: pa.Array,
    removals: bool,
    chunk_size: int,
) -> tuple[PreparedCohort, int, int, dict[str, int], list[str], int]:
    """The queries, in one read transaction: ``(prepared rows that travelled, how many, rows in the
    cohort, settled ids per status whose one row stayed behind, ids that may leave, rows fetched again)``."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    cursor = conn.cursor()
    try:
        try:
            for statement in sql.dialect.begin:
                cursor.execute(statement)
        except Exception as exc:  # the driver's error
            raise CohortError(
                f"cannot start a read transaction on connection {source.conn_id!r}: {exc}"
            ) from exc
        rows, values, matched, summary = _fetch(source, conn, sql.diff(removals), sql.column, chunk_size)
        total = sum(n for what, _, n in summary if what == "rows")
        kept = {str(item): n for what, item, n in summary if what == "kept"}
        gone = [str(item) for what, item, _ in summary if what == "gone"]
        prepared = _prepare(rows, values, sql.column, source.describe(), chunk_size)
        # A row that travelled and normalises to a settled id whose one matching row stayed behind
        # (a value only Python reads as that id): that row is fetched too and the rows prepared
        # again, so that the first of them is the member and the others its duplicates.
        settled = ids.filter(pc.is_in(status, value_set=pa.array(SETTLED)))
        keys = prepared.keys
        hit: list[str] = keys.filter(pc.is_in(keys, value_set=settled)).to_pylist() if len(settled) else []
        lonely = sorted(set(hit) - matched)
        fetched = 0
        if lonely:
            all_rows, all_values = [rows], [values]
            for start in range(0, len(lonely), _IN_LIST):
                more = _fetch(
                    source, conn, sql.rows_of(lonely[start : start + _IN_LIST]), sql.column, chunk_size
                )
                all_rows.append(more[0])
                all_values.append(more[1])
                fetched += len(more[0])
                if more[2]:  # each such row was its id's one row: it no longer stays behind
                    found = pa.array(sorted(more[2]), type=pa.string())
                    for s in status.filter(pc.is_in(ids, value_set=found)).to_pylist():
                        kept[s] -= 1
            joined = np.concatenate(all_rows)
            order = np.argsort(joined, kind="stable")
            rows = joined[order]
            values = pa.concat_arrays(all_values).take(pa.array(order))
            prepared = _prepare(rows, values, sql.column, source.describe(), chunk_size)
        return prepared, len(rows), total, kept, gone, fetched
    finally:
        with contextlib.suppress(Exception):  # a failed transaction's cursor may refuse
            cursor.close()
