"""Who is on the other end: the one key resolver and TLS peer identification.

Every token verification resolves its signer's key with `key_resolver`; every
provider call identifies its TLS peer with `identify_server`. Both read only
the verified global configuration of tests/support/globalconf.py.
"""

from __future__ import annotations

import datetime as dt

import pytest

from spean.gateway import pki
from spean.gateway.errors import Unauthenticated
from spean.gateway.globalconf import GlobalConfiguration, verify_global_configuration
from spean.gateway.identifiers import parse_server
from spean.gateway.trust import identify_server, key_resolver
from tests.support.globalconf import MOH, MPWT, MPWT_SS1, NOW, Authority, Sample, sample


@pytest.fixture(scope="module")
def authority() -> Authority:
    return Authority()


@pytest.fixture(scope="module")
def base(authority: Authority) -> Sample:
    return sample(authority)


@pytest.fixture(scope="module")
def conf(authority: Authority, base: Sample) -> GlobalConfiguration:
    return verify_global_configuration(authority.sign(base.msg), authority.anchor, NOW)


# ---------------------------------------------------------------- key resolver


def test_a_listed_signing_key_resolves_with_its_member_and_algorithm(
    conf: GlobalConfiguration, base: Sample
) -> None:
    resolve = key_resolver(conf, NOW)
    es = resolve(pki.thumbprint(base.moh_key))
    assert es is not None
    assert (es.member, es.algorithm) == (MOH, "ES256")
    ed = resolve(pki.thumbprint(base.moh_ed_key))
    assert ed is not None
    assert (ed.member, ed.algorithm) == (MOH, "EdDSA")
    assert ed.public_key == base.moh_ed_key.public_key()


def test_an_unknown_kid_resolves_to_nothing(conf: GlobalConfiguration) -> None:
    assert key_resolver(conf, NOW)("00" * 32) is None
    assert key_resolver(conf, check_validity=False)("00" * 32) is None


def test_a_key_outside_its_validity_period_is_refused_with_the_reason(
    conf: GlobalConfiguration, base: Sample
) -> None:
    kid = pki.thumbprint(base.moh_key)
    later = base.moh_key.not_valid_after_utc + dt.timedelta(seconds=1)
    with pytest.raises(Unauthenticated, match="expired at"):
        key_resolver(conf, later)(kid)
    earlier = base.moh_key.not_valid_before_utc - dt.timedelta(seconds=1)
    with pytest.raises(Unauthenticated, match="not valid before"):
        key_resolver(conf, earlier)(kid)


def test_without_the_validity_check_an_expired_key_still_resolves(
    conf: GlobalConfiguration, base: Sample
) -> None:
    # The audit verifier's resolver: an old log is judged after its
    # certificates expired; listing and revocation still count.
    later = base.moh_key.not_valid_after_utc + dt.timedelta(days=1)
    key = key_resolver(conf, later, check_validity=False)(pki.thumbprint(base.moh_key))
    assert key is not None
    assert key.member == MOH


def test_a_revoked_key_is_refused_as_revoked_naming_its_serial_with_or_without_the_period(
    authority: Authority,
) -> None:
    # Listed and revoked is not "unknown": the refusal names the certificate.
    s = sample(authority)
    s.msg.revoked_serials.append(pki.serial_hex(s.mpwt_key.serial_number))
    conf = verify_global_configuration(authority.sign(s.msg), authority.anchor, NOW)
    kid = pki.thumbprint(s.mpwt_key)
    expected = (
        f"signing certificate of {MPWT} (serial {pki.serial_hex(s.mpwt_key.serial_number)})"
        f" is revoked (global configuration version {conf.version})"
    )
    for resolve in (key_resolver(conf, NOW), key_resolver(conf, check_validity=False)):
        with pytest.raises(Unauthenticated) as refused:
            resolve(kid)
        assert refused.value.message == expected
        with pytest.raises(Unauthenticated, match="is revoked"):
            resolve(kid.upper())  # a kid is matched as the configuration matches it
    moh = key_resolver(conf, NOW)(pki.thumbprint(s.moh_key))
    assert moh is not None
    assert moh.member != MPWT


def test_the_three_reasons_a_kid_does_not_resolve_differ(authority: Authority) -> None:
    s = sample(authority)
    s.msg.revoked_serials.append(pki.serial_hex(s.moh_key.serial_number))
    conf = verify_global_configuration(authority.sign(s.msg), authority.anchor, NOW)
    later = s.mpwt_key.not_valid_after_utc + dt.timedelta(seconds=1)
    assert key_resolver(conf, later)("00" * 32) is None  # not listed
    with pytest.raises(Unauthenticated, match=r"is revoked \(global configuration"):
        key_resolver(conf, later)(pki.thumbprint(s.moh_key))  # listed, revoked
    with pytest.raises(Unauthenticated, match="expired at"):
        key_resolver(conf, later)(pki.thumbprint(s.mpwt_key))  # listed, out of its period


def test_a_resolved_key_is_the_same_object_for_every_token_of_one_configuration(
    conf: GlobalConfiguration, base: Sample
) -> None:
    # The per-configuration table: a token's key is looked up, never rebuilt.
    kid = pki.thumbprint(base.moh_key)
    first = key_resolver(conf, NOW)(kid)
    assert first is not None
    assert key_resolver(conf, check_validity=False)(kid) is first
    assert key_resolver(conf, NOW)(kid) is first
    assert first.public_key == base.moh_key.public_key()


def test_a_key_revoked_by_a_new_configuration_is_not_served_from_the_old_ones_table(
    authority: Authority,
) -> None:
    s = sample(authority)
    kid = pki.thumbprint(s.mpwt_key)
    before = verify_global_configuration(authority.sign(s.msg), authority.anchor, NOW)
    trusted = key_resolver(before, NOW)(kid)
    assert trusted is not None
    assert trusted.member == MPWT
    s.msg.version += 1
    s.msg.revoked_serials.append(pki.serial_hex(s.mpwt_key.serial_number))
    after = verify_global_configuration(authority.sign(s.msg), authority.anchor, NOW)
    for resolve in (key_resolver(after, NOW), key_resolver(after, check_validity=False)):
        with pytest.raises(
            Unauthenticated, match=rf"is revoked \(global configuration version {after.version}\)"
        ):
            resolve(kid)
    # The old configuration still says what it said: the table is its own.
    assert key_resolver(before, NOW)(kid) is trusted


def test_the_validity_period_is_checked_on_every_resolution_not_remembered(
    conf: GlobalConfiguration, base: Sample
) -> None:
    kid = pki.thumbprint(base.mpwt_key)
    assert key_resolver(conf, NOW)(kid) is not None  # fills the table
    later = base.mpwt_key.not_valid_after_utc + dt.timedelta(seconds=1)
    with pytest.raises(Unauthenticated, match="expired at"):
        key_resolver(conf, later)(kid)
    assert key_resolver(conf, NOW)(kid) is not None


# ---------------------------------------------------------------- TLS peers


def test_a_listed_tls_certificate_identifies_its_server(
    conf: GlobalConfiguration, base: Sample
) -> None:
    server, thumbprint = identify_server(conf, pki.certificate_pem(base.mpwt_tls))
    assert server.id == MPWT_SS1
    assert thumbprint == pki.thumbprint(base.mpwt_tls)


def test_an_unlisted_or_missing_tls_certificate_is_refused(
    conf: GlobalConfiguration, authority: Authority
) -> None:
    unlisted = authority.server_cert(parse_server("KH/GOV/MPWT/ss9"), "127.0.0.1:1")
    with pytest.raises(Unauthenticated, match="is not that of a security server listed"):
        identify_server(conf, pki.certificate_pem(unlisted))
    with pytest.raises(Unauthenticated, match="carries no client certificate"):
        identify_server(conf, None)


def test_a_revoked_tls_certificate_is_refused(authority: Authority) -> None:
    s = sample(authority)
    s.msg.revoked_serials.append(pki.serial_hex(s.mpwt_tls.serial_number))
    conf = verify_global_configuration(authority.sign(s.msg), authority.anchor, NOW)
    with pytest.raises(Unauthenticated, match=f"security server {MPWT_SS1} .* is revoked"):
        identify_server(conf, pki.certificate_pem(s.mpwt_tls))
