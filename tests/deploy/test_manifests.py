"""deploy/: the manifests parse, and every config key and CLI flag they use exists.

Docker cannot run on the test machine: the Dockerfile is checked for what a
build needs (its COPY sources exist, stages, a non-root user, a health
check) and its command line is parsed by the real `spean` parser.
"""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from spean.gateway.cli import build_parser
from spean.gateway.config import parse_config

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
KUBERNETES = DEPLOY / "kubernetes"


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def all_documents() -> list[dict[str, Any]]:
    kustomization = documents(KUBERNETES / "kustomization.yaml")[0]
    out = []
    for name in kustomization["resources"]:
        out += documents(KUBERNETES / name)
    return out


def find(kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in all_documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def spean_args(argv: list[str]) -> Any:
    """Parse a `spean` command line with the real parser (unknown flags exit 2)."""
    return build_parser().parse_args(argv)


def test_every_manifest_parses_and_is_listed() -> None:
    listed = set(documents(KUBERNETES / "kustomization.yaml")[0]["resources"])
    on_disk = {p.name for p in KUBERNETES.glob("*.yaml")}
    assert listed <= on_disk
    assert on_disk - listed == {"kustomization.yaml", "secrets.example.yaml"}
    for path in KUBERNETES.glob("*.yaml"):
        for document in documents(path):
            assert document["apiVersion"]
            assert document["kind"]


def test_the_embedded_server_config_is_valid() -> None:
    config_map = find("ConfigMap", "spean-server-config")
    data = yaml.safe_load(config_map["data"]["server.yaml"])
    config = parse_config(data, Path("/etc/spean/server.yaml"))
    assert config.audit.store.startswith("postgresql")
    assert "@" in config.audit.store
    assert ":" not in config.audit.store.split("@")[0].split("//")[1]  # no password in the file
    assert config.consumer is not None
    assert config.consumer.tls is not None  # not loopback: TLS is required


def test_security_server_replicas_behind_a_tcp_balancer() -> None:
    deployment = find("Deployment", "spean-server")
    assert deployment["spec"]["replicas"] >= 2
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    args = spean_args(container["args"])
    assert args.workers >= 1
    assert args.instance == "$(POD_NAME)"  # one audit log per pod and worker
    assert args.config == Path("/etc/spean/server.yaml")
    assert pod["terminationGracePeriodSeconds"] > args.grace
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert probe in container
    assert container["resources"]["limits"]["cpu"]
    assert container["resources"]["limits"]["memory"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    config = parse_config(
        yaml.safe_load(find("ConfigMap", "spean-server-config")["data"]["server.yaml"]),
        Path("/etc/spean/server.yaml"),
    )
    assert config.provider is not None
    assert config.consumer is not None
    assert config.provider.listen.endswith(f":{ports['provider']}")
    assert config.consumer.listen.endswith(f":{ports['consumer']}")
    balancer = find("Service", "spean-provider")
    assert balancer["spec"]["type"] == "LoadBalancer"
    assert all(p["protocol"] == "TCP" for p in balancer["spec"]["ports"])
    # Keys come from a Secret, mounted where the config looks for them.
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["keys"]["secret"]["secretName"] == "spean-server-keys"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert str(config.keys.tls_key).startswith(mounts["keys"])
    secret_keys = set(documents(KUBERNETES / "secrets.example.yaml")[0]["stringData"])
    for path in (config.keys.tls_key, config.keys.signing_certificate, config.keys.tls_certificate):
        assert path.name in secret_keys
    env = {e["name"]: e for e in container["env"]}
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "spean-audit-db"


def test_authority_and_postgres() -> None:
    authority = find("Deployment", "spean-authority")
    [container] = authority["spec"]["template"]["spec"]["containers"]
    args = spean_args(container["args"])
    assert args.port == 4400
    assert "readinessProbe" in container
    assert container["resources"]["limits"]
    postgres = find("StatefulSet", "spean-postgres")
    [db] = postgres["spec"]["template"]["spec"]["containers"]
    assert "readinessProbe" in db
    assert db["resources"]["limits"]
    config = yaml.safe_load(find("ConfigMap", "spean-server-config")["data"]["server.yaml"])
    assert "spean-authority:4400" in config["global_configuration"]["source"]
    assert "spean-postgres:5432" in config["audit"]["store"]


def test_dockerfile_is_multi_stage_non_root_with_a_health_check() -> None:
    lines = (DEPLOY / "container" / "Dockerfile").read_text(encoding="utf-8").splitlines()
    instructions = [line.split(None, 1) for line in lines if line and line[0] not in "# "]
    froms = [rest for op, rest in instructions if op == "FROM"]
    assert len(froms) >= 2
    users = [rest for op, rest in instructions if op == "USER"]
    assert users
    assert not users[-1].startswith(("root", "0"))
    assert any(op == "HEALTHCHECK" for op, _ in instructions)
    for op, rest in instructions:
        if op == "COPY" and not rest.startswith("--from"):
            for source in shlex.split(rest)[:-1]:
                assert (REPO / source).exists(), f"COPY {source}: not in the repository"
    cmd = next(rest for op, rest in instructions if op == "CMD")
    spean_args(yaml.safe_load(cmd))  # a JSON array is YAML too


def test_systemd_unit_is_hardened_and_its_commands_parse() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DEPLOY / "systemd" / "spean-server@.service")
    service = parser["Service"]
    assert service["User"] == "spean"
    for option in ("NoNewPrivileges", "ProtectSystem", "PrivateTmp", "ProtectHome"):
        assert service[option] in ("yes", "strict")
    assert service["ExecReload"].endswith("-HUP $MAINPID")
    argv = shlex.split(service["ExecStart"])
    assert argv[0].endswith("/spean")
    args = spean_args(argv[1:])
    assert float(service["TimeoutStopSec"]) > args.grace


@pytest.mark.parametrize("doc", ["scale-out.md", "onboarding.md"])
def test_guides_exist(doc: str) -> None:
    text = (REPO / "docs" / doc).read_text(encoding="utf-8")
    assert len(text) > 1000
