"""Cohort sources: read a cohort from a file or a warehouse, normalise identities, report rejects.

Typical use inside an operator's ``execute``::

    from infobip_provider.cohorts import IdentityColumns, cohort_source, prepare_cohort

    source = cohort_source(path="cohorts/customers.csv")  # or sql=..., conn_id="warehouse_default"
    prepared = prepare_cohort(source, IdentityColumns(email="email", phone="phone"), key="email_or_phone")
    prepared.check_reject_ratio(0.05, self.log)
    prepared.write_rejects(".../rejects.csv")

Importing this package is cheap (no pandas or pyarrow until a cohort is read).
"""

from __future__ import annotations

from infobip_provider.cohorts.identities import email_or_phone, normalize_email, normalize_phone
from infobip_provider.cohorts.phones import PhoneNormalizer
from infobip_provider.cohorts.prepare import (
    KEYS,
    IdentityColumns,
    PreparedCohort,
    RejectRatioExceeded,
    prepare_cohort,
)
from infobip_provider.cohorts.sources import (
    INCLUDE_DIR,
    CohortError,
    CohortSource,
    FileSource,
    SqlSource,
    cohort_source,
    include_dir,
)

__all__ = [
    "INCLUDE_DIR",
    "KEYS",
    "CohortError",
    "CohortSource",
    "FileSource",
    "IdentityColumns",
    "PhoneNormalizer",
    "PreparedCohort",
    "RejectRatioExceeded",
    "SqlSource",
    "cohort_source",
    "email_or_phone",
    "include_dir",
    "normalize_email",
    "normalize_phone",
    "prepare_cohort",
]
