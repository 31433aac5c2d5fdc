"""From a URL path under a mount to a file on disk, and what is known about it.

Safe by construction: a URL path is split into segments and refused (a miss,
never an error page that says why) when any segment is ``.`` or ``..``, starts
with a dot (unless dotfiles are allowed), or holds a backslash or NUL. The
path is percent-decoded before it gets here, so ``%2e%2e`` arrives as ``..``
and is refused like it. Segments never contain ``/``, so nothing can make the
joined path absolute. Without ``follow_symlinks`` the file's real path must
lie under the mount's real root, so a symlink may point anywhere inside the
mount but nowhere outside it. Only regular files are served: a directory
without its index, a FIFO or a device is a miss.

Cheap per request: one ``stat`` of the path (plus one of a precompressed
sibling when one is chosen). What follows from that stat (the real-path
check, the content type, the ETag and Last-Modified, which siblings exist,
and for small files the bytes themselves) is kept in a per-worker LRU of
:class:`Entry` objects, reused while the file's identity (inode, device,
size, mtime) is unchanged and rebuilt as soon as it is not.
"""

from __future__ import annotations

import email.utils
import mimetypes
import os
import stat
import time
from collections import OrderedDict

from pounce.plugins.static.settings import Mount

# Files up to this size are read whole, on the event loop (a page-cache read
# of a few KiB costs less than a hop to a thread), and kept in memory.
SMALL_FILE = 64 * 1024
# Memory for small files' bytes per worker, and how many files are remembered.
BODY_BUDGET = 8 * 1024 * 1024
MAX_ENTRIES = 4096
# How long "no precompressed sibling" is believed before looking again.
SIBLING_RECHECK = 1.0

# (coding, file suffix), the static plugin's preference when the client takes several.
VARIANTS = (("zstd", ".zst"), ("br", ".br"), ("gzip", ".gz"))
_SUFFIX = dict(VARIANTS)

MISS, FOUND, REDIRECT = 0, 1, 2


class Changed(Exception):
    """A file changed between its stat and its opening: look it up again."""

_TEXT_LIKE = ("application/javascript", "application/json", "application/xml", "image/svg+xml",
              "application/manifest+json")
# A file asked for by its own name is sent as it is: foo.tar.gz is an archive,
# not a tar with Content-Encoding.
_ENCODED_TYPES = {"gzip": "application/gzip", "br": "application/x-brotli", "bzip2": "application/x-bzip2",
                  "xz": "application/x-xz", "compress": "application/x-compress"}


def split_safe(relative: str, dotfiles: bool) -> tuple[str, bool] | None:
    """``"/css/site.css"`` -> ``("css/site.css", False)``; the bool says the
    path ended with a slash. None when a segment is refused (see the module)."""
    if "\x00" in relative or "\\" in relative:
        return None
    out = []
    for part in relative.split("/"):
        if not part:
            continue  # the leading one, a trailing one, and doubled slashes
        if part[0] == ".":
            if not dotfiles or part == "." or part == "..":
                return None
        out.append(part)
    return "/".join(out), relative.endswith("/")


def content_type(path: str) -> bytes:
    kind, encoding = mimetypes.guess_type(path, strict=False)
    if encoding is not None:
        kind = _ENCODED_TYPES.get(encoding)
    if kind is None:
        return b"application/octet-stream"
    if kind.startswith("text/") or kind in _TEXT_LIKE:
        kind += "; charset=utf-8"
    return kind.encode("latin-1")


def file_identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns)


class Representation:
    """One sequence of bytes on disk: the file itself, or one precompressed
    sibling. ``headers`` are those that depend only on the file."""

    __slots__ = ("path", "identity", "size", "mtime", "etag", "last_modified", "headers", "validators", "body")

    def __init__(self, path: str, st: os.stat_result, base_headers: list[tuple[bytes, bytes]],
                 tag: str = "") -> None:
        self.path = path
        self.identity = file_identity(st)
        self.size = st.st_size
        self.mtime = int(st.st_mtime)
        # Strong: it changes whenever the bytes can have (mtime or size);
        # each sibling has its own, as each is a different representation.
        self.etag = b'"%x-%x%s"' % (st.st_mtime_ns, st.st_size, tag.encode("ascii"))
        self.last_modified = email.utils.formatdate(st.st_mtime, usegmt=True).encode("ascii")
        # A 304 carries the validators, not the representation's metadata.
        self.validators = [(b"etag", self.etag), (b"last-modified", self.last_modified)]
        self.headers = base_headers + self.validators + [(b"accept-ranges", b"bytes")]
        self.body: bytes | None = None


class Entry:
    """A requested file: its representation, its siblings, whether it may be served."""

    __slots__ = ("root", "identity", "allowed", "file", "variants", "checked_at")

    def __init__(self, root: str, identity: tuple[int, int, int, int], allowed: bool) -> None:
        self.root = root
        self.identity = identity
        self.allowed = allowed
        self.file: Representation | None = None
        # coding -> sibling, or None when it did not exist at checked_at.
        self.variants: dict[str, Representation | None] = {}
        self.checked_at = 0.0


class Files:
    """The per-worker view of the mounted directories."""

    def __init__(self, index: str, dotfiles: bool, follow_symlinks: bool, precompressed: bool) -> None:
        self.index = index
        self.dotfiles = dotfiles
        self.follow_symlinks = follow_symlinks
        self.precompressed = precompressed
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._body_bytes = 0

    # -- from a URL path to an entry ------------------------------------------

    def find(self, mount: Mount, relative: str) -> tuple[int, Entry | None]:
        """``(MISS, None)``, ``(REDIRECT, entry)`` for a directory asked for
        without its trailing slash, or ``(FOUND, entry)``."""
        parts = split_safe(relative, self.dotfiles)
        if parts is None:
            return MISS, None
        sub, trailing = parts
        path = mount.root + "/" + sub if sub else mount.root
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            return MISS, None
        kind = FOUND
        if stat.S_ISDIR(st.st_mode):
            if not self.index:
                return MISS, None
            path = path + "/" + self.index
            try:
                st = os.stat(path)
            except (OSError, ValueError):
                return MISS, None
            if not trailing:
                kind = REDIRECT
        elif trailing:
            return MISS, None
        if not stat.S_ISREG(st.st_mode):
            return MISS, None
        entry = self._entry(mount.root, path, st)
        return (kind, entry) if entry.allowed else (MISS, None)

    def _entry(self, root: str, path: str, st: os.stat_result) -> Entry:
        entries = self._entries
        identity = file_identity(st)
        entry = entries.get(path)
        if entry is not None:
            if entry.identity == identity and entry.root is root:
                entries.move_to_end(path)
                return entry
            self._forget(path, entry)
        # Unreadable (permissions) is a miss like a missing file, decided here
        # once rather than as a failed open per request.
        entry = Entry(root, identity, self._inside(root, path) and os.access(path, os.R_OK))
        if entry.allowed:
            entry.file = Representation(path, st, [(b"content-type", content_type(path))])
        entries[path] = entry
        if len(entries) > MAX_ENTRIES:
            self._forget(*entries.popitem(last=False), popped=True)
        return entry

    def _inside(self, root: str, path: str) -> bool:
        """Symlinks may not lead out of the mount unless follow_symlinks."""
        if self.follow_symlinks:
            return True
        real = os.path.realpath(path)
        return real == root or real.startswith(root if root.endswith("/") else root + "/")

    def _forget(self, path: str, entry: Entry, popped: bool = False) -> None:
        if not popped:
            del self._entries[path]
        for rep in (entry.file, *entry.variants.values()):
            if rep is not None and rep.body is not None:
                self._body_bytes -= len(rep.body)

    # -- precompressed siblings ------------------------------------------------

    def codings(self, entry: Entry) -> tuple[str, ...]:
        """The codings this file has a sibling for (looked for again, if there
        were none, at most once per SIBLING_RECHECK)."""
        now = time.monotonic()
        if now - entry.checked_at >= SIBLING_RECHECK:
            entry.checked_at = now
            base = entry.file
            assert base is not None
            for coding, suffix in VARIANTS:
                if entry.variants.get(coding) is None:
                    entry.variants[coding] = self._sibling(entry, base, coding, suffix)
        return tuple(coding for coding, _ in VARIANTS if entry.variants.get(coding) is not None)

    def _sibling(self, entry: Entry, base: Representation, coding: str, suffix: str) -> Representation | None:
        path = base.path + suffix
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            return None
        if not stat.S_ISREG(st.st_mode) or not self._inside(entry.root, path):
            return None
        headers = base.headers[:1] + [(b"content-encoding", coding.encode("ascii"))]
        return Representation(path, st, headers, "-" + suffix[1:])

    def variant(self, entry: Entry, coding: str) -> Representation | None:
        """The sibling for ``coding``, checked against the disk now (it is
        about to be sent and its length must be right); None if it is gone."""
        rep = entry.variants.get(coding)
        if rep is None:
            return None
        try:
            st = os.stat(rep.path)
        except (OSError, ValueError):
            entry.variants[coding] = None
            self._drop_body(rep)
            return None
        if file_identity(st) != rep.identity:
            self._drop_body(rep)
            base = entry.file
            assert base is not None
            fresh = self._sibling(entry, base, coding, _SUFFIX[coding])
            entry.variants[coding] = fresh
            return fresh
        return rep

    # -- small files' bytes ----------------------------------------------------

    def read_small(self, rep: Representation) -> bytes | None:
        """The whole file when it is small, read now if it is not in memory;
        None for a large file. Raises :class:`Changed` when the file on disk
        is no longer the one its headers describe."""
        body = rep.body
        if body is not None or rep.size > SMALL_FILE:
            return body
        try:
            with open(rep.path, "rb", buffering=0) as handle:
                if file_identity(os.fstat(handle.fileno())) != rep.identity:
                    raise Changed
                body = handle.read(SMALL_FILE + 1)
        except OSError:
            raise Changed from None
        if len(body) != rep.size:
            raise Changed
        if self._body_bytes + len(body) <= BODY_BUDGET:
            rep.body = body
            self._body_bytes += len(body)
        return body

    def forget(self, entry: Entry) -> None:
        """Drop what is known about a file that changed under us."""
        base = entry.file
        if base is not None and self._entries.get(base.path) is entry:
            self._forget(base.path, entry)

    def _drop_body(self, rep: Representation) -> None:
        if rep.body is not None:
            self._body_bytes -= len(rep.body)
            rep.body = None
