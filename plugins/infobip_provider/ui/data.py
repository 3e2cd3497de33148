"""What the Infobip page shows, read from the state stores.

Only whitelisted, sanitised facts leave this module: names of lists, tags and broadcasts, counts,
sizes, DAG and run ids, outcomes, file names. Never an API key (a scope is an account host or a
key *fingerprint*), never a person's data (rejects files are listed by name, never read here).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from infobip_provider.state import TargetState

log = logging.getLogger(__name__)

#: One path segment the page accepts back from a URL: no slash, no leading dot, bounded.
SAFE_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")

#: The facts of ``target.json`` worth showing; anything else stays out of the page.
FACT_KEYS = ("list_id", "list_name", "tag", "tag_id", "bulk_id", "sent", "complete")

#: The three counts drawn per run, by kind of target.
SERIES: dict[str, tuple[str, str, str]] = {
    "lists": ("added", "removed", "rejected"),
    "tags": ("added", "removed", "rejected"),
    "broadcasts": ("sent", "failed", "rejected"),
}

_CONN_ENV_PREFIX = "AIRFLOW_CONN_"


# ---------------------------------------------------------------------------- state stores
@dataclass
class Store:
    """One state URI and the connections that write to it."""

    uri: str
    #: the ``infobip`` connections whose ``state_uri`` is this URI (none: the default folder only)
    connections: list[str] = field(default_factory=list)
    #: account scope → the connections whose account it is (see :func:`state.state_scope`)
    scopes: dict[str, list[str]] = field(default_factory=dict)
    #: why the store could not be read, if it could not (an exception's type, no message)
    error: str | None = None
    #: shown instead of the URI to a user who may not read connections
    label_override: str | None = None

    @property
    def id(self) -> str:
        """A stable short name for URLs (the URI itself may name a bucket or a connection)."""
        return hashlib.sha256(self.uri.encode()).hexdigest()[:12]

    @property
    def label(self) -> str:
        return self.label_override or display_uri(self.uri)


def display_uri(uri: str) -> str:
    """The URI without user info, query or fragment (where object-store credentials could hide)."""
    if "://" not in uri:
        return uri
    parts = urlsplit(uri)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _env_connections() -> list[tuple[str, str | None, str | None, dict[str, Any]]]:
    """``infobip`` connections defined as ``AIRFLOW_CONN_<ID>`` environment variables."""
    from airflow.models.connection import Connection

    found = []
    for key, value in sorted(os.environ.items()):
        if not key.startswith(_CONN_ENV_PREFIX) or not value.strip():
            continue
        conn_id = key[len(_CONN_ENV_PREFIX) :].lower()
        try:
            if value.lstrip().startswith("{"):
                conn = Connection.from_json(value, conn_id=conn_id)
            else:
                conn = Connection(conn_id=conn_id, uri=value)
        except Exception:
            log.warning("The environment variable %s is not a connection Airflow can parse", key)
            continue
        if conn.conn_type == "infobip":
            found.append((conn_id, conn.host, conn.password, conn.extra_dejson or {}))
    return found


def _db_connections() -> list[tuple[str, str | None, str | None, dict[str, Any]]]:
    """``infobip`` connections of Airflow's metadata database (as the api-server's own routes read them)."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(select(Connection).where(Connection.conn_type == "infobip"))
        return [(c.conn_id, c.host, c.password, c.extra_dejson or {}) for c in rows]


def discover_stores(*, include_db: bool = True, include_env: bool = True) -> list[Store]:
    """Every state store the ``infobip`` connections name, plus the default one.

    Connections come from environment variables (which win, as in Airflow's own lookup) and the
    metadata database. Connections kept only in another secrets backend cannot be listed: their
    stores appear when they use the default ``state_uri``.
    """
    from infobip_provider.hooks.infobip import connection_scope, default_state_uri

    connections: dict[str, tuple[str | None, str | None, dict[str, Any]]] = {}
    sources = []
    if include_env:
        sources.append(("environment variables", _env_connections))
    if include_db:
        sources.append(("the metadata database", _db_connections))
    for where, read in sources:
        try:
            for conn_id, host, password, extras in read():
                connections.setdefault(conn_id, (host, password, extras))
        except Exception as exc:
            log.warning("Could not list the infobip connections of %s: %s", where, type(exc).__name__)

    default = default_state_uri()
    stores: dict[str, Store] = {}
    for conn_id, (host, password, extras) in sorted(connections.items()):
        uri = str(extras.get("state_uri") or default)
        store = stores.setdefault(uri, Store(uri))
        store.connections.append(conn_id)
        scope = connection_scope(host, password)
        if scope:
            store.scopes.setdefault(scope, []).append(conn_id)
    stores.setdefault(default, Store(default))
    return list(stores.values())


# ------------------------------------------------------------------------------- targets
@dataclass
class Run:
    """One finished run of a target, as ``runs.jsonl`` recorded it (whitelisted keys only)."""

    dag_id: str | None
    run_id: str | None
    task_id: str | None
    map_index: int
    finished_at: datetime | None
    dry_run: bool
    outcome: str
    size: int | None
    counts: dict[str, int]
    rejects: list[str]
    link: str | None
    name: str | None


@dataclass
class RejectsFile:
    name: str
    run: Run | None


@dataclass
class Target:
    store: Store
    scope: str
    kind: str
    folder: str
    name: str
    facts: dict[str, Any]
    runs: list[Run]
    size: int | None
    rejects: list[RejectsFile]
    #: the target's folder (an ObjectStoragePath), to read a rejects file from
    root: Any = None

    @property
    def last_run(self) -> Run | None:
        return self.runs[-1] if self.runs else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def _text(value: Any, limit: int = 250) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text[:limit] or None


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _http_url(value: Any) -> str | None:
    text = _text(value, 2000)
    if not text:
        return None
    parts = urlsplit(text)
    return text if parts.scheme in ("http", "https") and parts.hostname else None


def rejects_file_name(run_id: str) -> str:
    """The file name :meth:`TargetState.write_rejects` gives a run's rejects."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", run_id) + ".csv"


def clean_run(record: Any) -> Run | None:
    """A run record reduced to what the page may show (None for a record that is not one)."""
    if not isinstance(record, dict):
        return None
    counts = {}
    raw_counts = record.get("counts")
    if isinstance(raw_counts, dict):
        for key, value in raw_counts.items():
            number = _int(value)
            if number is not None and isinstance(key, str) and SAFE_SEGMENT.match(key):
                counts[key] = number
    rejects = []
    raw_rejects = record.get("rejects")
    if isinstance(raw_rejects, str):
        raw_rejects = [raw_rejects]
    if isinstance(raw_rejects, list):
        for item in raw_rejects:
            name = str(item).rsplit("/", 1)[-1]
            if SAFE_SEGMENT.match(name):
                rejects.append(name)
    map_index = _int(record.get("map_index"))
    outcome = _text(record.get("outcome"), 20) or "unknown"
    return Run(
        dag_id=_text(record.get("dag_id")),
        run_id=_text(record.get("run_id")),
        task_id=_text(record.get("task_id")),
        map_index=-1 if map_index is None else map_index,
        finished_at=_when(record.get("finished_at")),
        dry_run=bool(record.get("dry_run")),
        outcome=outcome.lower() if re.fullmatch(r"[A-Za-z_]+", outcome) else "unknown",
        size=_int(record.get("size")),
        counts=counts,
        rejects=rejects,
        link=_http_url(record.get("link")),
        name=_text(record.get("name")),
    )


def _snapshot_rows(state: TargetState) -> int | None:
    path = state.root / "snapshot.parquet"
    try:
        if not path.exists():
            return None
        import pyarrow.parquet as pq

        with path.open("rb") as fh:
            return int(pq.ParquetFile(fh).metadata.num_rows)
    except Exception:
        return None


def _rejects_files(state: TargetState) -> list[str]:
    folder = state.root / "rejects"
    try:
        if not folder.is_dir():
            return []
        names = [p.name for p in folder.iterdir()]
    except Exception:
        return []
    return sorted(n for n in names if n.endswith(".csv") and SAFE_SEGMENT.match(n))


def _owner(name: str, runs: list[Run]) -> Run | None:
    """The run that wrote the rejects file ``name`` (the latest one, if several name it)."""
    for run in reversed(runs):
        if name in run.rejects:
            return run
    for run in reversed(runs):
        if run.run_id:
            base = rejects_file_name(run.run_id)
            if name in (base, base[: -len(".csv")] + "-refused.csv"):
                return run
    return None


def read_target(store: Store, scope: str, kind: str, state: TargetState) -> Target:
    raw_facts = state.read_json("target.json", {}) or {}
    facts = {k: raw_facts[k] for k in FACT_KEYS if isinstance(raw_facts, dict) and k in raw_facts}
    facts = {k: v for k, v in facts.items() if isinstance(v, str | int | float | bool)}
    runs = [run for run in (clean_run(r) for r in state.read_runs()) if run is not None]
    size = next((run.size for run in reversed(runs) if run.size is not None), None)
    if size is None:
        size = _int(facts.get("sent")) if kind == "broadcasts" else _snapshot_rows(state)
    name = next((run.name for run in reversed(runs) if run.name), None) or next(
        (str(facts[k]) for k in ("list_name", "tag", "bulk_id") if facts.get(k)), state.root.name
    )
    rejects = [RejectsFile(n, _owner(n, runs)) for n in _rejects_files(state)]
    return Target(store, scope, kind, state.root.name, name, facts, runs, size, rejects, state.root)


def load_targets(stores: Iterable[Store]) -> list[Target]:
    """Every target of every store; a store that cannot be read gets an ``error`` and no targets."""
    from infobip_provider.state import StateStore

    targets: list[Target] = []
    for store in stores:
        try:
            for scope, kind, state in StateStore(store.uri).iter_targets():
                if not SAFE_SEGMENT.match(scope) or not SAFE_SEGMENT.match(state.root.name):
                    continue
                targets.append(read_target(store, scope, kind, state))
        except Exception as exc:
            store.error = type(exc).__name__
            log.warning("Could not read the Infobip state store %s: %s", store.label, type(exc).__name__)
    return targets


def find_target(store: Store, scope: str, kind: str, folder: str) -> Target | None:
    """One target of ``store`` by its URL segments (validated first), or None."""
    from infobip_provider.state import KINDS, StateStore

    if kind not in KINDS or not SAFE_SEGMENT.match(scope) or not SAFE_SEGMENT.match(folder):
        return None
    root = StateStore(store.uri).root / scope / kind / folder
    if not root.is_dir():
        return None
    from infobip_provider.state import TargetState

    return read_target(store, scope, kind, TargetState(root))
