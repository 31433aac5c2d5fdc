"""Conditional and range requests for one representation (RFC 9110 13, 14).

The order is the RFC's: ``If-None-Match`` (or, without it,
``If-Modified-Since``) may turn a GET or HEAD into 304 before a ``Range`` is
looked at; a ``Range`` is honoured only when ``If-Range`` (if sent) still
matches. One range only: a request for several is answered with the whole
file, which the RFC allows and which no browser or download tool minds.
"""

from __future__ import annotations

import email.utils

# Parsed HTTP dates, by header value: browsers send back the same
# Last-Modified on every revalidation. Bounded like the negotiator's cache.
_DATES: dict[bytes, int | None] = {}
_DATES_SIZE = 256

# What parse_range answers besides a (first, last) pair.
UNSATISFIABLE = (-1, -1)


def http_date(value: bytes) -> int | None:
    """Seconds since the epoch, or None for a value that is not a date."""
    try:
        return _DATES[value]
    except KeyError:
        pass
    try:
        parsed: int | None = int(email.utils.parsedate_to_datetime(value.decode("latin-1")).timestamp())
    except (TypeError, ValueError, IndexError, OverflowError):
        parsed = None
    if len(_DATES) >= _DATES_SIZE:
        _DATES.clear()
    _DATES[value] = parsed
    return parsed


def _opaque(tag: bytes) -> bytes:
    tag = tag.strip()
    return tag[2:] if tag[:2] == b"W/" else tag


def none_match(header: bytes, etag: bytes) -> bool:
    """``If-None-Match`` matches: the client's copy is current (weak comparison)."""
    if header.strip() == b"*":
        return True
    mine = _opaque(etag)
    return any(_opaque(tag) == mine for tag in header.split(b","))


def not_modified(headers: dict[bytes, bytes], etag: bytes, mtime: int) -> bool:
    """A 304 is the answer (for GET and HEAD)."""
    inm = headers.get(b"if-none-match")
    if inm is not None:
        return none_match(inm, etag)
    ims = headers.get(b"if-modified-since")
    if ims is not None:
        since = http_date(ims)
        return since is not None and mtime <= since
    return False


def if_range_holds(value: bytes, etag: bytes, mtime: int) -> bool:
    """``If-Range``: a strong ETag that is ours exactly, or our Last-Modified date."""
    value = value.strip()
    if value[:1] == b'"' or value[:2] == b"W/":
        return value == etag  # a weak tag never matches (strong comparison)
    return http_date(value) == mtime


def parse_range(value: bytes, size: int) -> tuple[int, int] | None:
    """``(first, last)`` (inclusive) for one satisfiable byte range,
    UNSATISFIABLE, or None to ignore the header and send everything (another
    unit, several ranges, or a value that does not parse)."""
    unit, _, spec = value.partition(b"=")
    if unit.strip().lower() != b"bytes" or b"," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition(b"-")
    if not dash:
        return None
    first_text, last_text = first_text.strip(), last_text.strip()
    if not (first_text.isdigit() or not first_text) or not (last_text.isdigit() or not last_text):
        return None
    try:
        if not first_text:
            if not last_text:
                return None
            suffix = int(last_text)  # the last N bytes
            if suffix == 0 or size == 0:
                return UNSATISFIABLE
            return max(size - suffix, 0), size - 1
        first = int(first_text)
        last = int(last_text) if last_text else None
    except ValueError:  # more digits than int() takes
        return None
    if last is None:
        last = size - 1
    elif last < first:
        return None
    if first >= size:
        return UNSATISFIABLE
    return first, min(last, size - 1)
