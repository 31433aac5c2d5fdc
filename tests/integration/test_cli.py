"""The pounce command: flags, exit codes, messages, plugins, signals."""

from __future__ import annotations

import re
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest

from pounce.testing import run_pounce, wait_for
from tests.helpers import holds, subprocess_env

DESIGN_FLAGS = (
    "--host --port --uds --fd --workers --reload --reload-dir --reload-include --reload-exclude "
    "--ssl-certfile --ssl-keyfile --ssl-keyfile-password --ssl-ca-certs --ssl-cert-reqs --ssl-ciphers "
    "--log-level --access-log --no-access-log --log-config --proxy-headers --no-proxy-headers "
    "--forwarded-allow-ips --root-path --limit-concurrency --limit-max-requests --backlog "
    "--timeout-keep-alive --timeout-graceful-shutdown --lifespan --factory --app-dir --ws-max-size "
    "--ws-ping-interval --ws-ping-timeout --ws-per-message-deflate --h11-max-incomplete-event-size "
    "--server-header --no-server-header --date-header --no-date-header --header --config "
    "--worker-mode --log-format --plugin --no-plugin --check --list-plugins --version"
).split()


def pounce(tmp_path: Path, *args: str, env: dict[str, str] | None = None):
    return run_pounce(list(args), cwd=tmp_path, env=subprocess_env(env))


def test_help_lists_every_design_flag(tmp_path: Path) -> None:
    result = pounce(tmp_path, "--help")
    assert result.returncode == 0
    for flag in DESIGN_FLAGS:
        assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", result.stdout), flag
    assert "POUNCE_SERVER_PORT" in result.stdout


def test_version(tmp_path: Path) -> None:
    result = pounce(tmp_path, "--version")
    assert result.returncode == 0 and result.stdout.startswith("pounce 0.")


def test_unknown_flag_is_usage_error(tmp_path: Path) -> None:
    result = pounce(tmp_path, "testapps:hello", "--prot", "1")
    assert result.returncode == 2
    assert "unrecognized arguments: --prot" in result.stderr


def test_uvicorn_command_line_works_unchanged(tmp_path: Path) -> None:
    result = pounce(
        tmp_path, "testapps:hello", "--host", "127.0.0.1", "--port", "0", "--log-level", "warning",
        "--no-access-log", "--proxy-headers", "--forwarded-allow-ips", "10.0.0.0/8,127.0.0.1",
        "--limit-concurrency", "100", "--timeout-keep-alive", "3", "--ws-per-message-deflate", "false",
        "--lifespan", "off", "--no-server-header", "--ws", "wsproto", "--http", "h11", "--loop", "asyncio",
        "--check",
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert 'forwarded_allow_ips = ["10.0.0.0/8", "127.0.0.1"]' in out
    assert "per_message_deflate = false" in out
    assert "server_header = false" in out


def test_list_plugins_shows_builtins_and_third_party(tmp_path: Path) -> None:
    result = pounce(tmp_path, "--list-plugins")
    assert result.returncode == 0
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    for name in ("logging", "tls", "supervisor", "reload"):
        assert "enabled (built-in)" in rows[name]
    assert "1.2.3" in rows["testplugin"]
    assert "disabled (third-party)" in rows["testplugin"]
    assert "pounce_banner" in rows["testplugin"]


def test_check_shows_plugins_and_hooks(tmp_path: Path) -> None:
    result = pounce(tmp_path, "testapps:hello", "--plugin", "testplugin", "--no-plugin", "reload", "--check")
    assert result.returncode == 0, result.stderr
    assert "#   testplugin 1.2.3: pounce_add_options, pounce_banner" in result.stdout
    assert "#   reload" not in result.stdout
    assert "[testplugin]" in result.stdout and 'greeting = "hello"' in result.stdout


def test_enabling_unknown_plugin_is_config_error(tmp_path: Path) -> None:
    result = pounce(tmp_path, "testapps:hello", "--plugin", "nosuch", "--check")
    assert result.returncode == 2
    assert "[plugins] enable: expected an installed plugin" in result.stderr
    assert "found 'nosuch'" in result.stderr


def test_section_of_inactive_plugin_is_explained(tmp_path: Path) -> None:
    (tmp_path / "pounce.toml").write_text('[server]\napp = "testapps:hello"\n[testplugin]\ngreeting = "x"\n')
    result = pounce(tmp_path, "--check")
    assert result.returncode == 2
    assert "unknown section [testplugin] (it belongs to plugin 'testplugin', which is not enabled)" in result.stderr


@pytest.mark.slow
def test_import_error_is_one_line_exit_1(tmp_path: Path) -> None:
    result = pounce(tmp_path, "nosuchmodule:app")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last == "pounce: error: app 'nosuchmodule:app': could not import module 'nosuchmodule'"
    assert "Traceback" not in result.stderr
    (tmp_path / "broken.py").write_text("import os\nraise ValueError('boom at import')\n")
    result = pounce(tmp_path, "broken:app")
    assert result.returncode == 1
    assert "ValueError: boom at import" in result.stderr and "Traceback" not in result.stderr
    debug = pounce(tmp_path, "broken:app", "--log-level", "debug")
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    result = pounce(tmp_path, "testapps:nothing")
    assert result.returncode == 1
    assert "module 'testapps' has no attribute 'nothing'" in result.stderr


def test_address_in_use_is_one_line_exit_1(tmp_path: Path) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        result = pounce(tmp_path, "testapps:hello", "--port", str(port))
    finally:
        holder.close()
    assert result.returncode == 1
    assert f"pounce: error: could not bind 127.0.0.1:{port}: address already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_lifespan_failure_exits_3(tmp_path: Path) -> None:
    result = pounce(tmp_path, "testapps:failing_startup", "--port", "0", "--lifespan", "on")
    assert result.returncode == 3, result.stderr
    assert "database unreachable" in result.stderr


@pytest.mark.slow
def test_factory_dotted_and_app_dir(pounce_process, tmp_path: Path) -> None:
    proc = pounce_process("testapps:factory", "--factory", "--port", "0")
    assert httpx.get(proc.url).text == "Hello, world!"
    proc = pounce_process("testapps:Namespace.inner", "--port", "0")
    assert httpx.get(proc.url).text == "Hello, world!"
    appdir = tmp_path / "src"
    appdir.mkdir()
    (appdir / "myapp.py").write_text("from testapps import hello as app\n")
    proc = pounce_process("myapp:app", "--app-dir", str(appdir), "--port", "0")
    assert httpx.get(proc.url).text == "Hello, world!"


def test_banner_shows_real_port(pounce_process) -> None:
    proc = pounce_process("testapps:hello", "--port", "0")
    assert proc.url is not None and not proc.url.endswith(":0")
    out = proc.output()
    assert "pounce 0." in out and "workers: 1" in out
    plugins = out.split("plugins: ", 1)[1].splitlines()[0].split(", ")
    assert "logging" in plugins and "tls" in plugins


def test_third_party_plugin_hooks_fire_in_order(pounce_process, tmp_path: Path) -> None:
    log = tmp_path / "hooks.log"
    (tmp_path / "pounce.toml").write_text(
        '[server]\napp = "testapps:hello"\nport = 0\n[plugins]\nenable = ["testplugin"]\n'
        '[testplugin]\ngreeting = "from toml"\n'
    )
    proc = pounce_process(env={"POUNCE_TESTPLUGIN_LOG": str(log)})
    assert "testplugin says from toml" in proc.output()
    httpx.get(proc.url + "/one")
    assert proc.stop() == 0
    seen = log.read_text().split("\n")
    order = [line for line in seen if line]
    assert order[0] == "pounce_add_options"
    expected = [
        "pounce_configure", "pounce_sockets_bound", "pounce_banner", "pounce_lifespan_startup",
        "pounce_request_observer", "pounce_worker_started", "request /one 200",
        "pounce_shutdown signal", "pounce_lifespan_shutdown", "pounce_unconfigure",
    ]
    positions = [order.index(name) for name in expected]
    assert positions == sorted(positions), order


def test_plugin_not_active_unless_enabled(pounce_process, tmp_path: Path) -> None:
    log = tmp_path / "hooks.log"
    proc = pounce_process("testapps:hello", "--port", "0", env={"POUNCE_TESTPLUGIN_LOG": str(log)})
    assert "testplugin says" not in proc.output()
    proc.stop()
    assert not log.exists()


@pytest.mark.parametrize("hook", ["pounce_configure", "pounce_sockets_bound"])
def test_plugin_error_names_plugin_and_hook(tmp_path: Path, hook: str) -> None:
    result = pounce(
        tmp_path, "testapps:hello", "--port", "0", "--plugin", "testplugin",
        env={"POUNCE_TESTPLUGIN_FAIL_IN": hook},
    )
    assert result.returncode == 1
    assert f"plugin 'testplugin' failed in {hook}: RuntimeError: testplugin was asked to fail" in result.stderr
    assert "Traceback" not in result.stderr


def test_sigint_graceful_exit_0(pounce_process) -> None:
    proc = pounce_process("testapps:hello", "--port", "0")
    assert httpx.get(proc.url).status_code == 200
    proc.signal(signal.SIGINT)
    assert proc.wait(10) == 0
    assert "shutting down gracefully" in proc.output()


@pytest.mark.slow
def test_second_signal_forces_exit(pounce_process) -> None:
    import threading

    proc = pounce_process("testapps:slow", "--port", "0", "--timeout-graceful-shutdown", "60")
    t = threading.Thread(target=lambda: _ignore(lambda: httpx.get(proc.url + "/?30", timeout=40)))
    t.start()
    wait_for(lambda: "slow: sleeping 30 s" in proc.output(), what=proc.output)
    proc.signal(signal.SIGTERM)
    wait_for(lambda: "shutting down gracefully" in proc.output(), what=proc.output)
    holds(lambda: proc.proc.poll() is None, 0.5, "the drain of the 30 s request")
    began = time.monotonic()
    proc.signal(signal.SIGTERM)
    proc.wait(10)
    assert time.monotonic() - began < 5
    assert "forcing exit" in proc.output()
    t.join(20)


def _ignore(fn) -> None:
    try:
        fn()
    except Exception:
        pass
