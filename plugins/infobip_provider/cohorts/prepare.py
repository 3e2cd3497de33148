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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from infobip_provider.cohorts.phones import PhoneNormalizer, known_region
from infobip_provider.cohorts.sources import ArrowReadUnavailable, CohortError, CohortSource, FileSource

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

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


#: Members used although one of their identities is not: counted in the stats and said in the log.
EMAIL_IGNORED = "invalid email (matched by the phone)"
PHONE_IGNORED = "invalid phone (not sent)"


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


class PreparedCohort:
    """The outcome of :func:`prepare_cohort`.

    :ivar members: one row per distinct key, in source order: ``key``, ``email`` (normalised or None),
        ``phone`` (E.164 digits without ``+`` or None), ``external_id``, ``row`` (1-based data row of
        the source), then the other source columns kept, as text (None when missing). Built from the
        Arrow columns on first use: a flow that needs only :attr:`keys` never pays for it.
    :ivar keys: the members' keys as one Arrow string array.
    :ivar rejects: ``row``, ``key`` (the normalised key for duplicates, else None), ``value`` (the raw
        value), ``reason`` (``invalid email``, ``invalid phone``, ``invalid email and phone``,
        ``missing identity``, ``duplicate of row N``), ordered by row.
    :ivar stats: counts for the task summary (JSON-serialisable).
    """

    def __init__(
        self,
        columns: dict[str, Any],
        rejects: pd.DataFrame,
        stats: dict[str, Any],
        key: str = "email",
        source: str = "",
        extras: list[str] | None = None,
    ) -> None:
        self._columns = columns
        self._members: pd.DataFrame | None = None
        self.keys = columns["key"]
        #: the keys' 64-bit hashes (:func:`~infobip_provider.cohorts.columnar.hash_keys`), for the plan
        self.key_hashes = columns.get("_hashes")
        self.rejects = rejects
        self.stats = stats
        self.key = key
        self.source = source
        self.columns = list(extras or [])

    @property
    def members(self) -> pd.DataFrame:
        if self._members is None:
            import numpy as np
            import pandas as pd

            columns = self._columns
            n = len(self.keys)
            frame = _frame(
                **{
                    c: _objects(columns[c]) if columns[c] is not None else np.full(n, None, dtype=object)
                    for c in ("key", "email", "phone", "external_id")
                },
                row=np.asarray(columns["row"], dtype=np.int64),
            )
            for column in self.columns:
                frame[column] = pd.Series(_objects(columns[column]), dtype=object)
            self._members = frame
            # the frame holds the members now: only the keys stay Arrow arrays as well
            self._columns = {"key": columns["key"], "_hashes": columns.get("_hashes")}
        return self._members

    def arrow_columns(self) -> dict[str, Any]:
        """The members' columns without building :attr:`members`: ``key``, ``email``, ``phone``,
        ``external_id`` (Arrow text, or ``None`` when the cohort has no such column), ``row`` (NumPy)
        and the other columns kept (Arrow text). After :attr:`members` was built: its columns."""
        if self._members is not None:
            return {str(c): self._members[c].tolist() for c in self._members.columns}
        names = ("key", "email", "phone", "external_id", "row", *self.columns)
        return {name: self._columns.get(name) for name in names}

    def renumber(self, rows: np.ndarray) -> None:
        """Give the members and the rejects other row numbers: row ``n`` becomes ``rows[n - 1]`` (a
        cohort read from a part of its source says where each row stood in the whole)."""
        import numpy as np
        import pandas as pd

        if not len(rows):
            return
        rejects = self.rejects
        if len(rejects):
            rejects["row"] = rows[rejects["row"].to_numpy(dtype=np.int64) - 1]
            reasons = rejects["reason"].astype(object)
            first = reasons.str.extract(r"^duplicate of row (\d+)$", expand=False)
            repeat = first.notna().to_numpy()
            if repeat.any():
                numbers = rows[first[repeat].astype("int64").to_numpy() - 1]
                reasons[repeat] = [f"duplicate of row {n}" for n in numbers.tolist()]
                rejects["reason"] = pd.Series(reasons, dtype=object)
        if self._members is not None:
            self._members["row"] = rows[self._members["row"].to_numpy(dtype=np.int64) - 1]
        elif self._columns.get("row") is not None:
            self._columns["row"] = rows[np.asarray(self._columns["row"], dtype=np.int64) - 1]

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
        partly = stats.get("partly_used") or {}
        tail = (
            ("; used with one identity only: " + ", ".join(f"{n} {why}" for why, n in partly.items()))
            if partly
            else ""
        )
        not_used = stats["rejected"]
        if not not_used:
            return head + tail
        parts = [
            f"{count} {reason}"
            for reason, count in sorted(stats["rejected_by_reason"].items())
            if reason != DUPLICATE
        ]
        if stats["duplicates"]:
            parts.append(f"{stats['duplicates']} repeating an earlier row's {self.key.replace('_', ' ')}")
        rows_word = "row" if not_used == 1 else "rows"
        return f"{head}, {not_used} {rows_word} not used: {', '.join(parts)}{tail}"

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


def _resolve(found: list[str], name: str | None) -> str | None:
    """The source column called ``name``: exactly, else the one that matches case-insensitively."""
    if name is None:
        return None
    if name in found:
        return name
    folded = [c for c in found if c.strip().casefold() == name.strip().casefold()]
    return folded[0] if len(folded) == 1 else None


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


def identity_layout(
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


# ---------------------------------------------------------------------------------------------- prepare


def _concat(arrays: list[pa.Array]) -> pa.Array:
    """One Arrow array from a run's parts (large offsets when the text passes 2 GB)."""
    import pyarrow as pa

    if len(arrays) == 1:
        return arrays[0]
    if sum(a.nbytes for a in arrays) >= 2**31 - 2**26 and pa.types.is_string(arrays[0].type):
        arrays = [a.cast(pa.large_string()) for a in arrays]
    return pa.concat_arrays(arrays)


def _objects(array: pa.Array) -> np.ndarray:
    """An Arrow text array as an object array with ``None`` where it is null."""
    return array.to_numpy(zero_copy_only=False)


def _column(chunk: pd.DataFrame, column: str | None) -> pa.Array:
    """A chunk's column as an Arrow string array (all null without a column); a column that is Arrow
    already (the fast CSV reader's) is not copied."""
    import pyarrow as pa

    from infobip_provider.cohorts.columnar import text_array

    if column is None:
        return pa.nulls(len(chunk), type=pa.string())
    values = chunk[column].array
    if hasattr(values, "__arrow_array__"):
        array = text_array(pa.array(values))
        return array if array.type == pa.string() else array.cast(pa.string())
    return pa.array(chunk[column].to_numpy(dtype=object, na_value=None), type=pa.string(), from_pandas=True)


@dataclass
class _Part:
    """One chunk's rows whose key identity is sound, column-wise (Arrow arrays, NumPy row numbers)."""

    size: int
    keys: pa.Array
    rows: np.ndarray
    differs: np.ndarray  # the rows (positions in this part) whose raw key value differs from the key
    value: pa.Array  # those rows' raw key values (for the rejects of duplicates)
    raw: dict[str, pa.Array]  # raw identity (and country) columns, normalised for the members only
    done: dict[str, pa.Array]  # identity columns normalised already (``email_or_phone``)
    extras: dict[str, pa.Array]


class _Run:
    """The state of one :func:`prepare_cohort` run: phone caches, rejects so far and the kept parts."""

    def __init__(self, key: str, layout: _Layout, region: str | None, keep: list[str]) -> None:
        self.key = key
        self.layout = layout
        self.keep = keep  # the extra source columns the members keep
        self.phones = _Phones(region)
        self.by_reason: Counter[str] = Counter()
        self.partly: Counter[str] = Counter()  # rows used with one identity although both were given
        self.parts: list[_Part] = []
        self.reject_parts: list[pd.DataFrame] = []

    def _phones(self, raw: np.ndarray, countries: np.ndarray | None, index: np.ndarray) -> np.ndarray:
        return self.phones.normalize(raw[index], countries[index] if countries is not None else None)

    def _keys(self, cols: dict[str, pa.Array]) -> tuple[pa.Array, pa.Array, dict[str, pa.Array]]:
        """The chunk's keys (null where missing or invalid), the raw key values, and what is done."""
        import numpy as np
        import pyarrow.compute as pc

        from infobip_provider.cohorts.columnar import normalize_emails, text_array

        every = np.arange(len(cols["email"]))
        countries = _objects(cols["country"]) if self.layout.country else None
        if self.key == "email":
            return normalize_emails(cols["email"]), cols["email"], {}
        if self.key == "phone":
            return text_array(self._phones(_objects(cols["phone"]), countries, every)), cols["phone"], {}
        if self.key == "external_id":
            ids = text_array(_normalize(_objects(cols["external_id"]), _strip_ids))
            return ids, cols["external_id"], {}
        email = normalize_emails(cols["email"])  # email_or_phone: the email when valid, else the phone
        has_email = email.is_valid()
        phone = np.full(len(every), None, dtype=object)
        without = np.flatnonzero(~_objects(has_email).astype(bool))
        phone[without] = self._phones(_objects(cols["phone"]), countries, without)
        done = {"email": email, "phone": text_array(phone)}
        value = pc.if_else(has_email, cols["email"], cols["phone"])
        return pc.coalesce(email, done["phone"]), value, done

    def add(self, chunk: pd.DataFrame, rows: np.ndarray) -> None:
        """Reject the chunk's rows whose key is missing or invalid; keep the others column-wise.

        Only the key identity is normalised here: the other identities are normalised at the end for
        the members only (a duplicate's phone is never looked at). Columns stay Arrow arrays; only the
        rows rejected (and phones, parsed one distinct value at a time) become Python text.
        """
        import numpy as np
        import pyarrow.compute as pc

        layout = self.layout
        cols = {n: _column(chunk, getattr(layout, n)) for n in ("email", "phone", "external_id", "country")}
        keys, value, done = self._keys(cols)
        valid = keys.is_valid()
        ok = _objects(valid).astype(bool)
        bad = ~ok
        if bad.any():
            wrong = pc.invert(valid)
            bad_value, bad_reason = _why(
                self.key, *(_objects(a.filter(wrong)) for a in (cols["email"], cols["phone"], value))
            )
            none = np.full(len(bad_value), None, dtype=object)
            self.reject_parts.append(_frame(row=rows[bad], key=none, value=bad_value, reason=bad_reason))
            self.by_reason.update(bad_reason.tolist())
        if not ok.any():
            return
        if self.key == "email_or_phone" and layout.email:  # keyed by the phone, an email was given
            given = pc.fill_null(pc.not_equal(pc.utf8_trim_whitespace(cols["email"]), ""), False)
            ignored = pc.and_(pc.and_(valid, pc.invert(done["email"].is_valid())), given)
            self.partly[EMAIL_IGNORED] += int(pc.sum(ignored).as_py() or 0)
        keys, raw_value = keys.filter(valid), value.filter(valid)
        differs = pc.fill_null(pc.not_equal(raw_value, keys), True)
        # the identities still to normalise for the members (email_or_phone has the email already, and
        # the phone of members keyed by it, not of those keyed by their email)
        later = [
            n
            for n in ("email", "phone", "external_id")
            if n != self.key and getattr(layout, n) and not (n == "email" and self.key == "email_or_phone")
        ]
        if "phone" in later and layout.country:
            later.append("country")
        self.parts.append(
            _Part(
                size=len(keys),
                keys=keys,
                rows=rows[ok],
                differs=np.flatnonzero(_objects(differs).astype(bool)),
                value=raw_value.filter(differs),
                raw={n: cols[n].filter(valid) for n in later},
                done={n: a.filter(valid) for n, a in done.items()},
                extras={c: _column(chunk, c).filter(valid) for c in self.keep},
            )
        )

    def finish(self) -> dict[str, Any]:
        """The members' columns (the first row of each key, in source order); duplicates rejected."""
        import numpy as np
        import pyarrow as pa

        from infobip_provider.cohorts.columnar import first_rows, hash_keys
        from infobip_provider.cohorts.columnar import take as take_text

        parts, self.parts = self.parts, []
        if not parts:
            empty = pa.array([], type=pa.string())
            return {
                "key": empty,
                "_hashes": np.zeros(0, dtype=np.uint64),
                **{n: empty for n in ("email", "phone", "external_id")},
                "row": np.zeros(0, dtype=np.int64),
                **{self.layout.extras[c]: empty for c in self.keep},
            }
        keys = pa.chunked_array([p.keys for p in parts], type=pa.string())  # the parts' own arrays
        rows = np.concatenate([p.rows for p in parts])
        for part in parts:  # the parts' own copies go as soon as the whole column exists
            part.keys, part.rows = None, None  # type: ignore[assignment]
        hashes = hash_keys(keys)
        first = first_rows(keys, hashes)
        dup = first != np.arange(len(rows))
        if not dup.any():  # every row is a member: nothing to take
            del first
            members: dict[str, Any] = {"key": keys, "_hashes": hashes, "row": rows}
            take = None
        else:
            self._reject_duplicates(keys, rows, first, dup, parts)
            del first
            index = np.flatnonzero(~dup)
            take = pa.array(index)
            members = {"key": take_text(keys, index), "_hashes": hashes[index], "row": rows[index]}
            del keys, hashes
        for name in ("email", "phone", "external_id"):
            members[name] = self._identity(name, parts, take, members["key"])
        for column in self.keep:
            extra = _concat([p.extras[column] for p in parts])
            members[self.layout.extras[column]] = extra if take is None else extra.take(take)
        return members

    def _reject_duplicates(
        self, keys: pa.Array, rows: np.ndarray, first: np.ndarray, dup: np.ndarray, parts: list[_Part]
    ) -> None:
        import numpy as np

        from infobip_provider.cohorts.columnar import take

        at = np.flatnonzero(dup)
        dup_keys = _objects(take(keys, at))
        # each repeat's raw value: its key, unless the raw text differed (case, spaces)
        offsets = np.cumsum([0] + [p.size for p in parts])[:-1]
        differs = np.concatenate([p.differs + o for p, o in zip(parts, offsets)])
        dup_value = dup_keys.copy()
        if len(differs):
            hit = np.minimum(np.searchsorted(differs, at), len(differs) - 1)
            found = differs[hit] == at
            if found.any():
                value = _concat([p.value for p in parts])
                dup_value[found] = _objects(take(value, hit[found]))
        first_row = rows[first[dup]]
        labels = {r: f"duplicate of row {r}" for r in np.unique(first_row).tolist()}
        self.reject_parts.append(
            _frame(
                row=rows[dup],
                key=dup_keys,
                value=dup_value,
                reason=np.array([labels[r] for r in first_row.tolist()], dtype=object),
            )
        )
        self.by_reason[DUPLICATE] += int(dup.sum())

    def _identity(
        self, name: str, parts: list[_Part], take: pa.Array | None, member_keys: pa.Array
    ) -> pa.Array | None:
        """One identity column of the members: the key itself, normalised already, normalised now, or
        ``None`` when the cohort has no such column."""
        import numpy as np

        from infobip_provider.cohorts.columnar import normalize_emails, text_array

        def column(arrays: list[pa.Array]) -> pa.Array:
            joined = _concat(arrays)
            return joined if take is None else joined.take(take)

        if name == self.key:
            return member_keys
        done = column([p.done[name] for p in parts]) if name in parts[0].done else None
        if name not in parts[0].raw:
            return done
        raw = _objects(column([p.raw[name] for p in parts]))
        if name == "email":
            return normalize_emails(raw)
        if name == "external_id":
            return text_array(_normalize(raw, _strip_ids))
        countries = _objects(column([p.raw["country"] for p in parts])) if "country" in parts[0].raw else None
        if done is None:
            return text_array(self._phones(raw, countries, np.arange(len(raw))))
        phones = _objects(done).astype(object)  # email_or_phone: members keyed by their email
        todo = np.flatnonzero(~done.is_valid().to_numpy(zero_copy_only=False))
        phones[todo] = self._phones(raw, countries, todo)
        self.partly[PHONE_IGNORED] += sum(
            1
            for given, got in zip(raw[todo].tolist(), phones[todo].tolist())
            if got is None and _present(given)
        )
        return text_array(phones)


def _empty_rejects() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(
        {"row": pd.Series(dtype="int64"), **{c: pd.Series(dtype=object) for c in REJECT_COLUMNS[1:]}}
    )


#: Read plain UTF-8 CSV files with Arrow's CSV reader (see :meth:`FileSource.iter_arrow_chunks`).
ARROW_CSV = True


def _read(
    chunks_of: Iterator[pd.DataFrame],
    source: CohortSource,
    cols: IdentityColumns,
    key: str,
    region: str | None,
    keep_columns: Sequence[str] | None,
) -> tuple[_Run | None, int, int]:
    """Feed a source's chunks to a run: ``(run, rows read, chunks)`` (no run for an empty file)."""
    import numpy as np

    run: _Run | None = None
    rows_read = chunks = 0
    for chunk in chunks_of:
        chunks += 1
        if run is None:
            found = [str(c) for c in chunk.columns]
            if not found and len(chunk) == 0:
                continue  # an empty file: no header, no rows
            layout = identity_layout(found, cols, key, source, region)
            keep = [c for c in layout.extras if keep_columns is None or c in keep_columns]
            run = _Run(key, layout, region, keep)
        if len(chunk):
            run.add(chunk, np.arange(rows_read + 1, rows_read + len(chunk) + 1, dtype=np.int64))
            rows_read += len(chunk)
    return run, rows_read, chunks


def prepare_cohort(
    source: CohortSource | str,
    columns: IdentityColumns | None = None,
    key: str = "email",
    default_region: str | None = "US",
    chunk_size: int = 100_000,
    keep_columns: Sequence[str] | None = None,
) -> PreparedCohort:
    """Read ``source`` in chunks and return its members (deduplicated by ``key``) and rejects.

    Rows are kept column-wise (Arrow arrays) while the source streams by, so memory grows with the
    rows that have a sound key at a few tens of bytes each plus the extra columns kept; duplicates are
    found once, at the end, by hashing the keys.

    :param source: a :class:`CohortSource` (or a file path, read with :class:`FileSource`).
    :param columns: the identity columns (default: ``email`` and ``phone``).
    :param key: the identity members are keyed and deduplicated on: ``email``, ``phone``,
        ``external_id``, or ``email_or_phone`` (Infobip's rule: the email when valid, else the phone).
    :param default_region: region for national phone numbers (see :class:`IdentityColumns` ``country``).
    :param chunk_size: rows per chunk read from the source.
    :param keep_columns: the other source columns the members keep (``None``: all of them; ``()``: none,
        for a flow that needs the key only).
    :raises CohortError: when the source cannot be read or a needed column is absent.
    """
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

    if isinstance(source, FileSource) and ARROW_CSV:
        try:
            run, rows_read, chunks = _read(
                source.iter_arrow_chunks(chunk_size), source, cols, key, region, keep_columns
            )
        except ArrowReadUnavailable as exc:
            _log.debug("reading %s with pandas: %s", source.describe(), exc)
            run, rows_read, chunks = _read(
                source.iter_chunks(chunk_size), source, cols, key, region, keep_columns
            )
    else:
        run, rows_read, chunks = _read(
            source.iter_chunks(chunk_size), source, cols, key, region, keep_columns
        )

    if run is None:
        run = _Run(key, _Layout(None, None, None, None, {}), region, [])
    member_columns = run.finish()
    key_array = member_columns["key"]
    extras = [run.layout.extras[c] for c in run.keep]
    by_reason, unknown_regions, partly_used = run.by_reason, run.phones.unknown_regions, run.partly
    rejects = (
        pd.concat(run.reject_parts, ignore_index=True).sort_values("row", kind="stable", ignore_index=True)
        if run.reject_parts
        else _empty_rejects()
    )
    del run  # free the caches

    duplicates = by_reason.get(DUPLICATE, 0)
    stats: dict[str, Any] = {
        "source": source.describe(),
        "key": key,
        "rows_read": rows_read,
        "members": len(key_array),
        "rejected": len(rejects),
        "invalid": len(rejects) - duplicates,
        "duplicates": duplicates,
        "rejected_by_reason": {k: int(v) for k, v in by_reason.most_common()},
        "empty": len(key_array) == 0,
        "chunks": chunks,
        "columns": extras,
    }
    if unknown_regions:
        stats["unknown_country_rows"] = unknown_regions
    partly = {reason: n for reason, n in partly_used.items() if n}
    if partly:
        stats["partly_used"] = partly
    _log.debug(
        "cohort prepared from %s: %s rows read, %s members, %s rejected (%s duplicates)",
        stats["source"],
        rows_read,
        stats["members"],
        stats["rejected"],
        duplicates,
    )
    return PreparedCohort(member_columns, rejects, stats, key=key, source=stats["source"], extras=extras)
