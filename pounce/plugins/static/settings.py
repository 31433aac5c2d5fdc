"""The ``[static]`` section, checked and turned into :class:`StaticSettings`.

A mount is ``"/prefix" = "directory"``, or a table for a mount that needs its
own ``Cache-Control``: ``"/assets" = { dir = "dist", cache_control = "..." }``.
Everything that can be wrong with a mount (a prefix that is not a clean URL
path, a directory that does not exist) is a one-line ``ConfigError`` naming
where the value came from, at startup and under ``pounce --check``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pounce.core.errors import ConfigError

if TYPE_CHECKING:
    from pounce.core.config import ServerConfig

_MOUNT_KEYS = ("dir", "cache_control")
_CLI = {"mounts": "--static", "cache_control": "--static-cache-control", "index": "--static-index",
        "precompressed": "--static-precompressed", "follow_symlinks": "--static-follow-symlinks",
        "fallthrough": "--static-fallthrough", "dotfiles": "--static-dotfiles"}


@dataclass(frozen=True)
class Mount:
    """One URL prefix served from one directory.

    ``prefix`` has no trailing slash (``""`` for a mount at ``/``); ``root`` is
    the directory's real path, against which every file's real path is
    checked when symlinks may not leave it.
    """

    prefix: str
    root: str
    cache_control: str

    def relative(self, path: str) -> str | None:
        """The part of ``path`` under this mount (``""`` or ``"/..."``), or
        None when ``path`` is not under it (``/static`` does not own
        ``/staticky``)."""
        prefix = self.prefix
        if not path.startswith(prefix):
            return None
        rest = path[len(prefix):]
        if rest and rest[0] != "/":
            return None
        return rest


@dataclass(frozen=True)
class StaticSettings:
    mounts: tuple[Mount, ...]
    index: str
    precompressed: bool
    follow_symlinks: bool
    fallthrough: bool
    dotfiles: bool


def where(config: ServerConfig, key: str) -> str:
    """How to name ``[static] key`` in an error: the file, the environment
    variable or the flag it came from."""
    origin = config.origin("static", key)
    if origin == "cli":
        return _CLI.get(key, f"[static] {key}")
    if origin == "env":
        return f"environment POUNCE_STATIC_{key.upper()}"
    if origin == "override":
        return f"override static_{key}"
    if origin == "default":
        return f"[static] {key}"
    return f"{origin}: [static] {key}"


def _check_prefix(prefix: str) -> str | None:
    """Why ``prefix`` is not a clean URL path prefix, or None."""
    if not prefix.startswith("/"):
        return "a URL path starting with /"
    segments = prefix.strip("/").split("/") if prefix.strip("/") else []
    for segment in segments:
        if segment in ("", ".", ".."):
            return "a URL path without empty, . or .. segments"
    if any(c in prefix for c in "?#\\\x00") or any(ord(c) < 32 for c in prefix):
        return "a URL path without ?, #, backslashes or control characters"
    return None


def load_settings(config: ServerConfig) -> StaticSettings:
    """Check the section and resolve every mount's directory."""
    section = config.section("static")
    default_cache = section.get("cache_control", "")
    index = section.get("index", "")
    if "/" in index or "\\" in index or index in (".", ".."):
        raise ConfigError(f"{where(config, 'index')}: expected a file name (no slashes), found {index!r}")
    raw = section.get("mounts") or {}
    mounts: list[Mount] = []
    seen: dict[str, str] = {}
    for prefix, value in raw.items():
        label = where(config, "mounts")
        directory, cache_control = _mount_value(label, prefix, value, default_cache)
        problem = _check_prefix(prefix)
        if problem:
            raise ConfigError(f"{label}: expected {problem} as a mount prefix, found {prefix!r}")
        normal = prefix.rstrip("/")
        if normal in seen:
            raise ConfigError(f"{label}: expected each prefix once, found {prefix!r} and {seen[normal]!r}")
        seen[normal] = prefix
        if not directory:
            raise ConfigError(f"{label}: expected a directory for {prefix!r}, found an empty string")
        path = os.path.abspath(os.path.expanduser(directory))
        if not os.path.isdir(path):
            why = "not a directory" if os.path.exists(path) else "no such directory"
            raise ConfigError(f"{label}: expected an existing directory for {prefix!r}, "
                              f"found {directory!r} ({why})")
        if any(ord(c) < 32 or ord(c) == 127 for c in cache_control):
            raise ConfigError(f"{label}: expected a Cache-Control value without control characters "
                              f"for {prefix!r}, found {cache_control!r}")
        mounts.append(Mount(normal, os.path.realpath(path), cache_control))
    # Longest prefix first: /static/img is asked before /static.
    mounts.sort(key=lambda m: len(m.prefix), reverse=True)
    return StaticSettings(
        mounts=tuple(mounts),
        index=index,
        precompressed=bool(section.get("precompressed", True)),
        follow_symlinks=bool(section.get("follow_symlinks", False)),
        fallthrough=bool(section.get("fallthrough", True)),
        dotfiles=bool(section.get("dotfiles", False)),
    )


def _mount_value(label: str, prefix: str, value: Any, default_cache: str) -> tuple[str, str]:
    if isinstance(value, str):
        return value, default_cache
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(_MOUNT_KEYS))
        if unknown:
            raise ConfigError(f"{label}: expected the keys dir and cache_control for {prefix!r}, "
                              f"found {unknown[0]!r}")
        directory = value.get("dir")
        cache_control = value.get("cache_control", default_cache)
        if not isinstance(directory, str):
            raise ConfigError(f"{label}: expected dir = \"DIRECTORY\" for {prefix!r}, "
                              f"found {'nothing' if directory is None else repr(directory)}")
        if not isinstance(cache_control, str):
            raise ConfigError(f"{label}: expected cache_control as a string for {prefix!r}, "
                              f"found {cache_control!r}")
        return directory, cache_control
    raise ConfigError(f"{label}: expected a directory (or a table with dir) for {prefix!r}, found {value!r}")
