"""Built-in plugin ``logging``: server and access logs from ``[logging]``."""

from __future__ import annotations

import logging
import sys
from typing import Any

from pounce import hookimpl

name = "logging"

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


@hookimpl
def pounce_add_options(options: Any) -> None:
    add = options.add
    add("logging", "level", "str", "info", "Log level: " + " | ".join(_LEVELS) + ".",
        cli="--log-level", choices=_LEVELS)
    add("logging", "format", "str", "text", "text for people, json for machines.",
        cli="--log-format", choices=("text", "json"))
    add("logging", "access_log", "bool", True, "Log one line per request.", cli="--access-log")
    add("logging", "access_log_format", "str",
        '%(client)s - "%(request_line)s" %(status)s %(bytes)s %(duration_ms).1fms',
        "printf-style access line; fields are listed in docs/config.md.")
    add("logging", "config_file", "str", None, "A logging dictConfig file (TOML or JSON) replacing the defaults.",
        cli="--log-config", nullable=True, metavar="PATH")


@hookimpl
def pounce_configure(config: Any) -> None:
    level = config.logging.level
    numeric = TRACE if level == "trace" else getattr(logging, level.upper())
    logger = logging.getLogger("pounce")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(numeric)
    logger.propagate = False
