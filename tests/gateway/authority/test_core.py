"""The federation authority: admission rules, publication and serving, on real files."""

from __future__ import annotations

import datetime as dt
import secrets
import stat
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID
from google.protobuf import descriptor_pb2

from spean.gateway import pki
from spean.gateway.authority import Authority, KeyFiles, init_member, init_server
from spean.gateway.errors import ConfigError, FailedPrecondition, InvalidArgument, NotFound
from spean.gateway.files import keyfiles
from spean.gateway.globalconf import GlobalConfiguration, verify_global_configuration
from spean.gateway.identifiers import MemberId, SubsystemId, parse_server

MOH = "KH/GOV/MOH"
MOH_SS1 = "KH/GOV/MOH/ss1"
NHIS = "KH/GOV/MOH/nhis"
REPORT = "/health.v1.FacilityStats/GetMonthlyReport"


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    return Authority.init(tmp_path / "authority", "KH")


def member_csr(tmp_path: Path, member: str = MOH, kind: pki.KeyKind = "ec-p256") -> bytes:
    folder = tmp_path / "members" / secrets.token_hex(4)
    return init_member(folder, member, key_kind=kind).csr.read_bytes()


def server_csr(tmp_path: Path, server: str = MOH_SS1) -> bytes:
    folder = tmp_path / "servers" / secrets.token_hex(4)
    return init_server(folder, server, "127.0.0.1:9443").csr.read_bytes()


def published(authority: Authority) -> GlobalConfiguration:
    authority.publish()
    data = authority.published_path.read_bytes()
    return verify_global_configuration(data, authority.signing_certificate, dt.datetime.now(dt.UTC))


def admitted(authority: Authority, tmp_path: Path) -> Authority:
    """MoH admitted with one server hosting nhis."""
    authority.admit_member(MOH, "Ministry of Health", member_csr(tmp_path))
    authority.admit_server(MOH_SS1, "127.0.0.1:9443", server_csr(tmp_path))
    authority.add_subsystem(NHIS, "NHIS", methods=[(REPORT, False)], servers=[MOH_SS1])
    return authority


# ---------------------------------------------------------------- init / open


def test_init_lays_out_the_directory(authority: Authority) -> None:
    d = authority.directory
    for name in ("ca.key", "signing.key"):
        assert stat.S_IMODE((d / name).stat().st_mode) == 0o600
    ca = keyfiles.load_certificate(d / "ca.crt")
    anchor = keyfiles.load_certificate(authority.anchor_path)
    anchor.verify_directly_issued_by(ca)
    assert anchor.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "KH configuration signing"
    )
    registry = yaml.safe_load((d / "registry.yaml").read_text())
    assert registry["instance"] == "KH"
    assert registry["next_version"] == 1
    assert registry["issued"][0]["kind"] == "configuration"
    assert not authority.published_path.exists()


def test_init_refuses_an_existing_authority(authority: Authority) -> None:
    with pytest.raises(FailedPrecondition, match="already holds an authority"):
        Authority.init(authority.directory, "KH")


def test_init_refuses_a_bad_instance(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="instance 'K H'"):
        Authority.init(tmp_path / "a", "K H")
    assert not (tmp_path / "a").exists()


def test_open_a_missing_directory_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(FailedPrecondition, match="spean authority init"):
        Authority.open(tmp_path / "nowhere")


def test_encrypted_keys_are_needed_only_to_sign(tmp_path: Path) -> None:
    directory = tmp_path / "authority"
    Authority.init(directory, "KH", b"authority passphrase")
    assert b"ENCRYPTED" in (directory / "ca.key").read_bytes()
    csr = member_csr(tmp_path)
    with pytest.raises(FailedPrecondition, match=r"ca\.key is encrypted"):
        Authority.open(directory).admit_member(MOH, "Ministry of Health", csr)
    with pytest.raises(FailedPrecondition, match="wrong passphrase"):
        Authority.open(directory, b"guess").admit_member(MOH, "Ministry of Health", csr)
    reopened = Authority.open(directory, b"authority passphrase")
    reopened.admit_member(MOH, "Ministry of Health", csr)
    assert published(reopened).member(MemberId.parse(MOH)) is not None
    # Serving needs no key at all.
    with Authority.open(directory).serve() as server:
        assert (
            urllib.request.urlopen(server.url, timeout=5).read()
            == reopened.published_path.read_bytes()
        )


# ---------------------------------------------------------------- admission


def test_member_admission_ignores_the_csr_subject(authority: Authority, tmp_path: Path) -> None:
    csr = member_csr(tmp_path, member="KH/GOV/MOI")  # requests another identity
    cert = x509.load_pem_x509_certificate(authority.admit_member(MOH, "Ministry of Health", csr))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == MOH
    assert pki.san_uris(cert) == [f"urn:spean:member:{MOH}"]
    cert.verify_directly_issued_by(authority.ca_certificate)


def test_member_key_rotation_adds_a_certificate(authority: Authority, tmp_path: Path) -> None:
    first_csr = member_csr(tmp_path)
    authority.admit_member(MOH, "Ministry of Health", first_csr)
    authority.admit_member(MOH, "Ministry of Health", member_csr(tmp_path, kind="ed25519"))
    member = published(authority).member(MemberId.parse(MOH))
    assert member is not None
    assert len(member.signing_certificates) == 2
    with pytest.raises(FailedPrecondition, match="already has a certificate for this key"):
        authority.admit_member(MOH, "Ministry of Health", first_csr)
    with pytest.raises(FailedPrecondition, match="already admitted as 'Ministry of Health'"):
        authority.admit_member(MOH, "Health Ministry", member_csr(tmp_path))


def test_identifiers_differing_only_in_case_are_refused(
    authority: Authority, tmp_path: Path
) -> None:
    admitted(authority, tmp_path)
    with pytest.raises(FailedPrecondition, match="differs only in case from KH/GOV/MOH"):
        authority.admit_member("KH/GOV/moh", "Other", member_csr(tmp_path))
    with pytest.raises(FailedPrecondition, match="differs only in case from KH/GOV/MOH/nhis"):
        authority.add_subsystem("KH/GOV/MOH/NHIS")
    with pytest.raises(FailedPrecondition, match="differs only in case from KH/GOV/MOH/ss1"):
        authority.admit_server("KH/GOV/MOH/SS1", "127.0.0.1:9444", server_csr(tmp_path))
    with pytest.raises(FailedPrecondition, match="ss1 is already a registered security server"):
        authority.add_subsystem(MOH_SS1)


def test_unknown_owners_and_duplicates_are_refused(authority: Authority, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="its owner KH/GOV/MOH is not an admitted member"):
        authority.add_subsystem(NHIS)
    with pytest.raises(NotFound, match="admit the member first"):
        authority.admit_server(MOH_SS1, "127.0.0.1:9443", server_csr(tmp_path))
    admitted(authority, tmp_path)
    with pytest.raises(FailedPrecondition, match="is already a registered subsystem"):
        authority.add_subsystem(NHIS)
    with pytest.raises(FailedPrecondition, match="use --replace"):
        authority.admit_server(MOH_SS1, "127.0.0.1:9443", server_csr(tmp_path))
    with pytest.raises(InvalidArgument, match="belongs to instance 'TH'"):
        authority.admit_member("TH/GOV/MOH", "Thai Health", member_csr(tmp_path))
    with pytest.raises(InvalidArgument, match="name"):
        authority.admit_member("KH/GOV/MOI", "  ", member_csr(tmp_path))


def test_a_forged_csr_is_refused(authority: Authority, tmp_path: Path) -> None:
    csr = member_csr(tmp_path).replace(b"\nMI", b"\nMJ", 1)
    with pytest.raises(InvalidArgument, match="CSR for member KH/GOV/MOH"):
        authority.admit_member(MOH, "Ministry of Health", csr)
    assert published(authority).member(MemberId.parse(MOH)) is None


def test_servers_need_their_own_keys_and_can_be_replaced(
    authority: Authority, tmp_path: Path
) -> None:
    admitted(authority, tmp_path)
    csr = server_csr(tmp_path, "KH/GOV/MOH/ss2")
    authority.admit_server("KH/GOV/MOH/ss2", "127.0.0.1:9444", csr)
    with pytest.raises(FailedPrecondition, match="already certified for security server"):
        authority.admit_server("KH/GOV/MOH/ss3", "127.0.0.1:9445", csr)
    before = published(authority).server(parse_server(MOH_SS1))
    assert before is not None
    authority.admit_server(MOH_SS1, "10.0.0.5:9443", server_csr(tmp_path), replace=True)
    after = published(authority).server(parse_server(MOH_SS1))
    assert after is not None
    assert after.address == "10.0.0.5:9443"
    assert after.tls_certificate_sha256 != before.tls_certificate_sha256


def test_subsystems_are_hosted_only_on_their_members_servers(
    authority: Authority, tmp_path: Path
) -> None:
    admitted(authority, tmp_path)
    authority.admit_member("KH/GOV/MPWT", "Public Works", member_csr(tmp_path, "KH/GOV/MPWT"))
    authority.add_subsystem("KH/GOV/MPWT/vehicles")
    with pytest.raises(FailedPrecondition, match="belongs to another member"):
        authority.register_subsystem_on_server("KH/GOV/MPWT/vehicles", MOH_SS1)
    with pytest.raises(NotFound, match="is not admitted"):
        authority.add_subsystem("KH/GOV/MOH/hospital", servers=["KH/GOV/MOH/ss9"])
    assert authority.build_configuration(1, dt.datetime.now(dt.UTC), dt.timedelta(hours=1))
    # Registering twice is harmless: a subsystem may consume and provide on one server.
    authority.register_subsystem_on_server(NHIS, MOH_SS1)
    conf = published(authority)
    assert [s.id for s in conf.servers_for(SubsystemId.parse(NHIS))] == [parse_server(MOH_SS1)]
    assert conf.subsystem(SubsystemId.parse("KH/GOV/MOH/hospital")) is None


def _descriptors(client_streaming: bool = False) -> bytes:
    method = descriptor_pb2.MethodDescriptorProto
    fds = descriptor_pb2.FileDescriptorSet(
        file=[
            descriptor_pb2.FileDescriptorProto(
                name="health.proto",
                package="health.v1",
                service=[
                    descriptor_pb2.ServiceDescriptorProto(
                        name="FacilityStats",
                        method=[
                            method(name="GetMonthlyReport", input_type=".x", output_type=".y"),
                            method(
                                name="StreamReports",
                                input_type=".x",
                                output_type=".y",
                                server_streaming=True,
                                client_streaming=client_streaming,
                            ),
                        ],
                    )
                ],
            )
        ]
    )
    return fds.SerializeToString()


def test_methods_come_from_the_descriptor_set(authority: Authority, tmp_path: Path) -> None:
    admitted(authority, tmp_path)
    authority.add_subsystem("KH/GOV/MOH/stats", file_descriptor_set=_descriptors())
    authority.add_subsystem(
        "KH/GOV/MOH/stats2",
        methods=[("/health.v1.FacilityStats/StreamReports", False)],
        file_descriptor_set=_descriptors(),
    )
    conf = published(authority)
    stats = conf.subsystem(SubsystemId.parse("KH/GOV/MOH/stats"))
    assert stats is not None
    assert [(m.path, m.server_streaming) for m in stats.methods] == [
        (REPORT, False),
        ("/health.v1.FacilityStats/StreamReports", True),
    ]
    assert stats.file_descriptor_set == _descriptors()
    stats2 = conf.subsystem(SubsystemId.parse("KH/GOV/MOH/stats2"))
    assert stats2 is not None
    assert [(m.path, m.server_streaming) for m in stats2.methods] == [
        ("/health.v1.FacilityStats/StreamReports", True)  # the descriptor's flag wins
    ]
    with pytest.raises(InvalidArgument, match="client-streaming"):
        authority.add_subsystem("KH/GOV/MOH/x", file_descriptor_set=_descriptors(True))
    with pytest.raises(InvalidArgument, match="not in the descriptor set"):
        authority.add_subsystem(
            "KH/GOV/MOH/y", methods=[("/a.B/C", False)], file_descriptor_set=_descriptors()
        )
    with pytest.raises(InvalidArgument, match="not a serialized"):
        authority.add_subsystem("KH/GOV/MOH/z", file_descriptor_set=b"\xff\xff")


# ---------------------------------------------------------------- revocation


def test_revocation_by_serial_and_thumbprint_reaches_the_configuration(
    authority: Authority, tmp_path: Path
) -> None:
    member_cert = x509.load_pem_x509_certificate(
        authority.admit_member(MOH, "Ministry of Health", member_csr(tmp_path))
    )
    server_cert = x509.load_pem_x509_certificate(
        authority.admit_server(MOH_SS1, "127.0.0.1:9443", server_csr(tmp_path))
    )
    assert authority.revoke(serial=member_cert.serial_number) == member_cert.serial_number
    assert authority.revoke(thumbprint=pki.thumbprint(server_cert).upper()) == (
        server_cert.serial_number
    )
    conf = published(authority)
    assert conf.is_revoked(member_cert.serial_number)
    assert conf.is_revoked(server_cert.serial_number)
    assert conf.signing_key(pki.thumbprint(member_cert)) is None
    with pytest.raises(FailedPrecondition, match="already revoked"):
        authority.revoke(serial=member_cert.serial_number)
    with pytest.raises(NotFound, match="issued no certificate with serial 1234"):
        authority.revoke(serial=0x1234)
    with pytest.raises(FailedPrecondition, match="configuration-signing certificate"):
        authority.revoke(serial=authority.signing_certificate.serial_number)
    with pytest.raises(InvalidArgument, match="exactly one"):
        authority.revoke()


# ---------------------------------------------------------------- publication


def test_publish_increments_the_version_and_keeps_history(
    authority: Authority, tmp_path: Path
) -> None:
    admitted(authority, tmp_path)
    now = dt.datetime.now(dt.UTC)
    first = published(authority)
    second = published(authority)
    assert (first.version, second.version) == (1, 2)
    history = sorted(p.name for p in (authority.directory / "published").iterdir())
    assert history == ["00000001.signed", "00000002.signed"]
    assert (authority.directory / "published" / "00000002.signed").read_bytes() == (
        authority.published_path.read_bytes()
    )
    assert dt.timedelta(hours=23) < second.expires_at - now <= dt.timedelta(hours=24, seconds=5)
    assert second.method(SubsystemId.parse(NHIS), REPORT) is not None
    assert yaml.safe_load((authority.directory / "registry.yaml").read_text())["next_version"] == 3


def test_publish_refuses_unbounded_validity(authority: Authority) -> None:
    with pytest.raises(InvalidArgument, match="at most 366 days"):
        authority.publish(dt.timedelta(days=400))
    with pytest.raises(InvalidArgument, match="must be positive"):
        authority.publish(dt.timedelta(0))


def test_concurrent_changes_are_not_lost(authority: Authority, tmp_path: Path) -> None:
    admitted(authority, tmp_path)
    second = Authority.open(authority.directory)

    def add(target: Authority, prefix: str) -> None:
        for n in range(8):
            target.add_subsystem(f"KH/GOV/MOH/{prefix}{n}")

    threads = [
        threading.Thread(target=add, args=(authority, "a")),
        threading.Thread(target=add, args=(second, "b")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(published(authority).subsystems) == 17


def test_a_damaged_registry_is_named(authority: Authority) -> None:
    registry = authority.directory / "registry.yaml"
    registry.write_text(registry.read_text().replace("next_version: 1", "next_version: soon"))
    with pytest.raises(ConfigError, match=r"registry\.yaml: next_version: must be a positive"):
        Authority.open(authority.directory)


# ---------------------------------------------------------------- serving


def test_serve_round_trip_rereads_each_publication(authority: Authority, tmp_path: Path) -> None:
    server = authority.serve("127.0.0.1", 0)
    try:
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(server.url, timeout=5)
        assert missing.value.code == 404
        missing.value.close()
        admitted(authority, tmp_path)
        authority.publish()
        with urllib.request.urlopen(server.url, timeout=5) as response:
            assert response.headers["Content-Type"] == "application/octet-stream"
            first = response.read()
        now = dt.datetime.now(dt.UTC)
        assert verify_global_configuration(first, authority.signing_certificate, now).version == 1
        authority.publish()
        with urllib.request.urlopen(server.url, timeout=5) as response:
            second = response.read()
        assert verify_global_configuration(second, authority.signing_certificate, now).version == 2
        with pytest.raises(urllib.error.HTTPError) as elsewhere:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/etc/passwd", timeout=5)
        assert elsewhere.value.code == 404
        elsewhere.value.close()
    finally:
        server.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(server.url, timeout=2)


# ---------------------------------------------------------------- member side


def test_init_member_and_server_write_a_private_key_and_a_csr(tmp_path: Path) -> None:
    member = init_member(tmp_path / "moh", MOH, key_kind="ed25519", passphrase=b"pw")
    assert member == KeyFiles(tmp_path / "moh" / "signing.key", tmp_path / "moh" / "signing.csr")
    assert stat.S_IMODE(member.key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "moh").stat().st_mode) == 0o700
    key = keyfiles.load_private_key(member.key, b"pw")
    csr = pki.load_csr(member.csr.read_bytes())
    assert pki.public_key_bytes(csr.public_key()) == pki.public_key_bytes(key.public_key())  # type: ignore[arg-type]
    server = init_server(tmp_path / "moh", MOH_SS1, "127.0.0.1:9443")
    assert server.key.name == "tls.key"
    assert pki.key_kind(keyfiles.load_private_key(server.key)) == "ec-p256"
    with pytest.raises(FailedPrecondition, match="refusing to overwrite a private key"):
        init_member(tmp_path / "moh", MOH)
    with pytest.raises(InvalidArgument, match="host:port"):
        init_server(tmp_path / "other", MOH_SS1, "no-port")


def test_a_changed_contract_replaces_the_methods_and_keeps_the_hosts(
    authority: Authority, tmp_path: Path
) -> None:
    admitted(authority, tmp_path)
    streaming = "/health.v1.FacilityStats/ExportReports"
    authority.update_subsystem(NHIS, methods=[(streaming, True)])
    conf = published(authority)
    nhis = conf.subsystem(SubsystemId.parse(NHIS))
    assert nhis is not None
    assert [(m.path, m.server_streaming) for m in nhis.methods] == [(streaming, True)]
    assert [str(s) for s in nhis.servers] == [MOH_SS1]


def test_updating_an_unregistered_subsystem_or_to_nothing_is_refused(
    authority: Authority, tmp_path: Path
) -> None:
    admitted(authority, tmp_path)
    with pytest.raises(NotFound, match="not registered; register it with add-subsystem"):
        authority.update_subsystem("KH/GOV/MOH/other", methods=[(REPORT, False)])
    with pytest.raises(InvalidArgument, match="give the new descriptor set or the methods"):
        authority.update_subsystem(NHIS)
    entry = authority.registry().find_subsystem(NHIS)
    assert entry is not None
    assert [path for path, _ in entry.methods] == [REPORT]
