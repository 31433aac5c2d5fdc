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

:meth:`TaskStarter.schedule` is the ordinary, scheduled start, for a
request that arrives while others wait (the eager step would run ahead of
them). It is ``asyncio.Task`` itself rather than ``loop.create_task``: on
asyncio's loops that method is Python (it and its ``_check_closed`` are two
calls a request under load). Neither start goes through a task factory set
on the loop; pounce sets none, and a request task is pounce's, not the app's.

On asyncio's loops the scheduled start goes further: the first steps of the
tasks started in one turn are kept in a list and run back to back from one
callback, instead of one handle each. asyncio's ``call_soon`` is Python,
five calls deep (``call_soon``, ``_check_closed``, ``_call_soon``,
``Handle.__init__``, ``get_debug``), and the handle's ``_run`` is a sixth;
a task's step needs none of what they add, as a step does not raise (the
task keeps what its coroutine raised). The steps run in the order their
tasks were made, in the next turn, as their handles would have; a task made
in that next turn before the batch's handle has run joins the batch, so it
runs sooner than its own handle would have, never later. (hello world at 64
connections: 103,028 -> 98,802 instructions a request.)
"""

from __future__ import annotations

import asyncio
import collections
import sys
from collections.abc import Coroutine
from typing import Any

__all__ = ["EAGER", "TASK_NAME", "TaskStarter", "start_task"]

_Task = asyncio.Task
# Every such task's name (the default, "Task-<n>", is formatted per task).
TASK_NAME = "pounce-app"


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


class TaskStarter:
    """Scheduled request tasks on one loop, their first steps in batches."""

    __slots__ = ("loop", "running", "_batched", "_call_soon", "_batch", "_keep", "_run_batch")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        # Only asyncio's own loops, whose call_soon is Python, with that
        # call_soon neither overridden nor wrapped (it is what is lent over);
        # debug mode, which times and reports each handle, is looked at on
        # each call. (Not ``vars(loop)``: that makes the loop's attributes a
        # dict for good, and every attribute asyncio reads on it slower:
        # ~1,900 instructions a request.)
        self._batched = (isinstance(loop, asyncio.BaseEventLoop)
                         and getattr(loop.call_soon, "__func__", None) is asyncio.BaseEventLoop.call_soon)
        self._call_soon = loop.call_soon
        self._batch: list[tuple[Any, Any]] = []
        # The steps of the batch being run still to run: while there are
        # any, more of this turn is to come (TurnWriter.alone reads it).
        self.running: collections.deque[tuple[Any, Any]] = collections.deque()
        # (Bound once: lent as the loop's call_soon, scheduled once a batch.)
        self._keep = self.keep
        self._run_batch = self.run_batch

    def schedule(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """A task for ``coro``, its first step to run in the next turn."""
        loop = self.loop
        if not self._batched or loop._debug:  # type: ignore[attr-defined]
            return _Task(coro, loop=loop, name=TASK_NAME)
        loop.call_soon = self._keep  # type: ignore[method-assign]
        try:
            return _Task(coro, loop=loop, name=TASK_NAME)
        finally:
            del loop.call_soon

    def keep(self, callback: Any, *args: Any, context: Any = None) -> None:
        """The loop's ``call_soon`` while a task is made: its first step
        joins the batch (anything else is scheduled as usual)."""
        if args or context is None:
            self._call_soon(callback, *args, context=context)
            return
        batch = self._batch
        if not batch:
            self._call_soon(self._run_batch)
        batch.append((callback, context))

    def run_batch(self) -> None:
        batch = self._batch
        self._batch = []  # (a step may start a batch of the next turn)
        running = self.running
        popleft = running.popleft
        try:
            running.extend(batch)
            while running:
                step, context = popleft()
                context.run(step)
        except BaseException:
            # (Only KeyboardInterrupt and SystemExit leave a step: the rest
            # still run, each on its own handle, as they would have.)
            while running:
                step, context = popleft()
                self._call_soon(step, context=context)
            raise
