"""pounce: a pure-Python ASGI server built as an extensible toolkit.

The public API is re-exported here; everything else is internal.
"""

from __future__ import annotations

from typing import Any

from pounce._version import __version__
from pounce.core.asgi.stream import ClientDisconnected  # noqa: E402
from pounce.core.config import ServerConfig  # noqa: E402
from pounce.core.errors import (  # noqa: E402
    AppLoadError,
    BindError,
    ConfigError,
    LifespanError,
    PluginError,
    PounceError,
)
from pounce.core.hookspecs import hookimpl, hookspec  # noqa: E402
from pounce.core.lifecycle import LifecycleCollector  # noqa: E402
from pounce.core.options import OptionRegistry  # noqa: E402
from pounce.core.server import Server  # noqa: E402


def run(app: Any, config: ServerConfig | str | None = None, **overrides: Any) -> None:
    """Serve ``app`` (an ASGI callable or ``"module:attr"``) until stopped.

    ``config`` is a :class:`ServerConfig` or a TOML path; ``overrides`` use
    ``[server]`` key names (``port=``) or ``<section>_<key>`` (``tls_certfile=``).
    """
    from pounce.core.asgi.appload import as_asgi3, load_app

    if isinstance(app, str):
        overrides.setdefault("app", app)
    if isinstance(config, ServerConfig):
        cfg = config.replace(**overrides) if overrides else config
    else:
        cfg = ServerConfig.load(config, **overrides)
    if isinstance(app, str):
        asgi = load_app(app, factory=cfg.factory, app_dir=cfg.app_dir)
    else:
        asgi = as_asgi3(app)
    Server(cfg, asgi, app_path=app if isinstance(app, str) else None).run()


__all__ = [
    "AppLoadError",
    "BindError",
    "ClientDisconnected",
    "ConfigError",
    "LifecycleCollector",
    "LifespanError",
    "OptionRegistry",
    "PluginError",
    "PounceError",
    "Server",
    "ServerConfig",
    "__version__",
    "hookimpl",
    "hookspec",
    "run",
]
