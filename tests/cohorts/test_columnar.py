"""The column-wise cohort kernels give exactly what the per-value functions give.

``normalize_emails`` is checked against ``normalize_email`` on drawn text (control characters, non-ASCII
letters that lower-case into ASCII, spaces, lengths at the limits), and ``prepare_cohort`` against a
plain per-row reading of the same rows (first row wins, every other row rejected with its reason).
"""

from __future__ import annotations

import string

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infobip_provider.cohorts import IdentityColumns, normalize_email, normalize_phone, prepare_cohort
from infobip_provider.cohorts.columnar import first_rows, normalize_emails, positions
from infobip_provider.cohorts.sources import CohortSource

ODD = [
    "\x1c",
    "\x1f",
    "\x85",
    "\xa0",
    "\u212a",
    "\u0130",
    "\u2028",
    "\t",
    "\n",
    " ",
    "é",
    "ß",
    "\x00",
    "@",
    ".",
]
LOCAL = st.text(
    alphabet=string.ascii_letters + string.digits + "._+-'" + "".join(ODD), min_size=0, max_size=70
)
DOMAIN = st.sampled_from(
    ["x.com", "EXAMPLE.org", "a-b.co", "xn--p1ai", "b.c", "ex.xn--p1ai", "-a.com", "a..com"]
)
ADDRESS = st.one_of(
    st.builds(
        lambda pre, loc, dom, post: f"{pre}{loc}@{dom}{post}",
        st.sampled_from(["", " ", "\t", "\x1c"]),
        LOCAL,
        DOMAIN,
        st.sampled_from(["", " ", "\n", "\x1f", "\xa0"]),
    ),
    st.text(max_size=30),
    st.none(),
)


@given(st.lists(ADDRESS, max_size=40))
@settings(max_examples=300, deadline=None)
def test_normalize_emails_agrees_with_normalize_email(values):
    assert normalize_emails(values).to_pylist() == [normalize_email(v) for v in values]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a" * 64 + "@x.com", "a" * 64 + "@x.com"),
        ("a" * 65 + "@x.com", None),
        ("a@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 63 + "." + "e" * 57 + ".com", None),  # 255 chars
        ("\u212a@x.com", "k@x.com"),  # the Kelvin sign lower-cases to ASCII in Python
        ("\x1cana@x.com\x1f", "ana@x.com"),  # Python strips these as whitespace
        ("ana@x.com\xa0", "ana@x.com"),
    ],
)
def test_normalize_emails_at_the_edges(raw, expected):
    assert normalize_email(raw) == expected
    assert normalize_emails([raw]).to_pylist() == [expected]


@pytest.mark.parametrize("collide", [False, True])
def test_first_rows_and_positions(monkeypatch, collide):
    """Exact also when 64-bit hashes collide (forced here: every key hashed to one of two values)."""
    if collide:
        import numpy as np

        from infobip_provider.cohorts import columnar

        def few(keys, block=262_144):
            return np.array([len(k) % 2 for k in columnar.text_array(keys).to_pylist()], dtype=np.uint64)

        monkeypatch.setattr(columnar, "hash_keys", few)
    keys = pa.array(["b", "aa", "b", "c", "aa", "b"])
    assert first_rows(keys).tolist() == [0, 1, 0, 3, 1, 0]
    assert positions(pa.array(["c", "x", "b", "aa"]), pa.array(["aa", "b", "c"])).tolist() == [2, -1, 1, 0]
    assert positions(keys, pa.array([], type=pa.string())).tolist() == [-1] * 6


class Rows(CohortSource):
    """A source of given rows, in chunks of ``size`` (so duplicates cross chunks)."""

    def __init__(self, frame: pd.DataFrame, size: int) -> None:
        self.frame, self.size = frame, size

    def iter_chunks(self, chunk_size: int = 100_000):
        for i in range(0, max(len(self.frame), 1), self.size):
            yield self.frame.iloc[i : i + self.size].reset_index(drop=True)

    def describe(self) -> str:
        return "rows"


def reference(frame: pd.DataFrame, key: str) -> tuple[list[tuple], list[tuple]]:
    """The cohort rule read row by row: members ``(key, email, phone, row, plan)`` and rejects."""
    seen: dict[str, int] = {}
    members, rejects = [], []
    for row, (email_raw, phone_raw, plan, ext_raw) in enumerate(frame.itertuples(index=False), start=1):
        email, phone = normalize_email(email_raw), normalize_phone(phone_raw, "US")
        ext = ext_raw.strip() or None if isinstance(ext_raw, str) else None
        value = email_raw if key == "email" else phone_raw
        k = email if key == "email" else phone
        if key == "email_or_phone":
            k = email if email is not None else phone
            value = email_raw if email is not None else phone_raw
        if k is None:
            has_e, has_p = bool(email_raw and email_raw.strip()), bool(phone_raw and phone_raw.strip())
            if key == "email_or_phone":
                reason = {
                    (True, True): "invalid email and phone",
                    (True, False): "invalid email",
                    (False, True): "invalid phone",
                }.get((has_e, has_p), "missing identity")
                value = (
                    f"{email_raw} | {phone_raw}"
                    if has_e and has_p
                    else (email_raw if has_e else phone_raw if has_p else None)
                )
            else:
                present = has_e if key == "email" else has_p
                reason = (
                    ("invalid email" if key == "email" else "invalid phone")
                    if present
                    else "missing identity"
                )
            rejects.append((row, None, value, reason))
        elif k in seen:
            rejects.append((row, k, value, f"duplicate of row {seen[k]}"))
        else:
            seen[k] = row
            members.append((k, email, phone, ext, row, plan))
    return members, rejects


CELL_EMAIL = st.one_of(
    st.none(),
    st.sampled_from(["ana@x.com", " ANA@x.com", "bo@y.org", "bad@", "", " ", "\u212a@x.com", "k@x.com"]),
)
CELL_PHONE = st.one_of(
    st.none(),
    st.sampled_from(["+1 415 555 2671", "(415) 555-2671", "14155552671", "12345", "", "+385 91 234 5678"]),
)


@given(
    st.lists(
        st.tuples(
            CELL_EMAIL,
            CELL_PHONE,
            st.sampled_from(["pro", "free", None]),
            st.sampled_from([" c1 ", "c2", "", None]),
        ),
        max_size=25,
    ),
    st.sampled_from(["email", "phone", "email_or_phone"]),
    st.integers(min_value=1, max_value=7),
)
@settings(max_examples=150, deadline=None)
def test_prepare_cohort_agrees_with_a_row_by_row_reading(rows, key, size):
    frame = pd.DataFrame(rows, columns=["email", "phone", "plan", "ext"], dtype=object)
    columns = IdentityColumns(email="email", phone="phone", external_id="ext")
    prepared = prepare_cohort(Rows(frame, size), columns, key=key)
    want_members, want_rejects = reference(frame, key)
    got = [
        (r.key, r.email, r.phone, r.external_id, r.row, r.plan)
        for r in prepared.members[["key", "email", "phone", "external_id", "row", "plan"]].itertuples(
            index=False
        )
    ]
    assert got == want_members
    assert prepared.keys.to_pylist() == [m[0] for m in want_members]
    got_rejects = [
        tuple(r) for r in prepared.rejects[["row", "key", "value", "reason"]].itertuples(index=False)
    ]
    assert got_rejects == want_rejects
    assert prepared.stats["members"] + prepared.stats["rejected"] == len(rows)


def test_keep_columns_keeps_only_those(tmp_path):
    frame = pd.DataFrame(
        {"email": ["a@x.com", "b@x.com"], "plan": ["p", None], "city": ["Z", "S"]}, dtype=object
    )
    prepared = prepare_cohort(
        Rows(frame, 1), IdentityColumns(email="email", phone=None), keep_columns=["plan"]
    )
    assert list(prepared.members.columns) == ["key", "email", "phone", "external_id", "row", "plan"]
    assert prepared.members["plan"].tolist() == ["p", None]
    lean = prepare_cohort(Rows(frame, 1), IdentityColumns(email="email", phone=None), keep_columns=())
    assert list(lean.members.columns) == ["key", "email", "phone", "external_id", "row"]
    assert lean.stats["columns"] == []


# ---------------------------------------------------------------- Arrow's CSV reader against pandas'

CELL = st.one_of(
    st.sampled_from(
        ["ana@x.com", " Bo@Y.org ", "bad@", "", " ", "+1 415 555 2671", "12345", "é@x.com", "pro"]
    ),
    st.sampled_from(['"a,b@x.com"', '"line\nbreak@x.com"', '""', '"say ""hi"""', "\u212a@x.com"]),
)
LINE = st.lists(CELL, min_size=1, max_size=4).map(",".join)


@given(st.lists(st.one_of(LINE, st.just("")), max_size=12), st.sampled_from(["email", "email_or_phone"]))
@settings(max_examples=120, deadline=None)
def test_arrow_csv_reading_prepares_what_pandas_reading_prepares(tmp_path_factory, lines, key):
    """The same members, rejects and counts whichever reader read the file (including files the Arrow
    reader hands back to pandas: rows with fewer fields, blank lines, quoted line breaks)."""
    from infobip_provider.cohorts import CohortError, FileSource, prepare
    from infobip_provider.cohorts.sources import ArrowReadUnavailable

    path = tmp_path_factory.mktemp("csv") / "cohort.csv"
    path.write_text("email,phone,plan\n" + "\n".join(lines) + "\n", encoding="utf-8")
    outcomes = []
    for arrow in (True, False):
        prepare.ARROW_CSV = arrow
        try:
            got = prepare_cohort(FileSource(path), IdentityColumns(email="email", phone="phone"), key=key)
            stats = {k: v for k, v in got.stats.items() if k != "chunks"}
            outcomes.append((got.members.to_dict("list"), got.rejects.to_dict("list"), stats))
        except CohortError as exc:
            outcomes.append(("error", str(exc)))
        finally:
            prepare.ARROW_CSV = True
    assert outcomes[0] == outcomes[1]
    try:  # and when Arrow reads the file itself, each cell is the text pandas reads
        arrow_frames = list(FileSource(path).iter_arrow_chunks(5))
    except ArrowReadUnavailable:
        return
    pandas_frames = list(FileSource(path).iter_chunks(5))
    as_text = lambda frames: [  # noqa: E731
        [None if pd.isna(v) else v for v in row] for f in frames for row in f.itertuples(index=False)
    ]
    assert as_text(arrow_frames) == as_text(pandas_frames)


def test_a_plain_csv_is_read_by_arrow_and_a_ragged_one_by_pandas(tmp_path):
    from infobip_provider.cohorts import FileSource
    from infobip_provider.cohorts.sources import ArrowReadUnavailable

    plain = tmp_path / "plain.csv"
    plain.write_text(
        '\ufeffemail ,plan\nana@x.com,pro\n"b,o@x.com",\n\nbo@y.org,"multi\nline"\n', encoding="utf-8"
    )
    chunks = list(FileSource(plain).iter_arrow_chunks(2))
    assert [len(c) for c in chunks] == [2, 1]
    assert all(isinstance(c["email"].dtype, pd.ArrowDtype) for c in chunks)
    assert list(chunks[0].columns) == ["email", "plan"]
    assert chunks[0]["plan"].tolist()[1] is None or pd.isna(chunks[0]["plan"].tolist()[1])
    assert chunks[1]["plan"].tolist() == ["multi\nline"]
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("email,plan\nana@x.com\n", encoding="utf-8")
    with pytest.raises(ArrowReadUnavailable):
        list(FileSource(ragged).iter_arrow_chunks())
    prepared = prepare_cohort(FileSource(ragged), IdentityColumns(email="email", phone=None))
    assert prepared.keys.to_pylist() == ["ana@x.com"]  # read again by pandas, nothing lost


def test_take_from_chunks_in_any_order():
    import numpy as np

    from infobip_provider.cohorts.columnar import take

    chunked = pa.chunked_array([pa.array(["a", "b"]), pa.array(["c"]), pa.array(["d", "e", "f"])])
    for indices in ([5, 0, 2, 2, 3], [0, 1, 2, 3, 4, 5], [], [4]):
        got = take(chunked, np.array(indices, dtype=np.int64)).to_pylist()
        assert got == [chunked.to_pylist()[i] for i in indices]
