"""deploy/kubernetes/pounce.yaml, the manifest docs/deployment/kubernetes.md
shows: valid against the Kubernetes schema (kubernetes-validate, offline),
its shutdown timings add up, and the container's command, run here with the
ConfigMap's pounce.toml, answers the probes and drains on SIGTERM."""

from __future__ import annotations

import re
import signal
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from pounce.testing import ServerProcess, wait_for
from tests.helpers import ROOT, subprocess_env

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

yaml = pytest.importorskip("yaml")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

MANIFEST = ROOT / "deploy" / "kubernetes" / "pounce.yaml"
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
# Time left after the drain (the shutdown delay included), for the lifespan
# shutdown and the exit: the page says what timeout_graceful_shutdown must be.
SHUTDOWN_MARGIN = 5


def documents() -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all(MANIFEST.read_text())}


def container() -> dict[str, Any]:
    [app] = documents()["Deployment"]["spec"]["template"]["spec"]["containers"]
    return app


def pounce_toml() -> dict[str, Any]:
    return tomllib.loads(documents()["ConfigMap"]["data"]["pounce.toml"])


@pytest.mark.parametrize("kind", ["ConfigMap", "Deployment", "Service"])
def test_manifest_is_valid_against_the_kubernetes_schema(kind: str) -> None:
    resource = documents()[kind]
    kubernetes_validate.validate(resource, kubernetes_validate.latest_version(), strict=True)


def test_the_validator_would_catch_a_mistake() -> None:
    broken = documents()["Deployment"]
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] = [8000]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, kubernetes_validate.latest_version(), strict=True)


def test_shutdown_timings_add_up() -> None:
    """The shutdown delay (readiness 503, still accepting) fits inside
    timeout_graceful_shutdown, and that plus a margin inside
    terminationGracePeriodSeconds, which counts from SIGTERM: the pod needs
    no preStop sleep (and its image no sleep binary)."""
    spec = documents()["Deployment"]["spec"]["template"]["spec"]
    grace = spec["terminationGracePeriodSeconds"]
    assert "lifecycle" not in container()
    health = pounce_toml()["health"]
    delay = float(health["shutdown_delay"])
    drain = pounce_toml()["server"]["timeout_graceful_shutdown"]
    assert 0 < delay < drain
    assert drain + SHUTDOWN_MARGIN <= grace, (drain, grace)
    # The probes ask the health plugin, not the app.
    assert container()["readinessProbe"]["httpGet"]["path"] == health["ready_path"]
    assert container()["livenessProbe"]["httpGet"]["path"] == health["path"]
    # The comment at the top of the manifest states the same numbers.
    text = MANIFEST.read_text()
    assert f"shutdown_delay ({delay:g} s)" in text and f"({drain:g} s, the delay" in text
    assert f"({grace} s)" in text


def test_pod_wiring_matches_the_image_and_the_config() -> None:
    app = container()
    toml = pounce_toml()
    [port] = app["ports"]
    assert port["containerPort"] == toml["server"]["port"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert app[probe]["httpGet"]["port"] == port["name"]
    [mount] = app["volumeMounts"]
    assert app["command"][:2] == ["pounce", "--config"]
    assert app["command"][2] == f"{mount['mountPath']}/pounce.toml"
    assert toml["server"]["host"] == "0.0.0.0"
    # runAsNonRoot needs a numeric USER in the image.
    user = re.search(r"^USER (\S+)$", DOCKERFILE.read_text(), re.M)
    assert user is not None
    pod = documents()["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert str(pod["securityContext"]["runAsUser"]) == user.group(1)
    cpus = app["resources"]["limits"]["cpu"]
    assert int(cpus) == toml["server"]["workers"]


def test_the_container_command_answers_the_probes_and_drains(tmp_path: Path) -> None:
    """The ConfigMap's pounce.toml, mounted where the manifest mounts it
    (here a temporary folder), served by the container's command; the
    environment moves it to 127.0.0.1 and a free port, as tests must."""
    config = tmp_path / "pounce.toml"
    config.write_text(documents()["ConfigMap"]["data"]["pounce.toml"])
    command = [config.as_posix() if arg.endswith("/pounce.toml") else arg for arg in container()["command"]]
    env = subprocess_env({"POUNCE_SERVER_HOST": "127.0.0.1", "POUNCE_SERVER_PORT": "0"})
    with ServerProcess(command[1:], cwd=tmp_path, env=env) as server:
        assert server.url is not None
        for probe in ("readinessProbe", "livenessProbe"):
            path = container()[probe]["httpGet"]["path"]
            assert httpx.get(server.url + path, timeout=10).status_code == 200
        assert "workers: 2 (process mode)" in server.output()
        server.signal(signal.SIGTERM)
        # Readiness turns 503 at once, while the app is still served (the
        # shutdown delay), so the Service stops sending before pounce stops.
        ready = server.url + container()["readinessProbe"]["httpGet"]["path"]
        wait_for(lambda: httpx.get(ready, timeout=5).status_code == 503, 5, what="readiness to turn 503")
        assert httpx.get(server.url + "/", timeout=5).status_code == 200
        assert server.wait(pounce_toml()["server"]["timeout_graceful_shutdown"] + SHUTDOWN_MARGIN) == 0
    assert '"level":"info"' in server.output()  # JSON lines, as [logging] format says
