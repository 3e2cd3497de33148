"""Where the return path writes: a table on any ``common.sql`` connection, or Parquet files.

:class:`SqlTable` writes through the connection's own hook: it creates the table when missing and
upserts each batch in one transaction with the SQL the hook's dialect generates for a replace
(``REPLACE INTO`` on SQLite and MySQL, ``INSERT ... ON CONFLICT (key) DO UPDATE`` on PostgreSQL), so
writing a batch twice leaves one row per key. Unlike ``DbApiHook.insert_rows`` it never logs the
rows (they hold personal data), only counts.

:class:`ParquetFolder` writes each batch as a Parquet file under an ``ObjectStoragePath`` URI; a
file's name comes from where its batch starts, so a batch written again replaces its file.
pandas and pyarrow are imported only when a file is written.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from contextlib import closing
from functools import cached_property
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from infobip_provider.outcomes import Column

log = logging.getLogger(__name__)
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*){0,2}$")
#: What a database says when the connection's user may not create or write a table: no retry helps.
_NOT_ALLOWED = re.compile(
    r"read-?only|permission denied|insufficient.privilege|not authori[sz]ed|access denied|must be owner",
    re.IGNORECASE,
)


def check_table_name(table: str) -> str:
    """A table name, optionally schema-qualified (``analytics.infobip_people``); never SQL."""
    name = (table or "").strip()
    if not _TABLE.match(name):
        raise AirflowFailException(
            f"The table name {table!r} is not a plain (optionally schema-qualified) SQL name: letters, "
            "digits and _ only"
        )
    return name


class SqlTable:
    """One warehouse table written through the ``DbApiHook`` of an Airflow SQL connection.

    :param conn_id: the Airflow connection (SQLite, PostgreSQL, or any dialect whose hook generates
        an upsert for ``replace=True``).
    :param table: the table, created when missing with ``columns`` and a primary key on ``key``.
    """

    def __init__(self, conn_id: str, table: str, columns: Sequence[Column], key: Sequence[str]) -> None:
        self.conn_id = conn_id
        self.table = check_table_name(table)
        self.columns = tuple(columns)
        self.key = tuple(key)
        self.names = [name for name, _ in self.columns]

    @cached_property
    def hook(self) -> Any:
        from airflow.providers.common.sql.hooks.sql import DbApiHook
        from airflow.sdk import BaseHook

        hook = BaseHook.get_connection(self.conn_id).get_hook()
        if not isinstance(hook, DbApiHook):
            raise AirflowFailException(
                f"The connection {self.conn_id!r} is not a SQL database connection (its hook is "
                f"{type(hook).__name__}, not a common.sql DbApiHook)"
            )
        return hook

    def create_sql(self) -> str:
        columns = ", ".join(f"{name} {kind}" for name, kind in self.columns)
        return f"CREATE TABLE IF NOT EXISTS {self.table} ({columns}, PRIMARY KEY ({', '.join(self.key)}))"

    def ensure(self) -> None:
        """Create the table when it is missing (an existing table is left as it is).

        :raises AirflowFailException: the database says the connection may not create or write it (a
            read-only database, no privilege): retrying cannot help, so the task fails at once, saying
            which connection and table, and what to do. Other errors (a lost connection) stay what they
            are, and the task's retries apply.
        """
        try:
            self.hook.run(self.create_sql())
        except Exception as exc:  # the driver's error: classified by what the database says
            said = (str(exc).strip().splitlines() or [""])[0]
            if not _NOT_ALLOWED.search(str(exc)):
                raise
            raise AirflowFailException(
                f"The table {self.table} cannot be created or written on the connection {self.conn_id!r} "
                f"({type(exc).__name__}: {said}): its user may not write there. Point the task at a "
                "connection it may write to (the DAG's warehouse_conn_id), or create the table yourself: "
                f"{self.create_sql()}"
            ) from exc

    @cached_property
    def upsert_sql(self) -> str:
        sample = [None] * len(self.names)
        sql: str = self.hook.dialect.generate_replace_sql(
            self.table, sample, self.names, replace_index=list(self.key)
        )
        return sql

    def upsert(self, rows: Sequence[Sequence[Any]]) -> int:
        """Insert or replace ``rows`` (in :attr:`columns` order) in one transaction; how many."""
        if not rows:
            return 0
        with closing(self.hook.get_conn()) as conn:
            with closing(conn.cursor()) as cursor:
                cursor.executemany(self.upsert_sql, [tuple(row) for row in rows])
            conn.commit()
        return len(rows)

    def existing(self, column: str, values: Iterable[Any], where: dict[str, Any] | None = None) -> set[Any]:
        """Which of ``values`` the table already holds in ``column`` (asked 500 at a time)."""
        wanted = list(dict.fromkeys(values))
        found: set[Any] = set()
        placeholder = self.hook.placeholder
        fixed = list((where or {}).items())
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            condition = f"{column} IN ({', '.join([placeholder] * len(chunk))})"
            condition += "".join(f" AND {name} = {placeholder}" for name, _ in fixed)
            sql = f"SELECT {column} FROM {self.table} WHERE {condition}"
            rows = self.hook.get_records(sql, parameters=[*chunk, *(v for _, v in fixed)])
            found.update(row[0] for row in rows)
        return found


class ParquetFolder:
    """Parquet files under a folder or object-store URI (``s3://bucket/infobip/people``)."""

    def __init__(self, uri: str, columns: Sequence[Column]) -> None:
        self.uri = uri
        self.names = [name for name, _ in columns]

    def write(self, name: str, rows: Sequence[Sequence[Any]]) -> str:
        """Write ``rows`` as ``<uri>/<name>.parquet`` (replacing a file of that name); its URI."""
        import io

        import pandas as pd

        from infobip_provider.state import as_storage_path

        folder = as_storage_path(self.uri)
        folder.mkdir(parents=True, exist_ok=True)
        frame = pd.DataFrame([list(row) for row in rows], columns=self.names)
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False, compression="zstd")
        target = folder / f"{name}.parquet"
        temporary = folder / f".{name}.parquet.tmp"
        temporary.write_bytes(buffer.getvalue())
        temporary.rename(target)
        return str(target)
