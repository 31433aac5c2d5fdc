"""The ASGI wrapper that answers requests under a mount before the app does.

How a file's bytes leave: a small file (see ``files.SMALL_FILE``) goes as one
``http.response.body`` from memory; a larger one as ``http.response.pathsend``
when the server advertises that extension (pounce's core turns it into
``sendfile``), otherwise in chunks read in a worker thread, so a large read
never holds up the event loop. A byte range goes by pathsend only when the
extension says it takes one (``{"ranges": True}``: the message then carries
``offset`` and ``count``, which the ASGI pathsend extension itself lacks);
otherwise the range is read and sent in chunks like a whole file.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import os
from typing import Any

from pounce.plugins.compression.negotiate import Negotiator
from pounce.plugins.static.conditional import UNSATISFIABLE, if_range_holds, not_modified, parse_range
from pounce.plugins.static.files import (
    FOUND,
    MISS,
    REDIRECT,
    Changed,
    Entry,
    Files,
    Representation,
    file_identity,
)
from pounce.plugins.static.settings import Mount, StaticSettings

logger = logging.getLogger("pounce.static")

CHUNK = 256 * 1024
PATHSEND = "http.response.pathsend"

_WANTED = frozenset({b"accept-encoding", b"if-none-match", b"if-modified-since", b"range", b"if-range"})
_ALLOW = ((b"allow", b"GET, HEAD"),)
_VARY = (b"vary", b"Accept-Encoding")
_TEXT = (b"content-type", b"text/plain; charset=utf-8")


async def _plain(send: Any, status: int, text: bytes, extra: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [_TEXT, (b"content-length", b"%d" % len(text)), *extra]})
    await send({"type": "http.response.body", "body": text})


class StaticFiles:
    """``StaticFiles(app, settings, root_path)``: files first, then ``app``."""

    def __init__(self, app: Any, settings: StaticSettings, root_path: str = "") -> None:
        self.app = app
        # Mounts as the scope's path spells them (it includes root_path).
        self.mounts = tuple(Mount(root_path + m.prefix, m.root, m.cache_control) for m in settings.mounts)
        self.starts = tuple(m.prefix or "/" for m in self.mounts)
        self.cache_headers = {m.prefix: [(b"cache-control", m.cache_control.encode("latin-1"))]
                              if m.cache_control else [] for m in self.mounts}
        self.fallthrough = settings.fallthrough
        self.files = Files(settings.index, settings.dotfiles, settings.follow_symlinks, settings.precompressed)
        self._negotiators: dict[tuple[str, ...], Negotiator] = {}
        if not mimetypes.inited:  # now, once, not lazily inside some thread's first request
            mimetypes.init()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if path.startswith(self.starts):
                for mount in self.mounts:
                    relative = mount.relative(path)
                    if relative is not None:
                        if await self._serve(mount, relative, scope, send):
                            return
                        break
        await self.app(scope, receive, send)

    async def _serve(self, mount: Mount, relative: str, scope: dict[str, Any], send: Any) -> bool:
        """Answer the request; False hands it to the app (a miss that falls through)."""
        for _ in range(2):
            kind, entry = self.files.find(mount, relative)
            if kind == MISS:
                if self.fallthrough:
                    return False
                await _plain(send, 404, b"not found\n")
                return True
            method = scope["method"]
            if method != "GET" and method != "HEAD":
                await _plain(send, 405, b"method not allowed\n", _ALLOW)
                return True
            if kind == REDIRECT:
                await self._redirect(scope, send)
                return True
            assert kind == FOUND and entry is not None
            try:
                await self._send_file(mount, entry, scope, send, method == "HEAD")
                return True
            except Changed:
                self.files.forget(entry)
                continue  # replaced while we looked: once more, from the stat
        await _plain(send, 503, b"file changing, try again\n", ((b"retry-after", b"1"),))
        return True

    async def _redirect(self, scope: dict[str, Any], send: Any) -> None:
        """``/docs`` -> ``./docs/``: relative, so it holds behind any proxy
        prefix; ``./`` so a segment like ``a:b`` cannot read as a scheme."""
        raw = scope.get("raw_path") or scope["path"].encode("utf-8")
        location = b"./" + raw.rsplit(b"/", 1)[-1] + b"/"
        if scope.get("query_string"):
            location += b"?" + scope["query_string"]
        await _plain(send, 301, b"moved permanently\n", ((b"location", location),))

    def _negotiator(self, codings: tuple[str, ...]) -> Negotiator:
        negotiator = self._negotiators.get(codings)
        if negotiator is None:
            negotiator = self._negotiators[codings] = Negotiator(codings)
        return negotiator

    async def _send_file(self, mount: Mount, entry: Entry, scope: dict[str, Any], send: Any,
                         head: bool) -> None:
        request: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            if name in _WANTED:
                request[name] = request[name] + b", " + value if name in request else value
        files = self.files
        rep = entry.file
        assert rep is not None
        tail = self.cache_headers[mount.prefix]
        if files.precompressed:
            codings = files.codings(entry)
            if codings:
                tail = tail + [_VARY]
                accept = request.get(b"accept-encoding")
                if accept:
                    coding = self._negotiator(codings)(accept)
                    if coding is not None:
                        rep = files.variant(entry, coding) or rep
        if not_modified(request, rep.etag, rep.mtime):
            await send({"type": "http.response.start", "status": 304, "headers": rep.validators + tail})
            await send({"type": "http.response.body", "body": b""})
            return
        headers = rep.headers + tail
        status, first, last = 200, 0, rep.size - 1
        range_header = request.get(b"range")
        if range_header is not None and not head:
            if_range = request.get(b"if-range")
            if if_range is None or if_range_holds(if_range, rep.etag, rep.mtime):
                wanted = parse_range(range_header, rep.size)
                if wanted is UNSATISFIABLE:
                    await _plain(send, 416, b"range not satisfiable\n",
                                 ((b"content-range", b"bytes */%d" % rep.size),))
                    return
                if wanted is not None:
                    status, (first, last) = 206, wanted
                    headers.append((b"content-range", b"bytes %d-%d/%d" % (first, last, rep.size)))
        length = last - first + 1
        headers.append((b"content-length", b"%d" % length))
        start = {"type": "http.response.start", "status": status, "headers": headers}
        if head:
            await send(start)
            await send({"type": "http.response.body", "body": b""})
            return
        body = files.read_small(rep)
        if body is not None:
            await send(start)
            await send({"type": "http.response.body", "body": body if status == 200 else body[first:last + 1]})
            return
        extensions = scope.get("extensions")
        pathsend = extensions.get(PATHSEND) if extensions else None
        if pathsend is not None and (status == 200 or pathsend.get("ranges")):
            message: dict[str, Any] = {"type": PATHSEND, "path": rep.path}
            if status == 206:
                message["offset"] = first
                message["count"] = length
            await send(start)
            await send(message)
            return
        await _stream(rep, start, first, length, send)


async def _stream(rep: Representation, start: dict[str, Any], offset: int, length: int, send: Any) -> None:
    """Send ``length`` bytes from ``offset`` in chunks read in a thread."""
    fd = os.open(rep.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    pending: asyncio.Future[bytes] | None = None
    try:
        if file_identity(os.fstat(fd)) != rep.identity:
            raise Changed
        await send(start)
        loop = asyncio.get_running_loop()
        left = length
        while left > 0:
            pending = loop.run_in_executor(None, os.pread, fd, min(CHUNK, left), offset)
            data = await pending
            pending = None
            if not data:
                # Truncated while being sent: the length promised cannot be
                # kept, and returning mid-response makes the core close the
                # connection, which is the honest end.
                logger.warning("%s shrank while being sent; connection closed", rep.path)
                return
            offset += len(data)
            left -= len(data)
            await send({"type": "http.response.body", "body": data, "more_body": left > 0})
    finally:
        if pending is not None and not pending.done():
            # Cancelled mid-read: the thread still uses fd; close it after.
            pending.add_done_callback(lambda _: os.close(fd))
        else:
            os.close(fd)
