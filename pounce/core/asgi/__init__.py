"""The ASGI layer: the app's side of a connection, with no socket and no parser.

It turns protocol events into ASGI messages and ASGI messages into calls on
the connection that owns them: :mod:`.stream` is the one ``http`` request
cycle that every protocol drives (HTTP/1.1 one at a time, a multiplexed
protocol many at once), :mod:`.websocket` the ``websocket`` phases,
:mod:`.scope` builds scopes (with :mod:`.proxy` trust), :mod:`.lifespan`
runs the lifespan protocol and :mod:`.appload` imports apps. It may import
:mod:`pounce.core.protocol`, never :mod:`pounce.core.transport`.
"""
