"""What an HTTP/2 client may cost the server: settings and flood budgets.

HTTP/2 lets a peer make the server work without asking for anything: a
RST_STREAM right after each HEADERS (rapid reset, CVE-2023-44487), frames
that oblige the server to reset a stream itself (MadeYouReset,
CVE-2025-8671), and control frames the server must answer or process
(SETTINGS, PING, PRIORITY, WINDOW_UPDATE, empty DATA, unknown frame types).
None of them is wrong once; each is an attack in bulk. So each kind draws on
a :class:`TokenBucket`: a burst is allowed, the bucket refills with time, and
a client that empties it gets GOAWAY ``ENHANCE_YOUR_CALM`` and loses the
connection. Useful work pays some of it back: a stream that completes
normally returns a reset token, a DATA frame the server sends returns a
control token (WINDOW_UPDATEs are how a client answers DATA).

Kept apart from :mod:`.http2` so the rules can be read (and tested) alone;
sans-I/O like the rest of the layer: the clock is a function given in.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["FloodGuard", "H2Settings", "TokenBucket"]

# A bucket refills its whole capacity in this many seconds.
REFILL_SECONDS = 10.0


class H2Settings:
    """The ``[http2]`` section, read once per worker.

    ``max_concurrent_streams``, ``initial_window_size``, ``max_frame_size``
    and ``max_header_list_size`` are advertised in the server's SETTINGS;
    ``max_requests`` ends the connection gracefully (GOAWAY) after that many
    streams (0: no cap); ``max_resets`` and ``max_control_frames`` size the
    flood budgets (0: no limit); ``connect_protocol`` advertises RFC 8441
    extended CONNECT (WebSocket over HTTP/2).
    """

    __slots__ = ("enabled", "max_concurrent_streams", "initial_window_size", "max_frame_size",
                 "max_header_list_size", "max_requests", "max_resets", "max_control_frames",
                 "flow_control_timeout", "connect_protocol")

    def __init__(self, *, enabled: bool = True, max_concurrent_streams: int = 100,
                 initial_window_size: int = 65535, max_frame_size: int = 16384,
                 max_header_list_size: int = 65536, max_requests: int = 0, max_resets: int = 200,
                 max_control_frames: int = 1000, flow_control_timeout: float = 30.0,
                 connect_protocol: bool = True) -> None:
        self.enabled = enabled
        self.max_concurrent_streams = max_concurrent_streams
        self.initial_window_size = initial_window_size
        self.max_frame_size = max_frame_size
        self.max_header_list_size = max_header_list_size
        self.max_requests = max_requests
        self.max_resets = max_resets
        self.max_control_frames = max_control_frames
        self.flow_control_timeout = flow_control_timeout
        self.connect_protocol = connect_protocol

    @classmethod
    def from_config(cls, config: Any, *, websocket: bool = True) -> H2Settings:
        section = config.http2
        return cls(
            enabled=section.enabled,
            max_concurrent_streams=section.max_concurrent_streams,
            initial_window_size=section.initial_window_size,
            max_frame_size=section.max_frame_size,
            max_header_list_size=section.max_header_list_size,
            max_requests=section.max_requests_per_connection,
            max_resets=section.max_resets,
            max_control_frames=section.max_control_frames,
            flow_control_timeout=section.flow_control_timeout,
            connect_protocol=websocket,
        )


class TokenBucket:
    """``capacity`` tokens, refilled at ``capacity / REFILL_SECONDS`` per
    second. The clock is read only when the bucket runs dry, so spending is
    one subtraction on the common path. ``capacity`` 0: unlimited."""

    __slots__ = ("capacity", "rate", "tokens", "stamp", "clock")

    def __init__(self, capacity: int, clock: Callable[[], float]) -> None:
        self.capacity = float(capacity)
        self.rate = capacity / REFILL_SECONDS
        self.tokens = float(capacity)
        self.clock = clock
        self.stamp = clock()

    def spend(self, n: float = 1.0) -> bool:
        """Take ``n`` tokens; False when the bucket is empty even after refilling."""
        if not self.capacity:
            return True
        tokens = self.tokens - n
        if tokens < 0:
            now = self.clock()
            tokens = min(self.capacity, tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if tokens < 0:
                self.tokens = 0.0
                return False
        self.tokens = tokens
        return True

    def refund(self, n: float = 1.0) -> None:
        tokens = self.tokens + n
        self.tokens = tokens if tokens < self.capacity else self.capacity


class FloodGuard:
    """The budgets of one connection. ``reset()`` and ``control()`` return
    False when the client has spent its budget; the connection then ends."""

    __slots__ = ("resets", "controls", "reason")

    def __init__(self, settings: H2Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.resets = TokenBucket(settings.max_resets, clock)
        self.controls = TokenBucket(settings.max_control_frames, clock)
        self.reason = ""

    def reset(self, what: str) -> bool:
        """A stream ended by a reset the client caused (its own RST_STREAM
        before the response ended, a stream pounce had to reset or refuse)."""
        if self.resets.spend():
            return True
        self.reason = f"too many stream resets ({what})"
        return False

    def control(self, what: str) -> bool:
        """A frame that asked for nothing useful."""
        if self.controls.spend():
            return True
        self.reason = f"too many {what} frames"
        return False

    def stream_completed(self) -> None:
        self.resets.refund()

    def data_sent(self) -> None:
        self.controls.refund()
