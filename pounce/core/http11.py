"""Compatibility: HTTP/1.1 now lives in three layers.

The sans-I/O connection is :mod:`pounce.core.protocol.http11`, the ASGI
request cycle :mod:`pounce.core.asgi.stream` and the asyncio protocol
:mod:`pounce.core.transport.http`. ``ClientDisconnected`` (the exception an
app's ``send`` raises once the client is gone) is importable from here, as
the plugin guide has always said, and from :mod:`pounce` itself.
"""

from pounce.core.asgi.stream import ClientDisconnected
from pounce.core.transport.http import HttpProtocol

__all__ = ["ClientDisconnected", "HttpProtocol"]
