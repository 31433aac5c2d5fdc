"""The transport layer: asyncio, and only asyncio.

Connections (:mod:`.http`, :mod:`.websocket`) are ``BufferedProtocol``
adapters that feed bytes to a protocol-layer connection and drive ASGI
streams with the events that come back; :mod:`.connection` is their common
base (the read buffer, the timer, flow control, the lingering close) and
:mod:`.context` what a worker's connections share. :mod:`.worker` is one event loop serving
listening sockets, :mod:`.accept` keeps accepting when descriptors run out,
:mod:`.sockets` makes listening sockets, :mod:`.tls` describes TLS
connections, :mod:`.allocator` tunes glibc once per process. It imports
the ``asgi`` and ``protocol`` layers; neither imports it.
"""
