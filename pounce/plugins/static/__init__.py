"""Built-in plugin ``static``: files from directories, served before the app.

Inert until ``[static] mounts`` (or ``--static PREFIX=DIR``) names one: with
no mount, no wrapper is installed and requests cost nothing more. With
mounts, the wrapper is outermost (``tryfirst``): a request under a mount is
answered from disk when a file is there, and otherwise reaches the app (or
gets 404 with ``fallthrough = false``).

See docs/plugins/static.md for what is served and how; the modules:
:mod:`.settings` (the section, checked), :mod:`.files` (URL path to file,
safely, and the per-file cache), :mod:`.conditional` (304, ranges) and
:mod:`.app` (the ASGI wrapper and how bytes leave).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pounce import hookimpl
from pounce.plugins.static.settings import load_settings

if TYPE_CHECKING:
    from pounce.core.config import ServerConfig

name = "static"


@hookimpl
def pounce_add_options(options: Any) -> None:
    add = options.add
    add("static", "mounts", "table", {},
        'URL prefix -> directory, e.g. { "/static" = "public" }; a value may be a table '
        '{ dir = "...", cache_control = "..." } for a mount of its own caching.',
        cli="--static", cli_split=False, metavar="PREFIX=DIR")
    add("static", "cache_control", "str", "public, max-age=3600",
        'Cache-Control of every mount that does not set its own ("" sends none).',
        cli="--static-cache-control", metavar="VALUE")
    add("static", "index", "str", "index.html",
        'File served for a directory (asked for with its trailing slash); "" serves none.',
        cli="--static-index", metavar="NAME")
    add("static", "precompressed", "bool", True,
        "Serve file.zst / file.br / file.gz instead of file when the client accepts that coding.",
        cli="--static-precompressed")
    add("static", "follow_symlinks", "bool", False,
        "Follow symlinks that lead out of the mounted directory (inside it they always work).",
        cli="--static-follow-symlinks")
    add("static", "fallthrough", "bool", True,
        "A request under a mount that matches no file goes to the app; false: 404.",
        cli="--static-fallthrough")
    add("static", "dotfiles", "bool", False,
        "Serve files and directories whose name starts with a dot.",
        cli="--static-dotfiles")


@hookimpl
def pounce_configure(config: ServerConfig) -> None:
    load_settings(config)  # every mistake is a ConfigError at startup and under --check


@hookimpl(tryfirst=True)
def pounce_wrap_app(config: ServerConfig, app: Any) -> Any:
    if not config.get("static", "mounts"):
        return None
    from pounce.plugins.static.app import StaticFiles

    return StaticFiles(app, load_settings(config), config.root_path)


@hookimpl
def pounce_banner(config: ServerConfig) -> list[str] | None:
    if not config.get("static", "mounts"):
        return None
    settings = load_settings(config)
    return [f"static: {m.prefix or '/'} -> {m.root}" for m in sorted(settings.mounts, key=lambda m: m.prefix)]
