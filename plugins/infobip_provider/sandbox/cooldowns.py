"""Server-side cooldown enforcement: is a request's arrival far enough from the previous accepted one?

A request is rejected when it arrives less than ``TOLERANCE`` x interval after the previous
*accepted* arrival in the same bucket (API-key fingerprint or ``"account"``, endpoint). Rejected
requests do not move the window, like a server that counts only what it let through.
"""

from __future__ import annotations

from dataclasses import dataclass

#: A request is accepted from 98 % of the interval on: the issue allows at most 2 % tolerance.
TOLERANCE = 0.98
_EPSILON = 1e-6  # float epoch seconds resolve ~0.24 µs; a microsecond absorbs rounding


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    #: seconds since the previous accepted arrival (``None`` for the first request of a bucket).
    elapsed: float | None
    #: the scaled interval that applied.
    interval: float


class CooldownLedger:
    """Last accepted arrival per bucket. Not thread-safe: the app calls it from its one event loop."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale
        self._last: dict[tuple[str, str], float] = {}

    def admit(self, bucket: str, endpoint: str, base_interval: float, arrival: float) -> Verdict:
        interval = base_interval * self.scale
        key = (bucket, endpoint)
        previous = self._last.get(key)
        elapsed = None if previous is None else arrival - previous
        if interval > 0 and elapsed is not None and elapsed < TOLERANCE * interval - _EPSILON:
            return Verdict(False, elapsed, interval)
        if interval > 0:
            self._last[key] = arrival
        return Verdict(True, elapsed, interval)

    def reset(self) -> None:
        self._last.clear()
