"""Complete responses written together at the end of a loop turn.

Under load one turn of the event loop serves many connections: the selector
reports sixty sockets readable, and each read ends in a response. Written as
it is made, each response wakes the client anew: on loopback (or a fast LAN
with a client that keeps up) the client's thread goes back to sleep between
two of them, and every wake-up is a reschedule, on a virtual machine an
interrupt between cores, paid by the server inside its ``send``. On the
benchmark machine those wake-ups were about a sixth of a hello-world
request's CPU time, half of its ``send``. Held until the turn's reads are done and then written back to back,
the responses find the client awake after the first one, and the server does
the same work with fewer wake-ups (hello world at 64 connections: about a
quarter more requests a second on one core; see ``docs/performance.md``).

What is held, and for how long:

- a complete response written in one piece (head and whole body), and the
  pieces of a response that goes on while they add up to less than
  ``HOLD_LIMIT`` (512 KiB): a stream's pieces of one turn then leave in one
  send, and past the limit they are written at once, so the transport's
  flow control still paces an app that writes faster than the client reads;
- on asyncio's own loops, only while other callbacks of this turn are still
  waiting to run (``loop._ready``, read once per write: its length is how
  much of the turn is left), or other request tasks' first steps of the
  batch being run (:class:`~pounce.core.asgi.eager.TaskStarter`). A lone
  request (one connection, a quiet server) is written at once, as before:
  no added latency where nothing is gained;
- on other loops (uvloop), whose queue cannot be seen, while the worker has
  more than one connection open;
- until a callback scheduled with ``call_soon`` when the first response is
  held: it runs at the start of the next turn, before that turn's reads.

A connection writes what it holds before anything else it writes, before it
closes, and before it hands its transport to another protocol
(:meth:`~pounce.core.transport.connection.Connection.write_unsent`), so the
order of bytes on a connection never changes. A connection lost meanwhile
drops what it held, as the transport would have.
"""

from __future__ import annotations

import asyncio
import collections
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pounce.core.asgi.eager import TaskStarter

__all__ = ["TurnWriter"]


class Holder(Protocol):
    """A connection holding a response (``Connection`` in this layer)."""

    def write_unsent(self) -> None: ...


class TurnWriter:
    """The worker's held responses, for one event loop."""

    __slots__ = ("loop", "_ready", "_running", "_connections", "held")

    def __init__(self, loop: asyncio.AbstractEventLoop, connections: set[Any], tasks: TaskStarter) -> None:
        self.loop = loop
        # asyncio's queue of callbacks still to run (this turn's, then the
        # next's): a private attribute, read only where it is what we expect.
        ready = getattr(loop, "_ready", None) if isinstance(loop, asyncio.BaseEventLoop) else None
        self._ready: collections.deque[Any] | None = ready if isinstance(ready, collections.deque) else None
        # The request tasks' first steps still to run in this turn's batch
        # (one handle on the ready queue for all of them: see TaskStarter).
        self._running = tasks.running
        self._connections = connections
        self.held: list[Holder] = []

    def alone(self) -> bool:
        """True when nothing else is being served in this turn: write now."""
        ready = self._ready
        if ready is not None:
            return not ready and not self._running
        return len(self._connections) < 2

    def hold(self, connection: Holder) -> None:
        held = self.held
        if not held:
            self.loop.call_soon(self.flush)
        held.append(connection)

    def flush(self) -> None:
        held = self.held
        self.held = []
        for connection in held:
            connection.write_unsent()
