"""The three codings, each behind the same small interface.

A :class:`Codec` is built once per worker from the config; ``whole(body)``
compresses a complete body in one call, and ``stream()`` returns a fresh
:class:`Stream` for a response sent in several messages: ``chunk(data)``
compresses and *flushes* (so the client can decode everything sent so far:
Server-Sent Events arrive one by one), ``last(data)`` ends the stream.

Memory per stream is the compressor's state, bounded by the window sizes
fixed here: measured as RSS growth per stream with 2 MiB of incompressible
data pushed through each of 100, about 0.25 MiB for gzip and 1.2 MiB for br
(quality 4) and zstd (level 3). The body itself is never held: each message
is compressed and passed on.

zstd comes from the standard library on Python 3.14+ (``compression.zstd``),
else from the ``zstandard`` package (``pip install 'pounce[zstd]'``); br from
``brotli`` (``pip install 'pounce[brotli]'``); gzip is always there.
"""

from __future__ import annotations

import zlib
from types import ModuleType
from typing import Any, Protocol

# Back-references reach this far (256 KiB). The defaults (4 MiB for br, 2 MiB
# for zstd at level 3) cost twice the memory per stream and, on a 1.3 MB JSON
# document, compressed no better (br 14.6% / zstd 6.5% of the size at 1 MiB
# windows, 14.3% / 6.0% at 256 KiB).
BROTLI_LGWIN = 18
ZSTD_WINDOW_LOG = 18


class Stream(Protocol):
    def chunk(self, data: bytes) -> bytes: ...

    def last(self, data: bytes) -> bytes: ...


class Codec(Protocol):
    name: str

    def whole(self, body: bytes) -> bytes: ...

    def stream(self) -> Stream: ...


# -- gzip ---------------------------------------------------------------------


class _GzipStream:
    __slots__ = ("_c",)

    def __init__(self, level: int) -> None:
        self._c = zlib.compressobj(level, zlib.DEFLATED, 31)  # 31: gzip framing, 32 KiB window

    def chunk(self, data: bytes) -> bytes:
        return self._c.compress(data) + self._c.flush(zlib.Z_SYNC_FLUSH)

    def last(self, data: bytes) -> bytes:
        return self._c.compress(data) + self._c.flush(zlib.Z_FINISH)


class Gzip:
    name = "gzip"

    def __init__(self, level: int) -> None:
        self.level = level

    def whole(self, body: bytes) -> bytes:
        c = zlib.compressobj(self.level, zlib.DEFLATED, 31)
        return c.compress(body) + c.flush()

    def stream(self) -> Stream:
        return _GzipStream(self.level)


# -- br -----------------------------------------------------------------------


class _BrotliStream:
    __slots__ = ("_c",)

    def __init__(self, brotli: ModuleType, quality: int) -> None:
        self._c = brotli.Compressor(quality=quality, lgwin=BROTLI_LGWIN)

    def chunk(self, data: bytes) -> bytes:
        return self._c.process(data) + self._c.flush()

    def last(self, data: bytes) -> bytes:
        return self._c.process(data) + self._c.finish()


class Brotli:
    name = "br"

    def __init__(self, brotli: ModuleType, quality: int) -> None:
        self._brotli = brotli
        self.quality = quality

    def whole(self, body: bytes) -> bytes:
        result: bytes = self._brotli.compress(body, quality=self.quality, lgwin=BROTLI_LGWIN)
        return result

    def stream(self) -> Stream:
        return _BrotliStream(self._brotli, self.quality)


# -- zstd: the standard library's module (3.14+) --------------------------------


class _StdlibZstdStream:
    __slots__ = ("_c", "_mode")

    def __init__(self, zstd: ModuleType, options: dict[Any, int]) -> None:
        self._c = zstd.ZstdCompressor(options=options)
        self._mode = zstd.ZstdCompressor

    def chunk(self, data: bytes) -> bytes:
        out: bytes = self._c.compress(data, self._mode.FLUSH_BLOCK)
        return out

    def last(self, data: bytes) -> bytes:
        out: bytes = self._c.compress(data, self._mode.FLUSH_FRAME)
        return out


class StdlibZstd:
    """zstd through ``compression.zstd`` (or a module with its API)."""

    name = "zstd"

    def __init__(self, zstd: ModuleType, level: int) -> None:
        self._zstd = zstd
        params = zstd.CompressionParameter
        self._options = {params.compression_level: level, params.window_log: ZSTD_WINDOW_LOG}
        # One compressor per worker for whole bodies: each call ends its own
        # frame, and nothing awaits between the two halves of a call.
        self._whole = zstd.ZstdCompressor(options=self._options)

    def whole(self, body: bytes) -> bytes:
        c = self._whole
        c.set_pledged_input_size(len(body))  # the frame says its size, as zstandard's does
        out: bytes = c.compress(body, self._zstd.ZstdCompressor.FLUSH_FRAME)
        return out

    def stream(self) -> Stream:
        return _StdlibZstdStream(self._zstd, self._options)


# -- zstd: the zstandard package (before 3.14) ---------------------------------


class _ZstandardStream:
    __slots__ = ("_c", "_block")

    def __init__(self, zstandard: ModuleType, params: Any) -> None:
        # A context per stream: zstandard's compressobj objects made from one
        # ZstdCompressor share its context, and streams interleave.
        self._c = zstandard.ZstdCompressor(compression_params=params).compressobj()
        self._block = zstandard.COMPRESSOBJ_FLUSH_BLOCK

    def chunk(self, data: bytes) -> bytes:
        out: bytes = self._c.compress(data) + self._c.flush(self._block)
        return out

    def last(self, data: bytes) -> bytes:
        out: bytes = self._c.compress(data) + self._c.flush()
        return out


class Zstandard:
    name = "zstd"

    def __init__(self, zstandard: ModuleType, level: int) -> None:
        self._zstandard = zstandard
        self._params = zstandard.ZstdCompressionParameters.from_level(level, window_log=ZSTD_WINDOW_LOG)
        self._whole = zstandard.ZstdCompressor(compression_params=self._params)

    def whole(self, body: bytes) -> bytes:
        out: bytes = self._whole.compress(body)
        return out

    def stream(self) -> Stream:
        return _ZstandardStream(self._zstandard, self._params)


# -- what this interpreter has ----------------------------------------------------

INSTALL_HINT = {"zstd": "pip install 'pounce[zstd]'", "br": "pip install 'pounce[brotli]'"}


def zstd_module() -> tuple[str, ModuleType] | None:
    """``("stdlib", compression.zstd)``, ``("zstandard", zstandard)`` or None."""
    try:
        from compression import zstd  # type: ignore[import-not-found]

        return "stdlib", zstd
    except ImportError:
        pass
    try:
        import zstandard  # type: ignore[import-not-found]

        return "zstandard", zstandard
    except ImportError:
        return None


def brotli_module() -> ModuleType | None:
    try:
        import brotli  # type: ignore[import-not-found]

        return brotli  # type: ignore[no-any-return]
    except ImportError:
        return None


def build(name: str, levels: dict[str, int]) -> Codec | None:
    """The codec for ``name`` at its configured level, or None when the
    module it needs is not installed."""
    if name == "gzip":
        return Gzip(levels["gzip"])
    if name == "br":
        brotli = brotli_module()
        return Brotli(brotli, levels["br"]) if brotli is not None else None
    if name == "zstd":
        found = zstd_module()
        if found is None:
            return None
        kind, module = found
        return StdlibZstd(module, levels["zstd"]) if kind == "stdlib" else Zstandard(module, levels["zstd"])
    raise ValueError(f"unknown coding {name!r}")
