"""The state store: what Infobip has confirmed, per target, on any ``ObjectStoragePath``.

A *target* is one list, tag or broadcast under one API key. Its folder holds:

- ``target.json``: small facts (the list id, since Infobip cannot find a list by name);
- ``snapshot.parquet``: the members Infobip confirmed at the end of the last sync;
- ``journal.jsonl``: the checkpoint journal of the sync in progress: an *intent* record before
  each batch is sent and an *ack* record once Infobip answered it. A killed task folds the
  acknowledged batches into the snapshot on its next start, so nothing confirmed is sent again;
- ``rejects/<run>.csv``: the rows of each run that were not used, with reasons;
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
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from airflow.sdk import ObjectStoragePath
from airflow.sdk.exceptions import AirflowException

if TYPE_CHECKING:
    import pandas as pd


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

    def write_snapshot(self, frame: pd.DataFrame) -> None:
        import io

        buffer = io.BytesIO()
        frame.reset_index(drop=True).to_parquet(buffer, index=False, compression="zstd")
        self._atomic_write("snapshot.parquet", buffer.getvalue())

    # ------------------------------------------------------------------- journal
    def append_journal(self, record: dict[str, Any]) -> None:
        """Append one checkpoint record durably (fsync'd locally; rewritten on object stores)."""
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        with self._journal_lock:
            self.root.mkdir(parents=True, exist_ok=True)
            if self.is_local:
                fd = os.open(self._local("journal.jsonl"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                try:
                    os.write(fd, line)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                return
            path = self.root / "journal.jsonl"
            old = path.read_bytes() if path.exists() else b""
            self._atomic_write("journal.jsonl", old + line)

    def read_journal(self) -> list[dict[str, Any]]:
        """Every complete record; a torn last line (killed mid-write) is ignored."""
        path = self.root / "journal.jsonl"
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
    def lock(self, what: str, lease_seconds: float = 6 * 3600) -> Iterator[None]:
        """Hold the target's lock; fail at once if another run holds it.

        Local folders use an OS file lock (released by the kernel if the process dies). Object
        stores use a lease object that expires after ``lease_seconds``.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        if self.is_local:
            fd = os.open(self._local(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise TargetLockedError(
                        f"Another run is syncing {what} right now; this run stops without sending anything"
                    ) from None
                yield
            finally:
                os.close(fd)
            return
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
        lease = self.read_json(".lease.json")
        if lease and lease.get("expires", 0) > time.time():
            raise TargetLockedError(f"Another run ({lease.get('owner')}) is syncing {what}; lease ends later")
        self.write_json(".lease.json", {"owner": owner, "expires": time.time() + lease_seconds})
        try:
            yield
        finally:
            if (self.read_json(".lease.json") or {}).get("owner") == owner:
                self.delete(".lease.json")


class StateStore:
    """All targets under one state URI, separated by API-key fingerprint and kind."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.root = as_storage_path(uri)

    def target(self, key_fingerprint: str, kind: str, name: str) -> TargetState:
        return TargetState(self.root / key_fingerprint / kind / slug(name))
