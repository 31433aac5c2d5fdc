"""The plugin manager: discovery, activation and hook calls that name culprits.

Built-in plugins ship as entry points of the ``pounce`` distribution in the
``pounce.plugins`` group, exactly like third-party ones; the only difference is
the default: built-ins are active unless disabled, third-party plugins are
discovered but only activated when enabled (or with ``autoload``).
"""

from __future__ import annotations

import importlib
import logging
import types
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pluggy

from pounce.core import config, hookspecs
from pounce.core.errors import ConfigError, PluginError, PounceError
from pounce.core.options import OptionRegistry

logger = logging.getLogger("pounce.worker")

ENTRY_POINT_GROUP = "pounce.plugins"

# Used only when pounce runs from a source tree without being installed, so
# that its entry points cannot be read.
_BUILTIN_FALLBACK = {
    "logging": "pounce.plugins.logging",
    "tls": "pounce.plugins.tls",
    "supervisor": "pounce.plugins.supervisor",
    "reload": "pounce.plugins.reload",
    "static": "pounce.plugins.static",
    "compression": "pounce.plugins.compression",
    "health": "pounce.plugins.health",
    "http3": "pounce.plugins.http3",
    "request_id": "pounce.plugins.request_id",
    "rate_limit": "pounce.plugins.rate_limit",
}


@dataclass(frozen=True)
class PluginInfo:
    """One plugin found through an entry point."""

    name: str
    value: str
    distribution: str
    version: str
    builtin: bool
    entry_point: metadata.EntryPoint | None = None

    def load(self) -> object:
        if self.entry_point is not None:
            return self.entry_point.load()
        module, _, attr = self.value.partition(":")
        obj: object = importlib.import_module(module)
        for part in filter(None, attr.split(".")):
            obj = getattr(obj, part)
        return obj


def discover() -> dict[str, PluginInfo]:
    """Every plugin installed in the ``pounce.plugins`` group, by name."""
    found: dict[str, PluginInfo] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else "?"
        version = dist.version if dist is not None else "?"
        builtin = (dist_name or "").lower() == "pounce"
        found.setdefault(ep.name, PluginInfo(ep.name, ep.value, dist_name, version, builtin, ep))
    if not any(info.builtin for info in found.values()):
        from pounce._version import __version__

        for name, value in _BUILTIN_FALLBACK.items():
            found.setdefault(name, PluginInfo(name, value, "pounce", __version__, True))
    return found


class PounceManager(pluggy.PluginManager):
    """pluggy's manager plus pounce's option registry and discovery results.

    ``registry`` holds every option declared so far; registering a plugin later
    replays the historic hooks, so its options and hookspecs join it too.
    """

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.add_hookspecs(hookspecs)
        self.registry = OptionRegistry()
        self.discovered: dict[str, PluginInfo] = {}
        self.hook.pounce_add_hookspecs.call_historic(kwargs={"plugin_manager": self})
        self.hook.pounce_add_options.call_historic(kwargs={"options": self.registry})

    def register(self, plugin: object, name: str | None = None) -> str | None:
        name = name or plugin_name(plugin)
        previous = self.registry._current_plugin
        self.registry._current_plugin = name
        try:
            return super().register(plugin, name)
        except pluggy.PluginValidationError as exc:
            raise ConfigError(f"plugin {name!r} is invalid: {exc}") from None
        except PounceError:
            raise  # deliberate, already user-facing
        except Exception as exc:
            raise culprit_error(self, exc, "registration") from exc
        finally:
            self.registry._current_plugin = previous

    def active_names(self) -> list[str]:
        return [name for name, plugin in self.list_name_plugin() if plugin is not None and name != "core"]

    def hooks_of(self, name: str) -> list[str]:
        plugin = self.get_plugin(name)
        if plugin is None:
            return []
        return sorted(caller.name for caller in self.get_hookcallers(plugin) or [])

    # -- per-worker collection: once per worker, never per request ---------------

    def request_observers(self, config: Any) -> tuple[Any, ...]:
        """The plugins' per-request callables (``pounce_request_observer``)."""
        results = self.call("pounce_request_observer", config=config) or []
        return tuple(r for r in results if callable(r))

    def bind_listeners(self, config: Any, sockets: list[Any], inherited: list[Any]) -> list[Any]:
        """The plugins' extra listeners (``pounce_bind_listeners``), flat."""
        return _flatten(self.call("pounce_bind_listeners", config=config, sockets=sockets, inherited=inherited))

    def serve_listeners(self, worker: Any, listeners: list[Any]) -> list[Any]:
        """What serves the extra listeners in ``worker`` (``pounce_serve_listeners``);
        nothing is called when there are none."""
        if not listeners:
            return []
        return _flatten(self.call("pounce_serve_listeners", worker=worker, listeners=listeners))

    def wrap_app(self, config: Any, app: Any) -> Any:
        """The app behind every ``pounce_wrap_app`` wrapper."""
        return self._chain("pounce_wrap_app", config, "app", app)

    def wrap_protocol(self, config: Any, factory: Any) -> Any:
        """The protocol factory behind every ``pounce_wrap_protocol`` wrapper.

        With no wrapper the core's own factory comes back unchanged, so the
        connection-level extension point costs nothing per connection.
        """
        return self._chain("pounce_wrap_protocol", config, "factory", factory)

    def drain_delay(self, worker: Any) -> float:
        """Announce a worker's drain (``pounce_worker_draining``) and return
        the longest wait asked for. A plugin that raises or answers nonsense
        is logged and ignored: the drain itself must go on whatever a plugin
        does."""
        try:
            answers = self.call("pounce_worker_draining", worker=worker) or []
        except PounceError as exc:
            logger.error("%s", exc)
            return 0.0
        delays = [0.0]
        for answer in answers:
            if isinstance(answer, (int, float)) and not isinstance(answer, bool) and answer == answer:
                delays.append(max(0.0, float(answer)))
            else:
                logger.error("pounce_worker_draining: expected a number of seconds or None, found %r", answer)
        return max(delays)

    def _chain(self, hook: str, config: Any, key: str, value: Any) -> Any:
        """Let each implementation of a wrapping hook wrap the previous result.

        pluggy lists implementations trylast first, so a ``tryfirst`` wrapper is
        applied last and ends up outermost: it sees each request (or connection)
        first, like the first middleware in a stack.
        """
        for impl in getattr(self.hook, hook).get_hookimpls():
            args = {"config": config, key: value}
            try:
                wrapped = impl.function(**{a: args[a] for a in impl.argnames})
            except Exception as exc:
                raise culprit_error(self, exc, hook) from exc
            if wrapped is not None:
                if not callable(wrapped):
                    problem = TypeError(f"expected a callable, found {wrapped!r}")
                    raise PluginError(self.get_name(impl.plugin) or "?", hook, problem)
                value = wrapped
        return value

    def section_owner(self, section: str) -> str | None:
        """Which installed-but-inactive plugin declares ``section``, if any."""
        for info in self.discovered.values():
            if self.get_plugin(info.name) is not None:
                continue
            try:
                obj = info.load()
            except Exception:
                continue
            probe = OptionRegistry()
            add = getattr(obj, "pounce_add_options", None)
            if callable(add):
                try:
                    add(probe)
                except Exception:
                    continue
            if probe.in_section(section):
                return info.name
        return None

    def call(self, hook: str, **kwargs: Any) -> Any:
        """Call ``hook``; an exception becomes a :class:`PluginError` naming
        the plugin whose implementation raised it."""
        try:
            return getattr(self.hook, hook)(**kwargs)
        except PounceError:
            raise  # deliberate, already user-facing
        except Exception as exc:
            raise culprit_error(self, exc, hook) from exc


def _flatten(results: Any) -> list[Any]:
    """A collect hook's answers, each an object, a list of them or None."""
    out: list[Any] = []
    for result in results or []:
        if isinstance(result, (list, tuple)):
            out.extend(r for r in result if r is not None)
        elif result is not None:
            out.append(result)
    return out


def plugin_name(plugin: object) -> str:
    name = getattr(plugin, "name", None)
    if isinstance(name, str):
        return name
    if isinstance(plugin, types.ModuleType):
        return plugin.__name__
    return type(plugin).__name__ if not isinstance(plugin, type) else plugin.__name__


def culprit_error(manager: pluggy.PluginManager, exc: BaseException, hook: str) -> PluginError:
    """Find which plugin's code raised ``exc`` by matching traceback frames
    against the hook implementations' code objects."""
    codes: dict[Any, str] = {}
    for plugin in manager.get_plugins():
        name = manager.get_name(plugin) or "?"
        for caller in manager.get_hookcallers(plugin) or []:
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin:
                    code = getattr(impl.function, "__code__", None)
                    if code is not None:
                        codes[code] = f"{name}\0{caller.name}"
    tb = exc.__traceback__
    found: str | None = None
    while tb is not None:
        hit = codes.get(tb.tb_frame.f_code)
        if hit is not None:
            found = hit
        tb = tb.tb_next
    if found is None:
        return PluginError("?", hook, exc)
    plugin, hook_name = found.split("\0")
    return PluginError(plugin, hook_name, exc)


def build_plugin_manager(
    *,
    enable: Iterable[str] = (),
    disable: Iterable[str] = (),
    autoload: bool = False,
    extra: Iterable[object] = (),
) -> PounceManager:
    """A manager with the core, the active built-ins, the enabled third-party
    plugins and ``extra`` programmatic plugins registered, in that order."""
    # The core's own plugin, loaded by name like every built-in.
    defaults = importlib.import_module("pounce.core.defaults")

    enable_set = set(enable)
    disable_set = set(disable)
    manager = PounceManager()
    manager.register(defaults, "core")
    manager.discovered = discover()
    unknown = sorted(enable_set - set(manager.discovered) - {"core"})
    if unknown:
        names = ", ".join(sorted(manager.discovered)) or "none"
        raise ConfigError(
            f"[plugins] enable: expected an installed plugin ({names}), found {unknown[0]!r}"
        )
    bad_disable = sorted(disable_set - set(manager.discovered))
    if bad_disable:
        names = ", ".join(sorted(manager.discovered)) or "none"
        raise ConfigError(
            f"[plugins] disable: expected an installed plugin ({names}), found {bad_disable[0]!r}"
        )
    ordered = sorted(manager.discovered.values(), key=lambda i: (not i.builtin, i.name))
    for info in ordered:
        wanted = info.builtin or autoload or info.name in enable_set
        if not wanted or info.name in disable_set:
            continue
        try:
            obj = info.load()
        except Exception as exc:
            raise PluginError(info.name, "import", exc) from exc
        manager.register(obj, info.name)
    for obj in extra:
        manager.register(obj)
    return manager



__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginInfo",
    "PounceManager",
    "build_plugin_manager",
    "culprit_error",
    "discover",
    "plugin_name",
]



config.use_manager_factory(build_plugin_manager)
