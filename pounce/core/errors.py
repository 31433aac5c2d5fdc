"""Exceptions that carry a user-facing message and an exit status."""

from __future__ import annotations


class PounceError(Exception):
    """An error reported to the user as one line, with an exit status."""

    exit_code = 1


class ConfigError(PounceError):
    """Bad configuration: names the file, key, what was expected and found."""

    exit_code = 2


class AppLoadError(PounceError):
    """The ASGI app could not be imported or built."""

    exit_code = 1


class BindError(PounceError):
    """A listening socket could not be created (address in use, bad path)."""

    exit_code = 1


class LifespanError(PounceError):
    """The app's lifespan startup failed."""

    exit_code = 3


class PluginError(PounceError):
    """A plugin hook raised; the message names the plugin and the hook."""

    exit_code = 1

    def __init__(self, plugin: str, hook: str, exc: BaseException) -> None:
        self.plugin = plugin
        self.hook = hook
        self.original = exc
        super().__init__(f"plugin {plugin!r} failed in {hook}: {type(exc).__name__}: {exc}")
