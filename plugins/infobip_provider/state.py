"""The state store: what Infobip has confirmed, per target, on any ``ObjectStoragePath``.

A *target* is one list, tag or broadcast under one API key. Its folder holds:

- ``target.json``: small facts (the list id, since Infobip cannot find a list by name);
- ``snapshot.parquet``: the members Infobip confirmed at the end of the last sync;
- ``journal.jsonl``: the checkpoint journal of the sync in progress: an *intent* record before
  each batch is sent and an *ack* record once Infobip answered it. A killed task folds the
  acknowledged batches into the snapshot on its next start, so nothing confirmed is sent again;
- ``rejects/<run>.csv``: the rows of each run that were not used, with reasons;
- ``runs.jsonl``: one line per finished run (see :meth:`TargetState.append_run`), what the
  Infobip page in the Airflow UI draws;
- ``.lock``: one sync per target at a time.

Every whole-file write goes to a temporary name first and is then renamed, so a reader sees the
old file or the new one, never half of either. Pandas and pyarrow are imported lazily.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from airflow.sdk import ObjectStoragePath
from airflow.sdk.exceptions import AirflowException

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


class TargetLockedError(AirflowException):
    """Another run is syncing the same target right now."""


def as_storage_path(uri: str) -> ObjectStoragePath:
    """A local path or any URI Airflow's ObjectStoragePath understands (``file://``, ``s3://`` ...)."""
    if "://" not in uri:
        uri = "file://" + os.path.abspath(os.path.expanduser(uri))
    return ObjectStoragePath(uri)


def slug(name: str) -> str:
    """A readable, collision-safe folder name for a user-given target name."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:60] or "target"
    digest = uuid.uuid5(uuid.NAMESPACE_URL, name).hex[:8]
    return f"{readable}-{digest}"


class _LockWait:
    """Waiting for a target's lock: bounded, said once in the log, then :class:`TargetLockedError`."""

    def __init__(self, what: str, wait: float, log: Any, sleep: Callable[[float], None]) -> None:
        self.what, self.wait, self.log, self.sleep = what, wait, log, sleep
        self.deadline = time.monotonic() + max(0.0, wait)
        self.said = False

    def wait_or_fail(self, holder: str) -> None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TargetLockedError(
                f"Another run ({holder}) is syncing {self.what} right now"
                + (f" and did not finish within {self.wait:.0f} s" if self.wait > 0 else "")
                + "; this run stops without sending anything"
            )
        if not self.said and self.log is not None:
            self.log.warning(
                "Another run (%s) holds %s (an earlier try still running?): waiting up to %.0f s for it to "
                "finish; nothing is sent meanwhile",
                holder,
                self.what,
                left,
            )
            self.said = True
        self.sleep(min(2.0, left))


class TargetState:
    """State of one target (one list, one tag or one broadcast) under one API key."""

    def __init__(self, root: ObjectStoragePath) -> None:
        self.root = root
        self._journal_lock = threading.Lock()

    @property
    def is_local(self) -> bool:
        return self.root.protocol in ("file", "local", "")

    def _local(self, name: str) -> str:
        return str((self.root / name).path)

    # --------------------------------------------------------------- small files
    def read_json(self, name: str, default: Any = None) -> Any:
        path = self.root / name
        if not path.exists():
            return default
        return json.loads(path.read_text())

    def write_json(self, name: str, value: Any) -> None:
        self._atomic_write(name, json.dumps(value, indent=2, sort_keys=True).encode())

    def _atomic_write(self, name: str, data: bytes) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / name
        tmp = self.root / f".{name}.{uuid.uuid4().hex}.tmp"
        if self.is_local:
            with open(self._local(tmp.name), "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(self._local(tmp.name), self._local(name))
            return
        tmp.write_bytes(data)
        tmp.rename(final)

    def delete(self, name: str) -> None:
        path = self.root / name
        if path.exists():
            path.unlink()

    # ------------------------------------------------------------------ snapshot
    def read_snapshot(self, columns: dict[str, str] | None = None) -> pd.DataFrame:
        """The confirmed members (empty frame with ``columns`` when there is none yet)."""
        import pandas as pd

        path = self.root / "snapshot.parquet"
        if not path.exists():
            return pd.DataFrame({c: pd.Series(dtype=t) for c, t in (columns or {"id": "string"}).items()})
        with path.open("rb") as fh:
            return pd.read_parquet(fh)

    def read_snapshot_table(self, schema: pa.Schema) -> pa.Table:
        """The confirmed members as an Arrow table with the columns of ``schema`` it has (empty with
        ``schema`` when there is none yet)."""
        import pyarrow.parquet as pq

        path = self.root / "snapshot.parquet"
        if not path.exists():
            return schema.empty_table()
        with path.open("rb") as fh:
            parquet = pq.ParquetFile(fh)
            names = [n for n in schema.names if n in parquet.schema_arrow.names]  # older: fewer columns
            table = parquet.read(columns=names)  # one array per column for a one-row-group file
        return table.combine_chunks() if any(c.num_chunks > 1 for c in table.columns) else table

    def write_snapshot_table(self, table: pa.Table) -> None:
        import io

        import pyarrow.parquet as pq

        options = {"compression": "zstd", "row_group_size": max(1, table.num_rows)}  # one row group:
        # read back as one array per column, not pieces
        if self.is_local:  # straight to a temporary file, fsync'd and renamed (no copy in memory)
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = self._local(f".snapshot.parquet.{uuid.uuid4().hex}.tmp")
            with open(tmp, "wb") as fh:
                pq.write_table(table, fh, **options)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self._local("snapshot.parquet"))
            return
        buffer = io.BytesIO()
        pq.write_table(table, buffer, **options)
        self._atomic_write("snapshot.parquet", buffer.getvalue())

    def write_snapshot(self, frame: pd.DataFrame) -> None:
        import io

        buffer = io.BytesIO()
        frame.reset_index(drop=True).to_parquet(buffer, index=False, compression="zstd")
        self._atomic_write("snapshot.parquet", buffer.getvalue())

    # ------------------------------------------------------------------- journal
    def append_journal(self, record: dict[str, Any]) -> None:
        """Append one checkpoint record durably (fsync'd locally; rewritten on object stores)."""
        self.append_journal_line("journal.jsonl", record)

    def append_journal_line(self, name: str, record: dict[str, Any]) -> None:
        """Append one JSON line to the file ``name`` durably."""
        line = (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode()
        with self._journal_lock:
            self.root.mkdir(parents=True, exist_ok=True)
            if self.is_local:
                fd = os.open(self._local(name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                try:
                    os.write(fd, line)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                return
            path = self.root / name
            old = path.read_bytes() if path.exists() else b""
            self._atomic_write(name, old + line)

    def read_journal(self) -> list[dict[str, Any]]:
        """Every complete record; a torn last line (killed mid-write) is ignored."""
        return self._read_lines("journal.jsonl")

    def _read_lines(self, name: str) -> list[dict[str, Any]]:
        path = self.root / name
        if not path.exists():
            return []
        records = []
        for raw in path.read_text().splitlines():
            try:
                records.append(json.loads(raw))
            except json.JSONDecodeError:
                continue
        return records

    def clear_journal(self) -> None:
        self.delete("journal.jsonl")

    # ---------------------------------------------------------------------- runs
    def append_run(self, record: dict[str, Any]) -> None:
        """Record one finished run of this target: counts only, never a key or a person's data.

        Keys: ``kind`` (lists, tags, broadcasts), ``name``, ``dag_id``, ``run_id``, ``task_id``,
        ``map_index``, ``finished_at`` (ISO 8601 UTC), ``dry_run``, ``outcome`` (``success`` or
        ``failed``), ``size`` (members confirmed after the run), ``counts`` (name → number: added,
        removed, rejected, unchanged, sent ...), ``rejects`` (file names under ``rejects/``) and
        ``link`` (the Infobip portal URL, or None).
        """
        self.append_journal_line("runs.jsonl", record)

    def read_runs(self) -> list[dict[str, Any]]:
        """Every recorded run, oldest first (a torn last line is ignored)."""
        return self._read_lines("runs.jsonl")

    # ------------------------------------------------------------------- rejects
    def write_rejects(self, run_id: str, frame: pd.DataFrame) -> str | None:
        """Write a run's rejects as CSV; returns its URI, or None when there were none."""
        if frame is None or frame.empty:
            return None
        name = "rejects/" + re.sub(r"[^A-Za-z0-9._-]+", "_", run_id) + ".csv"
        (self.root / "rejects").mkdir(parents=True, exist_ok=True)
        self._atomic_write(name, frame.to_csv(index=False).encode())
        return str(self.root / name)

    # ---------------------------------------------------------------------- lock
    @contextlib.contextmanager
    def lock(
        self,
        what: str,
        lease_seconds: float = 6 * 3600,
        *,
        wait: float = 0.0,
        log: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Iterator[None]:
        """Hold the target's lock. While another run holds it, wait up to ``wait`` seconds for it
        (saying so once in ``log``), then fail: two runs never send for one target side by side.

        Local folders use an OS file lock (released by the kernel when its process dies: an orphaned
        try that is still running keeps it until it ends). Object stores use a lease object that
        expires after ``lease_seconds``.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        waiter = _LockWait(what, wait, log, sleep)
        if self.is_local:
            fd = os.open(self._local(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        waiter.wait_or_fail("a process on this host")
                yield
            finally:
                os.close(fd)
            return
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
        while True:
            lease = self.read_json(".lease.json")
            if not (lease and lease.get("expires", 0) > time.time()):
                break
            waiter.wait_or_fail(str(lease.get("owner")))
        self.write_json(".lease.json", {"owner": owner, "expires": time.time() + lease_seconds})
        try:
            yield
        finally:
            if (self.read_json(".lease.json") or {}).get("owner") == owner:
                self.delete(".lease.json")


#: The kinds of target the operators keep, each a folder under a scope.
KINDS = ("lists", "tags", "broadcasts")

_ACCOUNT_HOST = re.compile(r"^(?!api\.)[a-z0-9-]+\.api(?:-[a-z0-9]+)?\.infobip\.com$")


def state_scope(base_url: str, key_fingerprint: str) -> str:
    """The folder that separates one Infobip account's targets from another's.

    An account-specific base URL (``xxxxx.api.infobip.com``) names the account, so its host is the
    scope and rotating the API key keeps every list, tag and broadcast. Any other base URL (the
    shared ``api.infobip.com``, a sandbox) says nothing about the account: the key's fingerprint is
    the scope there.
    """
    from urllib.parse import urlsplit

    host = (urlsplit(base_url).hostname or "").lower()
    return host if _ACCOUNT_HOST.match(host) else key_fingerprint


class StateStore:
    """All targets under one state URI, separated by account scope (:func:`state_scope`) and kind."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.root = as_storage_path(uri)

    def target(self, scope: str, kind: str, name: str, *, legacy_scope: str | None = None) -> TargetState:
        """The state of one target. A folder kept under ``legacy_scope`` (the API-key fingerprint,
        before account-specific base URLs named the scope) is moved to ``scope`` on first use."""
        root = self.root / scope / kind / slug(name)
        if legacy_scope and legacy_scope != scope and not root.exists():
            old = self.root / legacy_scope / kind / slug(name)
            if old.exists():
                (self.root / scope / kind).mkdir(parents=True, exist_ok=True)
                if old.protocol in ("file", "local", ""):
                    os.rename(str(old.path), str(root.path))
                else:
                    old.fs.mv(old.path, root.path, recursive=True)
        return TargetState(root)

    def iter_targets(self) -> Iterator[tuple[str, str, TargetState]]:
        """Every target folder: ``(scope, kind, state)``."""
        if not self.root.exists():
            return
        for scope in sorted(self.root.iterdir(), key=lambda p: p.name):
            if not scope.is_dir():
                continue
            for kind in KINDS:
                folder = scope / kind
                if not folder.is_dir():
                    continue
                for target in sorted(folder.iterdir(), key=lambda p: p.name):
                    if target.is_dir():
                        yield scope.name, kind, TargetState(target)
