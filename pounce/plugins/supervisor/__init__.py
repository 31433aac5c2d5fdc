"""Built-in plugin ``supervisor``: several workers (threads or processes)."""

from __future__ import annotations

from typing import Any

from pounce import hookimpl

name = "supervisor"


@hookimpl
def pounce_add_options(options: Any) -> None:
    options.add("supervisor", "worker_timeout", "float", 30.0,
                "Replace a worker whose heartbeat is silent for this many seconds.",
                cli="--worker-timeout", min=1)
