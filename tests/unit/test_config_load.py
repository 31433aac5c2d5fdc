"""Configuration loaded in-process (``ServerConfig.load``): overrides, the
environment and the frozen result, with no server and no subprocess. The
``pounce --check`` side of the same rules is tests/integration/test_config.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from pounce import ConfigError, ServerConfig


def test_load_with_overrides_is_frozen(tmp_path: Path) -> None:
    path = tmp_path / "pounce.toml"
    path.write_text('[server]\nport = 7001\n[logging]\nlevel = "debug"\n')
    config = ServerConfig.load(path, env={}, port=7005, logging_level="warning")
    assert config.port == 7005
    assert config.logging.level == "warning"
    assert config.origin("server", "port") == "override"
    assert config.get("http", "max_incomplete_event_size") == 16384
    with pytest.raises(AttributeError):
        config.port = 1  # type: ignore[misc]
    assert config.replace(port=9).port == 9 and config.port == 7005


def test_env_var_typed(tmp_path: Path) -> None:
    config = ServerConfig.load(None, env={"POUNCE_SERVER_PROXY_HEADERS": "false",
                                          "POUNCE_SERVER_FORWARDED_ALLOW_IPS": "10.0.0.0/8, 127.0.0.1"},
                               discover=False)
    assert config.proxy_headers is False
    assert config.forwarded_allow_ips == ("10.0.0.0/8", "127.0.0.1")


def test_unknown_override() -> None:
    with pytest.raises(ConfigError, match="override prot: unknown option .did you mean 'port'"):
        ServerConfig.load(None, env={}, discover=False, prot=1)


def test_ssl_cert_reqs_accepts_uvicorn_numbers() -> None:
    for given, expected in (("0", "none"), ("1", "optional"), ("2", "required"), (2, "required")):
        config = ServerConfig.load(None, env={}, discover=False, tls_cert_reqs=given)
        assert config.tls.cert_reqs == expected
    env = ServerConfig.load(None, env={"POUNCE_TLS_CERT_REQS": "1"}, discover=False)
    assert env.tls.cert_reqs == "optional"

