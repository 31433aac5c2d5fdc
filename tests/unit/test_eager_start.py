"""Eager start of app tasks (pounce.core.asgi.eager): the first step runs
inside ``start_task``, in a real task, with the task's own context."""

from __future__ import annotations

import asyncio
import contextvars
import sys
from typing import Any

import pytest

from pounce.core.asgi import eager
from pounce.core.asgi.eager import TASK_NAME, TaskStarter, start_task

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


def on_loop(fn: Any) -> Any:
    """Run ``fn(loop)`` from a plain loop callback (where protocols start
    tasks: no task is current) and return its result."""
    loop = asyncio.new_event_loop()
    try:
        out: list[Any] = []
        done = loop.create_future()

        def callback() -> None:
            out.append(fn(loop))
            done.set_result(None)

        loop.call_soon(callback)
        loop.run_until_complete(asyncio.wait_for(done, 5))
        # Let tasks that waited finish.
        loop.run_until_complete(asyncio.sleep(0.01))
        return out[0]
    finally:
        loop.close()


def test_a_coroutine_that_does_not_wait_is_done_when_start_task_returns() -> None:
    steps: list[str] = []

    async def app() -> str:
        steps.append("ran")
        return "answer"

    def start(loop: asyncio.AbstractEventLoop) -> tuple[bool, list[str], str]:
        task = start_task(loop, app())
        return task.done(), list(steps), task.result()

    done, seen, result = on_loop(start)
    # Fails loudly if the 3.11 route (the C Task scheduling its first step
    # through loop.call_soon) stops working: the saving would be lost.
    assert done and seen == ["ran"] and result == "answer", eager.EAGER


def test_the_first_step_runs_in_its_task_with_its_own_context() -> None:
    seen: list[Any] = []

    async def app() -> None:
        seen.append(asyncio.current_task())
        VAR.set("inside")
        seen.append(VAR.get())

    def start(loop: asyncio.AbstractEventLoop) -> tuple[asyncio.Task[Any], str]:
        task = start_task(loop, app())
        return task, VAR.get()

    task, after = on_loop(start)
    assert seen == [task, "inside"] and task.get_name() == TASK_NAME
    assert after == "unset"  # the task's context, not the caller's


def test_a_coroutine_that_waits_goes_on_as_a_task_and_can_be_cancelled() -> None:
    events: list[str] = []

    async def waits() -> None:
        events.append("first step")
        await asyncio.sleep(0)
        events.append("second step")

    async def hangs() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            events.append("cancelled")
            raise

    def start(loop: asyncio.AbstractEventLoop) -> tuple[bool, list[str], asyncio.Task[Any]]:
        task = start_task(loop, waits())
        hung = start_task(loop, hangs())
        hung.cancel()
        return task.done(), list(events), hung

    done_at_once, at_once, hung = on_loop(start)
    assert not done_at_once and at_once == ["first step"]
    assert events == ["first step", "second step", "cancelled"]
    assert hung.cancelled()


def test_started_inside_another_task() -> None:
    """A stream started from a finishing request's task (pipelining)."""

    async def inner() -> str:
        return asyncio.current_task() is not None and "ok"  # type: ignore[return-value]

    async def outer() -> str:
        task = start_task(asyncio.get_running_loop(), inner())
        return await task

    assert asyncio.run(outer()) == "ok"


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12+ uses Task(eager_start=True)")
def test_other_loops_get_a_plain_task() -> None:
    class OtherLoop(asyncio.AbstractEventLoop):
        def __init__(self) -> None:
            self.created: list[Any] = []

        def create_task(self, coro: Any, **kwargs: Any) -> Any:
            self.created.append(coro)
            coro.close()
            return "task"

    async def app() -> None:
        pass

    loop = OtherLoop()
    assert start_task(loop, app()) == "task" and len(loop.created) == 1


def test_scheduled_tasks_take_their_first_steps_from_one_handle_in_order() -> None:
    order: list[tuple[str, Any, str]] = []

    async def app(name: str) -> str:
        order.append((name, asyncio.current_task(), VAR.get()))
        VAR.set(name)  # (each task's own context: never seen by the next)
        await asyncio.sleep(0)
        return name

    def schedule(loop: asyncio.AbstractEventLoop) -> tuple[list[asyncio.Task[Any]], int, list[Any]]:
        loop.set_debug(False)  # (PYTHONASYNCIODEBUG or -X dev would turn batching off)
        starter = TaskStarter(loop)
        queued = len(loop._ready)  # type: ignore[attr-defined]
        tasks = [starter.schedule(app(name)) for name in ("a", "b", "c")]
        # Fails loudly if the C Task stops scheduling its first step through
        # loop.call_soon: each task would have a handle again.
        return tasks, len(loop._ready) - queued, list(order)  # type: ignore[attr-defined]

    tasks, handles, ran_at_once = on_loop(schedule)
    assert handles == 1 and ran_at_once == []
    assert [(name, task) for name, task, _ in order] == list(zip("abc", tasks, strict=True))
    assert {value for _, _, value in order} == {"unset"}
    assert [t.result() for t in tasks] == ["a", "b", "c"] and tasks[0].get_name() == TASK_NAME


def test_a_step_that_raises_keyboardinterrupt_leaves_the_rest_of_its_batch_to_run() -> None:
    ran: list[str] = []

    async def app(name: str) -> None:
        ran.append(name)
        if name == "b":
            raise KeyboardInterrupt

    loop = asyncio.new_event_loop()
    try:
        loop.set_debug(False)
        starter = TaskStarter(loop)
        tasks = [starter.schedule(app(name)) for name in ("a", "b", "c")]
        assert len(loop._ready) == 1  # type: ignore[attr-defined]  # (one batch: the case under test)
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(tasks[1])  # (ends in its first step)
        loop.run_until_complete(asyncio.wait_for(tasks[2], 5))
        assert ran == ["a", "b", "c"] and tasks[0].done()
        assert isinstance(tasks[1].exception(), KeyboardInterrupt)  # (retrieved: not logged at exit)
    finally:
        loop.close()


class OwnCallSoonLoop(asyncio.SelectorEventLoop):
    """A loop whose call_soon is its own: not to be lent over."""

    def call_soon(self, callback: Any, *args: Any, context: Any = None) -> asyncio.Handle:
        return super().call_soon(callback, *args, context=context)


@pytest.mark.parametrize("case", ["debug mode", "turned to debug later", "own call_soon", "patched call_soon"])
def test_each_task_is_scheduled_as_usual_where_call_soon_is_not_asyncios_own(case: str) -> None:
    async def app() -> str:
        return "done"

    loop = OwnCallSoonLoop() if case == "own call_soon" else asyncio.new_event_loop()
    loop.set_debug(case == "debug mode")
    patched = case == "patched call_soon"
    if patched:
        call_soon = loop.call_soon
        loop.call_soon = lambda *a, **k: call_soon(*a, **k)  # type: ignore[method-assign]  # (as instrumentation would)
    try:
        starter = TaskStarter(loop)
        if case == "turned to debug later":
            loop.set_debug(True)
        queued = len(loop._ready)  # type: ignore[attr-defined]
        tasks = [starter.schedule(app()) for _ in range(2)]
        assert len(loop._ready) - queued == 2  # type: ignore[attr-defined]
        assert loop.run_until_complete(asyncio.gather(*tasks)) == ["done", "done"]
        assert ("call_soon" in vars(loop)) is patched  # (left as it was found)
    finally:
        loop.close()
