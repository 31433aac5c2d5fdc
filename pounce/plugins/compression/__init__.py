"""Built-in plugin ``compression``: zstd, br and gzip responses.

Off until ``[compression] enabled = true`` (``--compression``): disabled, it
installs no wrapper at all, so it costs nothing. Enabled, it wraps the app
(see :mod:`.middleware` for what is compressed and when, :mod:`.codecs` for
the three codings and where each comes from, :mod:`.negotiate` for
``Accept-Encoding``). The static plugin's responses are never compressed on
the fly: its wrapper is outside this one, and it serves precompressed
siblings instead.

pounce never decompresses request bodies: a ``Content-Encoding`` on a request
reaches the app as it came.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pounce import hookimpl
from pounce.core.errors import ConfigError
from pounce.core.options import OptionValueError
from pounce.plugins.compression.codecs import INSTALL_HINT, Codec, build

if TYPE_CHECKING:
    from pounce.core.config import ServerConfig

name = "compression"

logger = logging.getLogger("pounce.compression")

CODINGS = ("zstd", "br", "gzip")
DEFAULT_TYPES = (
    "text/*", "application/json", "application/*+json", "application/x-ndjson",
    "application/javascript", "application/x-javascript", "application/ecmascript",
    "application/xml", "application/*+xml", "image/svg+xml", "application/wasm",
)


def _check_algorithms(value: tuple[str, ...]) -> None:
    if not value or any(v not in CODINGS for v in value) or len(set(value)) != len(value):
        raise OptionValueError("a non-empty list of zstd, br, gzip, each once")


def _check_types(value: tuple[str, ...]) -> None:
    for pattern in value:
        kind, slash, sub = pattern.partition("/")
        if (not slash or not kind or "*" in kind or not sub or "*" in sub[1:]
                or not pattern.isascii() or " " in pattern):
            raise OptionValueError('a list of media types: "type/sub", "type/*" or "type/*+suffix"')


@hookimpl
def pounce_add_options(options: Any) -> None:
    add = options.add
    add("compression", "enabled", "bool", False,
        "Compress responses for clients that accept zstd, br or gzip.", cli="--compression")
    add("compression", "algorithms", "list", list(CODINGS),
        "Codings in the server's order of preference; ones not installed are skipped.",
        cli="--compression-algorithms", metavar="LIST", validator=_check_algorithms)
    add("compression", "min_size", "int", 500,
        "Bodies smaller than this many bytes are sent uncompressed.",
        cli="--compression-min-size", min=0, metavar="BYTES")
    add("compression", "content_types", "list", list(DEFAULT_TYPES),
        "Media types that are compressed (type/sub, type/*, type/*+suffix); others never are.",
        metavar="LIST", validator=_check_types)
    add("compression", "gzip_level", "int", 6, "zlib level for gzip (1 fastest, 9 smallest).",
        min=1, max=9)
    add("compression", "br_quality", "int", 4, "Brotli quality (0 fastest, 11 smallest).",
        min=0, max=11)
    add("compression", "zstd_level", "int", 3, "zstd level (1 fastest, 19 smallest).", min=1, max=19)


def installed_codecs(config: ServerConfig) -> tuple[list[Codec], list[str]]:
    """The installed codecs in the configured order, and the missing ones."""
    section = config.section("compression")
    levels = {"gzip": section["gzip_level"], "br": section["br_quality"], "zstd": section["zstd_level"]}
    found: list[Codec] = []
    missing: list[str] = []
    for coding in section["algorithms"]:
        codec = build(coding, levels)
        if codec is None:
            missing.append(coding)
        else:
            found.append(codec)
    return found, missing


@hookimpl
def pounce_configure(config: ServerConfig) -> None:
    if not config.get("compression", "enabled"):
        return
    found, missing = installed_codecs(config)
    if not found:
        hints = "; ".join(f"{m}: {INSTALL_HINT[m]}" for m in missing if m in INSTALL_HINT)
        raise ConfigError(f"[compression] algorithms: expected at least one installed coding, "
                          f"found none of {', '.join(missing)} ({hints})")


@hookimpl
def pounce_wrap_app(config: ServerConfig, app: Any) -> Any:
    if not config.get("compression", "enabled"):
        return None  # disabled: no wrapper, no cost
    from pounce.plugins.compression.middleware import Compression, TypeFilter

    found, _ = installed_codecs(config)
    section = config.section("compression")
    return Compression(app, found, section["min_size"], TypeFilter(tuple(section["content_types"])))


@hookimpl
def pounce_banner(config: ServerConfig) -> str | None:
    if not config.get("compression", "enabled"):
        return None
    found, missing = installed_codecs(config)
    line = "compression: " + ", ".join(c.name for c in found)
    if missing:
        line += " (not installed: " + ", ".join(f"{m}, {INSTALL_HINT.get(m, '')}" for m in missing) + ")"
    return line


@hookimpl
def pounce_check_warnings(config: ServerConfig) -> list[str] | None:
    if not config.get("compression", "enabled"):
        return None
    _, missing = installed_codecs(config)
    return [f"[compression] algorithms: {m} is not installed ({INSTALL_HINT[m]}); skipped"
            for m in missing if m in INSTALL_HINT] or None
