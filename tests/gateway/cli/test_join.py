"""`spean join` prepares a new member's folder in one command; the authority admits it in one."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from spean.gateway import pki
from spean.gateway.authority import Authority
from spean.gateway.cli import main
from spean.gateway.cli import member as member_cli
from spean.gateway.cli.join import fetch_anchor, with_port
from spean.gateway.demo.federation import Federation
from spean.gateway.demo.ministries import build_demo
from spean.gateway.errors import ConfigError
from spean.gateway.files import keyfiles
from spean.gateway.files.config import load_config
from spean.gateway.server.app import SecurityServer

MOE = "KH/GOV/MOE"


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    """No passphrase from the environment, no process-wide logging set-up."""
    monkeypatch.delenv("SPEAN_KEY_PASSPHRASE", raising=False)
    monkeypatch.setattr(member_cli, "configure_logging", lambda *args, **kwargs: None)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Federation:
    return build_demo(tmp_path_factory.mktemp("join") / "demo")


def join(folder: Path, authority: str | Path, *extra: str) -> int:
    return main(
        [
            "join",
            "--member",
            MOE,
            "--name",
            "Ministry of Education",
            "--address",
            "127.0.0.1:0",
            "--authority",
            str(authority),
            "--dir",
            str(folder),
            *extra,
        ]
    )


def test_join_writes_keys_requests_a_valid_skeleton_and_the_anchor_to_check(
    demo: Federation, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "moe"
    assert join(folder, demo.root / "authority", "--client", "KH/GOV/MOE/portal") == 0

    out = capsys.readouterr().out
    anchor = pki.thumbprint(demo.authority.signing_certificate)
    assert " ".join(anchor[i : i + 4] for i in range(0, 64, 4)) in out
    assert "by telephone" in out
    for key in ("signing.key", "tls.key"):
        assert stat.S_IMODE((folder / "keys" / key).stat().st_mode) == 0o600
    assert keyfiles.load_certificate(folder / "keys" / "authority.crt") == (
        demo.authority.signing_certificate
    )
    document = yaml.safe_load((folder / "server.yaml").read_text())
    assert document["server_id"] == "KH/GOV/MOE/ss1"
    assert document["global_configuration"]["source"] == str(
        (demo.root / "authority" / "globalconf.signed").resolve()
    )
    assert document["audit"] == {"store": "state/audit.db"}
    assert (folder / "state").is_dir()
    assert document["consumer"]["clients"] == [{"subsystem": "KH/GOV/MOE/portal"}]
    # Valid as written: the provider side publishes nothing until publish-table adds a service.
    config = load_config(folder / "server.yaml")
    assert config.provider is not None
    assert config.provider.services == []
    request = yaml.safe_load((folder / "join-request.yaml").read_text())
    assert request["member"]["id"] == MOE
    assert request["server"]["address"] == document["provider"]["listen"]
    assert request["deliver_to"] == "keys"  # beside the request, not a path of this machine
    authority = str(demo.root / "authority")
    assert f"the authority runs: spean authority admit --dir {authority} --request" in out


def test_the_authority_admits_the_request_and_the_certificates_land_in_the_keys_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    demo = build_demo(tmp_path / "demo")
    folder = tmp_path / "moe"
    assert join(folder, demo.root / "authority") == 0
    request = folder / "join-request.yaml"

    assert (
        main(
            ["authority", "admit", "--dir", str(demo.root / "authority"), "--request", str(request)]
        )
        == 0
    )

    out = capsys.readouterr().out
    assert "admitted KH/GOV/MOE (Ministry of Education) and KH/GOV/MOE/ss1" in out
    tls = keyfiles.load_certificate(folder / "keys" / "tls.crt")
    key = keyfiles.load_private_key(folder / "keys" / "tls.key")
    assert pki.public_key_bytes(tls.public_key()) == pki.public_key_bytes(key.public_key())  # type: ignore[arg-type]
    assert (folder / "keys" / "signing.crt").is_file()
    registry = Authority.open(demo.root / "authority").registry()
    assert any(s.id == "KH/GOV/MOE/ss1" for s in registry.servers)


def test_with_approval_admit_leaves_a_pending_request_for_the_officer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    demo = build_demo(tmp_path / "demo")
    authority = str(demo.root / "authority")
    assert main(["authority", "set-approval", "--dir", authority, "required"]) == 0
    folder = tmp_path / "moe"
    assert join(folder, authority) == 0
    capsys.readouterr()

    assert (
        main(
            [
                "authority",
                "admit",
                "--dir",
                authority,
                "--request",
                str(folder / "join-request.yaml"),
            ]
        )
        == 0
    )
    assert "is pending" in capsys.readouterr().out
    assert not (folder / "keys" / "tls.crt").exists()
    assert main(["authority", "pending", "--dir", authority]) == 0
    assert "KH/GOV/MOE/ss1  KH/GOV/MOE (Ministry of Education)" in capsys.readouterr().out

    assert main(["authority", "approve", "--dir", authority, "--server", "KH/GOV/MOE/ss1"]) == 0
    assert (folder / "keys" / "tls.crt").is_file()
    assert main(["authority", "pending", "--dir", authority]) == 0
    assert "no join request is pending" in capsys.readouterr().out


@pytest.fixture
def served(demo: Federation) -> Iterator[str]:
    with demo.authority.serve("127.0.0.1", 0) as server:
        yield f"http://127.0.0.1:{server.port}"


def test_join_over_http_fetches_the_anchor_and_points_at_the_url(
    served: str, demo: Federation, tmp_path: Path
) -> None:
    assert join(tmp_path / "moe", served) == 0
    document = yaml.safe_load((tmp_path / "moe" / "server.yaml").read_text())
    assert document["global_configuration"]["source"] == f"{served}/v1/globalconf"
    assert keyfiles.load_certificate(tmp_path / "moe" / "keys" / "authority.crt") == (
        demo.authority.signing_certificate
    )


def test_an_anchor_other_than_the_one_given_by_telephone_is_refused(
    served: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert join(tmp_path / "moe", served, "--anchor-sha256", "ab" * 32) == 1
    assert "do not join through it" in capsys.readouterr().err
    assert not (tmp_path / "moe" / "keys").exists()


def test_a_folder_that_holds_a_join_is_refused_whole(
    demo: Federation, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "moe"
    assert join(folder, demo.root / "authority") == 0
    before = (folder / "keys" / "tls.key").read_bytes()
    assert join(folder, demo.root / "authority") == 1
    assert "already holds a join" in capsys.readouterr().err
    assert (folder / "keys" / "tls.key").read_bytes() == before


def test_a_member_of_another_instance_is_refused(
    demo: Federation, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "join",
            "--member",
            "LA/GOV/MOE",
            "--name",
            "x",
            "--address",
            "127.0.0.1:0",
            "--authority",
            str(demo.root / "authority"),
            "--dir",
            str(tmp_path / "x"),
        ]
    )
    assert code == 1
    assert "the authority serves instance 'KH'" in capsys.readouterr().err


def test_admit_without_a_request_or_a_kind_says_what_to_give(
    demo: Federation, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["authority", "admit", "--dir", str(demo.root / "authority")]) == 1
    assert "give --dir and --request FILE" in capsys.readouterr().err


def test_an_address_without_a_port_gets_a_free_one_and_a_given_port_is_kept() -> None:
    host, port = with_port("127.0.0.1").rsplit(":", 1)
    assert host == "127.0.0.1"
    assert 0 < int(port) < 65536
    assert with_port("127.0.0.1:0") != "127.0.0.1:0"
    assert with_port("ss1.moeys.gov.kh:9443") == "ss1.moeys.gov.kh:9443"


def test_an_authority_that_is_neither_url_folder_nor_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such URL, folder or file"):
        fetch_anchor(str(tmp_path / "nowhere"), None)


def admit(authority: Path, request: Path, *extra: str) -> int:
    return main(["authority", "admit", "--dir", str(authority), "--request", str(request), *extra])


def test_a_server_admitted_before_it_publishes_starts_and_the_doctor_names_the_next_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    demo = build_demo(tmp_path / "demo")
    folder = tmp_path / "moe"
    assert join(folder, demo.root / "authority") == 0
    capsys.readouterr()
    assert main(["doctor", "--config", str(folder / "server.yaml"), "--no-peers"]) == 1
    assert "fix: the join request is not admitted yet: the authority runs spean authority" in (
        capsys.readouterr().out
    )
    assert admit(demo.root / "authority", folder / "join-request.yaml") == 0
    capsys.readouterr()

    assert main(["doctor", "--config", str(folder / "server.yaml"), "--no-peers"]) == 0
    out = capsys.readouterr().out
    assert "WARN  adapters     the provider side publishes no service yet" in out
    assert f"spean publish-table ... --config {(folder / 'server.yaml').resolve()}" in out
    server = SecurityServer(load_config(folder / "server.yaml"))
    server.start()
    try:
        assert server.provider_port is not None
        assert server.provider_port > 0
    finally:
        server.stop(grace=0)


def test_an_authority_elsewhere_writes_the_certificates_beside_the_copy_it_received(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    demo = build_demo(tmp_path / "demo")
    folder = tmp_path / "moe"
    assert join(folder, demo.root / "authority") == 0
    inbox = tmp_path / "officer" / "inbox" / "moe"
    inbox.mkdir(parents=True)
    (inbox / "join-request.yaml").write_bytes((folder / "join-request.yaml").read_bytes())

    assert admit(demo.root / "authority", inbox / "join-request.yaml") == 0

    assert f"wrote {inbox / 'keys' / 'signing.crt'} and {inbox / 'keys' / 'tls.crt'}" in (
        capsys.readouterr().out
    )
    assert keyfiles.load_certificate(inbox / "keys" / "tls.crt")
    assert not (folder / "keys" / "tls.crt").exists()


def test_a_request_naming_a_folder_of_another_machine_is_refused_before_anything_is_admitted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    demo = build_demo(tmp_path / "demo")
    folder = tmp_path / "moe"
    assert join(folder, demo.root / "authority") == 0
    request = folder / "join-request.yaml"
    document = yaml.safe_load(request.read_text())
    document["deliver_to"] = "/home/moe/keys"
    request.write_text(yaml.safe_dump(document))
    capsys.readouterr()

    assert admit(demo.root / "authority", request) == 1

    assert "give --out FOLDER for the certificates" in capsys.readouterr().err
    registry = Authority.open(demo.root / "authority").registry()
    assert not any(s.id == "KH/GOV/MOE/ss1" for s in registry.servers)
