"""Differential tests: WebSocketSession with the wsfast frame path against the
same session on wsproto alone, the reference.

The contract: for any bytes a client sends, split anywhere, the app gets
the same messages at the same points, the peer gets the same bytes back
(pongs, close frames), and the session ends the same way (close code,
reason, whether the transport closes); frames the server sends are byte for
byte wsproto's. Inputs come from hypothesis: simple frames (what wsfast
reads) mixed with everything it must leave to wsproto (close frames,
fragments, RSV bits, unmasked frames, long or non-minimal lengths, invalid
UTF-8, unknown opcodes, messages over the limit).
"""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pounce.core.protocol.websocket import WebSocketSession
from pounce.core.protocol.wsfast import HOLD_MAX, frame, read_frames

SETTINGS = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def client_frame(first: int, payload: bytes, *, masked: bool = True, length_form: str = "short",
                 mask: bytes = b"\x01\x02\x03\x04") -> bytes:
    """A frame as a client writes it; ``length_form`` can force a longer
    encoding than needed (which wsproto refuses)."""
    n = len(payload)
    if length_form == "short" and n < 126:
        head = bytes([first, n])
    elif length_form in ("short", "two") and n < 65536:
        head = bytes([first, 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([first, 127]) + n.to_bytes(8, "big")
    if not masked:
        return head + payload
    head = bytes([head[0], head[1] | 0x80]) + head[2:]
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


payloads = st.one_of(st.binary(max_size=40), st.sampled_from([b"", b"x" * 125, b"y" * 126, b"z" * 300]))
texts = st.one_of(st.text(max_size=30), st.sampled_from(["", "é" * 70, "\u20ac" * 50]))
masks = st.binary(min_size=4, max_size=4)

simple = st.one_of(
    st.builds(lambda t, m: client_frame(0x81, t.encode("utf-8"), mask=m), texts, masks),
    st.builds(lambda p, m: client_frame(0x82, p, mask=m), payloads, masks),
    st.builds(lambda p, m: client_frame(0x89, p[:125], mask=m), payloads, masks),
    st.builds(lambda p, m: client_frame(0x8A, p[:125], mask=m), payloads, masks),
)
other = st.one_of(
    st.builds(lambda p: client_frame(0x81, p), st.sampled_from([b"\xff", b"a\xc3", b"\xed\xa0\x80", b"ab\xffcdefgh",
                                                                 b"\xc3(" + b"z" * 40])),
    st.builds(lambda c, r: client_frame(0x88, c.to_bytes(2, "big") + r), st.sampled_from([1000, 1001, 1003, 999,
                                                                                          1005, 3000, 4999]),
              st.sampled_from([b"", b"bye", b"\xff"])),
    st.just(client_frame(0x88, b"")),
    st.builds(lambda p: client_frame(0x01, p) + client_frame(0x80, p), payloads),  # fragmented text
    st.builds(lambda p: client_frame(0x02, p), payloads),  # a fragment left open
    st.builds(lambda p: client_frame(0x00, p), payloads),  # a continuation out of the blue
    st.builds(lambda p: client_frame(0xC1, p), payloads),  # RSV1 without an extension
    st.builds(lambda p: client_frame(0x82, p, masked=False), payloads),
    st.builds(lambda p: client_frame(0x82, p, length_form="two"), st.binary(max_size=10)),
    st.builds(lambda p: client_frame(0x82, p, length_form="eight"), st.binary(max_size=10)),
    st.just(client_frame(0x89, b"p" * 126)),  # a control frame too long
    st.just(client_frame(0x09, b"p")),  # a fragmented control frame
    st.just(client_frame(0x83, b"?")),  # an unknown opcode
    st.just(client_frame(0x82, b"b" * 70000)),  # 8-byte length
)


def run(session: WebSocketSession, chunks: list[bytes], sends: list[Any]) -> list[Any]:
    """Everything observable, call by call."""
    seen: list[Any] = []
    for i, chunk in enumerate(chunks):
        seen.append(("messages", session.receive_data(chunk)))
        seen.append(("out", session.data_to_send()))
        if i < len(sends):
            try:
                seen.append(("sent", session.send_message(sends[i])))
            except Exception as exc:  # noqa: BLE001 - compared, not judged
                seen.append(("send failed", type(exc).__name__))
    seen.append(("eof", session.receive_data(None)))
    seen.append(("out", session.data_to_send()))
    seen.append(("end", session.close_code, session.close_reason, session.finished, session.pongs,
                 session.reported))
    return seen


# wsproto's reason for invalid UTF-8 names the bad byte's position within the
# piece of the frame it was decoding, so it changes with how the bytes came
# (wsproto alone gives different reasons for the same frame split
# differently): that position, and the close frame's length byte, are the
# only things allowed to differ.
_POSITION = re.compile(r"in position \d+(-\d+)?")
_POSITION_B = re.compile(rb"\x88.(\x03\xef'utf-8' codec can't decode [^:]*?) in position \d+(-\d+)?", re.S)


def normalised(seen: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in seen:
        if item[0] in ("out", "sent"):
            item = (item[0], _POSITION_B.sub(lambda m: b"\x88?" + m.group(1) + b" in position N", item[1]))
        elif item[0] in ("messages", "eof"):
            item = (item[0], [{**m, "reason": _POSITION.sub("in position N", m["reason"])} if "reason" in m else m
                              for m in item[1]])
        elif item[0] == "end" and isinstance(item[2], str):
            item = (*item[:2], _POSITION.sub("in position N", item[2]), *item[3:])
        out.append(item)
    return out


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for point in [*points, len(data)]:
        pieces.append(data[last:point])
        last = point
    return [p for p in pieces if p] or [b""]


@pytest.mark.slow
@SETTINGS
@given(st.lists(st.one_of(simple, simple, simple, other), max_size=8), st.lists(st.integers(0, 10**6), max_size=6),
       st.lists(st.one_of(st.text(max_size=20), st.binary(max_size=20), st.just("x" * 200),
                          st.just(b"y" * 70000)), max_size=4),
       st.sampled_from([16 * 1024 * 1024, 100, 0]))
def test_fast_frames_match_wsproto(frames: list[bytes], cuts: list[int], sends: list[Any], limit: int) -> None:
    data = b"".join(frames)
    chunks = split(data, cuts)
    fast = run(WebSocketSession([], limit, fast=True), chunks, sends)
    slow = run(WebSocketSession([], limit, fast=False), chunks, sends)
    assert normalised(fast) == normalised(slow)


def test_the_bench_message_is_read_by_the_fast_path() -> None:
    data = client_frame(0x81, b"0123456789abcdef") * 3
    frames, used, stop = read_frames(data, 1 << 24)
    assert frames == [(0x1, "0123456789abcdef")] * 3 and used == len(data) and not stop


def test_a_frame_split_anywhere_is_held_then_read_whole() -> None:
    data = client_frame(0x82, os.urandom(300))
    session = WebSocketSession([], 1 << 24)
    assert session.receive_data(data[:3]) == [] and session.fast
    [message] = session.receive_data(data[3:])
    assert message["bytes"] == WebSocketSession([], 1 << 24, fast=False).receive_data(data)[0]["bytes"]
    assert session.fast


@pytest.mark.parametrize(("payload", "cut"), [(b"\xffabc", 7), (b"ab\xffcd", 9), (b"x" * 200 + b"\xff", 100),
                                            (b"\xed\xa0\x80abc", 8), ("é".encode() * 3, 7)])
def test_text_that_is_not_utf8_fails_as_soon_as_wsproto_would(payload: bytes, cut: int) -> None:
    """wsproto fails the connection at the first bad byte, before the frame
    is whole; the fast path, holding the frame, must not wait longer."""
    data = client_frame(0x81, payload)
    chunks = [data[:cut], data[cut:]]
    fast = run(WebSocketSession([], 1 << 24, fast=True), chunks, [])
    assert normalised(fast) == normalised(run(WebSocketSession([], 1 << 24, fast=False), chunks, []))


def test_a_long_incomplete_frame_goes_to_wsproto() -> None:
    data = client_frame(0x82, b"q" * (HOLD_MAX + 10))
    frames, used, stop = read_frames(data[:1000], 1 << 24)
    assert (frames, used, stop) == ([], 0, True)


@pytest.mark.parametrize("payload", [b"", b"a" * 125, b"b" * 126, b"c" * 65535, b"d" * 65536])
def test_server_frames_are_wsproto_s(payload: bytes) -> None:
    reference = WebSocketSession([], 1 << 24, fast=False)
    assert frame(0x2, payload) == reference.send_message(payload)
    text = payload.decode()
    assert frame(0x1, text.encode()) == reference.send_message(text)
