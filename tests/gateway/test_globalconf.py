"""Signing, verifying and reading the global configuration (pure: values in, values out)."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable

import pytest
from cryptography import x509

from spean.gateway import pki
from spean.gateway.errors import InvalidArgument, Unauthenticated, Unavailable
from spean.gateway.globalconf import (
    GlobalConfiguration,
    GlobalConfigurationExpired,
    MethodInfo,
    sign_global_configuration,
    verify_global_configuration,
)
from spean.gateway.identifiers import MemberId, SubsystemId
from spean.v1 import config_pb2
from tests.support.globalconf import (
    GET_VEHICLE,
    LIST_VEHICLES,
    MOH,
    MOH_SS1,
    MPWT,
    MPWT_SS1,
    NHIS,
    NOW,
    VEHICLES,
    Authority,
    Sample,
    der,
    sample,
)


@pytest.fixture(scope="module")
def authority() -> Authority:
    return Authority()


@pytest.fixture(scope="module")
def base(authority: Authority) -> Sample:
    return sample(authority)


@pytest.fixture(scope="module")
def conf(authority: Authority, base: Sample) -> GlobalConfiguration:
    return verify_global_configuration(authority.sign(base.msg), authority.anchor, NOW)


# ---------------------------------------------------------------- reading


def test_verified_configuration_answers_every_lookup(
    conf: GlobalConfiguration, base: Sample
) -> None:
    assert (conf.instance, conf.version) == ("KH", 7)
    assert conf.issued_at == NOW - dt.timedelta(hours=1)
    assert conf.expires_at == NOW + dt.timedelta(hours=23)
    moh = conf.member(MOH)
    assert moh is not None
    assert moh.name == "Ministry of Health"
    assert len(moh.signing_certificates) == 2
    assert conf.member(MemberId.parse("KH/GOV/MOI")) is None
    vehicles = conf.subsystem(VEHICLES)
    assert vehicles is not None
    assert vehicles.servers == (MPWT_SS1,)
    assert vehicles.file_descriptor_set == b"\x0a\x00"
    assert conf.method(VEHICLES, LIST_VEHICLES) == MethodInfo(LIST_VEHICLES, True)
    assert conf.method(VEHICLES, GET_VEHICLE) == MethodInfo(GET_VEHICLE, False)
    assert conf.method(NHIS, GET_VEHICLE) is None
    server = conf.server(MPWT_SS1)
    assert server is not None
    assert (server.host, server.port, server.owner) == ("127.0.0.1", 9002, MPWT)
    assert conf.server_by_fingerprint(pki.thumbprint(base.mpwt_tls).upper()) == server
    assert [s.id for s in conf.servers_for(VEHICLES)] == [MPWT_SS1]
    assert conf.servers_for(SubsystemId.parse("KH/GOV/MOI/idreg")) == []
    assert x509.load_pem_x509_certificates(conf.ca_pem) == list(conf.ca_certificates)
    assert not conf.is_expired(NOW)
    assert conf.is_expired(NOW + dt.timedelta(hours=23))


def test_signing_keys_are_found_by_kid(conf: GlobalConfiguration, base: Sample) -> None:
    es = conf.signing_key(pki.thumbprint(base.moh_key), NOW)
    assert es is not None
    assert (es.member, es.algorithm) == (MOH, "ES256")
    ed = conf.signing_key(pki.thumbprint(base.moh_ed_key).upper(), NOW)
    assert ed is not None
    assert (ed.member, ed.algorithm) == (MOH, "EdDSA")
    assert conf.signing_key("00" * 32) is None


def test_a_signing_key_outside_its_validity_is_not_trusted(
    conf: GlobalConfiguration, base: Sample
) -> None:
    kid = pki.thumbprint(base.moh_key)
    later = base.moh_key.not_valid_after_utc + dt.timedelta(seconds=1)
    assert conf.signing_key(kid, later) is None
    assert conf.signing_key(kid) is not None  # without `now`, the period is not checked


def test_a_revoked_signing_key_is_not_trusted(authority: Authority) -> None:
    s = sample(authority)
    s.msg.revoked_serials.append(pki.serial_hex(s.mpwt_key.serial_number))
    conf = verify_global_configuration(authority.sign(s.msg), authority.anchor, NOW)
    kid = pki.thumbprint(s.mpwt_key)
    assert conf.is_revoked(s.mpwt_key.serial_number)
    assert conf.signing_key(kid) is None
    assert conf.signing_key(pki.thumbprint(s.moh_key)) is not None


def test_a_certificate_of_another_ca_is_not_valid(conf: GlobalConfiguration) -> None:
    foreign = Authority().server_cert(MPWT_SS1, "127.0.0.1:9002")
    with pytest.raises(Unauthenticated, match="not issued by the federation CA"):
        conf.check_certificate_valid(foreign, NOW)


def test_certificate_checks_after_the_first_still_check_validity_and_issuer(
    conf: GlobalConfiguration, base: Sample
) -> None:
    # The issuer check is remembered per configuration (globalconf.py, `_issued`);
    # the validity period is checked at every call.
    cert = base.moh_key
    conf.check_certificate_valid(cert, NOW)
    conf.check_certificate_valid(cert, NOW)
    later = cert.not_valid_after_utc + dt.timedelta(seconds=1)
    with pytest.raises(Unauthenticated, match="expired at"):
        conf.check_certificate_valid(cert, later)
    # A certificate of another CA is never remembered: refused every time,
    # also when it carries a subject the federation knows.
    foreign = Authority().server_cert(MPWT_SS1, "127.0.0.1:9002")
    for _ in range(2):
        with pytest.raises(Unauthenticated, match="not issued by the federation CA"):
            conf.check_certificate_valid(foreign, NOW)


def test_a_new_configuration_checks_issuers_afresh(authority: Authority) -> None:
    s = sample(authority)
    first = verify_global_configuration(authority.sign(s.msg), authority.anchor, NOW)
    first.check_certificate_valid(s.moh_key, NOW)
    s.msg.revoked_serials.append(pki.serial_hex(s.moh_key.serial_number))
    s.msg.version += 1
    second = verify_global_configuration(authority.sign(s.msg), authority.anchor, NOW)
    with pytest.raises(Unauthenticated, match="is revoked"):
        second.check_certificate_valid(s.moh_key, NOW)
    first.check_certificate_valid(s.moh_key, NOW)  # the old one is unchanged


# ---------------------------------------------------------------- verification


def test_every_altered_byte_is_refused(authority: Authority, base: Sample) -> None:
    signed = authority.sign(base.msg)
    for position in range(0, len(signed), 13):
        tampered = bytearray(signed)
        tampered[position] ^= 0x01
        with pytest.raises(Unauthenticated):
            verify_global_configuration(bytes(tampered), authority.anchor, NOW)


def test_an_altered_configuration_field_is_refused(authority: Authority, base: Sample) -> None:
    envelope = config_pb2.SignedGlobalConfiguration.FromString(authority.sign(base.msg))
    envelope.configuration = envelope.configuration.replace(b"Public Works", b"Public Worms")
    with pytest.raises(Unauthenticated, match="signature is not valid"):
        verify_global_configuration(envelope.SerializeToString(), authority.anchor, NOW)


def test_another_authoritys_anchor_is_refused(authority: Authority, base: Sample) -> None:
    with pytest.raises(Unauthenticated, match="not by the configuration anchor"):
        verify_global_configuration(authority.sign(base.msg), Authority().anchor, NOW)


def test_a_forged_signer_thumbprint_does_not_help(authority: Authority, base: Sample) -> None:
    other = Authority()
    envelope = config_pb2.SignedGlobalConfiguration.FromString(other.sign(base.msg))
    envelope.signer_sha256 = pki.thumbprint(authority.anchor)
    with pytest.raises(Unauthenticated, match="signature is not valid"):
        verify_global_configuration(envelope.SerializeToString(), authority.anchor, NOW)


def test_the_algorithm_must_match_the_anchor(authority: Authority, base: Sample) -> None:
    envelope = config_pb2.SignedGlobalConfiguration.FromString(authority.sign(base.msg))
    envelope.algorithm = "EdDSA"
    with pytest.raises(Unauthenticated, match="needs 'ES256'"):
        verify_global_configuration(envelope.SerializeToString(), authority.anchor, NOW)


def test_an_ed25519_authority_signs_with_eddsa() -> None:
    ed = Authority(kind="ed25519")
    signed = ed.sign(sample(ed).msg)
    assert config_pb2.SignedGlobalConfiguration.FromString(signed).algorithm == "EdDSA"
    assert verify_global_configuration(signed, ed.anchor, NOW).version == 7


def test_an_expired_configuration_is_unavailable(authority: Authority, base: Sample) -> None:
    signed = authority.sign(base.msg)
    later = NOW + dt.timedelta(hours=23)
    with pytest.raises(Unavailable, match="version 7 expired at 2030-01-16T11:00:00") as failure:
        verify_global_configuration(signed, authority.anchor, later)
    assert isinstance(failure.value, GlobalConfigurationExpired)
    assert failure.value.version == 7


def test_an_anchor_outside_its_validity_is_refused(authority: Authority, base: Sample) -> None:
    signed = authority.sign(base.msg)
    with pytest.raises(Unauthenticated, match=r"configuration anchor .* is valid from"):
        verify_global_configuration(signed, authority.anchor, NOW + dt.timedelta(days=3700))


def test_garbage_is_unauthenticated(authority: Authority) -> None:
    with pytest.raises(Unauthenticated, match="envelope cannot be decoded"):
        verify_global_configuration(b"\xff\xff\xff", authority.anchor, NOW)
    signed = config_pb2.SignedGlobalConfiguration()
    signed.configuration = b"\xff\xff\xff"
    signed.algorithm = "ES256"
    signed.signer_sha256 = pki.thumbprint(authority.anchor)
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    assert isinstance(authority.signing_key, ec.EllipticCurvePrivateKey)
    signed.signature = authority.signing_key.sign(signed.configuration, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(Unauthenticated, match="signed global configuration cannot be decoded"):
        verify_global_configuration(signed.SerializeToString(), authority.anchor, NOW)


def test_signing_refuses_a_key_that_is_not_the_certificates(
    authority: Authority, base: Sample
) -> None:
    with pytest.raises(InvalidArgument, match="does not belong to the signing certificate"):
        sign_global_configuration(base.msg, pki.generate_key(), authority.anchor)


def test_serialization_is_deterministic(authority: Authority, base: Sample) -> None:
    first = config_pb2.SignedGlobalConfiguration.FromString(authority.sign(base.msg))
    second = config_pb2.SignedGlobalConfiguration.FromString(authority.sign(base.msg))
    assert first.configuration == second.configuration


# ---------------------------------------------------------------- content checks


Mutation = Callable[[Sample, Authority], None]


def _dup_member_case(s: Sample, a: Authority) -> None:
    s.msg.members.add(id="KH/gov/moh", name="x")


def _bad_member_id(s: Sample, a: Authority) -> None:
    s.msg.members[0].id = "KH/GOV"


def _other_instance(s: Sample, a: Authority) -> None:
    s.msg.members.add(id="TH/GOV/MOH", name="x")


def _subsystem_unknown_member(s: Sample, a: Authority) -> None:
    s.msg.subsystems.add(id="KH/GOV/MOI/idreg")


def _subsystem_unknown_server(s: Sample, a: Authority) -> None:
    s.msg.subsystems[0].servers.append("KH/GOV/MOH/ss2")


def _subsystem_on_other_members_server(s: Sample, a: Authority) -> None:
    s.msg.subsystems[0].servers.append(str(MPWT_SS1))


def _bad_method(s: Sample, a: Authority) -> None:
    s.msg.subsystems[1].methods.add(path="GetVehicle")


def _fingerprint_mismatch(s: Sample, a: Authority) -> None:
    s.msg.servers[0].tls_certificate_sha256 = "0" * 64


def _foreign_server_cert(s: Sample, a: Authority) -> None:
    cert = Authority().server_cert(MOH_SS1, "127.0.0.1:9001")
    s.msg.servers[0].tls_certificate = der(cert)
    s.msg.servers[0].tls_certificate_sha256 = hashlib.sha256(der(cert)).hexdigest()


def _member_cert_of_another_member(s: Sample, a: Authority) -> None:
    s.msg.members[0].signing_certificates.append(der(s.mpwt_key))


def _bad_serial(s: Sample, a: Authority) -> None:
    s.msg.revoked_serials.append("not-hex")


def _no_ca(s: Sample, a: Authority) -> None:
    del s.msg.ca_certificates[:]


def _missing_expiry(s: Sample, a: Authority) -> None:
    s.msg.ClearField("expires_at")


def _bad_address(s: Sample, a: Authority) -> None:
    s.msg.servers[0].address = "nowhere"


def _bad_auditor_key(s: Sample, a: Authority) -> None:
    s.msg.auditor_public_key = b"short"


def _catalogue_entry(client: str, method: str) -> config_pb2.CatalogueEntry:
    return config_pb2.CatalogueEntry(
        title=config_pb2.LocalizedText(en="Facility statistics", km="ស្ថិតិ"),
        description=config_pb2.LocalizedText(en="Monthly reports."),
        topics=["health"],
        data_class=config_pb2.CATALOGUE_DATA_CLASS_PUBLIC,
        contacts=[config_pb2.CatalogueContact(name="Desk", email="desk@moh.example")],
        access=[config_pb2.CatalogueAccess(client=client, methods=[method])],
    )


def _bad_catalogue(s: Sample, a: Authority) -> None:
    subsystem = next(entry for entry in s.msg.subsystems if entry.methods)
    subsystem.catalogue.CopyFrom(_catalogue_entry(subsystem.id, "/nope.v1.X/Y"))


def test_a_subsystem_carries_its_catalogue_entry(authority: Authority) -> None:
    s = sample(authority, version=9)
    subsystem = next(entry for entry in s.msg.subsystems if entry.methods)
    subsystem.catalogue.CopyFrom(_catalogue_entry(subsystem.id, subsystem.methods[0].path))
    conf = verify_global_configuration(authority.sign(s.msg), authority.anchor, NOW)
    info = conf.subsystem(SubsystemId.parse(subsystem.id))
    assert info is not None
    assert info.catalogue is not None
    assert info.catalogue.title.km == "ស្ថិតិ"
    assert info.catalogue.access[0].methods == (subsystem.methods[0].path,)
    others = [i for i in conf.subsystems if str(i.id) != subsystem.id]
    assert all(other.catalogue is None for other in others)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_bad_catalogue, "catalogue: access[0]: method '/nope.v1.X/Y' is not published"),
        (_dup_member_case, "member KH/gov/moh is listed twice"),
        (_bad_member_id, "must have the form INSTANCE/CLASS/MEMBER"),
        (_other_instance, "belongs to instance 'TH'"),
        (_subsystem_unknown_member, "its owner KH/GOV/MOI is not a member"),
        (_subsystem_unknown_server, "server KH/GOV/MOH/ss2 is not a security server"),
        (_subsystem_on_other_members_server, "belongs to another member"),
        (_bad_method, "must be a gRPC path"),
        (_fingerprint_mismatch, "tls_certificate_sha256 does not match"),
        (_foreign_server_cert, "was not issued by a CA of this configuration"),
        (_member_cert_of_another_member, "does not name urn:spean:member:KH/GOV/MOH"),
        (_bad_serial, "revoked_serials: certificate serial 'not-hex'"),
        (_no_ca, "no CA certificate"),
        (_missing_expiry, "expires_at is missing"),
        (_bad_address, "must have the form host:port"),
        (_bad_auditor_key, "auditor_public_key"),
    ],
)
def test_signed_but_invalid_content_fails_closed(
    authority: Authority, mutate: Mutation, message: str
) -> None:
    s = sample(authority, version=9)
    mutate(s, authority)
    with pytest.raises(InvalidArgument, match="global configuration version 9: ") as failure:
        verify_global_configuration(authority.sign(s.msg), authority.anchor, NOW)
    assert message in failure.value.message
