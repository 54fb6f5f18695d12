"""Data minimisation entries in a provider's access rules: each mistake named precisely."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from spean.gateway.config import parse_config
from spean.gateway.errors import ConfigError
from spean.gateway.files.config import read_pseudonymisation_key

FILE = Path("/etc/spean/server.yaml")
GET = "/vehicles.v1.VehicleRegistry/GetVehicle"
LIST = "/vehicles.v1.VehicleRegistry/ListVehiclesByOwner"


def document(
    *minimise: dict[str, Any], methods: list[str] | None = None, key: str | None = "pseudonym.key"
) -> dict[str, Any]:
    provider: dict[str, Any] = {
        "listen": "0.0.0.0:9443",
        "services": [{"subsystem": "KH/GOV/MPWT/vehicles", "adapter": {"type": "sql"}}],
        "access": [
            {
                "client": "KH/GOV/MOH/nhis",
                "service": "KH/GOV/MPWT/vehicles",
                "methods": methods or [GET],
                "minimise": list(minimise),
            }
        ],
    }
    if key is not None:
        provider["pseudonymisation_key"] = key
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
        "provider": provider,
        "audit": {"store": "state/audit.db"},
    }


def error_of(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, FILE)
    return caught.value.message


def test_a_complete_entry_loads() -> None:
    config = parse_config(
        document(
            {"method": GET, "drop": ["make", "owner.address"], "pseudonymise": ["owner_id"]},
            {"pseudonymise": ["plate"]},  # no method: every method of the rule
        ),
        FILE,
    )
    assert config.provider is not None
    (rule,) = config.provider.access
    first, second = rule.minimise
    assert (first.method, first.drop, first.pseudonymise) == (
        GET,
        ["make", "owner.address"],
        ["owner_id"],
    )
    assert (second.method, second.drop) == ("*", [])
    assert config.provider.pseudonymisation_key == Path("pseudonym.key")


def test_no_rule_needs_no_key() -> None:
    config = parse_config(document(key=None), FILE)
    assert config.provider is not None
    assert config.provider.pseudonymisation_key is None
    assert read_pseudonymisation_key(config) is None


def test_dropping_alone_needs_no_key() -> None:
    config = parse_config(document({"drop": ["make"]}, key=None), FILE)
    assert config.provider is not None
    assert config.provider.access[0].minimise[0].drop == ["make"]


def test_pseudonymising_without_a_key() -> None:
    assert error_of(document({"pseudonymise": ["owner_id"]}, key=None)) == (
        f"{FILE}: provider: access[0] pseudonymises fields: set"
        " provider.pseudonymisation_key to a file of at least 32 secret bytes"
        " (e.g. 'openssl rand -hex 32')"
    )


def test_a_method_outside_the_rule() -> None:
    message = error_of(document({"method": LIST, "drop": ["make"]}, methods=[GET]))
    assert message == (
        f"{FILE}: provider.access[0]: minimise[0].method {LIST} is not among this rule's methods"
    )


def test_a_rule_for_every_method_takes_any_method() -> None:
    config = parse_config(document({"method": LIST, "drop": ["make"]}, methods=["*"]), FILE)
    assert config.provider is not None
    assert config.provider.access[0].minimise[0].method == LIST


def test_a_field_both_dropped_and_pseudonymised() -> None:
    message = error_of(document({"drop": ["make", "owner_id"], "pseudonymise": ["owner_id"]}))
    assert message == (
        f"{FILE}: provider.access[0].minimise[0]: field 'owner_id' is both dropped and"
        " pseudonymised"
    )


@pytest.mark.parametrize("entry", [{}, {"method": GET}, {"drop": [], "pseudonymise": []}])
def test_an_empty_entry(entry: dict[str, Any]) -> None:
    message = error_of(document({"drop": ["make"]}, entry))
    assert message == (
        f"{FILE}: provider.access[0].minimise[1]: list at least one field under drop or"
        " pseudonymise"
    )


@pytest.mark.parametrize("field", ["owner id", "owner..id", "1plate", ""])
def test_a_field_that_is_not_a_path(field: str) -> None:
    message = error_of(document({"drop": [field]}))
    assert message.startswith(f"{FILE}: provider.access[0].minimise[0].drop[0]: ")
    assert f"{field!r} is not a field path such as owner_id or owner.id" in message


def test_a_method_that_is_not_a_method() -> None:
    message = error_of(document({"method": "GetVehicle", "drop": ["make"]}))
    assert message.startswith(f"{FILE}: provider.access[0].minimise[0].method: ")


def test_an_unknown_key_in_an_entry() -> None:
    message = error_of(document({"drop": ["make"], "hash": ["owner_id"]}))
    assert message.startswith(f"{FILE}: provider.access[0].minimise[0].hash: ")


def test_the_key_file_is_read_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "pseudonym.key").write_text("9f" * 32 + "\n")
    config = parse_config(document({"pseudonymise": ["owner_id"]}), tmp_path / "server.yaml")
    assert read_pseudonymisation_key(config) == b"9f" * 32
    missing = parse_config(
        document({"pseudonymise": ["owner_id"]}, key="absent.key"), tmp_path / "server.yaml"
    )
    with pytest.raises(ConfigError) as caught:
        read_pseudonymisation_key(missing)
    assert caught.value.message == (
        f"{tmp_path / 'server.yaml'}: provider.pseudonymisation_key: cannot read"
        f" {tmp_path / 'absent.key'}: No such file or directory"
    )
