"""Built-in plugin ``reload``: restart the app when its files change."""

from __future__ import annotations

from typing import Any

from pounce import hookimpl

name = "reload"


@hookimpl
def pounce_add_options(options: Any) -> None:
    add = options.add
    add("reload", "enabled", "bool", False, "Reload when watched files change (development only).",
        cli="--reload")
    add("reload", "dirs", "list", ["."], "Directories to watch.", cli="--reload-dir", metavar="DIR")
    add("reload", "include", "list", ["*.py"], "Glob patterns of files to watch.",
        cli="--reload-include", metavar="GLOB")
    add("reload", "exclude", "list", [".*", "*.pyc", "__pycache__"], "Glob patterns to ignore.",
        cli="--reload-exclude", metavar="GLOB")
