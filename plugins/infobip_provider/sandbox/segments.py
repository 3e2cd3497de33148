"""How many SMS parts a text costs: GSM-7 (160 / 153 per part) or UCS-2 (70 / 67 per part).

The sandbox's own implementation, kept independent of the library's so that each checks the other.
GSM-7 extension characters take two septets and are never split across parts; UCS-2 counts
UTF-16 code units and never splits a surrogate pair.
"""

from __future__ import annotations

from dataclasses import dataclass

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[]~|€\f")


@dataclass(frozen=True)
class SegmentCount:
    encoding: str  # "GSM7" or "UCS2"
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    message_count: int
    characters_remaining: int


def is_gsm7(text: str) -> bool:
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def _pack(sizes: list[int], single: int, per_part: int) -> tuple[int, int]:
    """(parts, units left in the last part) when units of the given sizes are packed without splitting."""
    total = sum(sizes)
    if total <= single:
        return 1, single - total
    parts, used = 1, 0
    for size in sizes:
        if used + size > per_part:
            parts, used = parts + 1, 0
        used += size
    return parts, per_part - used


def count_segments(text: str) -> SegmentCount:
    if is_gsm7(text):
        sizes = [2 if ch in GSM7_EXTENSION else 1 for ch in text]
        parts, remaining = _pack(sizes, 160, 153)
        return SegmentCount("GSM7", sum(sizes), parts, remaining)
    sizes = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    parts, remaining = _pack(sizes, 70, 67)
    return SegmentCount("UCS2", sum(sizes), parts, remaining)
