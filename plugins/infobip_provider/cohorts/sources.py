"""Where cohorts come from: files (CSV, Parquet, JSON Lines) and SQL queries, read in chunks.

A source yields pandas DataFrames of at most ``chunk_size`` rows whose object columns hold text
(``str``) or a missing marker (``None``/NaN): numbers, dates and booleans from Parquet, JSON Lines or a
database become their text form, so that every later step (identities, field mapping, templates) sees
one kind of value. A source always yields at least one chunk, possibly empty, so that its columns are
known.

Files are read from a local path (relative paths resolve against the include folder, see
:func:`include_dir`) or from any URI Airflow's ``ObjectStoragePath`` understands (``file://``, and
``s3://``/``gs://``... when the matching provider is installed). SQL runs on any Airflow connection
whose hook is a ``common.sql`` ``DbApiHook`` and is fetched with ``fetchmany`` (a named, server-side
cursor on PostgreSQL), so the result is never held whole in memory.

The embedded demo warehouse is a SQLite file (``include/warehouse/build_warehouse.py``), reached through
the connection ``warehouse_default``::

    AIRFLOW_CONN_WAREHOUSE_DEFAULT='{"conn_type": "sqlite",
                                     "host": "/abs/path/include/warehouse/warehouse.db",
                                     "extra": {"mode": "ro"}}'

(``host`` must be absolute; the optional ``mode=ro`` makes a wrong path fail instead of silently creating
an empty database.)

Nothing here imports pandas or pyarrow at module level: DAG files may import this package.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import decimal
import io
import json
import math
import numbers
import os
import uuid
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "FORMATS",
    "INCLUDE_DIR",
    "CohortError",
    "CohortSource",
    "FileSource",
    "SqlSource",
    "cohort_source",
    "include_dir",
]

INCLUDE_DIR = Path(os.environ.get("INFOBIP_INCLUDE_DIR") or Path(__file__).resolve().parents[3] / "include")
"""The folder relative cohort paths and ``.sql`` files resolve against (the repository's ``include/``;
``INFOBIP_INCLUDE_DIR`` overrides it)."""

FORMATS = ("csv", "tsv", "parquet", "jsonl")
_SUFFIX_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
_COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zst": "zstd", ".zip": "zip"}
_DELIMITERS = (",", ";", "\t", "|")
_SNIFF_BYTES = 64 * 1024
_DEFAULT_ENCODING = "utf-8-sig"
_UTF8 = ("utf-8", "utf8", "utf-8-sig", "utf8-sig")


class ArrowReadUnavailable(Exception):
    """Arrow's CSV reader cannot read this file as pandas does: read it with :meth:`FileSource.iter_chunks`."""


class CohortError(AirflowFailException):
    """The cohort cannot be read as asked: a retry cannot fix it, the message says what to change."""


def include_dir() -> Path:
    """The include folder, read from ``INFOBIP_INCLUDE_DIR`` at call time (default :data:`INCLUDE_DIR`)."""
    env = os.environ.get("INFOBIP_INCLUDE_DIR")
    return Path(env) if env else INCLUDE_DIR


class CohortSource(ABC):
    """Something that yields a cohort as text DataFrames, chunk by chunk."""

    @abstractmethod
    def iter_chunks(self, chunk_size: int = 100_000) -> Iterator[pd.DataFrame]:
        """Yield DataFrames of at most ``chunk_size`` rows (at least one; cells text or missing."""

    @abstractmethod
    def describe(self) -> str:
        """A short description for logs and summaries (no credentials, no personal data)."""


# ----------------------------------------------------------------------------------------------- values


def _text_value(value: Any) -> str | None:
    """The text form of one database / JSON value (``None`` for missing)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if type(value).__name__ in ("NaTType", "NAType"):  # pandas' missing markers
        return None
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real) and not isinstance(value, decimal.Decimal):
        number = float(value)
        if math.isnan(number):
            return None
        return str(int(number)) if number.is_integer() and abs(number) < 1e18 else repr(number)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):  # date, datetime, time, pandas Timestamp
        return str(isoformat())
    return str(value)


def as_text_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with every column as object dtype holding ``str`` or a missing marker."""
    import numpy as np
    import pandas as pd

    out: dict[str, Any] = {}
    for name in frame.columns:
        col = frame[name]
        dtype = col.dtype
        if isinstance(dtype, pd.StringDtype):
            out[str(name)] = col.astype(object)
        elif pd.api.types.is_bool_dtype(dtype):
            out[str(name)] = col.map({True: "true", False: "false"}).astype(object)
        elif pd.api.types.is_integer_dtype(dtype):
            out[str(name)] = col.astype("str").astype(object)
        elif pd.api.types.is_float_dtype(dtype):
            values = col.to_numpy(dtype="float64", na_value=np.nan)
            integral = np.isfinite(values) & (np.mod(values, 1) == 0) & (np.abs(values) < 1e18)
            text = np.array([_text_value(v) for v in values], dtype=object)
            if integral.any():
                text[integral] = values[integral].astype(np.int64).astype(str)
            out[str(name)] = pd.Series(text, index=col.index, dtype=object)
        else:
            out[str(name)] = pd.Series([_text_value(v) for v in col.tolist()], index=col.index, dtype=object)
    return pd.DataFrame(out, index=frame.index)


def arrow_text_frame(batch: Any) -> pd.DataFrame:
    """A pyarrow ``RecordBatch``/``Table`` as a text frame (strings and integers skip pandas dtypes)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    columns: dict[str, Any] = {}
    for name, array in zip(batch.schema.names, batch.columns):
        kind = array.type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            columns[name] = pd.Series(array.to_numpy(zero_copy_only=False), dtype=object)
        elif pa.types.is_integer(kind) or pa.types.is_decimal(kind) or pa.types.is_date(kind):
            columns[name] = pd.Series(
                pc.cast(array, pa.string()).to_numpy(zero_copy_only=False), dtype=object
            )
        else:
            columns[name] = as_text_frame(pd.DataFrame({name: array.to_pandas()}))[name]
    return pd.DataFrame(columns, columns=list(batch.schema.names))


# ------------------------------------------------------------------------------------------------ files


def _split_suffix(name: str) -> tuple[str, str | None]:
    """``("customers.csv.gz")`` -> ``(".csv", "gzip")``."""
    lower = name.lower()
    compression = None
    for suffix, kind in _COMPRESSIONS.items():
        if lower.endswith(suffix):
            compression = kind
            lower = lower[: -len(suffix)]
            break
    dot = lower.rfind(".")
    return (lower[dot:] if dot > 0 else ""), compression


def sniff_delimiter(sample: str) -> str:
    """Pick the delimiter among ``, ; TAB |`` that splits the sample's rows most consistently."""
    best, best_score = ",", (0.0, 0)
    for delimiter in _DELIMITERS:
        reader = csv.reader(io.StringIO(sample), delimiter=delimiter)
        try:
            widths = [len(row) for row in reader if row]
        except csv.Error:
            continue
        if len(widths) > 2:
            widths = widths[:-1]  # the last row of a sample may be cut short
        if not widths or widths[0] < 2:
            continue
        consistency = sum(1 for w in widths if w == widths[0]) / len(widths)
        score = (consistency, widths[0])
        if score > best_score:
            best, best_score = delimiter, score
    return best


class FileSource(CohortSource):
    """A cohort file: CSV (comma, semicolon, tab or pipe; quoted fields), Parquet or JSON Lines.

    :param path: local path (relative paths resolve against the include folder) or a URI such as
        ``file:///data/cohort.csv`` or ``s3://bucket/cohort.parquet`` (through ``ObjectStoragePath``).
        Compressed files (``.gz``, ``.bz2``, ``.xz``, ``.zst``) are read for CSV and JSON Lines.
    :param format: ``csv``, ``tsv``, ``parquet`` or ``jsonl``; ``None`` infers it from the suffix
        (``.csv .txt .tsv .parquet .jsonl .ndjson``).
    :param delimiter: the CSV delimiter; ``None`` sniffs it from the first 64 KiB.
    :param encoding: text encoding of CSV / JSON Lines. The default ``utf-8-sig`` reads UTF-8 with or
        without a byte-order mark; a UTF-16 byte-order mark is recognised as well.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        format: str | None = None,
        delimiter: str | None = None,
        encoding: str = _DEFAULT_ENCODING,
    ) -> None:
        self.path = os.fspath(path)
        self.format = format.lower() if format else None
        self.delimiter = delimiter
        self.encoding = encoding
        if self.format is not None and self.format not in FORMATS:
            raise CohortError(f"unknown cohort format {format!r}: use one of {', '.join(FORMATS)}")
        if not self.path.strip():
            raise CohortError("the cohort file path is empty")

    def describe(self) -> str:
        return f"file {self.path}"

    # -- location
    @property
    def is_uri(self) -> bool:
        return "://" in self.path

    def location(self) -> Any:
        """The resolved ``Path`` (local) or ``ObjectStoragePath`` (URI)."""
        if self.is_uri:
            from airflow.sdk import ObjectStoragePath

            return ObjectStoragePath(self.path)
        path = Path(self.path).expanduser()
        return path if path.is_absolute() else include_dir() / path

    def resolved_format(self) -> tuple[str, str | None]:
        """``(format, compression)`` for this file."""
        suffix, compression = _split_suffix(str(self.location().name))
        if self.format:
            return self.format, compression
        fmt = _SUFFIX_FORMATS.get(suffix)
        if fmt is None:
            shown = suffix or "(none)"
            raise CohortError(
                f"cannot tell the format of cohort file {self.path} from its suffix {shown}: "
                f"pass format= one of {', '.join(FORMATS)}"
            )
        return fmt, compression

    def _open(self) -> IO[bytes]:
        location = self.location()
        try:
            exists = location.exists() and not location.is_dir()
        except OSError as exc:
            raise CohortError(f"cannot reach cohort file {self.path}: {exc}") from exc
        if not exists:
            where = (
                f"{location} (relative to the include folder {include_dir()})"
                if not (self.is_uri or Path(self.path).expanduser().is_absolute())
                else str(location)
            )
            raise CohortError(f"cohort file not found: {where}")
        return location.open("rb")

    # -- reading
    def iter_chunks(self, chunk_size: int = 100_000) -> Iterator[pd.DataFrame]:
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        fmt, compression = self.resolved_format()
        with self._open() as handle:
            if fmt == "parquet":
                yield from self._parquet(handle, chunk_size)
            elif fmt == "jsonl":
                yield from self._jsonl(self._decompress(handle, compression), chunk_size)
            else:
                yield from self._csv(handle, fmt, compression, chunk_size)

    def iter_arrow_chunks(self, chunk_size: int = 100_000) -> Iterator[pd.DataFrame]:
        """Like :meth:`iter_chunks`, with a plain UTF-8 CSV read by Arrow's CSV reader: its chunks hold
        Arrow-backed text columns and no Python string per cell.

        Arrow reads what pandas reads, except rows with fewer fields than the header, repeated
        header names, and bytes that are not UTF-8: those raise :class:`ArrowReadUnavailable`,
        possibly after some chunks, and the caller reads the file again with :meth:`iter_chunks`.
        """
        fmt, compression = self.resolved_format()
        encoding = self.encoding.lower().replace("_", "-")
        if fmt not in ("csv", "tsv") or compression is not None or encoding not in _UTF8:
            yield from self.iter_chunks(chunk_size)
            return
        yield from self._arrow_csv(fmt, chunk_size)

    def _arrow_csv(self, fmt: str, chunk_size: int) -> Iterator[pd.DataFrame]:
        import pandas as pd
        import pyarrow as pa
        import pyarrow.csv as pv

        with self._open() as handle:
            head = handle.read(_SNIFF_BYTES)
        if head[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) or not head.strip():
            raise ArrowReadUnavailable("not plain UTF-8 text with a header")
        delimiter = "\t" if fmt == "tsv" and self.delimiter is None else self.delimiter
        if delimiter is None:
            try:
                delimiter = sniff_delimiter(
                    codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=False)
                )
            except UnicodeDecodeError as exc:
                raise ArrowReadUnavailable("not UTF-8") from exc
        if len(delimiter) != 1 or delimiter in '\r\n"':
            raise ArrowReadUnavailable(f"delimiter {delimiter!r}")
        parse = pv.ParseOptions(delimiter=delimiter, newlines_in_values=True)
        read = pv.ReadOptions(block_size=16 << 20, use_threads=True)
        try:
            with self._open() as handle:
                names = pv.open_csv(handle, read_options=read, parse_options=parse).schema.names
            stripped = [str(n).strip() for n in names]
            if len(set(names)) != len(names) or len(set(stripped)) != len(stripped):
                raise ArrowReadUnavailable("repeated header names")
            convert = pv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
                null_values=[""],
            )
            produced = False
            with self._open() as handle:
                for batch in pv.open_csv(
                    handle, read_options=read, parse_options=parse, convert_options=convert
                ):
                    for start in range(0, batch.num_rows, chunk_size):
                        part = batch.slice(start, chunk_size)
                        produced = True
                        yield pd.DataFrame(
                            {
                                name: pd.Series(pd.arrays.ArrowExtensionArray(column), copy=False)
                                for name, column in zip(stripped, part.columns)
                            },
                            columns=stripped,
                        )
            if not produced:
                yield pd.DataFrame({name: pd.Series(dtype=object) for name in stripped}, columns=stripped)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError) as exc:
            raise ArrowReadUnavailable(str(exc)) from exc

    def _decompress(self, handle: IO[bytes], compression: str | None) -> IO[bytes]:
        if compression is None:
            return handle
        if compression == "gzip":
            import gzip

            return gzip.GzipFile(fileobj=handle)  # type: ignore[return-value]
        if compression == "bz2":
            import bz2

            return bz2.BZ2File(handle)  # type: ignore[return-value]
        if compression == "xz":
            import lzma

            return lzma.LZMAFile(handle)  # type: ignore[return-value]
        raise CohortError(f"{compression} compression is supported for CSV only ({self.path})")

    def _encoding_for(self, head: bytes) -> str:
        if self.encoding.lower().replace("_", "-") in ("utf-8-sig", "utf8-sig") and head[:2] in (
            codecs.BOM_UTF16_LE,
            codecs.BOM_UTF16_BE,
        ):
            return "utf-16"
        return self.encoding

    def _encoding_error(self, exc: UnicodeError, encoding: str) -> CohortError:
        return CohortError(
            f"cohort file {self.path} is not readable as {encoding} text ({exc}); "
            "save it as UTF-8 or pass the file's encoding= (e.g. 'cp1252', 'latin-1', 'utf-16')"
        )

    def _csv(
        self, handle: IO[bytes], fmt: str, compression: str | None, chunk_size: int
    ) -> Iterator[pd.DataFrame]:
        import pandas as pd

        buffered: Any = handle if hasattr(handle, "peek") else io.BufferedReader(handle)  # type: ignore[type-var]
        delimiter = "\t" if fmt == "tsv" and self.delimiter is None else self.delimiter
        encoding = self.encoding
        if compression is None:
            head = buffered.peek(_SNIFF_BYTES)[:_SNIFF_BYTES]  # type: ignore[attr-defined]
            encoding = self._encoding_for(head)
            if delimiter is None:
                try:
                    sample = codecs.getincrementaldecoder(encoding)().decode(head, final=False)
                except UnicodeDecodeError as exc:
                    raise self._encoding_error(exc, encoding) from exc
                except LookupError as exc:
                    raise CohortError(f"unknown encoding {encoding!r} for cohort file {self.path}") from exc
                delimiter = sniff_delimiter(sample)
        elif delimiter is None:
            delimiter = ","  # a compressed stream cannot be peeked cheaply; say delimiter= if not a comma
        try:
            reader = pd.read_csv(
                buffered,
                sep=delimiter,
                dtype=object,  # Python str cells: cheaper to hash and factorize than arrow strings
                keep_default_na=False,
                na_values=[""],
                index_col=False,
                chunksize=chunk_size,
                encoding=encoding,
                compression=compression,
                skipinitialspace=False,
                engine="c",
            )
            produced = False
            with reader:
                while True:
                    with warnings.catch_warnings():  # pandas only warns when a row has extra fields
                        warnings.simplefilter("error", pd.errors.ParserWarning)
                        try:
                            chunk = next(reader)
                        except StopIteration:
                            break
                        except pd.errors.ParserWarning as exc:
                            raise CohortError(
                                f"cannot parse cohort file {self.path} as {fmt.upper()}: a row has more "
                                f"fields than the header (delimiter {delimiter!r}): {exc}"
                            ) from exc
                    chunk.columns = [str(c).strip() for c in chunk.columns]
                    produced = True
                    yield chunk
            if not produced:  # pragma: no cover - pandas yields a header-only chunk itself
                yield pd.DataFrame()
        except pd.errors.EmptyDataError:
            yield pd.DataFrame()
        except UnicodeError as exc:
            raise self._encoding_error(exc, encoding) from exc
        except LookupError as exc:
            raise CohortError(f"unknown encoding {encoding!r} for cohort file {self.path}") from exc
        except pd.errors.ParserError as exc:
            raise CohortError(f"cannot parse cohort file {self.path} as {fmt.upper()}: {exc}") from exc

    def _parquet(self, handle: IO[bytes], chunk_size: int) -> Iterator[pd.DataFrame]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(handle)
        except (pa.ArrowInvalid, OSError) as exc:
            raise CohortError(f"cannot read cohort file {self.path} as Parquet: {exc}") from exc
        produced = False
        try:
            for batch in parquet.iter_batches(batch_size=chunk_size, use_threads=False):
                produced = True
                yield arrow_text_frame(batch)
        except (pa.ArrowInvalid, OSError) as exc:
            raise CohortError(f"cannot read cohort file {self.path} as Parquet: {exc}") from exc
        if not produced:
            yield arrow_text_frame(parquet.schema_arrow.empty_table())

    def _jsonl(self, handle: IO[bytes], chunk_size: int) -> Iterator[pd.DataFrame]:
        buffered: Any = handle if hasattr(handle, "peek") else io.BufferedReader(handle)  # type: ignore[type-var]
        encoding = self._encoding_for(buffered.peek(4)[:4])  # type: ignore[attr-defined]
        try:
            text = io.TextIOWrapper(buffered, encoding=encoding, newline="")  # type: ignore[arg-type]
        except LookupError as exc:
            raise CohortError(f"unknown encoding {encoding!r} for cohort file {self.path}") from exc
        records: list[dict[str, Any]] = []
        columns: dict[str, None] = {}
        produced = False
        try:
            for line_no, line in enumerate(text, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise CohortError(
                        f"cannot parse cohort file {self.path} as JSON Lines: line {line_no}: {exc.msg}"
                    ) from exc
                if not isinstance(record, dict):
                    raise CohortError(
                        f"cannot parse cohort file {self.path} as JSON Lines: line {line_no} is a "
                        f"{type(record).__name__}, not an object"
                    )
                records.append(record)
                if len(records) >= chunk_size:
                    columns.update(dict.fromkeys(k for r in records for k in r))
                    produced = True
                    yield self._records_frame(records, list(columns))
                    records = []
        except UnicodeError as exc:
            raise self._encoding_error(exc, encoding) from exc
        if records or not produced:
            columns.update(dict.fromkeys(k for r in records for k in r))
            yield self._records_frame(records, list(columns))

    @staticmethod
    def _records_frame(records: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
        import pandas as pd

        data = {c: pd.Series([_text_value(r.get(c)) for r in records], dtype=object) for c in columns}
        return pd.DataFrame(data, columns=columns)


# -------------------------------------------------------------------------------------------------- SQL


def _looks_like_sql_file(sql: str) -> bool:
    text = sql.strip()
    return text.lower().endswith(".sql") and not any(ch.isspace() for ch in text)


class SqlSource(CohortSource):
    """A cohort query on any Airflow connection whose hook is a ``common.sql`` ``DbApiHook``.

    :param sql: the query, or the path of a ``.sql`` file (relative to the include folder, e.g.
        ``sql/active_customers.sql``), which is rendered with Jinja with ``params`` in the context.
        Operators that declare ``template_ext = (".sql",)`` render the file themselves and pass the text.
    :param conn_id: the Airflow connection (default ``warehouse_default``, the embedded SQLite warehouse).
    :param parameters: bind parameters passed to ``cursor.execute`` (the driver's paramstyle).
    :param params: values for ``{{ params.x }}`` when this source renders a ``.sql`` file itself.

    Rows are fetched ``chunk_size`` at a time with ``fetchmany``; on PostgreSQL through a named
    (server-side) cursor. Drivers whose default cursor buffers the whole result client-side (MySQL)
    need a streaming cursor in the connection's extras (``{"cursor": "sscursor"}``).
    """

    def __init__(
        self,
        sql: str,
        conn_id: str = "warehouse_default",
        *,
        parameters: Mapping[str, Any] | list[Any] | tuple[Any, ...] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        if not sql or not sql.strip():
            raise CohortError("the cohort query is empty")
        self.sql = sql
        self.conn_id = conn_id
        self.parameters = parameters
        self.params = dict(params or {})

    def describe(self) -> str:
        what = self.sql.strip() if _looks_like_sql_file(self.sql) else "query"
        return f"sql {what} on connection {self.conn_id}"

    def query(self) -> str:
        """The SQL text to run (a ``.sql`` file read and rendered)."""
        if not _looks_like_sql_file(self.sql):
            return self.sql
        path = Path(self.sql).expanduser()
        candidates = [path] if path.is_absolute() else [include_dir() / path, include_dir() / "sql" / path]
        for candidate in candidates:
            if candidate.is_file():
                import jinja2

                template = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(
                    candidate.read_text(encoding="utf-8")
                )
                try:
                    return template.render(params=self.params)
                except jinja2.TemplateError as exc:
                    raise CohortError(f"cannot render SQL file {candidate}: {exc}") from exc
        raise CohortError(f"SQL file not found: {self.sql} (looked in {', '.join(map(str, candidates))})")

    def get_hook(self) -> Any:
        """The connection's ``DbApiHook``."""
        from airflow.providers.common.sql.hooks.sql import DbApiHook
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            connection = BaseHook.get_connection(self.conn_id)
        except AirflowNotFoundException as exc:
            raise CohortError(
                f"connection {self.conn_id!r} is not defined: add it in the UI or as AIRFLOW_CONN_"
                f"{self.conn_id.upper()}"
            ) from exc
        hook = connection.get_hook()
        if not isinstance(hook, DbApiHook):
            raise CohortError(
                f"connection {self.conn_id!r} (type {connection.conn_type}) has no SQL hook: a cohort "
                "query needs a database connection (sqlite, postgres, mysql, snowflake, bigquery ...)"
            )
        return hook

    def _open_cursor(self, conn: Any) -> Any:
        """A server-side cursor on PostgreSQL (psycopg 2 or 3), the driver's cursor elsewhere."""
        if type(conn).__module__.split(".")[0] in ("psycopg2", "psycopg"):
            return conn.cursor(name=f"infobip_cohort_{uuid.uuid4().hex[:12]}")
        return conn.cursor()

    def connect(self) -> Any:
        """A DB-API connection of the connection's hook (the driver's error as a :class:`CohortError`)."""
        hook = self.get_hook()
        try:
            return hook.get_conn()
        except Exception as exc:  # the driver's connection error (no class shared between drivers)
            raise CohortError(
                f"cannot connect to the database of connection {self.conn_id!r}: {exc}"
            ) from exc

    def iter_chunks(self, chunk_size: int = 100_000) -> Iterator[pd.DataFrame]:
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        sql = self.query()
        conn = self.connect()
        try:
            yield from self.chunks_on(conn, sql, chunk_size)
        finally:
            try:
                if hasattr(conn, "rollback"):
                    conn.rollback()  # read only: ends the transaction and any server-side cursor
            finally:
                conn.close()

    def chunks_on(self, conn: Any, sql: str, chunk_size: int = 100_000) -> Iterator[pd.DataFrame]:
        """Run ``sql`` on an open connection and yield its rows as text frames (the cursor is closed
        at the end; the connection and its transaction are the caller's)."""
        import pandas as pd

        cursor = self._open_cursor(conn)
        try:
            if hasattr(cursor, "itersize"):
                cursor.itersize = chunk_size
            try:
                if self.parameters is None:
                    cursor.execute(sql)
                else:
                    cursor.execute(sql, self.parameters)
                rows = cursor.fetchmany(chunk_size)
            except Exception as exc:  # each DB-API driver has its own Error class; none is shared
                raise CohortError(f"cohort query on connection {self.conn_id!r} failed: {exc}") from exc
            if cursor.description is None:
                raise CohortError(f"the cohort query on connection {self.conn_id!r} returned no result set")
            names = [str(d[0]) for d in cursor.description]
            while True:
                frame = pd.DataFrame.from_records(rows, columns=names, coerce_float=False)
                yield as_text_frame(frame)
                if len(rows) < chunk_size:
                    break
                try:
                    rows = cursor.fetchmany(chunk_size)
                except Exception as exc:  # the driver's Error, as above
                    raise CohortError(f"cohort query on connection {self.conn_id!r} failed: {exc}") from exc
                if not rows:
                    break
        finally:
            with contextlib.suppress(Exception):  # a failed transaction may refuse to close a cursor
                cursor.close()


def cohort_source(
    path: str | os.PathLike[str] | None = None,
    sql: str | None = None,
    conn_id: str = "warehouse_default",
    **kwargs: Any,
) -> CohortSource:
    """A :class:`FileSource` for ``path=`` or a :class:`SqlSource` for ``sql=`` (exactly one of them).

    Extra keyword arguments go to the source (``format``, ``delimiter``, ``encoding`` for files;
    ``parameters``, ``params`` for SQL).
    """
    if (path is None or not str(path).strip()) == (sql is None or not str(sql).strip()):
        raise CohortError("a cohort needs exactly one of path= (a file) or sql= (a query)")
    if path is not None and str(path).strip():
        return FileSource(path, **kwargs)
    return SqlSource(str(sql), conn_id, **kwargs)
