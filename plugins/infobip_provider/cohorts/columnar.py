"""Column-wise kernels for cohorts of millions: identities and set differences on Arrow arrays.

Everything here works on whole columns (``pyarrow`` compute kernels, NumPy) instead of Python objects
per member, so a 10-million-member cohort costs seconds and a few tens of bytes per member:

- :func:`normalize_emails` gives exactly what :func:`~infobip_provider.cohorts.identities.normalize_email`
  gives for each value. Plain ASCII text is trimmed, lower-cased and checked by Arrow's RE2 kernels;
  the rare value holding a control character or a non-ASCII letter goes through the Python function
  itself (Python and Arrow differ on what whitespace and lower case are there).
- :func:`first_rows` finds each key's first row (the cohort's deduplication rule) and
  :func:`positions` each key's place in another column (the plan), by 64-bit hashes of the keys,
  every match checked against the text.
- :func:`text_array` turns a column of Python text (a pandas chunk) into an Arrow string array.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, overload

from infobip_provider.cohorts.identities import _ATEXT, _LABEL, _MAX_EMAIL, _TLD, normalize_email

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

__all__ = [
    "EMAIL_RE2",
    "Ids",
    "first_rows",
    "hash_keys",
    "normalize_emails",
    "positions",
    "release_memory",
    "take",
    "text_array",
    "text_column",
]

#: The address syntax of :data:`~infobip_provider.cohorts.identities.EMAIL_PATTERN` for RE2, which has
#: no look-ahead: the local part's length (1 to 64) is checked apart, from the position of the ``@``.
EMAIL_RE2 = rf"^{_ATEXT}+(?:\.{_ATEXT}+)*@(?:{_LABEL}\.)+{_TLD}$"
#: Values the Arrow path leaves to Python: control characters (Python strips some of them as
#: whitespace) and anything beyond ASCII (Python lower-cases some of it into ASCII, e.g. the Kelvin sign).
NOT_PLAIN = r"[^\x20-\x7e]"


def text_array(values: Any) -> pa.Array:
    """Python text values (``None``/NaN for missing) as an Arrow string array."""
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    if isinstance(values, pa.Array):
        return values
    return pa.array(values, type=pa.string(), from_pandas=True)


def text_column(values: Any) -> pa.Array | pa.ChunkedArray:
    """Like :func:`text_array`, but a chunked array stays in its chunks (nothing is copied)."""
    import pyarrow as pa

    return values if isinstance(values, pa.ChunkedArray) else text_array(values)


def normalize_emails(values: Any) -> pa.Array:
    """Each value's normalised address, or null where it is missing or not a sound address."""
    import pyarrow as pa
    import pyarrow.compute as pc

    raw = text_array(values)
    if len(raw) == 0:
        return pa.array([], type=pa.string())
    plain = pc.invert(pc.fill_null(pc.match_substring_regex(raw, NOT_PLAIN), True))
    text = pc.ascii_lower(pc.utf8_trim(raw, " "))
    at = pc.find_substring(text, "@")  # the local part's length: RE2 has no look-ahead for it
    sound = pc.and_(
        pc.and_(pc.greater_equal(at, 1), pc.less_equal(at, 64)),
        pc.and_(pc.less_equal(pc.utf8_length(text), _MAX_EMAIL), pc.match_substring_regex(text, EMAIL_RE2)),
    )
    out = pc.if_else(pc.and_(plain, sound), text, pa.scalar(None, pa.string()))
    other = pc.and_(pc.invert(plain), pc.is_valid(raw))
    if pc.any(other).as_py():  # rare: each such value through the Python function
        odd = pc.filter(raw, other).to_pylist()
        fixed = {v: normalize_email(v) for v in odd}
        out = pc.replace_with_mask(out, other, pa.array([fixed[v] for v in odd], type=pa.string()))
    return out


def release_memory() -> None:
    """Hand memory freed by a phase back to the system (Arrow's pool and the C heap keep it otherwise,
    and the next phase's peak would stand on top of it)."""
    import ctypes
    import ctypes.util

    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    libc = ctypes.util.find_library("c")
    trim = getattr(ctypes.CDLL(libc), "malloc_trim", None) if libc else None
    if trim is not None:
        trim(0)


def hash_keys(keys: Any, block: int = 262_144) -> np.ndarray:
    """A 64-bit hash of each text value (pandas' SipHash), computed a block at a time so only one
    block's Python strings exist at once."""
    import numpy as np
    import pandas as pd

    keys = text_column(keys)
    out = np.empty(len(keys), dtype=np.uint64)
    for start in range(0, len(keys), block):
        chunk = keys.slice(start, block).to_numpy(zero_copy_only=False)
        out[start : start + len(chunk)] = pd.util.hash_array(chunk, categorize=False)
    return out


def _buckets(hashes: np.ndarray) -> Iterator[np.ndarray]:
    """The positions of ``hashes`` in 8 buckets by their top 3 bits (the same bucket for the same hash,
    whichever array it is in), one bucket at a time."""
    import numpy as np

    top = (hashes >> np.uint64(61)).astype(np.uint8)
    for bucket in range(8):
        yield np.flatnonzero(top == bucket)


def take(values: pa.Array | pa.ChunkedArray, indices: np.ndarray) -> pa.Array:
    """``values[indices]`` as one array; a chunked array is taken from chunk by chunk (Arrow's own
    take would first copy every chunk into one array)."""
    import numpy as np
    import pyarrow as pa

    if isinstance(values, pa.Array):
        return values.take(pa.array(indices))
    if values.num_chunks == 1:
        return values.chunk(0).take(pa.array(indices))
    if len(indices) == 0:
        return pa.array([], type=values.type)
    starts = np.cumsum([0] + [len(c) for c in values.chunks])
    order = np.argsort(indices, kind="stable")
    ordered = indices[order]
    bounds = np.searchsorted(ordered, starts)
    pieces = [
        values.chunk(c).take(pa.array(ordered[lo:hi] - starts[c]))
        for c, (lo, hi) in enumerate(itertools.pairwise(bounds))
        if hi > lo
    ]
    joined = pa.concat_arrays(pieces)
    if (order[1:] > order[:-1]).all():  # the indices were in order already
        return joined
    back = np.empty_like(order)
    back[order] = np.arange(len(order))
    return joined.take(pa.array(back))


def _matches_hold(values: Any, where: np.ndarray, among: Any, block: int = 1 << 20) -> bool:
    """Whether every value found by its hash (``where >= 0``) is the text it was matched with."""
    import numpy as np

    for start in range(0, len(where), block):
        part = where[start : start + block]
        found = np.flatnonzero(part >= 0)
        if len(found) and not _same(values, found + start, among, part[found]):
            return False
    return True


def _same(a: pa.Array, where_a: np.ndarray, b: pa.Array, where_b: np.ndarray, block: int = 1 << 20) -> bool:
    """Whether ``a[where_a]`` equals ``b[where_b]`` element-wise (compared a block at a time)."""
    import pyarrow.compute as pc

    for start in range(0, len(where_a), block):
        left = take(a, where_a[start : start + block])
        right = take(b, where_b[start : start + block])
        if not pc.all(pc.equal(left, right)).as_py():
            return False
    return True


def first_rows(keys: Any, hashes: np.ndarray | None = None) -> np.ndarray:
    """For each position, the position where its key first appears (keys must not be null).

    By 64-bit hashes (``hashes`` when known): a set of integers finds the repeats, and only the
    repeated hashes are numbered; every repeat is then checked against its first key's text, and a
    hash collision (about one in 10^6 cohorts of 10 million) falls back to hashing the text itself.
    """
    import numpy as np
    import pandas as pd
    import pyarrow.compute as pc

    keys = text_column(keys)
    n = len(keys)
    first = np.arange(n, dtype=np.int64)
    if n == 0:
        return first
    hashes = hash_keys(keys) if hashes is None else hashes
    repeated = np.zeros(n, dtype=bool)
    for rows in _buckets(hashes):  # a hash table per bucket: an eighth of the memory at a time
        repeated[rows] = pd.Index(hashes[rows]).duplicated(keep="first")
    if not repeated.any():
        return first
    involved = pd.Index(np.unique(hashes[repeated])).get_indexer(hashes) >= 0  # first rows and repeats
    rows = np.flatnonzero(involved)
    codes, _ = pd.factorize(hashes[rows])
    _, where = np.unique(codes, return_index=True)
    first[rows] = rows[where[codes]]
    dup = np.flatnonzero(repeated)
    if _same(keys, dup, keys, first[dup]):
        return first
    codes = pc.dictionary_encode(keys).indices.to_numpy(zero_copy_only=False)  # a collision: exactly
    _, where = np.unique(codes, return_index=True)
    return where[codes].astype(np.int64, copy=False)


def positions(
    values: Any, among: Any, value_hashes: np.ndarray | None = None, among_hashes: np.ndarray | None = None
) -> np.ndarray:
    """For each of ``values``, its position in ``among`` (whose values are distinct), or -1.

    Like :func:`first_rows`, by 64-bit hashes (given when known), every match checked against the
    text, with the text itself hashed instead should two hashes collide.
    """
    import numpy as np
    import pandas as pd
    import pyarrow.compute as pc

    values = text_column(values)
    among = text_column(among)  # a table's column: as it is
    if len(values) == 0 or len(among) == 0:
        return np.full(len(values), -1, dtype=np.int64)
    among_hashes = hash_keys(among) if among_hashes is None else among_hashes
    hashes = hash_keys(values) if value_hashes is None else value_hashes
    where = np.full(len(values), -1, dtype=np.int32 if len(among) < 2**31 else np.int64)
    unique = True
    for mine, theirs in zip(_buckets(hashes), _buckets(among_hashes)):  # a hash table per bucket
        if len(theirs) == 0 or len(mine) == 0:
            continue
        index = pd.Index(among_hashes[theirs])
        if not index.is_unique:
            unique = False
            break
        found = index.get_indexer(hashes[mine])
        where[mine] = np.where(found >= 0, theirs[np.maximum(found, 0)], -1)
        del index, found
    if unique and _matches_hold(values, where, among):
        return where
    exact = pc.index_in(values, value_set=text_array(among))  # a collision: by the text itself
    return np.asarray(exact.fill_null(-1).to_numpy(zero_copy_only=False), dtype=where.dtype)


class Ids(Sequence[str]):
    """An Arrow string array seen as a sequence of ``str``: slices come out as lists, made only when
    asked for (a plan of millions sends its ids batch by batch without a Python string per id)."""

    def __init__(self, array: Any, hashes: np.ndarray | None = None) -> None:
        self.array = text_column(array)
        self.hashes = hashes  # the ids' 64-bit hashes (hash_keys) when known

    def __len__(self) -> int:
        return len(self.array)

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self.array))
            if step != 1:
                return self.array.to_pylist()[index]
            return self.array.slice(start, max(0, stop - start)).to_pylist()
        if index < 0:
            index += len(self.array)
        if not 0 <= index < len(self.array):
            raise IndexError(index)
        return self.array[index].as_py()

    def __iter__(self) -> Iterator[str]:
        for start in range(0, len(self.array), 65_536):
            yield from self.array.slice(start, 65_536).to_pylist()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Ids):
            return text_array(self.array).equals(text_array(other.array))
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(other) == len(self) and list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = self[:5]
        return f"Ids({shown}{' ...' if len(self) > 5 else ''}, {len(self)} in all)"
