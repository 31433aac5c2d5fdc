"""aioquic's connection objects with the three things a server needs and
aioquic has no public switch for.

1. **Receive windows opened as the app reads.** aioquic raises a stream's
   flow-control limit (MAX_STREAM_DATA) when the data *arrives*, doubling
   it each time half of it is used, so a client can push a request body as
   fast as it likes however slowly the app reads it. Here a request
   stream's limit is "what the app has consumed plus one window"
   (:meth:`ServerQuic._write_stream_limits`): body bytes handed to the ASGI
   stream count as held (:meth:`ServerQuic.hold`) until the app takes them
   (:meth:`ServerQuic.release`), and so do bytes aioquic's HTTP/3 layer
   still buffers (a HEADERS frame not complete yet). Memory per stream is
   bounded by the window, per connection by window x streams.
2. **Connection IDs from a factory.** With several workers each of them
   stamps its own tag into the IDs it issues, so that the datagram router
   can send a connection's packets to the worker that knows it whatever
   address they come from (see :mod:`.router`).
3. **GOAWAY** on the control stream, for graceful shutdown (aioquic parses
   it but cannot send it).

Everything here touches aioquic internals (underscored names), on purpose
in this one module; ``pyproject.toml`` pins aioquic to the range this was
tested with, and ``tests/unit/test_http3_aioquic_contract.py`` fails loudly
if an upgrade moves any of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aioquic.buffer import encode_uint_var
from aioquic.h3.connection import FrameType, H3Connection, encode_frame
from aioquic.quic.connection import MAX_STREAM_DATA_FRAME_CAPACITY, QuicConnection, QuicConnectionId
from aioquic.quic.packet import QuicFrameType

__all__ = ["ServerH3", "ServerQuic"]


def _is_request_stream(stream_id: int) -> bool:
    """A client-initiated bidirectional stream: one HTTP/3 request."""
    return stream_id & 3 == 0


class ServerQuic(QuicConnection):
    """A server-side QUIC connection with app-driven receive windows and
    connection IDs from ``new_cid``."""

    def __init__(self, *, new_cid: Callable[[], bytes], max_streams_bidi: int, max_streams_uni: int,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._new_cid = new_cid
        # The window a request stream gets ahead of the app: the initial one
        # the transport parameters announce (QuicConfiguration.max_stream_data).
        self._window = self._configuration.max_stream_data
        self._held: dict[int, int] = {}
        self.h3: ServerH3 | None = None
        # The first connection ID was drawn in __init__: replace it before
        # anything was sent with it.
        first = self._host_cids[0]
        first.cid = new_cid()
        self.host_cid = first.cid
        self._local_initial_source_connection_id = first.cid
        for limit, value in ((self._local_max_streams_bidi, max_streams_bidi),
                             (self._local_max_streams_uni, max_streams_uni)):
            limit.value = limit.sent = value

    # -- flow control driven by the app ------------------------------------------

    def hold(self, stream_id: int, size: int) -> None:
        """``size`` body bytes of ``stream_id`` went to the app's queue."""
        self._held[stream_id] = self._held.get(stream_id, 0) + size

    def release(self, stream_id: int, size: int) -> None:
        """The app took ``size`` bytes: the window may open again."""
        held = self._held.get(stream_id)
        if held is not None:
            self._held[stream_id] = max(0, held - size)

    def forget(self, stream_id: int) -> None:
        """The stream's body goes nowhere any more: nothing is held."""
        self._held.pop(stream_id, None)

    def send_buffered(self, stream_id: int) -> int:
        """Response bytes of ``stream_id`` not yet acknowledged by the peer."""
        stream = self._streams.get(stream_id)
        return len(stream.sender._buffer) if stream is not None else 0

    def responses_unacknowledged(self) -> bool:
        """Some request stream's response is not fully acknowledged yet."""
        return any(not stream.sender.is_finished for stream_id, stream in self._streams.items()
                   if _is_request_stream(stream_id))

    def _write_stream_limits(self, builder: Any, space: Any, stream: Any) -> None:
        stream_id = stream.stream_id
        if not _is_request_stream(stream_id):
            # Control and QPACK streams: aioquic's own policy.
            super()._write_stream_limits(builder=builder, space=space, stream=stream)
            return
        if stream.receiver.is_finished:
            return  # everything arrived (or the stream was reset): no more credit
        held = self._held.get(stream_id, 0)
        if self.h3 is not None:
            held += self.h3.buffered(stream_id)
        target = stream.receiver.starting_offset() - held + self._window
        # Grant in steps of half a window, not per byte read.
        if target - stream.max_stream_data_local >= self._window // 2:
            stream.max_stream_data_local = target
        if stream.max_stream_data_local_sent != stream.max_stream_data_local:
            buf = builder.start_frame(
                QuicFrameType.MAX_STREAM_DATA,
                capacity=MAX_STREAM_DATA_FRAME_CAPACITY,
                handler=self._on_max_stream_data_delivery,
                handler_args=(stream,),
            )
            buf.push_uint_var(stream_id)
            buf.push_uint_var(stream.max_stream_data_local)
            stream.max_stream_data_local_sent = stream.max_stream_data_local

    # -- connection IDs ----------------------------------------------------------------

    def _replenish_connection_ids(self) -> None:
        import os

        while len(self._host_cids) < min(8, self._remote_active_connection_id_limit):
            self._host_cids.append(QuicConnectionId(
                cid=self._new_cid(), sequence_number=self._host_cid_seq,
                stateless_reset_token=os.urandom(16),
            ))
            self._host_cid_seq += 1

    def host_cids(self) -> list[bytes]:
        """Every connection ID this connection answers to now."""
        return [entry.cid for entry in self._host_cids]


class ServerH3(H3Connection):
    """aioquic's HTTP/3 connection that can also send GOAWAY and say how much
    of a request stream it still buffers."""

    def __init__(self, quic: ServerQuic) -> None:
        super().__init__(quic)
        quic.h3 = self

    def send_goaway(self, stream_id: int) -> None:
        """GOAWAY: requests on ``stream_id`` and later will not be processed."""
        self._quic.send_stream_data(self._local_control_stream_id,
                                    encode_frame(FrameType.GOAWAY, encode_uint_var(stream_id)))

    @property
    def failed(self) -> bool:
        """aioquic met a protocol error and closed the connection."""
        return bool(self._is_done)

    def discard(self, stream_id: int) -> None:
        """Forget a request stream whose remaining input is thrown away
        (refused, answered early, reset): no buffer, no blocked QPACK state
        stays behind for it."""
        stream = self._stream.pop(stream_id, None)
        if stream is not None and stream.blocked:
            decoder = self._decoder.cancel_stream(stream_id)
            self._quic.send_stream_data(self._local_decoder_stream_id, decoder)

    def buffered(self, stream_id: int) -> int:
        """Bytes of ``stream_id`` received but not yet turned into events."""
        stream = self._stream.get(stream_id)
        return len(stream.buffer) if stream is not None else 0
