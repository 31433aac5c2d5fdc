"""Turning ``"module:attr"`` into an ASGI callable, with one-line errors."""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path
from typing import Any

from pounce.core.errors import AppLoadError


def import_from_string(target: str) -> Any:
    module_name, sep, attrs = target.partition(":")
    if not sep or not module_name or not attrs:
        raise AppLoadError(f'app {target!r}: expected "module:attribute"')
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name) and (
            exc.name == module_name or module_name.startswith(exc.name + ".")
        ):
            raise AppLoadError(f"app {target!r}: could not import module {exc.name!r}") from exc
        raise AppLoadError(f"app {target!r}: error while importing: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        raise AppLoadError(f"app {target!r}: error while importing: {type(exc).__name__}: {exc}") from exc
    obj: Any = module
    for part in attrs.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppLoadError(f"app {target!r}: module {module_name!r} has no attribute {attrs!r}") from None
    return obj


def load_app(target: str, *, factory: bool = False, app_dir: str = "") -> Any:
    """Import the app; with ``factory`` call it first. ``app_dir`` goes first on sys.path."""
    if app_dir:
        path = str(Path(app_dir).resolve())
        if path not in sys.path:
            sys.path.insert(0, path)
    elif "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    obj = import_from_string(target)
    if factory:
        try:
            obj = obj()
        except Exception as exc:
            raise AppLoadError(f"app {target!r}: factory raised {type(exc).__name__}: {exc}") from exc
    if not callable(obj):
        raise AppLoadError(f"app {target!r}: expected an ASGI callable, found {type(obj).__name__}")
    return as_asgi3(obj)


def as_asgi3(app: Any) -> Any:
    """Wrap an ASGI 2 (double-callable) app so the core only sees ASGI 3."""
    if _is_asgi3(app):
        return app

    async def asgi2_adapter(scope: dict[str, Any], receive: Any, send: Any) -> None:
        instance = app(scope)
        await instance(receive, send)

    return asgi2_adapter


def _is_asgi3(app: Any) -> bool:
    if inspect.isclass(app):
        return hasattr(app, "__await__")
    if inspect.iscoroutinefunction(app):
        return True
    call = getattr(app, "__call__", None)  # noqa: B004 - we need the bound method itself
    return inspect.iscoroutinefunction(call)
