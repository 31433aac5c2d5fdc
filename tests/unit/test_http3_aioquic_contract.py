"""The aioquic internals pounce/plugins/http3/quic.py relies on, checked so
that an aioquic upgrade that moves one fails here, loudly, instead of
silently losing app-driven flow control, worker-tagged connection IDs or
GOAWAY. pyproject.toml pins aioquic to the range this passes with.

Socket-free: a client and a server QuicConnection exchange datagrams in
memory.
"""

from __future__ import annotations

import inspect
import time
from pathlib import Path
from typing import Any

import pytest

aioquic = pytest.importorskip("aioquic")

from aioquic.buffer import encode_uint_var  # noqa: E402
from aioquic.h3.connection import H3_ALPN, FrameType, H3Connection, encode_frame  # noqa: E402
from aioquic.h3.events import DataReceived, HeadersReceived  # noqa: E402
from aioquic.quic.configuration import QuicConfiguration  # noqa: E402
from aioquic.quic.connection import QuicConnection  # noqa: E402
from aioquic.quic.events import StreamDataReceived  # noqa: E402

from pounce.plugins.http3.cids import TaggedIds, owner_tag  # noqa: E402
from pounce.plugins.http3.quic import ServerH3, ServerQuic  # noqa: E402
from tests.h3client import H3Certs  # noqa: E402

WINDOW = 64 * 1024


def test_the_internals_exist_with_the_expected_shapes() -> None:
    conn_src = inspect.getsource(QuicConnection)
    for name in ("_write_stream_limits", "_replenish_connection_ids", "_on_max_stream_data_delivery"):
        assert hasattr(QuicConnection, name), name
    for attr in ("self._host_cids", "self._host_cid_seq", "self._local_initial_source_connection_id",
                 "self._local_max_streams_bidi", "self._local_max_streams_uni",
                 "self._remote_active_connection_id_limit", "self._streams"):
        assert attr in conn_src, attr
    # The one place aioquic calls the stream-limit writer from, per stream.
    assert "self._write_stream_limits(builder=builder, space=space, stream=stream)" in conn_src
    h3_src = inspect.getsource(H3Connection)
    for attr in ("self._local_control_stream_id", "self._stream", "self._is_done", "self._decoder",
                 "self._local_decoder_stream_id"):
        assert attr in h3_src, attr
    from aioquic.quic.stream import QuicStreamReceiver, QuicStreamSender

    assert "self._buffer_start" in inspect.getsource(QuicStreamReceiver)
    assert "self._buffer = bytearray()" in inspect.getsource(QuicStreamSender)


class Pair:
    """A client and a pounce server connection, datagrams passed by hand."""

    def __init__(self, certs: H3Certs, **server: Any) -> None:
        from pounce.plugins.http3.settings import H3Settings, quic_configuration

        settings = H3Settings(host="127.0.0.1", port=443, max_connections=10, idle_timeout=30,
                              max_concurrent_streams=5, retry=False, early_data=False, alt_svc_max_age=1,
                              certfile=certs.cert, keyfile=certs.key, keyfile_password=None)
        client_config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name="localhost")
        client_config.load_verify_locations(certs.ca_pem)
        self.now = time.monotonic()  # a virtual clock, moved to the next timer when idle
        self.client = QuicConnection(configuration=client_config)
        self.client.connect(("127.0.0.1", 443), now=self.now)
        first = self.client.datagrams_to_send(now=self.now)
        from aioquic.buffer import Buffer
        from aioquic.quic.packet import pull_quic_header

        header = pull_quic_header(Buffer(data=first[0][0]), host_cid_length=8)
        configuration = quic_configuration(settings)
        configuration.max_stream_data = WINDOW
        self.server = ServerQuic(
            configuration=configuration, original_destination_connection_id=header.destination_cid,
            new_cid=server.get("new_cid", TaggedIds(b"k" * 16, 7)), max_streams_bidi=5, max_streams_uni=16,
        )
        self.server_h3 = ServerH3(self.server)
        self.client_h3 = H3Connection(self.client)
        for data, _ in first:
            self.server.receive_datagram(data, ("127.0.0.1", 5000), now=self.now)
        self.server_events: list[Any] = []
        self.client_events: list[Any] = []
        self.pump()

    def pump(self, rounds: int = 200) -> None:
        """Exchange until both sides are quiet, firing timers (pacing, ACK
        delay) on the virtual clock; loss timers are not needed in memory."""
        for _ in range(rounds):
            moved = False
            now = self.now
            for data, _ in self.client.datagrams_to_send(now=now):
                self.server.receive_datagram(data, ("127.0.0.1", 5000), now=now)
                moved = True
            for data, _ in self.server.datagrams_to_send(now=now):
                self.client.receive_datagram(data, ("127.0.0.1", 443), now=now)
                moved = True
            for quic, h3, out in ((self.server, self.server_h3, self.server_events),
                                  (self.client, self.client_h3, self.client_events)):
                event = quic.next_event()
                while event is not None:
                    for h3_event in h3.handle_event(event):
                        out.append(h3_event)
                        if quic is self.server and isinstance(h3_event, DataReceived):
                            # As the connection does: body handed to the app is held.
                            self.server.hold(h3_event.stream_id, len(h3_event.data))
                    out.append(event)
                    event = quic.next_event()
            if not moved:
                timers = [t for t in (self.client.get_timer(), self.server.get_timer()) if t is not None]
                pacing = [t for t in timers if t - self.now < 0.1]
                if not pacing:
                    return
                self.now = max(self.now, min(pacing))
                for quic in (self.client, self.server):
                    timer = quic.get_timer()
                    if timer is not None and timer <= self.now:
                        quic.handle_timer(now=self.now)


def test_windows_follow_the_app_ids_carry_the_tag_goaway_is_sent(tmp_path: Path) -> None:
    pair = Pair(H3Certs(tmp_path))
    server, client = pair.server, pair.client
    # Every connection ID the server issued carries worker tag 7.
    assert server.host_cids() and all(owner_tag(b"k" * 16, cid) == 7 for cid in server.host_cids())
    assert client._remote_max_streams_bidi == 5
    stream_id = client.get_next_available_stream_id()
    pair.client_h3.send_headers(stream_id, [(b":method", b"POST"), (b":scheme", b"https"),
                                            (b":authority", b"localhost"), (b":path", b"/")])
    pair.client_h3.send_data(stream_id, b"x" * (4 * WINDOW), end_stream=True)
    pair.pump()
    def received() -> int:
        return sum(len(e.data) for e in pair.server_events if isinstance(e, DataReceived))

    assert any(isinstance(e, HeadersReceived) for e in pair.server_events)
    # Held by the app (nothing consumed): no credit beyond the first window.
    body = received()
    assert body <= WINDOW and client._streams[stream_id].max_stream_data_remote <= WINDOW + 64
    # The app reads: the window opens and the rest arrives.
    for _ in range(20):
        server.release(stream_id, 1 << 30)
        pair.pump()
        if received() == 4 * WINDOW:
            break
    assert received() == 4 * WINDOW
    assert pair.server_h3.buffered(stream_id) == 0
    # GOAWAY goes out on the server's control stream (stream 3).
    pair.server_h3.send_goaway(4)
    pair.pump()
    control = b"".join(e.data for e in pair.client_events
                       if isinstance(e, StreamDataReceived) and e.stream_id == 3)
    assert control.endswith(encode_frame(FrameType.GOAWAY, encode_uint_var(4)))
