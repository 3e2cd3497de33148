"""Build the embedded demo warehouse: a SQLite file with a realistic, deterministic ``customers`` table.

    python include/warehouse/build_warehouse.py                 # include/warehouse/warehouse.db, 5,000 rows
    python include/warehouse/build_warehouse.py --if-missing    # only when the file is not there yet
    python include/warehouse/build_warehouse.py --print-conn    # the Airflow connection line for it
    python include/warehouse/build_warehouse.py --cohort-csv include/cohorts/customers.csv  # sample file

The same seed always gives the same file. ``customers`` has customer_id, first_name, last_name, email,
phone, country, city, language, gender, birth_date, plan, lifetime_value, is_active, updated_at, for
customers in the US, GB, DE, HR, IN and BR. Phones come in the shapes real exports have: E.164,
international with spaces, national with the trunk prefix (``030 ...``, ``(202) 555-...``), digits with
the country code but no ``+``, and ``00`` international dialling. National numbers of non-US customers
are only valid when read with the row's ``country`` (``IdentityColumns(country="country")``).
About 1 % of rows are deliberately bad: invalid emails, unusable phones, an email used twice, rows with
neither email nor phone. All emails use the reserved ``example.*`` domains.

The Airflow connection ``warehouse_default`` for it (verified with apache-airflow-providers-sqlite 4.3.4,
whose ``SqliteHook`` turns ``host`` into ``sqlite:////abs/path`` and connects to ``file:/abs/path``)::

    AIRFLOW_CONN_WAREHOUSE_DEFAULT='{"conn_type":"sqlite","host":"/abs/path/include/warehouse/warehouse.db"}'

``host`` must be an absolute path (a relative one resolves against the worker's current directory).
Adding ``"extra": {"mode": "ro"}`` opens the file read-only, so a wrong path fails with "unable to open
database file" instead of silently creating an empty database.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sqlite3
import sys
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import phonenumbers
from phonenumbers import PhoneNumberFormat

HERE = Path(__file__).resolve().parent
DEFAULT_DB = HERE / "warehouse.db"
DEFAULT_COHORT_CSV = HERE.parent / "cohorts" / "customers.csv"
DEFAULT_SEED = 20261122
DEFAULT_CUSTOMERS = 5_000
DEFAULT_COHORT_ROWS = 2_000

COLUMNS = (
    "customer_id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "country",
    "city",
    "language",
    "gender",
    "birth_date",
    "plan",
    "lifetime_value",
    "is_active",
    "updated_at",
)
COHORT_COLUMNS = (
    "customer_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "country",
    "city",
    "language",
    "plan",
)

_SCHEMA = """
CREATE TABLE customers (
    customer_id    INTEGER PRIMARY KEY,
    first_name     TEXT,
    last_name      TEXT,
    email          TEXT,
    phone          TEXT,
    country        TEXT NOT NULL,
    city           TEXT,
    language       TEXT,
    gender         TEXT,
    birth_date     TEXT,
    plan           TEXT NOT NULL,
    lifetime_value REAL NOT NULL,
    is_active      INTEGER NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE INDEX customers_active ON customers (is_active);
CREATE INDEX customers_updated ON customers (updated_at);
"""

# country: share, cities, language, first names (female, male), last names, national number makers
COUNTRIES: dict[str, dict[str, Any]] = {
    "US": {
        "share": 0.35,
        "cities": ["New York", "Chicago", "Austin", "Seattle", "Miami", "Denver", "Boston"],
        "language": "en",
        "female": ["Emma", "Olivia", "Ava", "Mia", "Sophia", "Harper", "Grace"],
        "male": ["Liam", "Noah", "James", "Lucas", "Henry", "Jack", "Owen"],
        "last": ["Smith", "Johnson", "Brown", "Garcia", "Miller", "Davis", "Wilson", "Moore"],
    },
    "GB": {
        "share": 0.15,
        "cities": ["London", "Manchester", "Leeds", "Bristol", "Glasgow"],
        "language": "en",
        "female": ["Amelia", "Isla", "Poppy", "Freya", "Evie"],
        "male": ["Oliver", "George", "Harry", "Alfie", "Arthur"],
        "last": ["Taylor", "Jones", "Evans", "Thomas", "Roberts", "Walker"],
    },
    "DE": {
        "share": 0.15,
        "cities": ["Berlin", "Hamburg", "Munich", "Cologne", "Leipzig"],
        "language": "de",
        "female": ["Hanna", "Lea", "Lena", "Clara", "Marie"],
        "male": ["Lukas", "Felix", "Jonas", "Paul", "Leon"],
        "last": ["Mueller", "Schmidt", "Schneider", "Fischer", "Weber", "Wagner"],
    },
    "HR": {
        "share": 0.10,
        "cities": ["Zagreb", "Split", "Rijeka", "Osijek", "Zadar"],
        "language": "hr",
        "female": ["Ana", "Iva", "Petra", "Marija", "Lucija"],
        "male": ["Ivan", "Luka", "Marko", "Josip", "Petar"],
        "last": ["Horvat", "Kovacevic", "Babic", "Maric", "Juric", "Novak"],
    },
    "IN": {
        "share": 0.15,
        "cities": ["Mumbai", "Delhi", "Bengaluru", "Chennai", "Pune"],
        "language": "hi",
        "female": ["Aadhya", "Diya", "Ananya", "Priya", "Saanvi"],
        "male": ["Aarav", "Vihaan", "Arjun", "Rohan", "Kabir"],
        "last": ["Sharma", "Patel", "Singh", "Kumar", "Gupta", "Iyer"],
    },
    "BR": {
        "share": 0.10,
        "cities": ["Sao Paulo", "Rio de Janeiro", "Belo Horizonte", "Curitiba", "Recife"],
        "language": "pt",
        "female": ["Alice", "Helena", "Laura", "Valentina", "Beatriz"],
        "male": ["Miguel", "Arthur", "Heitor", "Davi", "Gabriel"],
        "last": ["Silva", "Santos", "Oliveira", "Souza", "Lima", "Pereira"],
    },
}
_DOMAINS = ["example.com", "example.net", "example.org", "mail.example.com", "shop.example.org"]
_PLANS = [("free", 0.45), ("basic", 0.30), ("pro", 0.20), ("enterprise", 0.05)]
_BAD_EMAILS = ["maria.garcia@", "john.smith(at)example.com", "ana@@example.com", "no-email", "lee@example"]
_BAD_PHONES = ["12345", "000-000-0000", "n/a", "+999 1234 5678", "555-CALL"]
_BASE_TIME = datetime(2026, 11, 1, 8, 0, 0)


def national_number(country: str, rng: random.Random) -> str:
    """A national significant number that ``phonenumbers`` finds valid (mobile or fixed line)."""
    while True:
        if country == "US":
            area = rng.choice(
                [201, 202, 212, 213, 305, 312, 404, 415, 512, 617, 646, 702, 713, 718, 805, 917]
            )
            candidate = f"{area}{rng.randint(2, 9)}{rng.randint(0, 99):02d}{rng.randint(0, 9999):04d}"
        elif country == "GB":
            candidate = f"7{rng.choice([400, 700, 711, 800, 900, 956])}{rng.randint(0, 999999):06d}"
        elif country == "DE":
            prefix = rng.choice([151, 152, 157, 160, 162, 170, 171, 172, 175, 176, 177, 178, 179])
            candidate = (
                f"{prefix}{rng.randint(0, 9999999 if prefix in (160, 162, 170, 171, 175) else 99999999)}"
            )
        elif country == "HR":
            candidate = f"9{rng.choice([1, 2, 5, 7, 8, 9])}{rng.randint(0, 9999999):07d}"
        elif country == "IN":
            candidate = f"{rng.choice([6, 7, 8, 9])}{rng.randint(0, 999999999):09d}"
        elif country == "BR":
            area = rng.choice([11, 21, 31, 41, 51, 61, 71, 81])
            candidate = f"{area}9{rng.randint(6000, 9999)}{rng.randint(0, 9999):04d}"
        else:
            raise ValueError(f"no phone plan for {country}")
        number = phonenumbers.parse(candidate, country)
        if phonenumbers.is_valid_number(number):
            return candidate


def format_phone(country: str, nsn: str, style: str) -> str:
    """Write a number the way exports do: ``e164``, ``international``, ``national``, ``digits``, ``idd``."""
    number = phonenumbers.parse(nsn, country)
    if style == "e164":
        return phonenumbers.format_number(number, PhoneNumberFormat.E164)
    if style == "international":
        return phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    if style == "national":
        return phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    if style == "digits":
        return phonenumbers.format_number(number, PhoneNumberFormat.E164)[1:]
    if style == "idd":
        return "00" + phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)[1:]
    if style == "dashed":  # 202-555-0143 / +44-7400-123456
        return phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL).replace(" ", "-")
    raise ValueError(f"unknown phone style {style!r}")


def phone_style(country: str, rng: random.Random, national_share: float) -> str:
    """Pick how a customer's phone is written; national (non-US) only with probability ``national_share``."""
    if country == "US":
        return rng.choice(["national", "national", "dashed", "e164", "international", "digits"])
    if rng.random() < national_share:
        style = rng.choice(["national", "idd"])
        # Brazil dials abroad with a carrier code (0021, 0041 ...), so "00 55 ..." is not a Brazilian number
        return "national" if country == "BR" else style
    return rng.choice(["e164", "international", "international", "dashed", "digits"])


def _email(first: str, last: str, customer_id: int, rng: random.Random) -> str:
    local = rng.choice([f"{first}.{last}", f"{first[0]}{last}", f"{first}{last[:3]}", f"{first}_{last}"])
    local += str(customer_id)  # the name lists are short: keep addresses distinct
    address = f"{local}@{rng.choice(_DOMAINS)}"
    shape = rng.random()
    if shape < 0.08:
        return address.upper()
    if shape < 0.30:
        return address.title() if rng.random() < 0.5 else f" {address} "
    return address.lower()


def generate_customers(
    count: int = DEFAULT_CUSTOMERS,
    seed: int = DEFAULT_SEED,
    *,
    national_share: float = 0.35,
    bad_rows: bool = True,
) -> list[dict[str, Any]]:
    """Deterministic customers (dicts keyed by :data:`COLUMNS`, plus ``_country_phone``: the number's nsn).

    :param national_share: share of non-US phones written nationally (valid only with the country).
    :param bad_rows: spread about 1 % deliberately bad rows (see the module docstring).
    """
    rng = random.Random(seed)
    countries = list(COUNTRIES)
    weights = [COUNTRIES[c]["share"] for c in countries]
    customers: list[dict[str, Any]] = []
    for customer_id in range(1, count + 1):
        country = rng.choices(countries, weights)[0]
        spec = COUNTRIES[country]
        gender = rng.choice(["FEMALE", "MALE"])
        first = rng.choice(spec["female"] if gender == "FEMALE" else spec["male"])
        last = rng.choice(spec["last"])
        nsn = national_number(country, rng)
        plan = rng.choices([p for p, _ in _PLANS], [w for _, w in _PLANS])[0]
        ltv = round(
            rng.lognormvariate(4.0, 1.1) * {"free": 0.2, "basic": 1, "pro": 3, "enterprise": 12}[plan], 2
        )
        birth = date(1950, 1, 1) + timedelta(days=rng.randint(0, 365 * 55))
        updated = _BASE_TIME - timedelta(minutes=rng.randint(0, 60 * 24 * 400))
        customers.append(
            {
                "customer_id": customer_id,
                "first_name": first,
                "last_name": last,
                "email": _email(first, last, customer_id, rng) if rng.random() > 0.03 else None,
                "phone": format_phone(country, nsn, phone_style(country, rng, national_share))
                if rng.random() > 0.05
                else None,
                "country": country,
                "city": rng.choice(spec["cities"]),
                "language": spec["language"],
                "gender": gender,
                "birth_date": birth.isoformat(),
                "plan": plan,
                "lifetime_value": ltv,
                "is_active": 1 if rng.random() < 0.8 else 0,
                "updated_at": updated.isoformat(timespec="seconds"),
                "_nsn": nsn,
            }
        )
    if customers and customers[0]["email"] is None:
        customers[0]["email"] = _email(customers[0]["first_name"], customers[0]["last_name"], 1, rng)
    if bad_rows and count >= 100:
        _spoil(customers, rng)
    return customers


def _spoil(customers: list[dict[str, Any]], rng: random.Random) -> None:
    """Make about 1 % of rows bad, spread over the table, in four ways."""
    count = len(customers)
    step = max(count // max(count // 100, 4), 1)
    kinds = ["email", "phone", "duplicate", "missing"]
    for n, index in enumerate(range(step // 2, count, step)):
        row = customers[index]
        kind = kinds[n % len(kinds)]
        if kind == "email":
            row["email"] = _BAD_EMAILS[n % len(_BAD_EMAILS)]
        elif kind == "phone":
            row["phone"] = _BAD_PHONES[n % len(_BAD_PHONES)]
            row["email"] = None  # so that an email_or_phone cohort rejects it too
        elif kind == "duplicate":
            donor = customers[rng.randrange(0, index)] if index else customers[0]
            if donor["email"]:
                row["email"] = f" {donor['email'].strip().upper()}"
        else:
            row["email"] = None
            row["phone"] = None


def build_warehouse(
    db_path: str | os.PathLike[str] = DEFAULT_DB, count: int = DEFAULT_CUSTOMERS, seed: int = DEFAULT_SEED
) -> Path:
    """Write the SQLite warehouse (atomically: a temporary file renamed into place) and return its path."""
    target = Path(db_path).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    customers = generate_customers(count, seed)
    conn = sqlite3.connect(tmp)
    try:
        conn.executescript(_SCHEMA)
        conn.executemany(
            f"INSERT INTO customers ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
            [tuple(c[k] for k in COLUMNS) for c in customers],
        )
        conn.commit()
    finally:
        conn.close()
    os.replace(tmp, target)
    return target


def cohort_rows(customers: Sequence[dict[str, Any]], rows: int = DEFAULT_COHORT_ROWS) -> list[dict[str, Any]]:
    """The sample file export: the first ``rows`` customers, non-US national phones written internationally
    (a file cohort is read with one ``default_region``)."""
    out = []
    for customer in customers[:rows]:
        row = {k: customer[k] for k in COHORT_COLUMNS}
        phone = row["phone"]
        if phone and customer["country"] != "US" and not phone.startswith("+") and phone not in _BAD_PHONES:
            row["phone"] = format_phone(customer["country"], customer["_nsn"], "international")
        out.append(row)
    return out


def write_cohort_csv(
    path: str | os.PathLike[str] = DEFAULT_COHORT_CSV,
    rows: int = DEFAULT_COHORT_ROWS,
    seed: int = DEFAULT_SEED,
    count: int = DEFAULT_CUSTOMERS,
) -> Path:
    """Write the sample cohort CSV (UTF-8, comma, header) from the warehouse's customers."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    data = cohort_rows(generate_customers(count, seed), rows)
    with target.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COHORT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(data)
    return target


def connection_json(db_path: str | os.PathLike[str] = DEFAULT_DB, *, read_only: bool = True) -> str:
    """The ``AIRFLOW_CONN_WAREHOUSE_DEFAULT`` value for ``db_path``."""
    conn: dict[str, Any] = {"conn_type": "sqlite", "host": str(Path(db_path).resolve())}
    if read_only:
        conn["extra"] = {"mode": "ro"}
    return json.dumps(conn)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the embedded SQLite demo warehouse.")
    parser.add_argument("--db", default=str(DEFAULT_DB), help="SQLite file to write (default: %(default)s)")
    parser.add_argument("--customers", type=int, default=DEFAULT_CUSTOMERS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--if-missing", action="store_true", help="do nothing when the file exists")
    parser.add_argument("--cohort-csv", help="also write the sample cohort CSV to this path")
    parser.add_argument("--cohort-rows", type=int, default=DEFAULT_COHORT_ROWS)
    parser.add_argument(
        "--print-conn", action="store_true", help="print the AIRFLOW_CONN_WAREHOUSE_DEFAULT line"
    )
    args = parser.parse_args(argv)
    db = Path(args.db)
    if not (args.if_missing and db.exists()):
        build_warehouse(db, args.customers, args.seed)
        print(f"wrote {args.customers} customers to {db.resolve()}", file=sys.stderr)
    if args.cohort_csv:
        path = write_cohort_csv(args.cohort_csv, args.cohort_rows, args.seed, args.customers)
        print(f"wrote {args.cohort_rows} cohort rows to {path}", file=sys.stderr)
    if args.print_conn:
        print(f"AIRFLOW_CONN_WAREHOUSE_DEFAULT='{connection_json(db)}'")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
