"""TLS certificate rotation of a security server: admitted beside the old one, both
listed and trusted, then the old one retired (gateway/authority/core.py,
gateway/globalconf.py, gateway/trust.py, `spean authority admit server --rotate`
and `spean authority retire-certificate`)."""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path

import pytest
import yaml

from spean.gateway import pki
from spean.gateway.authority import Authority, init_member, init_server
from spean.gateway.cli import main
from spean.gateway.cli import member as member_cli
from spean.gateway.errors import FailedPrecondition, InvalidArgument, NotFound, Unauthenticated
from spean.gateway.files import keyfiles
from spean.gateway.globalconf import GlobalConfiguration, verify_global_configuration
from spean.gateway.identifiers import parse_server
from spean.gateway.trust import identify_server
from spean.v1 import config_pb2

MOH = "KH/GOV/MOH"
SS1 = parse_server("KH/GOV/MOH/ss1")
ADDRESS = "127.0.0.1:9443"


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    authority = Authority.init(tmp_path / "authority", "KH")
    member = init_member(tmp_path / "moh", MOH)
    authority.admit_member(MOH, "Ministry of Health", member.csr.read_bytes())
    authority.admit_server(SS1, ADDRESS, new_csr(tmp_path))
    return authority


def new_csr(tmp_path: Path, server: str = str(SS1), address: str = ADDRESS) -> bytes:
    folder = tmp_path / "keys" / secrets.token_hex(4)
    return init_server(folder, server, address).csr.read_bytes()


def published(authority: Authority) -> GlobalConfiguration:
    authority.publish()
    data = authority.published_path.read_bytes()
    return verify_global_configuration(data, authority.signing_certificate, dt.datetime.now(dt.UTC))


def listed(conf: GlobalConfiguration) -> tuple[str, ...]:
    server = conf.server(SS1)
    assert server is not None
    return server.tls_fingerprints


def test_a_rotation_lists_both_certificates_until_the_old_one_is_retired(
    authority: Authority, tmp_path: Path
) -> None:
    old = published(authority).server(SS1)
    assert old is not None
    new_cert = pki.parse_certificate_pem(
        authority.admit_server(SS1, ADDRESS, new_csr(tmp_path), rotate=True)
    )
    new = pki.thumbprint(new_cert)

    during = published(authority)
    assert listed(during) == (new, old.tls_certificate_sha256)  # newest first
    server = during.server(SS1)
    assert server is not None
    assert server.tls_certificate_sha256 == new
    # A peer presenting either certificate is this server.
    for cert in (old.tls_certificate, new_cert):
        assert identify_server(during, pki.certificate_pem(cert))[0].id == SS1

    serial = authority.retire_certificate(SS1, thumbprint=old.tls_certificate_sha256)
    assert serial == old.tls_certificate.serial_number
    after = published(authority)
    assert listed(after) == (new,)
    with pytest.raises(Unauthenticated, match="is not that of a security server listed"):
        identify_server(after, pki.certificate_pem(old.tls_certificate))
    assert not after.is_revoked(serial)  # retired, not revoked: it was never compromised


def test_retiring_with_revoke_also_revokes(authority: Authority, tmp_path: Path) -> None:
    old = published(authority).server(SS1)
    assert old is not None
    authority.admit_server(SS1, ADDRESS, new_csr(tmp_path), rotate=True)
    authority.retire_certificate(SS1, serial=old.tls_certificate.serial_number, revoke=True)
    after = published(authority)
    assert after.is_revoked(old.tls_certificate.serial_number)
    assert old.tls_certificate_sha256 not in listed(after)


def test_retiring_the_new_certificate_abandons_the_rotation(
    authority: Authority, tmp_path: Path
) -> None:
    old = published(authority).server(SS1)
    assert old is not None
    new = pki.parse_certificate_pem(
        authority.admit_server(SS1, ADDRESS, new_csr(tmp_path), rotate=True)
    )
    authority.retire_certificate(SS1, serial=new.serial_number)
    assert listed(published(authority)) == (old.tls_certificate_sha256,)


def test_rotation_rules(authority: Authority, tmp_path: Path) -> None:
    with pytest.raises(FailedPrecondition, match="--rotate"):
        authority.admit_server(SS1, ADDRESS, new_csr(tmp_path))
    with pytest.raises(InvalidArgument, match="not both"):
        authority.admit_server(SS1, ADDRESS, new_csr(tmp_path), rotate=True, replace=True)
    with pytest.raises(NotFound, match="without --rotate"):
        authority.admit_server("KH/GOV/MOH/ss2", ADDRESS, new_csr(tmp_path), rotate=True)
    with pytest.raises(FailedPrecondition, match="keeps the address"):
        authority.admit_server(SS1, "10.0.0.9:9443", new_csr(tmp_path), rotate=True)
    # The key of the current certificate cannot be "rotated" to.
    folder = tmp_path / "same"
    keys = init_server(folder, str(SS1), ADDRESS)
    authority.admit_server(SS1, ADDRESS, keys.csr.read_bytes(), rotate=True)
    with pytest.raises(FailedPrecondition, match="already certified"):
        authority.admit_server(SS1, ADDRESS, keys.csr.read_bytes(), rotate=True)
    authority.admit_server(SS1, ADDRESS, new_csr(tmp_path), rotate=True)
    assert len(listed(published(authority))) == 3
    with pytest.raises(FailedPrecondition, match="retire one first"):
        authority.admit_server(SS1, ADDRESS, new_csr(tmp_path), rotate=True)
    # --replace ends every overlap at once.
    authority.admit_server(SS1, ADDRESS, new_csr(tmp_path), replace=True)
    assert len(listed(published(authority))) == 1


def test_the_only_certificate_cannot_be_retired(authority: Authority) -> None:
    current = published(authority).server(SS1)
    assert current is not None
    with pytest.raises(FailedPrecondition, match="only TLS certificate"):
        authority.retire_certificate(SS1, thumbprint=current.tls_certificate_sha256)
    with pytest.raises(NotFound, match="lists no TLS certificate"):
        authority.retire_certificate(SS1, thumbprint="ab" * 32)
    with pytest.raises(InvalidArgument, match="exactly one"):
        authority.retire_certificate(SS1)


def test_the_registry_keeps_the_overlap(authority: Authority, tmp_path: Path) -> None:
    document = yaml.safe_load((authority.directory / "registry.yaml").read_text())
    assert "additional_tls_certificates" not in document["servers"][0]  # unchanged format
    authority.admit_server(SS1, ADDRESS, new_csr(tmp_path), rotate=True)
    document = yaml.safe_load((authority.directory / "registry.yaml").read_text())
    assert len(document["servers"][0]["additional_tls_certificates"]) == 1
    # Reopened from disk, the overlap is still there.
    assert len(listed(published(Authority.open(authority.directory)))) == 2


def _message(authority: Authority, tmp_path: Path) -> config_pb2.GlobalConfiguration:
    authority.admit_server(SS1, ADDRESS, new_csr(tmp_path), rotate=True)
    return authority.build_configuration(1, dt.datetime.now(dt.UTC), dt.timedelta(days=1))


def test_the_verifier_refuses_a_certificate_listed_twice(
    authority: Authority, tmp_path: Path
) -> None:
    msg = _message(authority, tmp_path)
    msg.servers[0].additional_tls_certificates.append(msg.servers[0].tls_certificate)
    with pytest.raises(InvalidArgument, match="is listed twice"):
        GlobalConfiguration.from_proto(msg)


def test_the_verifier_refuses_another_servers_certificate(
    authority: Authority, tmp_path: Path
) -> None:
    authority.admit_server("KH/GOV/MOH/ss2", "127.0.0.1:9444", new_csr(tmp_path, "KH/GOV/MOH/ss2"))
    msg = _message(authority, tmp_path)
    ss2 = next(s for s in msg.servers if s.id == "KH/GOV/MOH/ss2")
    ss2.additional_tls_certificates.append(msg.servers[0].additional_tls_certificates[0])
    with pytest.raises(InvalidArgument, match="is also another server's"):
        GlobalConfiguration.from_proto(msg)


def test_the_verifier_refuses_garbage_in_the_additional_certificates(
    authority: Authority, tmp_path: Path
) -> None:
    msg = _message(authority, tmp_path)
    msg.servers[0].additional_tls_certificates[0] = b"not a certificate"
    with pytest.raises(InvalidArgument, match="additional TLS certificate #0"):
        GlobalConfiguration.from_proto(msg)


def test_rotation_from_the_command_line(
    authority: Authority,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SPEAN_KEY_PASSPHRASE", raising=False)
    monkeypatch.setattr(member_cli, "configure_logging", lambda *args, **kwargs: None)
    old = published(authority).server(SS1)
    assert old is not None
    csr = tmp_path / "next.csr"
    csr.write_bytes(new_csr(tmp_path))
    out = tmp_path / "next.crt"
    argv = ["authority", "admit", "server", "--dir", str(authority.directory)]
    argv += ["--id", str(SS1), "--address", ADDRESS, "--csr", str(csr), "--out", str(out)]
    assert main([*argv, "--rotate"]) == 0
    with pytest.raises(SystemExit):  # argparse: the two are mutually exclusive
        main([*argv, "--rotate", "--replace"])
    assert "not allowed with argument" in capsys.readouterr().err
    retire = ["authority", "retire-certificate", "--dir", str(authority.directory)]
    retire += ["--server", str(SS1), "--serial", pki.serial_hex(old.tls_certificate.serial_number)]
    assert main([*retire, "--revoke"]) == 0
    assert "retired and revoked TLS certificate serial" in capsys.readouterr().out
    after = published(authority)
    assert listed(after) == (pki.thumbprint(keyfiles.load_certificate(out)),)
    assert after.is_revoked(old.tls_certificate.serial_number)
