"""Turn a cohort source into members (one per identity) and rejects (every row not used, with why).

:func:`prepare_cohort` streams the source chunk by chunk. For each chunk it normalises each *distinct*
email and phone once (``pd.factorize`` + caches that live for the whole run), picks the key identity,
drops rows whose key is missing or invalid, and collapses duplicates across the whole cohort (the first
row wins; the others are reported as ``duplicate of row N``). Only the members and the rejects are kept,
so memory grows with the number of distinct people, not with the file.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from infobip_provider.cohorts.identities import normalize_email
from infobip_provider.cohorts.phones import PhoneNormalizer, known_region
from infobip_provider.cohorts.sources import CohortError, CohortSource, FileSource

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "KEYS",
    "MEMBER_COLUMNS",
    "REJECT_COLUMNS",
    "IdentityColumns",
    "PreparedCohort",
    "RejectRatioExceeded",
    "prepare_cohort",
]

_log = logging.getLogger(__name__)

KEYS = ("email", "phone", "external_id", "email_or_phone")
MEMBER_COLUMNS = ("key", "email", "phone", "external_id", "row")
REJECT_COLUMNS = ("row", "key", "value", "reason")

MISSING_IDENTITY = "missing identity"
INVALID_EMAIL = "invalid email"
INVALID_PHONE = "invalid phone"
INVALID_BOTH = "invalid email and phone"
DUPLICATE = "duplicate"


class RejectRatioExceeded(CohortError):
    """More rows were rejected than ``max_reject_ratio`` allows: the source is probably broken."""


@dataclass(frozen=True)
class IdentityColumns:
    """Which source columns hold the identities Infobip matches on.

    :param email: column of email addresses (``None``: the cohort has none).
    :param phone: column of phone numbers, national or international (``None``: none).
    :param external_id: column of the customer's id in your systems (Infobip ``externalId``).
    :param country: optional column of ISO 3166-1 alpha-2 codes used to read each row's *national*
        phone number (``default_region`` where it is empty or unknown).

    Column names match exactly, or else case-insensitively. A column the ``key`` needs must exist;
    an identity column the key does not need is ignored with a warning when absent.
    """

    email: str | None = "email"
    phone: str | None = "phone"
    external_id: str | None = None
    country: str | None = None


@dataclass
class PreparedCohort:
    """The outcome of :func:`prepare_cohort`.

    :ivar members: one row per distinct key, in source order: ``key``, ``email`` (normalised or None),
        ``phone`` (E.164 digits without ``+`` or None), ``external_id``, ``row`` (1-based data row of
        the source), then every other source column as text (None when missing).
    :ivar rejects: ``row``, ``key`` (the normalised key for duplicates, else None), ``value`` (the raw
        value), ``reason`` (``invalid email``, ``invalid phone``, ``invalid email and phone``,
        ``missing identity``, ``duplicate of row N``), ordered by row.
    :ivar stats: counts for the task summary (JSON-serialisable).
    """

    members: pd.DataFrame
    rejects: pd.DataFrame
    stats: dict[str, Any]
    key: str = "email"
    source: str = ""
    columns: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return bool(self.stats.get("empty"))

    def describe(self) -> str:
        """One sentence for the task log: where the cohort came from and what became of its rows."""
        stats = self.stats
        rows, members = stats["rows_read"], stats["members"]
        head = f"Cohort from {self.source}: {rows} rows read, {members} members"
        if not members:
            head += " (the cohort is empty)"
        not_used = stats["rejected"]
        if not not_used:
            return head
        parts = [
            f"{count} {reason}"
            for reason, count in sorted(stats["rejected_by_reason"].items())
            if reason != DUPLICATE
        ]
        if stats["duplicates"]:
            parts.append(f"{stats['duplicates']} repeating an earlier row's {self.key.replace('_', ' ')}")
        rows_word = "row" if not_used == 1 else "rows"
        return f"{head}, {not_used} {rows_word} not used: {', '.join(parts)}"

    def check_reject_ratio(self, max_reject_ratio: float | None, log: Any = None) -> None:
        """Log :meth:`describe` (a warning when rows were invalid or nobody is left), and fail when the
        share of invalid rows is above ``max_reject_ratio``.

        The ratio counts rows rejected for a missing or invalid identity over rows read; duplicates are
        collapsed, not bad data, and do not count. ``None`` never fails.

        :raises RejectRatioExceeded: above the threshold.
        """
        logger = log or _log
        if max_reject_ratio is not None and not 0 <= max_reject_ratio <= 1:
            raise CohortError(f"max_reject_ratio must be between 0 and 1, got {max_reject_ratio!r}")
        rows = self.stats["rows_read"]
        invalid = self.stats["invalid"]
        ratio = invalid / rows if rows else 0.0
        if max_reject_ratio is not None and ratio > max_reject_ratio:
            reasons = ", ".join(
                f"{reason} {count}"
                for reason, count in sorted(self.stats["rejected_by_reason"].items())
                if reason != DUPLICATE
            )
            raise RejectRatioExceeded(
                f"{invalid} of {rows} cohort rows ({ratio:.1%}) were rejected ({reasons}), above "
                f"max_reject_ratio {max_reject_ratio:.1%}; see the rejects file for rows and reasons"
            )
        if invalid or self.empty:
            logger.warning("%s", self.describe())
        else:
            logger.info("%s", self.describe())

    def write_rejects(self, path: str) -> str:
        """Write the rejects as CSV (``row,key,value,reason``) to a local path or URI; return it."""
        if "://" in str(path):
            from airflow.sdk import ObjectStoragePath

            target: Any = ObjectStoragePath(path)
        else:
            from pathlib import Path

            target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("w", encoding="utf-8", newline="") as handle:
            self.rejects.to_csv(handle, index=False)
        return str(path)


# ----------------------------------------------------------------------------------------------- helpers


_MISS = object()


class _Memo:
    """A bounded memo of a one-argument normaliser, applied to many values at a time."""

    def __init__(self, fn: Callable[[Any], str | None], max_size: int = 2_000_000) -> None:
        self.fn = fn
        self.max_size = max_size
        self.cache: dict[Any, str | None] = {}

    def normalize_many(self, values: list[Any]) -> list[str | None]:
        get = self.cache.get
        out = [get(v, _MISS) for v in values]
        for i in [i for i, r in enumerate(out) if r is _MISS]:
            if len(self.cache) >= self.max_size:
                self.cache.clear()
            out[i] = self.cache[values[i]] = self.fn(values[i])
        return out  # type: ignore[return-value]


def _resolve(found: list[str], name: str | None) -> str | None:
    """The source column called ``name``: exactly, else the one that matches case-insensitively."""
    if name is None:
        return None
    if name in found:
        return name
    folded = [c for c in found if c.strip().casefold() == name.strip().casefold()]
    return folded[0] if len(folded) == 1 else None


def _raw(chunk: pd.DataFrame, column: str | None) -> np.ndarray:
    """A column as an object array with ``None`` for missing cells (all ``None`` without a column)."""
    import numpy as np

    if column is None:
        return np.full(len(chunk), None, dtype=object)
    return chunk[column].to_numpy(dtype=object, na_value=None)


def _normalize(raw: np.ndarray, normalize_many: Callable[[list[Any]], list[str | None]]) -> np.ndarray:
    """Normalise an object array of raw values (None when missing); each distinct value once."""
    import numpy as np
    import pandas as pd

    codes, uniques = pd.factorize(raw, use_na_sentinel=True)
    values = [v if isinstance(v, str) else str(v) for v in uniques.tolist()]
    return np.array([*normalize_many(values), None], dtype=object)[codes]


def _strip_ids(values: list[Any]) -> list[str | None]:
    return [v.strip() or None for v in values]


class _Phones:
    """Phone normalisers per region for one run (so their caches live as long as the run)."""

    def __init__(self, default_region: str | None) -> None:
        self.default_region = default_region
        self.by_region: dict[str | None, PhoneNormalizer] = {}
        self.unknown_regions = 0

    def for_region(self, region: str | None) -> PhoneNormalizer:
        try:
            return self.by_region[region]
        except KeyError:
            normalizer = PhoneNormalizer(region)
            self.by_region[region] = normalizer
            return normalizer

    def region_of(self, value: Any) -> str | None:
        if not isinstance(value, str) or not value.strip():
            return self.default_region
        try:
            return known_region(value)
        except ValueError:
            self.unknown_regions += 1
            return self.default_region

    def normalize(self, phones: np.ndarray, countries: np.ndarray | None) -> np.ndarray:
        """Normalise raw phones, each with its row's country when ``countries`` is given."""
        import numpy as np

        if countries is None:
            return _normalize(phones, self.for_region(self.default_region).normalize_many)
        normalized = np.full(len(phones), None, dtype=object)
        regions = np.array([self.region_of(v) for v in countries.tolist()], dtype=object)
        for region in dict.fromkeys(regions.tolist()):
            mask = regions == region
            normalized[mask] = _normalize(phones[mask], self.for_region(region).normalize_many)
        return normalized


@dataclass
class _Layout:
    email: str | None
    phone: str | None
    external_id: str | None
    country: str | None
    extras: dict[str, str]  # source column -> member column


def _layout(
    found: list[str], cols: IdentityColumns, key: str, source: CohortSource, region: str | None
) -> _Layout:
    needed = {
        "email": ("email",),
        "phone": ("phone",),
        "external_id": ("external_id",),
        "email_or_phone": tuple(n for n in ("email", "phone") if getattr(cols, n)),
    }[key]
    if not needed or any(getattr(cols, n) is None for n in needed):
        raise CohortError(f"key={key!r} needs the {' and '.join(needed) or 'email or phone'} column set")
    resolved: dict[str, str | None] = {}
    for name in ("email", "phone", "external_id", "country"):
        wanted = getattr(cols, name)
        column = _resolve(found, wanted)
        if wanted is not None and column is None:
            if name in needed:
                shown = ", ".join(found) if found else "none"
                raise CohortError(
                    f"cohort column {wanted!r} ({name} for key={key!r}) not found in {source.describe()}; "
                    f"columns found: {shown}"
                )
            if name == "country":
                _log.info(
                    "the cohort has no country column %r: international numbers (+...) are read as they "
                    "are, national ones as numbers of %s",
                    wanted,
                    region or "no region (rejected)",
                )
            else:
                _log.warning("the cohort has no %s column %r: it is left empty", name, wanted)
        resolved[name] = column
    identity = {
        resolved[n] for n in ("email", "phone", "external_id") if resolved[n] is not None
    }  # country stays
    reserved = set(MEMBER_COLUMNS)
    extras: dict[str, str] = {}
    for column in found:
        if column in identity:
            continue
        target = column if column not in reserved else f"source_{column}"
        extras[column] = target
    return _Layout(resolved["email"], resolved["phone"], resolved["external_id"], resolved["country"], extras)


def _present(raw: Any) -> bool:
    return raw is not None and bool(raw.strip())


def _why(
    key: str, email_raw: np.ndarray, phone_raw: np.ndarray, value: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(value, reason)`` for rows whose key identity is missing or invalid."""
    import numpy as np

    if key == "email_or_phone":
        values: list[str | None] = []
        reasons: list[str] = []
        for e, p in zip(email_raw.tolist(), phone_raw.tolist()):
            has_e, has_p = _present(e), _present(p)
            if has_e and has_p:
                values.append(f"{e} | {p}")
                reasons.append(INVALID_BOTH)
            elif has_e or has_p:
                values.append(e if has_e else p)
                reasons.append(INVALID_EMAIL if has_e else INVALID_PHONE)
            else:
                values.append(None)
                reasons.append(MISSING_IDENTITY)
        return np.array(values, dtype=object), np.array(reasons, dtype=object)
    invalid = {"email": INVALID_EMAIL, "phone": INVALID_PHONE, "external_id": MISSING_IDENTITY}[key]
    reasons = [invalid if _present(v) else MISSING_IDENTITY for v in value.tolist()]
    return value, np.array(reasons, dtype=object)


def _frame(**columns: np.ndarray) -> pd.DataFrame:
    """A DataFrame that keeps object arrays as object columns (pandas 3 would infer arrow strings)."""
    import pandas as pd

    return pd.DataFrame({name: pd.Series(values, dtype=values.dtype) for name, values in columns.items()})


def _text_or_none(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``columns`` as object columns with ``None`` for missing cells."""
    for column in columns:
        series = frame[column]
        frame[column] = series.astype(object).where(series.notna(), None)
    return frame


# ---------------------------------------------------------------------------------------------- prepare


class _Run:
    """The state of one :func:`prepare_cohort` run: caches, first rows by key, and the parts kept."""

    def __init__(self, key: str, layout: _Layout, region: str | None) -> None:
        self.key = key
        self.layout = layout
        self.emails = _Memo(normalize_email)
        self.phones = _Phones(region)
        self.seen: dict[str, int] = {}  # key -> the row that won
        self.dup_reason: dict[int, str] = {}  # one "duplicate of row N" string per N
        self.by_reason: Counter[str] = Counter()
        self.member_parts: list[pd.DataFrame] = []
        self.reject_parts: list[pd.DataFrame] = []

    def _emails(self, raw: np.ndarray) -> np.ndarray:
        return _normalize(raw, self.emails.normalize_many)

    def _phones(self, raw: np.ndarray, countries: np.ndarray, index: np.ndarray) -> np.ndarray:
        return self.phones.normalize(raw[index], countries[index] if self.layout.country else None)

    def add(self, chunk: pd.DataFrame, rows: np.ndarray) -> None:
        """Split one chunk into member rows, invalid rows and duplicates.

        Only the key identity is normalised for every row; the other identities only for the rows that
        become members (a duplicate's phone is never looked at).
        """
        import numpy as np
        import pandas as pd

        layout, key, n = self.layout, self.key, len(chunk)
        none = np.full(n, None, dtype=object)
        every = np.arange(n)
        email_raw, phone_raw, ext_raw, country_raw = (
            _raw(chunk, c) for c in (layout.email, layout.phone, layout.external_id, layout.country)
        )
        email: np.ndarray | None = None
        phone: np.ndarray | None = None
        external_id: np.ndarray | None = None
        if key == "email":
            keys = email = self._emails(email_raw)
            value = email_raw
        elif key == "phone":
            keys = phone = self._phones(phone_raw, country_raw, every)
            value = phone_raw
        elif key == "external_id":
            keys = external_id = _normalize(ext_raw, _strip_ids)
            value = ext_raw
        else:  # email_or_phone: the email when valid, else the phone
            email = self._emails(email_raw)
            has_email = np.not_equal(email, None)  # type: ignore[call-overload]
            phone = none.copy()
            without = np.flatnonzero(~has_email)
            phone[without] = self._phones(phone_raw, country_raw, without)
            keys = np.where(has_email, email, phone)
            value = np.where(has_email, email_raw, phone_raw)
        ok = np.not_equal(keys, None)  # type: ignore[call-overload]

        bad = ~ok
        if bad.any():
            bad_value, bad_reason = _why(key, email_raw[bad], phone_raw[bad], value[bad])
            self.reject_parts.append(_frame(row=rows[bad], key=none[bad], value=bad_value, reason=bad_reason))
            self.by_reason.update(bad_reason.tolist())

        good = np.flatnonzero(ok)
        good_rows = rows[good]
        setdefault = self.seen.setdefault  # the first row of each key wins, across chunks
        first_rows = np.array(
            [setdefault(k, r) for k, r in zip(keys[good].tolist(), good_rows.tolist())], dtype=np.int64
        )
        is_first = first_rows == good_rows
        dup = ~is_first
        if dup.any():
            reason_of = self.dup_reason
            reasons = [
                reason_of.get(r) or reason_of.setdefault(r, f"duplicate of row {r}")
                for r in first_rows[dup].tolist()
            ]
            self.reject_parts.append(
                _frame(
                    row=good_rows[dup],
                    key=keys[good][dup],
                    value=value[good][dup],
                    reason=np.array(reasons, dtype=object),
                )
            )
            self.by_reason[DUPLICATE] += int(dup.sum())

        take = good[is_first]
        if email is None:
            email = none.copy()
            email[take] = self._emails(email_raw[take])
        if phone is None:
            phone = none.copy()
            phone[take] = self._phones(phone_raw, country_raw, take)
        elif key == "email_or_phone":  # members keyed by email still need their phone
            keyed_by_email = take[np.not_equal(email[take], None)]  # type: ignore[call-overload]
            phone[keyed_by_email] = self._phones(phone_raw, country_raw, keyed_by_email)
        if external_id is None:
            external_id = none.copy()
            external_id[take] = _normalize(ext_raw[take], _strip_ids)
        part = _frame(
            key=keys[take],
            email=email[take],
            phone=phone[take],
            external_id=external_id[take],
            row=rows[take],
        )
        if layout.extras:
            extra = chunk.iloc[take][list(layout.extras)].rename(columns=layout.extras).reset_index(drop=True)
            part = pd.concat([part, extra], axis=1)
        self.member_parts.append(part)


def prepare_cohort(
    source: CohortSource | str,
    columns: IdentityColumns | None = None,
    key: str = "email",
    default_region: str | None = "US",
    chunk_size: int = 100_000,
) -> PreparedCohort:
    """Read ``source`` in chunks and return its members (deduplicated by ``key``) and rejects.

    :param source: a :class:`CohortSource` (or a file path, read with :class:`FileSource`).
    :param columns: the identity columns (default: ``email`` and ``phone``).
    :param key: the identity members are keyed and deduplicated on: ``email``, ``phone``,
        ``external_id``, or ``email_or_phone`` (Infobip's rule: the email when valid, else the phone).
    :param default_region: region for national phone numbers (see :class:`IdentityColumns` ``country``).
    :param chunk_size: rows per chunk read from the source.
    :raises CohortError: when the source cannot be read or a needed column is absent.
    """
    import numpy as np
    import pandas as pd

    if key not in KEYS:
        raise CohortError(f"unknown cohort key {key!r}: use one of {', '.join(KEYS)}")
    if chunk_size < 1:
        raise CohortError("chunk_size must be at least 1")
    if not isinstance(source, CohortSource):
        source = FileSource(source)
    cols = columns or IdentityColumns()
    try:
        region = known_region(default_region)
    except ValueError as exc:
        raise CohortError(str(exc)) from exc

    run: _Run | None = None
    rows_read = 0
    chunks = 0
    for chunk in source.iter_chunks(chunk_size):
        chunks += 1
        if run is None:
            found = [str(c) for c in chunk.columns]
            if not found and len(chunk) == 0:
                continue  # an empty file: no header, no rows
            run = _Run(key, _layout(found, cols, key, source, region), region)
        if len(chunk):
            run.add(chunk, np.arange(rows_read + 1, rows_read + len(chunk) + 1, dtype=np.int64))
            rows_read += len(chunk)

    extras = list(run.layout.extras.values()) if run else []
    member_parts = run.member_parts if run else []
    reject_parts = run.reject_parts if run else []
    by_reason = run.by_reason if run else Counter()
    unknown_regions = run.phones.unknown_regions if run else 0
    del run  # free the caches before the final frames are built
    if member_parts:
        members = pd.concat(member_parts, ignore_index=True)
    else:
        members = pd.DataFrame({c: pd.Series(dtype=object) for c in (*MEMBER_COLUMNS, *extras)})
    members = _text_or_none(members, extras)
    members["row"] = members["row"].astype("int64")
    if reject_parts:
        rejects = pd.concat(reject_parts, ignore_index=True).sort_values(
            "row", kind="stable", ignore_index=True
        )
    else:
        rejects = pd.DataFrame(
            {"row": pd.Series(dtype="int64"), **{c: pd.Series(dtype=object) for c in REJECT_COLUMNS[1:]}}
        )
    del member_parts, reject_parts

    duplicates = by_reason.get(DUPLICATE, 0)
    stats: dict[str, Any] = {
        "source": source.describe(),
        "key": key,
        "rows_read": rows_read,
        "members": len(members),
        "rejected": len(rejects),
        "invalid": len(rejects) - duplicates,
        "duplicates": duplicates,
        "rejected_by_reason": {k: int(v) for k, v in by_reason.most_common()},
        "empty": len(members) == 0,
        "chunks": chunks,
        "columns": extras,
    }
    if unknown_regions:
        stats["unknown_country_rows"] = unknown_regions
    _log.debug(
        "cohort prepared from %s: %s rows read, %s members, %s rejected (%s duplicates)",
        stats["source"],
        rows_read,
        stats["members"],
        stats["rejected"],
        duplicates,
    )
    return PreparedCohort(
        members=members, rejects=rejects, stats=stats, key=key, source=stats["source"], columns=extras
    )
