"""Configuration through the `pounce` command (`--check`): precedence, one-line
validation errors with exit 2 (the in-process side is tests/unit/test_config_load.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pounce.testing import run_pounce
from tests.helpers import subprocess_env


def write(tmp_path: Path, text: str, name: str = "pounce.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def check(tmp_path: Path, *args: str, env: dict[str, str] | None = None):
    return run_pounce(["--check", *args], cwd=tmp_path, env=subprocess_env(env))


def test_precedence_defaults_file_env_cli(tmp_path: Path) -> None:
    write(tmp_path, '[server]\napp = "testapps:hello"\nport = 7001\nbacklog = 100\nroot_path = "/file"\n')
    result = check(tmp_path, "--port", "7003", env={"POUNCE_SERVER_PORT": "7002", "POUNCE_SERVER_BACKLOG": "200"})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "port = 7003    # from cli" in out
    assert "backlog = 200    # from env" in out
    assert 'root_path = "/file"    # from pounce.toml' in out
    assert "timeout_keep_alive = 5.0\n" in out  # default, no origin note


def test_pyproject_tool_section(tmp_path: Path) -> None:
    write(tmp_path, '[project]\nname = "x"\n[tool.pounce.server]\napp = "testapps:hello"\nport = 7010\n',
          "pyproject.toml")
    result = check(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "port = 7010" in result.stdout
    assert "pyproject.toml" in result.stdout


def test_pounce_toml_wins_over_pyproject(tmp_path: Path) -> None:
    write(tmp_path, '[tool.pounce.server]\napp = "testapps:hello"\nport = 7010\n', "pyproject.toml")
    write(tmp_path, '[server]\napp = "testapps:hello"\nport = 7011\n')
    assert "port = 7011" in check(tmp_path).stdout


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('[sever]\nport = 1\n', "pounce.toml: unknown section [sever] (did you mean [server]?)"),
        ('[server]\nprot = 1\n', "pounce.toml: [server] unknown key 'prot' (did you mean 'port'?)"),
        ('[server]\nport = "80"\n', "pounce.toml: [server] port: expected an integer from 0 to 65535, found '80'"),
        ('[server]\nport = 70000\n', "pounce.toml: [server] port: expected an integer from 0 to 65535, found 70000"),
        ('[server]\nworkers = 0\n', 'pounce.toml: [server] workers: expected an integer >= 1 or "auto", found 0'),
        ('[server]\nlifespan = "maybe"\n', "pounce.toml: [server] lifespan: expected auto | on | off, found 'maybe'"),
        ('[server]\nproxy_headers = "yes"\n', "pounce.toml: [server] proxy_headers: expected true or false, found 'yes'"),
        ('[server]\nport = \n', "pounce.toml: invalid TOML: "),
        ('[server]\nport = 8000\n', "pounce.toml: [server] app: expected \"module:attribute\", found nothing"),
    ],
)
def test_config_errors_are_one_line_exit_2(tmp_path: Path, toml: str, expected: str) -> None:
    if "app" not in toml and "invalid" not in expected and "[server] app" not in expected:
        toml = toml + ('\n[server]\napp = "testapps:hello"\n' if "[server]" not in toml else "")
    write(tmp_path, toml)
    result = check(tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr


def test_invalid_toml_names_line(tmp_path: Path) -> None:
    write(tmp_path, '[server]\napp = "testapps:hello"\nport = = 3\n')
    result = check(tmp_path)
    assert result.returncode == 2
    assert "line 3" in result.stderr


def test_bad_env_value(tmp_path: Path) -> None:
    write(tmp_path, '[server]\napp = "testapps:hello"\n')
    result = check(tmp_path, env={"POUNCE_SERVER_PORT": "eighty"})
    assert result.returncode == 2
    assert "environment POUNCE_SERVER_PORT: expected an integer from 0 to 65535, found 'eighty'" in result.stderr


def test_bad_cli_value(tmp_path: Path) -> None:
    result = check(tmp_path, "testapps:hello", "--workers", "-1")
    assert result.returncode == 2
    assert "--workers: expected an integer >= 1" in result.stderr


def test_missing_config_file(tmp_path: Path) -> None:
    result = run_pounce(["--config", "nope.toml", "--check"], cwd=tmp_path, env=subprocess_env())
    assert result.returncode == 2
    assert "nope.toml: config file not found" in result.stderr


def test_header_option_keeps_commas(tmp_path: Path) -> None:
    result = check(tmp_path, "testapps:hello", "--header", "X-A: 1, 2", "--header", "X-B:3")
    assert result.returncode == 0, result.stderr
    assert 'headers = ["X-A: 1, 2", "X-B:3"]' in result.stdout


def test_check_runs_plugin_validation(tmp_path: Path) -> None:
    result = check(tmp_path, "testapps:hello", "--ssl-certfile", "missing.pem")
    assert result.returncode == 2
    assert "--ssl-certfile" in result.stderr and "missing.pem" in result.stderr


def test_workers_auto(tmp_path: Path) -> None:
    result = check(tmp_path, "testapps:hello", "--workers", "auto")
    assert result.returncode == 0, result.stderr
    assert 'workers = "auto"' in result.stdout
