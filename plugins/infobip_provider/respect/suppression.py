"""The suppression list of an Infobip account: addresses that must get no broadcast, in the state store.

**Where.** ``<state_uri>/<account>/suppression/suppression.parquet``, and the same rows as
``suppression.csv`` beside it (any tool, the UI or a transfer reads either), one row per address and
channel: ``channel`` (``*`` for every channel of the address, or ``sms``, ``email``, ``whatsapp``),
``address`` (E.164 digits without ``+``, or a lower-case email address), ``reason`` (``opt_out``,
``hard_bounce``, ``spam_bounce``, ``listed``), ``source`` (``replies:<table>``, ``reports:<table>``,
``file:<path>``, ``sql:<hash>``), ``added_at`` (ISO 8601 UTC) and ``detail`` (the opt-out word or the
error name). ``sources.json`` keeps how far each outcomes table was read (the collection times of
its rows, stamped by the reports DAG's workers); each broadcast reads from a day before that, so that
a row stamped by a worker whose clock is behind is never skipped.

**What feeds it.** The outcomes tables the reports DAG fills (:mod:`infobip_provider.transfers.reports_to_sql`):
replies marked ``opt_out`` (an opt-out by SMS or WhatsApp suppresses the number on every channel) and
delivery reports whose ``bounce_class`` is ``hard_bounce`` (a permanent failure) or ``spam_bounce``
(on their own channel), except bounces the sender caused (``EC_SENDER_IP_BLACKLISTED``); and the user's own list per broadcast (a file or a query, on every channel:
its ``email`` and ``phone`` columns both, whatever the broadcast's channel), kept under its source:
giving the same file again replaces what it listed before, but a list that would drop more than
``suppression_max_removal_ratio`` of its entries (all of them when read as empty) stops the broadcast. Rows are never
deleted otherwise: remove one from both files (or give ``respect_suppression=False`` on a broadcast).
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from infobip_provider.outcomes import SENDER_CAUSED_ERRORS

if TYPE_CHECKING:
    import pandas as pd

    from infobip_provider.state import TargetState

COLUMNS = ("channel", "address", "reason", "source", "added_at", "detail")
ANY_CHANNEL = "*"
PARQUET = "suppression.parquet"
CSV = "suppression.csv"
SOURCES = "sources.json"
#: Bounce classes that suppress an address on its channel (not those the sender caused:
#: :data:`infobip_provider.outcomes.SENDER_CAUSED_ERRORS`).
SUPPRESSING_BOUNCES = ("hard_bounce", "spam_bounce")
#: How far before its mark an outcomes table is read again (a worker's clock may be behind).
LOOKBACK = timedelta(days=1)
#: The identity columns of the user's own list: each is read whatever the broadcast's channel.
IDENTITIES = ("email", "phone")

Row = tuple[str, str, str, str, str, str | None]


def normalize_address(value: Any) -> str | None:
    """An address as the list keeps it: an email lower-cased, a number as its digits."""
    text = str(value or "").strip()
    if not text:
        return None
    if "@" in text:
        return text.lower()
    digits = "".join(c for c in text if c.isdigit())
    return digits or None


@dataclass
class Refresh:
    """What one refresh read: rows per source, and the outcome tables' new marks."""

    rows: list[Row]
    marks: dict[str, str]
    notes: list[str]


class SuppressionList:
    """The account's suppression list in its state folder (``<state_uri>/<account>/suppression``)."""

    def __init__(self, state: TargetState) -> None:
        self.state = state

    @property
    def uri(self) -> str:
        return str(self.state.root / PARQUET)

    def read(self) -> pd.DataFrame:
        import pandas as pd

        path = self.state.root / PARQUET
        if not path.exists():
            return pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})
        with path.open("rb") as fh:
            frame = pd.read_parquet(fh)
        return frame.astype(object)

    def write(self, frame: pd.DataFrame) -> None:
        buffer = io.BytesIO()
        frame = frame.reset_index(drop=True)
        frame.to_parquet(buffer, index=False)
        self.state._atomic_write(PARQUET, buffer.getvalue())
        self.state._atomic_write(CSV, frame.to_csv(index=False).encode())

    def marks(self) -> dict[str, str]:
        return dict(self.state.read_json(SOURCES) or {})

    def merge(
        self, rows: Sequence[Row], replace_sources: Iterable[str] = (), marks: dict[str, str] | None = None
    ) -> int:
        """Add ``rows`` (one per channel and address: the first reason stays), dropping earlier rows of
        ``replace_sources`` first; returns how many rows are new."""
        return self.merge_into(self.read(), rows, replace_sources, marks)[0]

    def merge_into(
        self,
        current: pd.DataFrame,
        rows: Sequence[Row],
        replace_sources: Iterable[str] = (),
        marks: dict[str, str] | None = None,
    ) -> tuple[int, pd.DataFrame]:
        """:meth:`merge` onto ``current``, the list as just :meth:`read` (under the caller's lock, so
        the file is read once); returns how many rows are new and the list as written."""
        import pandas as pd

        before = len(current)
        replaced = set(replace_sources)
        if replaced and len(current):
            current = current[~current["source"].isin(replaced)]
        if len(current):  # entries a sender-caused bounce put there before it stopped suppressing
            sender = current["detail"].astype(str).str.upper().isin(SENDER_CAUSED_ERRORS)
            current = current[~(sender & current["source"].astype(str).str.startswith("reports:"))]
        known = set(zip(current["channel"].tolist(), current["address"].tolist()))
        fresh: list[Row] = []
        for row in rows:
            key = (row[0], row[1])
            if key not in known:
                known.add(key)
                fresh.append(row)
        if fresh or len(current) != before:
            current = pd.concat(
                [current, pd.DataFrame(fresh, columns=list(COLUMNS), dtype=object)], ignore_index=True
            )
            self.write(current)
        if marks:
            self.state.write_json(SOURCES, {**self.marks(), **marks})
        return len(fresh), current.reset_index(drop=True)

    def addresses(self, channel: str, frame: pd.DataFrame | None = None) -> set[str]:
        """The addresses suppressed on ``channel`` (its own rows and those for every channel)."""
        frame = self.read() if frame is None else frame
        if frame.empty:
            return set()
        mask = frame["channel"].isin([ANY_CHANNEL, channel])
        return set(frame.loc[mask, "address"].tolist())


# ----------------------------------------------------------------------------------- sources
def _records(hook: Any, sql: str) -> list[Sequence[Any]]:
    return list(hook.get_records(sql) or [])


def lookback(mark: str) -> str:
    """Where to read an outcomes table from: :data:`LOOKBACK` before its mark, so that rows stamped
    by a worker whose clock is behind (after the mark was taken) are still read; the rows read again
    are already on the list (merging keeps each address once)."""
    try:
        moment = datetime.fromisoformat(mark.strip().replace("Z", "+00:00"))
    except ValueError:
        return mark
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return (moment - LOOKBACK).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


class OutcomesUnreadable(Exception):
    """An outcomes table could not be read (other than not being there yet on the first run)."""


def table_missing(error: BaseException, table: str) -> bool:
    """Whether ``error`` says that ``table`` does not exist (SQLite, PostgreSQL, MySQL, SQL Server,
    Snowflake, BigQuery wording; the table's own name must be in it, so a missing column is not)."""
    name = re.escape(table.split(".")[-1])
    text = f"{type(error).__name__}: {error}"
    patterns = (
        rf"no such table:?\s*[\"`\[]?(?:[\w.]*\.)?{name}\b",
        rf"relation\s+\"?(?:[\w.\"]*\.)?{name}\"?\s+does not exist",
        rf"table\s+'?(?:[\w.]*\.)?{name}'?\s+doesn'?t exist",
        rf"invalid object name\s+'(?:[\w.\[\]]*\.)?\[?{name}\]?'",
        rf"object\s+'?(?:[\w.\"]*\.)?\"?{name}\"?'?\s+does not exist",
        rf"not found: table\s+[\w:.-]*{name}\b",
    )
    return any(re.search(p, text, re.IGNORECASE) for p in patterns)


def outcome_rows(
    hook: Any,
    *,
    replies_table: str | None,
    reports_table: str | None,
    marks: dict[str, str],
    added_at: str,
    conn_id: str = "",
) -> Refresh:
    """New opt-outs and hard or spam bounces in the outcomes tables since their marks.

    A table that is not there yet while no mark of it was recorded (the reports DAG never filled it)
    is noted and skipped; any other failure to read one raises :class:`OutcomesUnreadable` naming the
    table and connection (a broadcast must not go out without the opt-outs it should know).
    """
    from infobip_provider.warehouse import check_table_name

    out = Refresh([], {}, [])
    queries = []
    if replies_table:
        table = check_table_name(replies_table)
        queries.append(
            (
                table,
                f"replies:{table}",
                f"SELECT sender, opt_out_word, collected_at FROM {table} WHERE opt_out",
            )
        )
    if reports_table:
        table = check_table_name(reports_table)
        classes = ", ".join(f"'{c}'" for c in SUPPRESSING_BOUNCES)
        senders = ", ".join(f"'{c}'" for c in SENDER_CAUSED_ERRORS)
        queries.append(
            (
                table,
                f"reports:{table}",
                f"SELECT channel, recipient, bounce_class, error_name, collected_at FROM {table} "
                f"WHERE bounce_class IN ({classes}) "
                f"AND (error_name IS NULL OR UPPER(error_name) NOT IN ({senders}))",
            )
        )
    for table, source, sql in queries:
        mark = marks.get(source)
        if mark:
            # a mark this module wrote: a timestamp's text
            sql += f" AND collected_at >= '{lookback(mark)}'"
        try:
            records = _records(hook, sql)
        except Exception as exc:
            if not mark and table_missing(exc, table):
                out.notes.append(f"{source} not there yet (never filled by the reports DAG): skipped")
                continue
            where = f" on the connection {conn_id!r}" if conn_id else ""
            state = f"last read up to {mark}" if mark else "never read before"
            raise OutcomesUnreadable(
                f"The outcomes table {table!r}{where} could not be read ({type(exc).__name__}: "
                f"{str(exc)[:300]}; {state}). Nothing was sent: the broadcast would miss its "
                "opt-outs and bounces. Fix the table or connection, or leave the outcomes out on purpose "
                "(outcomes_conn_id, replies_table or reports_table empty), or turn the suppression list "
                "off (respect_suppression=False)"
            ) from exc
        latest = mark or ""
        for record in records:
            if source.startswith("replies:"):
                sender, word, collected = record
                address = normalize_address(sender)
                if address:
                    out.rows.append((ANY_CHANNEL, address, "opt_out", source, added_at, word))
            else:
                channel, recipient, bounce, error_name, collected = record
                address = normalize_address(recipient)
                if address:
                    out.rows.append(
                        (str(channel or ANY_CHANNEL), address, str(bounce), source, added_at, error_name)
                    )
            text = str(collected or "")
            if text > latest:
                latest = text
        if latest:
            out.marks[source] = latest
    return out


class SuppressionSourceError(ValueError):
    """The user's list cannot be read as addresses (no phone or email column)."""


def listed_rows(
    frame: pd.DataFrame, source: str, added_at: str, normalizers: Mapping[str, Callable[[Any], str | None]]
) -> list[Row]:
    """The user's own list (a file's or a query's rows), for every channel: *every* identity column it
    has (``email`` and ``phone``, any case), each value normalised by ``normalizers[identity]``,
    whichever channel reads it (so broadcasts of different channels list the same entries). A list
    of a single column of another name is read by its values (an ``@``: an email, else a number).

    :raises SuppressionSourceError: no ``phone`` or ``email`` column and not a single column.
    """
    lowered = {str(c).strip().lower(): c for c in frame.columns}
    columns = [(kind, lowered[kind]) for kind in IDENTITIES if kind in lowered]
    if not columns:
        if len(frame.columns) != 1:
            raise SuppressionSourceError(
                f"{source} has no phone or email column (columns: {[str(c) for c in frame.columns]}); "
                "name the column of addresses phone or email"
            )
        columns = [("", frame.columns[0])]
    rows: list[Row] = []
    for kind, column in columns:
        for value in frame[column].tolist():
            if value is None or (isinstance(value, float) and value != value):
                continue
            use = kind or ("email" if "@" in str(value) else "phone")
            address = normalizers[use](value)
            if address:
                rows.append((ANY_CHANNEL, address, "listed", source, added_at, None))
    return rows


def removals(frame: pd.DataFrame, rows: Sequence[Row], sources: Iterable[str]) -> dict[str, tuple[int, int]]:
    """Per source to replace: how many of its entries in ``frame`` its new ``rows`` would drop, of how
    many it has."""
    out: dict[str, tuple[int, int]] = {}
    for source in sources:
        before = set()
        if len(frame):
            mine = frame[frame["source"] == source]
            before = set(zip(mine["channel"].tolist(), mine["address"].tolist()))
        after = {(r[0], r[1]) for r in rows if r[3] == source}
        out[source] = (len(before - after), len(before))
    return out


def source_name(kind: str, text: str) -> str:
    """``file:<path>`` or ``sql:<hash of the query>``."""
    if kind == "file":
        return f"file:{text}"
    return "sql:" + hashlib.sha256(text.strip().encode()).hexdigest()[:12]
