"""Start an app coroutine now, in a task of its own, instead of on the next
turn of the loop.

A hello-world app never waits: it sends its response and returns in the
first step of its coroutine. Run as a plain task, that step costs a handle
scheduled with ``call_soon``, a turn of the loop and the handle's run, about
a tenth of the request. An *eagerly started* task takes its first step at
once, inside the call that creates it; a coroutine that finishes there is
never scheduled at all, and one that waits goes on as an ordinary task. The
task exists from the start, so ``asyncio.current_task()``, cancellation,
``asyncio.timeout`` and anyio's cancel scopes behave as in any task, and the
step runs in the task's own copy of the context (contextvars set by one
request never reach the next).

Python 3.12 has this built in (``Task(..., eager_start=True)``). On 3.10
and 3.11 the C ``Task`` schedules its first step through its loop's
``call_soon``, in the task's own context;
:func:`start_task` lends the loop, for the length of the constructor, a
``call_soon`` that keeps that one callback, and runs it at once. Only
asyncio's own loops are lent to. uvloop's could be (an instance attribute
shadows the method), but measured slower so: hello world at 64 connections
went from about 40,000 to 35,000 requests a second on one core, its own
``call_soon`` and ready queue being cheap enough that scheduled first steps
cost less than the lending. If the constructor ever stops calling
``call_soon`` that way, nothing is kept and the task is simply scheduled as
usual (``tests/unit/test_eager_start.py`` fails loudly then, so the saving
is not lost unnoticed).

What callers must know: the coroutine's first step runs *inside*
:func:`start_task`, so whatever it calls back (a response written, the
stream's end) happens before :func:`start_task` returns.

:func:`schedule_task` is the ordinary, scheduled start, for a request that
arrives while others wait (the eager step would run ahead of them). It is
``asyncio.Task`` itself rather than ``loop.create_task``: on asyncio's
loops that method is Python (it and its ``_check_closed`` are two calls a
request under load). Neither function goes through a task factory set on
the loop; pounce sets none, and a request task is pounce's, not the app's.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any

__all__ = ["EAGER", "TASK_NAME", "schedule_task", "start_task"]

_Task = asyncio.Task
# Every such task's name (the default, "Task-<n>", is formatted per task).
TASK_NAME = "pounce-app"


def schedule_task(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """A task for ``coro``, its first step scheduled as usual."""
    return _Task(coro, loop=loop, name=TASK_NAME)


if sys.version_info >= (3, 12):
    EAGER = "eager_start"

    def start_task(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """A task for ``coro`` whose first step has run already."""
        return _Task(coro, loop=loop, eager_start=True, name=TASK_NAME)  # type: ignore[call-arg]

else:
    EAGER = "call_soon"

    # asyncio.current_task(loop) without its Python wrapper: the C dict it reads.
    _current_tasks: Any = getattr(asyncio.tasks, "_current_tasks", None)
    _current_task = _current_tasks.get if isinstance(_current_tasks, dict) else asyncio.current_task

    def start_task(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """A task for ``coro`` whose first step has run already (asyncio's
        loops, called outside any task: 3.11 cannot step one task inside
        another), or is scheduled as usual."""
        if not isinstance(loop, asyncio.BaseEventLoop) or _current_task(loop) is not None:
            return loop.create_task(coro)
        kept: list[Any] = []

        def first_step(callback: Any, *args: Any, context: Any = None) -> None:
            kept.append((callback, context))

        loop.call_soon = first_step  # type: ignore[method-assign]
        try:
            task = _Task(coro, loop=loop, name=TASK_NAME)
        finally:
            del loop.call_soon
        if kept:
            callback, context = kept[0]  # (the task's own copy of the context)
            context.run(callback)
        return task
