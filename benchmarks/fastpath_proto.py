"""Prototype: pounce with h1fast wired in, to measure what bypassing h11 buys.

Not part of pounce: http11.py is where the fast path belongs, and this file
only subclasses it so that the benchmark can run the idea end to end before
that integration (``--servers pounce,pounce-fastpath,...``). Run as a script
it is the ``pounce`` command with the patched protocol::

    python benchmarks/fastpath_proto.py apps:app --port 8000

What it does: a request whose head arrives whole in one read, that
:func:`pounce.core.h1fast.parse_request_head` accepts with Content-Length
framing (or none), an origin-form target and no ``TE`` header, skips h11
entirely (body bytes counted here, pipelined bytes held until the response is
done, as h11 holds them): the scope is
built from the parsed head, and the response head comes from
:func:`pounce.core.h1fast.render_response_head` (byte-identical to h11's).
Everything else goes through the unchanged h11 path; h11 stays IDLE across
fast-path requests, so the two mix on one connection.
"""
from __future__ import annotations

from typing import Any

import h11

from pounce.core import http11
from pounce.core.h1fast import (
    CHUNKED,
    CONTENT_LENGTH,
    LAST_CHUNK,
    chunk,
    parse_request_head,
    render_response_head,
)
from pounce.core.http11 import _NO_BODY_STATUS, HttpProtocol, RequestCycle, _reason


class FastCycle(RequestCycle):
    def __init__(self, protocol: Any, scope: dict[str, Any], head: Any) -> None:
        super().__init__(protocol, scope, head)
        self.request_head = head
        self.framing = CONTENT_LENGTH
        self.remaining = 0
        self.alive = False

    async def send(self, message: dict[str, Any]) -> None:
        if (message["type"] != "http.response.body" or self.trailers_expected or self.disconnected
                or not self.response_started or self.response_complete):
            return await super().send(message)
        body = message.get("body", b"")
        more = message.get("more_body", False)
        out = []
        if not self.headers_sent:
            head = self.request_head
            try:
                resp = render_response_head(self.status, self._final_headers(body, more),
                                            reason=_reason(self.status), request_method=head.method,
                                            request_version=head.http_version, keep_alive=head.keep_alive)
            except ValueError as exc:
                raise RuntimeError(str(exc)) from None
            out.append(resp.data)
            self.framing, self.remaining, self.alive = resp.framing, resp.content_length, resp.keep_alive
            self.headers_sent = True
        if body and not self.head and self.status not in _NO_BODY_STATUS:
            if self.framing is CONTENT_LENGTH:
                self.remaining -= len(body)
                if self.remaining < 0:
                    raise RuntimeError("Too much data for declared Content-Length")
                out.append(body)
            elif self.framing is CHUNKED:
                out.append(chunk(body))
            else:
                out.append(body)
            self.bytes_sent += len(body)
        if not more:
            if self.framing is CONTENT_LENGTH and self.remaining:
                raise RuntimeError("Too little data for declared Content-Length")
            if self.framing is CHUNKED:
                out.append(LAST_CHUNK)
            self.response_complete = True
        protocol = self.protocol
        protocol.write(out[0] if len(out) == 1 else b"".join(out))
        if more and protocol.write_paused:
            await protocol.drain()

    def _final_headers(self, body: bytes, more: bool) -> list[tuple[bytes, bytes]]:
        headers = self.response_headers
        has_length = has_server = has_date = has_coding = False
        for name, _ in headers:
            if name == b"content-length":
                has_length = True
            elif name == b"transfer-encoding":
                has_coding = True
            elif name == b"server":
                has_server = True
            elif name == b"date":
                has_date = True
        final = [(n, v) for n, v in self.protocol.ctx.default_headers
                 if not ((n == b"server" and has_server) or (n == b"date" and has_date))]
        if has_coding:
            final.extend(h for h in headers if h[0] != b"transfer-encoding")
        else:
            final.extend(headers)
        if self.status not in _NO_BODY_STATUS and not has_length and not more:
            final.append((b"content-length", b"%d" % len(body)))
        if not self.protocol.keep_alive:
            final.append((b"connection", b"close"))
        return final


class FastHttpProtocol(HttpProtocol):
    # Request body bytes the running fast cycle still expects.
    body_left = 0
    # Bytes that arrived after a fast request (pipelining): replayed once its
    # response is done, as h11 would hold them (PAUSED) meanwhile.
    pending = b""

    def data_received(self, data: bytes) -> None:
        cycle = self.cycle
        if cycle is not None:
            if type(cycle) is FastCycle:
                self._fast_data(cycle, data)
                return
        elif (self.drain_left < 0 and not self.over_limit and self.conn.their_state is h11.IDLE
                and not self.conn._receive_buffer and not self.ctx.shutting_down):
            head = parse_request_head(data, self.ctx.max_incomplete_event_size)
            if (head is not None and head.framing is CONTENT_LENGTH and head.target[:1] == b"/"
                    and not (self.max_body and head.content_length > self.max_body)
                    and not any(n == b"te" for n, _ in head.headers)):
                self._cancel_timer()
                self.reading_head = False
                cycle = FastCycle(self, self.build_scope(head, "http"), head)
                self.body_left = head.content_length
                cycle.body_complete = not head.content_length
                self.cycle = cycle
                cycle.task = self.loop.create_task(cycle.run(self.ctx.app))
                if head.consumed < len(data):
                    self._fast_data(cycle, data[head.consumed:])
                return
        super().data_received(data)

    def _fast_data(self, cycle: FastCycle, data: bytes) -> None:
        left = self.body_left
        if left:
            piece, data = (data, b"") if len(data) <= left else (data[:left], data[left:])
            self.body_left = left = left - len(piece)
            pause = cycle.feed(piece)
            if not left:
                cycle.feed_end()
            elif pause:
                self._pause_reading()
        if data:
            self.pending += data
            self._pause_reading()

    def cycle_done(self, cycle: Any) -> None:
        if type(cycle) is not FastCycle:
            return super().cycle_done(cycle)
        self.cycle = None
        self.ctx.count_request()
        if self.closed:
            return
        if (not (self.keep_alive and cycle.alive and cycle.response_complete) or self.body_left
                or self.ctx.shutting_down):
            self._close()  # (the h11 path drains an unread body; the prototype closes)
            return
        # As the h11 path: keep-alive 0 closes when idle, not "off", and no
        # pipelined request is taken while the client is not reading.
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_later(self.ctx.keep_alive_timeout, self._close)
        if self.write_paused:
            self.next_waits_for_writer = True
            return
        self._resume_reading()
        self._replay()

    def resume_writing(self) -> None:
        waiting = self.next_waits_for_writer
        super().resume_writing()
        if waiting and not self.closed and self.cycle is None:
            self._replay()

    def _replay(self) -> None:
        pending = self.pending
        if pending:
            self.pending = b""
            self.data_received(pending)


def install() -> None:
    """Make the worker build FastHttpProtocol (it imports the class per start)."""
    http11.HttpProtocol = FastHttpProtocol  # type: ignore[misc]


if __name__ == "__main__":
    import sys

    from pounce.core.cli import run_cli

    install()
    sys.exit(run_cli())
