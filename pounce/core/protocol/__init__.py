"""The protocol layer: what HTTP and WebSocket mean, without any I/O.

Every module here is sans-I/O in the way h11 is: bytes go in, events come
out; calls describing a response come in, bytes come out. Nothing here
imports asyncio, touches a socket or arms a timer, and nothing here imports
the ``asgi`` or ``transport`` layers above it, so each protocol can be
driven, and tested, with bytes alone.

- :mod:`.events`: the events every protocol emits (one request head class,
  body data, end of message), whichever parser produced them.
- :mod:`.http11`: an HTTP/1.1 server connection (h1fast for common heads,
  h11 for the rest, one response writer for both).
- :mod:`.h1fast`: the fast request-head parser.
- :mod:`.responses`: status reasons and every response head pounce renders.
- :mod:`.websocket`: the WebSocket handshake and frame session (wsproto).
"""
