"""Application-generated, time-ordered identifiers.

Rows get their id in Python (not from a database sequence), so they can be created on any worker
and merged across databases. The layout is UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then
random bits, which keeps B-tree inserts local and makes ids sort by creation time.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_seq = 0


def new_id() -> uuid.UUID:
    """Return a new UUIDv7; ids made in one process are strictly increasing."""
    global _last_ms, _seq  # noqa: PLW0603 - the clock state is process-wide on purpose
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms = _last_ms
            _seq += 1
            if _seq > 0xFFF:  # 12-bit counter exhausted within one millisecond: borrow the next one
                ms += 1
                _seq = 0
        else:
            _seq = int.from_bytes(os.urandom(2), "big") & 0x3FF  # leave head-room for the counter
        _last_ms = ms
        seq = _seq
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version 7
    value |= seq << 64
    value |= 0b10 << 62  # RFC 4122 variant
    value |= rand
    return uuid.UUID(int=value)


_UNKNOWN = uuid.SafeUUID.unknown  # an enum member looked up once, not per id


def _uuid_of(value: int) -> uuid.UUID:
    """``uuid.UUID(int=value)`` without re-checking a value built here (a third of the cost)."""
    u = object.__new__(uuid.UUID)
    object.__setattr__(u, "int", value)
    object.__setattr__(u, "is_safe", _UNKNOWN)
    return u


def new_ids(n: int) -> list[uuid.UUID]:
    """``n`` new UUIDv7s at once, each as :func:`new_id` would give it (strictly increasing,
    after every id made before): one clock read, one lock and one draw of random bytes for all,
    for bulk writers (the CSV import makes several ids per row)."""
    global _last_ms, _seq  # the clock state is process-wide on purpose
    if n <= 0:
        return []
    random = os.urandom(8 * n + 2)
    out: list[int] = []
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms, seq = _last_ms, _seq
        else:
            seq = (int.from_bytes(random[-2:], "big") & 0x3FF) - 1
        for i in range(n):
            seq += 1
            if seq > 0xFFF:  # 12-bit counter exhausted within one millisecond: borrow the next one
                ms += 1
                seq = 0
            out.append(
                ((ms & ((1 << 48) - 1)) << 80)
                | (0x7 << 76)
                | (seq << 64)
                | (0b10 << 62)
                | (int.from_bytes(random[8 * i : 8 * i + 8], "big") & ((1 << 62) - 1))
            )
        _last_ms, _seq = ms, seq
    return [_uuid_of(v) for v in out]
