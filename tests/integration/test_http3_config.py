"""The http3 plugin's configuration: inert by default, one-line errors
(exit 2) for what cannot work, the UDP listener in ``--check`` and the
banner."""

from __future__ import annotations

from pathlib import Path

import pytest

from pounce.testing import ServerProcess, run_pounce
from tests.h3client import H3Certs
from tests.helpers import subprocess_env

pytest.importorskip("aioquic")


@pytest.fixture
def certs(tmp_path: Path) -> H3Certs:
    return H3Certs(tmp_path)


def test_http3_without_tls_is_a_config_error(tmp_path: Path) -> None:
    result = run_pounce(["testapps:hello", "--http3", "--check"], cwd=tmp_path, env=subprocess_env())
    assert result.returncode == 2
    line = result.stderr.strip().splitlines()[-1]
    assert "--http3" in line and "[tls] certfile" in line and "Traceback" not in result.stderr

    (tmp_path / "pounce.toml").write_text('[server]\napp = "testapps:hello"\n[http3]\nenabled = true\n')
    result = run_pounce([], cwd=tmp_path, env=subprocess_env())
    assert result.returncode == 2
    assert "pounce.toml: [http3] enabled: expected [tls] certfile" in result.stderr


def test_client_certificates_required_is_a_config_error(certs: H3Certs, tmp_path: Path) -> None:
    args = ["testapps:hello", *certs.args(), "--ssl-ca-certs", certs.ca_pem, "--ssl-cert-reqs", "required",
            "--check"]
    result = run_pounce(args, cwd=tmp_path, env=subprocess_env())
    assert result.returncode == 2 and "cert_reqs" in result.stderr and "bypass" in result.stderr


def test_a_certificate_aioquic_cannot_read(certs: H3Certs, tmp_path: Path) -> None:
    bad = tmp_path / "bad.key"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n")
    result = run_pounce(["testapps:hello", "--ssl-certfile", certs.cert, "--ssl-keyfile", str(bad), "--http3",
                         "--check"], cwd=tmp_path, env=subprocess_env())
    assert result.returncode == 2 and "keyfile" in result.stderr and "Traceback" not in result.stderr


def test_check_shows_the_udp_listener(certs: H3Certs, tmp_path: Path) -> None:
    result = run_pounce(["testapps:hello", "--port", "8443", *certs.args(), "--check"], cwd=tmp_path,
                        env=subprocess_env())
    assert result.returncode == 0, result.stderr
    assert "# HTTP/3 would listen on udp://127.0.0.1:8443 (QUIC, TLS 1.3)" in result.stdout
    assert '# every TCP response would carry Alt-Svc: h3=":8443"; ma=86400' in result.stdout
    assert "\n[http3]\nenabled = true    # from cli" in result.stdout
    off = run_pounce(["testapps:hello", "--check"], cwd=tmp_path, env=subprocess_env())
    assert off.returncode == 0 and "udp://" not in off.stdout


@pytest.mark.slow
def test_banner_shows_the_udp_listener(certs: H3Certs, tmp_path: Path) -> None:
    with ServerProcess(["testapps:hello", "--port", "0", *certs.args()], cwd=tmp_path,
                       env=subprocess_env()) as proc:
        assert len(proc.urls) == 2
        tcp, udp = proc.urls
        assert tcp.startswith("https://127.0.0.1:")
        assert udp == "udp://127.0.0.1:" + tcp.rsplit(":", 1)[1]
        assert f"listening on {udp} (HTTP/3)" in proc.output()


def test_the_udp_port_in_use_is_a_bind_error(certs: H3Certs, tmp_path: Path) -> None:
    import socket

    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    try:
        port = taken.getsockname()[1]
        result = run_pounce(["testapps:hello", "--port", "0", *certs.args(), "--http3-port", str(port)],
                            cwd=tmp_path, env=subprocess_env(), timeout=30)
    finally:
        taken.close()
    assert result.returncode == 1
    assert f"could not bind UDP 127.0.0.1:{port} for HTTP/3: address already in use" in result.stderr
    assert "Traceback" not in result.stderr
