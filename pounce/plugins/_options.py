"""Small helpers the built-in plugins share for checking their options.

Per-value checks go into the option registry (``validator=``), which names
the file, section and key by itself. Checks that compare two options can
only run in ``pounce_configure``; :func:`option_error` gives their errors the
same one-line shape: where the value was set, the key, what was expected,
what was found.
"""

from __future__ import annotations

from typing import Any

from pounce.core.errors import ConfigError
from pounce.core.options import OptionValueError, describe_found


def where(config: Any, section: str, key: str) -> str:
    """``pounce.toml: [health] shutdown_delay``, ``--health-shutdown-delay``,
    ``environment POUNCE_HEALTH_SHUTDOWN_DELAY``..., by where it was set."""
    origin = config.origin(section, key)
    if origin == "cli":
        option = config.registry.get(section, key) if config.registry is not None else None
        if option is not None and option.cli:
            return option.cli[0]
        return f"[{section}] {key} (command line)"
    if origin == "env":
        return f"environment POUNCE_{section.upper()}_{key.upper()}"
    if origin == "override":
        return f"override {section}_{key}"
    if origin == "default":
        return f"[{section}] {key}"
    return f"{origin}: [{section}] {key}"


def option_error(config: Any, section: str, key: str, expected: str, found: Any) -> ConfigError:
    return ConfigError(f"{where(config, section, key)}: expected {expected}, found {describe_found(found)}")


def check_path(value: str) -> None:
    """An URL path for an endpoint: empty (off) or ``/`` and visible ASCII,
    without a query or fragment."""
    if value == "":
        return
    if not value.startswith("/") or not value.isascii() or not value.isprintable() or any(
        c in value for c in " ?#"
    ):
        raise OptionValueError('a path starting with "/" (no spaces, "?" or "#"), or "" for off')


def check_paths(values: tuple[str, ...]) -> None:
    for value in values:
        if value == "":
            raise OptionValueError('a list of path prefixes starting with "/"')
        check_path(value)
