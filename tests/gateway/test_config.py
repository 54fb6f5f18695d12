"""Server configuration: complete validation, errors that name file and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from spean.gateway.config import member_folder_document, parse_config
from spean.gateway.errors import ConfigError
from spean.gateway.files.config import load_config


def good() -> dict[str, Any]:
    return {
        "server_id": "KH/GOV/MPWT/ss1",
        "keys": {
            "tls_key": "keys/tls.key",
            "tls_certificate": "keys/tls.crt",
            "signing_key": "keys/signing.key",
            "signing_certificate": "keys/signing.crt",
        },
        "global_configuration": {
            "source": "http://127.0.0.1:4400/v1/globalconf",
            "anchor": "keys/authority.crt",
            "cache": "state/globalconf.signed",
        },
        "consumer": {"listen": "127.0.0.1:8080", "clients": [{"subsystem": "KH/GOV/MPWT/portal"}]},
        "provider": {
            "listen": "0.0.0.0:9443",
            "services": [{"subsystem": "KH/GOV/MPWT/vehicles", "adapter": {"type": "sql"}}],
            "access": [
                {
                    "client": "KH/GOV/MOH/nhis",
                    "service": "KH/GOV/MPWT/vehicles",
                    "methods": ["/vehicles.v1.VehicleRegistry/GetVehicle"],
                }
            ],
        },
        "audit": {"store": "state/audit.db"},
    }


def errors_of(document: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(document, Path("/etc/spean/server.yaml"))
    return info.value.message


def test_a_good_file_loads_with_defaults_and_resolved_paths(tmp_path: Path) -> None:
    path = tmp_path / "server.yaml"
    path.write_text(yaml.safe_dump(good()))
    config = load_config(path)
    assert str(config.server) == "KH/GOV/MPWT/ss1"
    assert config.limits.max_message_bytes == 4 * 1024 * 1024
    assert config.resolve(config.keys.tls_key) == tmp_path / "keys" / "tls.key"
    assert config.global_configuration.refresh_seconds == 60


def test_errors_name_the_file_and_the_field() -> None:
    document = good()
    document["provider"]["access"][0]["methods"] = ["GetVehicle"]
    message = errors_of(document)
    assert message.startswith("/etc/spean/server.yaml: provider.access[0].methods[0]:")
    assert "/package.Service/Method" in message


def test_unknown_keys_are_refused() -> None:
    document = good()
    document["audit"]["stroe"] = "x"
    assert "audit.stroe" in errors_of(document)


def test_plaintext_consumer_only_on_loopback() -> None:
    document = good()
    document["consumer"]["listen"] = "10.1.2.3:8080"
    assert "plaintext is only allowed on loopback" in errors_of(document)


def test_subsystems_must_belong_to_the_servers_member() -> None:
    document = good()
    document["consumer"]["clients"] = [{"subsystem": "KH/GOV/MOH/nhis"}]
    assert "does not belong to KH/GOV/MPWT" in errors_of(document)


def test_access_rules_must_name_a_published_service() -> None:
    document = good()
    document["provider"]["access"][0]["service"] = "KH/GOV/MPWT/other"
    assert "not one of the services published here" in errors_of(document)


def test_a_provider_side_without_a_service_yet_is_valid_but_grants_no_access() -> None:
    document = good()
    document["provider"]["services"] = []
    document["provider"]["access"] = []
    config = parse_config(document, Path("/etc/spean/server.yaml"))
    assert config.provider is not None
    assert config.provider.services == []
    document["provider"]["access"] = good()["provider"]["access"]
    assert "not one of the services published here" in errors_of(document)


def test_at_least_one_endpoint() -> None:
    document = good()
    del document["consumer"], document["provider"]
    assert "at least one of consumer and provider" in errors_of(document)


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "server.yaml"
    path.write_text("server_id: [unclosed\n")
    with pytest.raises(ConfigError, match=r"server.yaml: not valid YAML at line \d"):
        load_config(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the configuration"):
        load_config(tmp_path / "absent.yaml")


def test_duplicate_client_is_refused() -> None:
    document = good()
    document["consumer"]["clients"] *= 2
    assert "listed twice" in errors_of(document)


def test_client_certificates_are_all_or_none() -> None:
    document = good()
    document["consumer"]["listen"] = "127.0.0.1:8443"
    document["consumer"]["tls"] = {"certificate": "tls/consumer.crt", "key": "tls/consumer.key"}
    document["consumer"]["clients"] = [
        {"subsystem": "KH/GOV/MPWT/portal", "certificate": "clients/portal.crt"},
        {"subsystem": "KH/GOV/MPWT/desk"},
    ]
    assert "missing for KH/GOV/MPWT/desk" in errors_of(document)
    document["consumer"]["clients"][1]["certificate"] = "clients/desk.crt"
    parse_config(document, Path("/etc/spean/server.yaml"))


def test_a_member_folder_document_is_a_valid_server_yaml_with_its_files_in_the_folder() -> None:
    document = member_folder_document("KH/GOV/MOE/ss1", "http://127.0.0.1:4400", "keys/a.crt")
    document["provider"] = {"listen": "127.0.0.1:9551", "services": [], "access": []}
    config = parse_config(document, Path("/srv/moe/server.yaml"))
    assert str(config.server) == "KH/GOV/MOE/ss1"
    assert config.resolve(config.keys.signing_key) == Path("/srv/moe/keys/signing.key")
    assert config.resolve(config.keys.tls_certificate) == Path("/srv/moe/keys/tls.crt")
    assert config.resolve(config.global_configuration.anchor) == Path("/srv/moe/keys/a.crt")
    assert config.audit.store == "state/audit.db"
