"""Entry point of a worker subinterpreter (``worker_mode = "interpreter"``).

The supervisor creates one PEP 734 interpreter per worker and calls
:func:`main` in it on a thread of its own. The interpreter shares nothing
with the supervisor's but the process: it has its own GIL, its own modules
and its own copy of every object, so, as a worker process does, it rebuilds
the plugin manager, the option registry, the app and the TLS context from
pickled plain data and file descriptors, and runs the app's lifespan itself.
From there on the start-up steps are the process worker's own
(:func:`pounce.plugins.supervisor.child._run`), with two differences that the
spec carries: stop commands arrive on a control pipe, since signals only
ever reach the main interpreter, and there is no parent process to watch.

What this entry adds is the one clear error for an app (or a plugin) that
cannot live in a subinterpreter: a C extension module still on single-phase
initialisation refuses to load there, and the worker names that module
instead of failing with a traceback.

Returns the exit status a worker process would have: 0 after a clean stop,
3 when the lifespan startup failed, 4 when a module cannot be loaded in a
subinterpreter, 1 for anything else (the error is logged and sent first).
"""

from __future__ import annotations

import logging
import pickle
import re
import sys
import threading
from typing import Any

from pounce.core.errors import LifespanError, PounceError
from pounce.plugins.supervisor.workers import ERROR, EXIT_INCOMPATIBLE, EXIT_LIFESPAN, ChildSpec

logger = logging.getLogger("pounce.supervisor")

# CPython's own wording for a single-phase-init extension module.
_REFUSED = re.compile(r"module (\S+) does not support loading in subinterpreters")


class ImportTrail:
    """A ``sys.meta_path`` entry that finds nothing and remembers what was
    looked for, so that an ImportError raised inside an extension module's
    initialisation (Cython's and others' own wording, which names no module)
    can still be pinned on the module being imported."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        self.names.append(fullname)
        return None

    def failed_module(self) -> str | None:
        """The innermost module whose import was attempted and did not end up
        in ``sys.modules`` (a failed import is removed from it)."""
        for name in reversed(self.names):
            if name not in sys.modules:
                return name
        return None


def incompatible_module(exc: BaseException, trail: ImportTrail) -> str | None:
    """The module an ImportError somewhere in ``exc``'s chain says cannot be
    loaded in a subinterpreter, or None for any other error."""
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, ImportError) and not isinstance(error, ModuleNotFoundError):
            text = str(error)
            match = _REFUSED.search(text)
            if match:
                return match.group(1)
            if "interpreter" in text.lower():  # e.g. Cython: "Interpreter change detected"
                return error.name or trail.failed_module()
        error = error.__cause__ or error.__context__
    return None


def main(blob: bytes) -> int:
    # Unlike child.main: no signal dispositions (a subinterpreter cannot set
    # any) and no change to fd 0, which belongs to the whole process.
    spec: ChildSpec = pickle.loads(blob)
    from pounce.plugins.supervisor.child import StatusPipe, _run

    # The thread is the supervisor's; in here it is a dummy: give it the name
    # a worker thread has in thread mode.
    threading.current_thread().name = f"pounce-worker-{spec.worker_id}"
    status = StatusPipe(spec.status_fd)
    trail = ImportTrail()
    sys.meta_path.insert(0, trail)
    try:
        _run(spec, status)
    except LifespanError as exc:
        logger.error("worker %d: %s", spec.worker_id, exc)
        status.send(ERROR, str(exc))
        return EXIT_LIFESPAN
    except Exception as exc:
        module = incompatible_module(exc, trail)
        if module is not None:
            message = (f'module {module!r} cannot be loaded in a subinterpreter; serve this app with '
                       f'worker_mode = "process" (or "thread")')
            status.send(ERROR, message)
            return EXIT_INCOMPATIBLE
        if isinstance(exc, PounceError):
            logger.error("worker %d: %s", spec.worker_id, exc)
            status.send(ERROR, str(exc))
            return exc.exit_code
        logger.exception("worker %d crashed", spec.worker_id)
        status.send(ERROR, f"{type(exc).__name__}: {exc}")
        return 1
    finally:
        if trail in sys.meta_path:
            sys.meta_path.remove(trail)
    return 0
