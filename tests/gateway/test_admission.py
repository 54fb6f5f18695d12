"""The exchange's rules with plain values: the consumer's and the provider's checks in
order, the classification of a provider's answer, the failover decision.

Each scenario is one call as a security server receives it (method, size,
metadata, the TLS peer's certificate), against a real signed configuration
and real tokens (tests/support/conf.py); no server, socket or store.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from spean.gateway import metadata
from spean.gateway.access import AccessPolicy, AccessRule
from spean.gateway.admission import (
    ALLOWED_METHODS,
    ConsumerRules,
    ProviderRules,
    admit_consumer_call,
    admit_provider_call,
    check_answer,
    is_unary,
    may_fail_over,
    passed_on,
    request_claims,
    unreachable,
)
from spean.gateway.digests import ResponseDigest, request_digest
from spean.gateway.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    SpeanError,
    Unauthenticated,
    Unavailable,
)
from spean.gateway.identifiers import SubsystemId
from spean.gateway.pki import pem_thumbprint
from spean.gateway.subjects import subject_key, subject_pseudonym
from spean.gateway.tokens import RequestClaims, ResponseClaims, new_exchange_id
from tests.support.conf import (
    GET_VEHICLE,
    LIST_VEHICLES,
    MOH,
    MOH_SS1,
    MPWT,
    MPWT_SS1,
    NHIS,
    VEHICLES,
    PureFederation,
)

REQUEST = b"\x0a\x072A-1234"
OTHER = SubsystemId.parse("KH/GOV/MOH/other")
STRANGER = SubsystemId.parse("KH/GOV/MOI/idreg")


@pytest.fixture(scope="module")
def world() -> PureFederation:
    return PureFederation()


def _headers(
    client: str = str(NHIS), service: str = str(VEHICLES), **extra: str
) -> list[tuple[str, str | bytes]]:
    found: list[tuple[str, str | bytes]] = [(metadata.CLIENT, client), (metadata.SERVICE, service)]
    return found + [(f"spean-{name}", value) for name, value in extra.items()]


CONSUMER = ConsumerRules(
    server_id=MOH_SS1, clients={NHIS: None}, max_message_bytes=1024, max_header_bytes=256
)


def _consumer(world: PureFederation, **call: Any) -> Any:
    rules = call.pop("rules", CONSUMER)
    conf = call.pop("conf", world.conf)
    call.setdefault("method", GET_VEHICLE)
    call.setdefault("request_size", len(REQUEST))
    call.setdefault("invocation", _headers(user="dr-sok", purpose="case 17"))
    call.setdefault("peer_pem", None)
    return admit_consumer_call(rules, conf, **call)


# ------------------------------------------------------------------ consumer


def test_an_admitted_call_names_the_providers_servers_in_failover_order(
    world: PureFederation,
) -> None:
    admission = _consumer(world)
    assert admission.admitted
    assert admission.headers.client == NHIS
    assert (admission.headers.user, admission.headers.purpose) == ("dr-sok", "case 17")
    assert [str(server.id) for server in admission.servers] == [
        "KH/GOV/MPWT/ss1",
        "KH/GOV/MPWT/ss2",
    ]


def test_missing_headers_are_refused_before_anything_is_learnt(world: PureFederation) -> None:
    admission = _consumer(world, invocation=[(metadata.CLIENT, str(NHIS))])
    assert isinstance(admission.refusal, InvalidArgument)
    assert metadata.SERVICE in admission.refusal.message
    assert admission.headers is None
    assert admission.servers == ()


@pytest.mark.parametrize(
    ("client", "match"),
    [
        (str(STRANGER), "does not belong to KH/GOV/MOH"),
        (str(OTHER), "is not registered on security server KH/GOV/MOH/ss1"),
    ],
)
def test_a_client_this_server_does_not_serve_is_refused_and_named(
    world: PureFederation, client: str, match: str
) -> None:
    admission = _consumer(world, invocation=_headers(client))
    assert isinstance(admission.refusal, PermissionDenied)
    assert match in admission.refusal.message
    assert str(admission.headers.client) == client, "the record names who called"


def test_a_client_bound_to_a_certificate_must_present_it(world: PureFederation) -> None:
    expected = pem_thumbprint(world.tls_pem(MOH_SS1))
    rules = replace(CONSUMER, clients={NHIS: expected})
    refused = _consumer(world, rules=rules, peer_pem=world.tls_pem(MPWT_SS1))
    assert isinstance(refused.refusal, Unauthenticated)
    assert refused.peer_certificate == ""  # the check failed before the thumbprint was kept
    admitted = _consumer(world, rules=rules, peer_pem=world.tls_pem(MOH_SS1))
    assert admitted.admitted
    assert admitted.peer_certificate == expected


def test_size_is_checked_after_the_caller_and_before_the_configuration(
    world: PureFederation,
) -> None:
    too_big = _consumer(world, request_size=1025, conf=Unavailable("configuration expired"))
    assert isinstance(too_big.refusal, ResourceExhausted)
    assert "1025 bytes exceeds the limit of 1024" in too_big.refusal.message
    stranger = _consumer(world, request_size=1025, invocation=_headers(str(STRANGER)))
    assert isinstance(stranger.refusal, PermissionDenied)


def test_without_a_configuration_the_call_is_refused_with_the_reason(
    world: PureFederation,
) -> None:
    reason = FailedPrecondition("no global configuration has been loaded yet")
    admission = _consumer(world, conf=reason)
    assert admission.refusal is reason
    assert admission.headers is not None, "the caller is still named in the record"
    bad_headers = _consumer(world, conf=reason, invocation=[])
    assert isinstance(bad_headers.refusal, InvalidArgument), "header errors come first"


@pytest.mark.parametrize(
    ("service", "method", "match"),
    [
        ("KH/GOV/MEF/tax", GET_VEHICLE, "member KH/GOV/MEF is not in the federation"),
        ("KH/GOV/MPWT/boats", GET_VEHICLE, "subsystem KH/GOV/MPWT/boats is not in"),
        (str(VEHICLES), "/vehicles.v1.VehicleRegistry/Delete", "does not publish method"),
    ],
)
def test_unknown_services_and_methods_are_not_found(
    world: PureFederation, service: str, method: str, match: str
) -> None:
    admission = _consumer(world, invocation=_headers(service=service), method=method)
    assert isinstance(admission.refusal, NotFound)
    assert match in admission.refusal.message


def test_allowed_methods_may_be_asked_of_any_listed_service(world: PureFederation) -> None:
    assert _consumer(world, method=ALLOWED_METHODS).admitted


def test_a_malformed_method_path_is_invalid(world: PureFederation) -> None:
    admission = _consumer(world, method="GetVehicle")
    assert isinstance(admission.refusal, InvalidArgument)


def test_the_request_token_binds_the_caller_the_service_and_the_body(
    world: PureFederation,
) -> None:
    headers = _consumer(world).headers
    exchange_id = new_exchange_id()
    claims = request_claims(
        headers,
        method=GET_VEHICLE,
        exchange_id=exchange_id,
        request_sha256=request_digest(REQUEST),
        now=1000,
        lifetime=60,
    )
    assert (claims.issuer, claims.client, claims.audience) == (MOH, NHIS, VEHICLES)
    assert (claims.exchange_id, claims.issued_at, claims.expires_at) == (exchange_id, 1000, 1060)
    assert claims.request_sha256 == request_digest(REQUEST)
    assert (claims.user, claims.purpose) == ("dr-sok", "case 17")


def test_framing_follows_the_configuration(world: PureFederation) -> None:
    assert is_unary(world.conf, GET_VEHICLE, _headers())
    assert not is_unary(world.conf, LIST_VEHICLES, _headers())
    assert not is_unary(world.conf, GET_VEHICLE, _headers(service="not an id"))
    assert not is_unary(Unavailable("expired"), GET_VEHICLE, _headers())
    assert is_unary(Unavailable("expired"), ALLOWED_METHODS, [])


# ------------------------------------------------------------------ provider

PROVIDER = ProviderRules(
    server_id=MPWT_SS1,
    published={VEHICLES: {GET_VEHICLE, LIST_VEHICLES}},
    policy=AccessPolicy([AccessRule(NHIS, VEHICLES, frozenset({GET_VEHICLE}))]),
    max_message_bytes=1024,
    clock_skew_seconds=5,
)


def _claims(**changes: Any) -> RequestClaims:
    now = int(time.time())
    claims = RequestClaims(
        issuer=MOH,
        client=NHIS,
        audience=VEHICLES,
        method=GET_VEHICLE,
        exchange_id=new_exchange_id(),
        issued_at=now,
        expires_at=now + 60,
        request_sha256=request_digest(REQUEST),
        user="dr-sok",
        purpose="case 17",
    )
    return replace(claims, **changes)


class Replay:
    """Replay memory as a set; records what it was asked."""

    def __init__(self, fail: SpeanError | None = None) -> None:
        self.seen: set[str] = set()
        self.asked: list[str] = []
        self.fail = fail

    def __call__(self, key: str, expires_at: int, now: int) -> bool:
        self.asked.append(key)
        if self.fail is not None:
            raise self.fail
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


def _provider(
    world: PureFederation,
    claims: RequestClaims | None = None,
    *,
    signer: Any = MOH,
    peer: Any = MOH_SS1,
    replay: Callable[[str, int, int], bool] | None = None,
    **call: Any,
) -> Any:
    claims = claims or _claims()
    token = world.signer(signer).sign_request(claims)
    call.setdefault("method", claims.method)
    call.setdefault("request_size", len(REQUEST))
    call.setdefault("request_sha256", request_digest(REQUEST))
    call.setdefault("invocation", [(metadata.REQUEST_TOKEN, token)])
    return admit_provider_call(
        call.pop("rules", PROVIDER),
        call.pop("conf", world.conf),
        peer_pem=peer if peer is None or isinstance(peer, bytes) else world.tls_pem(peer),
        now=int(time.time()),
        first_use=replay or Replay(),
        **call,
    )


def test_a_call_that_passes_all_twelve_checks_is_admitted_and_established(
    world: PureFederation,
) -> None:
    claims = _claims()
    replay = Replay()
    admission = _provider(world, claims, replay=replay)
    assert admission.admitted
    assert admission.established
    assert admission.claims == claims
    assert admission.exchange_id == claims.exchange_id
    assert admission.peer_certificate == pem_thumbprint(world.tls_pem(MOH_SS1))
    assert admission.request_token.count(".") == 2
    assert replay.asked == [f"KH/GOV/MOH|{claims.exchange_id}"]


def test_step_1_without_a_configuration_keeps_the_claimed_exchange_id(
    world: PureFederation,
) -> None:
    claims = _claims()
    admission = _provider(world, claims, conf=Unavailable("global configuration expired"))
    assert isinstance(admission.refusal, Unavailable)
    assert admission.exchange_id == claims.exchange_id, "claimed, for matching both logs"
    assert not admission.established
    # protocol.md 11: the record names the certificate presented, whatever refused it.
    assert admission.peer_certificate == pem_thumbprint(world.tls_pem(MOH_SS1))


def test_step_2_a_caller_without_a_listed_certificate_is_unauthenticated(
    world: PureFederation,
) -> None:
    admission = _provider(world, peer=None)
    assert isinstance(admission.refusal, Unauthenticated)
    assert "no client certificate" in admission.refusal.message
    assert admission.peer_certificate == ""  # none was presented
    assert not admission.established


def test_step_2_a_refused_peer_is_recorded_with_the_certificate_it_presented(
    world: PureFederation,
) -> None:
    # The certificate is known before it is judged: the record of the refusal names it.
    revoked = world.revoking(world.tls[MOH_SS1])
    admission = _provider(world, conf=revoked)
    assert isinstance(admission.refusal, Unauthenticated)
    assert "is revoked" in admission.refusal.message
    assert admission.peer_certificate == pem_thumbprint(world.tls_pem(MOH_SS1))
    assert not admission.established

    unlisted = PureFederation()  # another federation: its servers are listed nowhere here
    admission = _provider(world, peer=unlisted.tls_pem(MOH_SS1))
    assert isinstance(admission.refusal, Unauthenticated)
    assert "is not that of a security server listed" in admission.refusal.message
    assert admission.peer_certificate == pem_thumbprint(unlisted.tls_pem(MOH_SS1))


def test_step_3_exactly_one_request_token(world: PureFederation) -> None:
    token = world.signer(MOH).sign_request(_claims())
    twice = [(metadata.REQUEST_TOKEN, token), (metadata.REQUEST_TOKEN, token)]
    admission = _provider(world, invocation=twice)
    assert isinstance(admission.refusal, Unauthenticated)
    assert admission.peer_certificate, "the TLS peer passed step 2 and is recorded"
    assert admission.request_token == ""


def test_step_4_a_token_that_does_not_verify_is_kept_for_the_record(
    world: PureFederation,
) -> None:
    token = world.signer(MOH).sign_request(_claims())
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    admission = _provider(world, invocation=[(metadata.REQUEST_TOKEN, forged)])
    assert isinstance(admission.refusal, Unauthenticated)
    assert admission.request_token == forged
    assert admission.claims is None
    assert not admission.established


def test_step_5_a_token_of_another_member_than_the_calling_server(
    world: PureFederation,
) -> None:
    claims = _claims(issuer=MPWT, client=SubsystemId.parse("KH/GOV/MPWT/fleet"))
    admission = _provider(world, claims, signer=MPWT, peer=MOH_SS1)
    assert isinstance(admission.refusal, Unauthenticated)
    assert "arrived from security server KH/GOV/MOH/ss1 of another member" in (
        admission.refusal.message
    )
    assert admission.claims == claims, "verified, so the record names the caller"
    assert not admission.established, "so the refusal is unsigned"


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        ({"request_size": 1025}, ResourceExhausted, "1025 bytes exceeds"),
        ({"method": LIST_VEHICLES}, Unauthenticated, "is for method"),
        ({"request_sha256": request_digest(b"other")}, Unauthenticated, "digest"),
    ],
)
def test_steps_6_to_8_refusals_are_established(
    world: PureFederation, call: dict[str, Any], error: type[SpeanError], match: str
) -> None:
    replay = Replay()
    admission = _provider(world, replay=replay, **call)
    assert isinstance(admission.refusal, error)
    assert match in admission.refusal.message
    assert admission.established, "signed from step 6 on"
    assert replay.asked == [], "replay memory is not touched before step 10"


def test_step_9_an_audience_not_published_here(world: PureFederation) -> None:
    rules = replace(PROVIDER, published={})
    admission = _provider(world, rules=rules)
    assert isinstance(admission.refusal, NotFound)
    assert "is not published on security server KH/GOV/MPWT/ss1" in admission.refusal.message


def test_step_10_a_replay_is_refused_and_the_store_decides(world: PureFederation) -> None:
    claims = _claims()
    replay = Replay()
    assert _provider(world, claims, replay=replay).admitted
    again = _provider(world, claims, replay=replay)
    assert isinstance(again.refusal, Unauthenticated)
    assert "was already used: the request is a replay" in again.refusal.message
    down = _provider(world, replay=Replay(fail=Unavailable("replay store down")))
    assert isinstance(down.refusal, Unavailable), "fail closed"


def test_step_11_a_method_the_adapter_does_not_serve_burns_the_token(
    world: PureFederation,
) -> None:
    rules = replace(PROVIDER, published={VEHICLES: {LIST_VEHICLES}})
    replay = Replay()
    admission = _provider(world, rules=rules, replay=replay)
    assert isinstance(admission.refusal, NotFound)
    assert "does not publish method" in admission.refusal.message
    assert len(replay.seen) == 1, "a token refused after step 10 cannot be used again"


def test_step_12_no_access_right(world: PureFederation) -> None:
    claims = _claims(method=LIST_VEHICLES)
    admission = _provider(world, claims)
    assert isinstance(admission.refusal, PermissionDenied)
    assert f"{NHIS} has no access right to {VEHICLES}:{LIST_VEHICLES}" in (
        admission.refusal.message
    )


def test_step_12a_a_disabled_method_is_refused_with_the_providers_notice(
    world: PureFederation,
) -> None:
    rules = replace(PROVIDER, disabled={VEHICLES: {GET_VEHICLE: "maintenance until 06:00"}})
    admission = _provider(world, rules=rules)
    assert isinstance(admission.refusal, FailedPrecondition)
    assert admission.refusal.message == (
        f"{GET_VEHICLE} of {VEHICLES} is disabled by its provider: maintenance until 06:00"
    )
    assert admission.established  # signed like every answer after step 5


def test_step_12a_comes_after_the_access_right(world: PureFederation) -> None:
    rules = replace(PROVIDER, disabled={VEHICLES: {LIST_VEHICLES: ""}})
    admission = _provider(world, _claims(method=LIST_VEHICLES), rules=rules)
    assert isinstance(admission.refusal, PermissionDenied)  # nothing learnt of its state
    enabled_again = replace(PROVIDER, disabled={VEHICLES: {LIST_VEHICLES: ""}})
    assert _provider(world, rules=enabled_again).admitted  # other methods are untouched


def test_allowed_methods_skips_steps_11_and_12(world: PureFederation) -> None:
    rules = replace(PROVIDER, policy=AccessPolicy([]), published={VEHICLES: set()})
    assert _provider(world, _claims(method=ALLOWED_METHODS), rules=rules).admitted


SUBJECT_KEY = subject_key(b"\x5a" * 32)
SUBJECTS = replace(PROVIDER, subject_key=SUBJECT_KEY)


def test_step_5a_the_data_subject_is_pseudonymised_with_the_providers_key(
    world: PureFederation,
) -> None:
    claims = _claims()
    token = world.signer(MOH).sign_request(claims)
    invocation = [(metadata.REQUEST_TOKEN, token), (metadata.SUBJECT, "KH-NID-010203")]
    admission = _provider(world, claims, invocation=invocation, rules=SUBJECTS)
    assert admission.admitted
    assert admission.subject_pseudonym == subject_pseudonym(SUBJECT_KEY, "KH-NID-010203")
    assert _provider(world, rules=SUBJECTS).subject_pseudonym == b"", "no subject, no pseudonym"


def test_step_5a_a_refusal_after_it_still_carries_the_pseudonym(world: PureFederation) -> None:
    claims = _claims(method=LIST_VEHICLES)  # no access right: refused at step 12
    token = world.signer(MOH).sign_request(claims)
    invocation = [(metadata.REQUEST_TOKEN, token), (metadata.SUBJECT, "KH-NID-010203")]
    admission = _provider(world, claims, invocation=invocation, rules=SUBJECTS)
    assert isinstance(admission.refusal, PermissionDenied)
    assert admission.subject_pseudonym == subject_pseudonym(SUBJECT_KEY, "KH-NID-010203")


@pytest.mark.parametrize(
    ("subject", "rules", "error", "match"),
    [
        ("KH NID 0102", "subjects", InvalidArgument, "header spean-subject must be"),
        ("KH-NID-010203", "plain", FailedPrecondition, "provider.pseudonymisation_key is not set"),
    ],
)
def test_step_5a_refusals_are_signed_and_never_quote_the_subject(
    world: PureFederation, subject: str, rules: str, error: type[SpeanError], match: str
) -> None:
    claims = _claims()
    token = world.signer(MOH).sign_request(claims)
    invocation = [(metadata.REQUEST_TOKEN, token), (metadata.SUBJECT, subject)]
    replay = Replay()
    admission = _provider(
        world,
        claims,
        invocation=invocation,
        replay=replay,
        rules=SUBJECTS if rules == "subjects" else PROVIDER,
    )
    assert isinstance(admission.refusal, error)
    assert match in admission.refusal.message
    assert subject not in admission.refusal.message
    assert admission.established, "the answer is signed"
    assert admission.subject_pseudonym == b""
    assert replay.asked == [], "refused before the replay check"


# ------------------------------------------------------------------ answers


def _answer(
    world: PureFederation,
    claims: RequestClaims,
    *,
    status: str = "OK",
    messages: tuple[bytes, ...] = (b"vehicle",),
    signed: str | None = None,
    tokens: int = 1,
    details: str = "",
    pseudonym: bytes = b"",
    subject_sent: bool = False,
) -> Any:
    digest = ResponseDigest()
    for message in messages:
        digest.update(message)
    now = int(time.time())
    token = world.signer(MPWT).sign_response(
        ResponseClaims(
            issuer=MPWT,
            provider=claims.audience,
            audience=claims.client,
            exchange_id=claims.exchange_id,
            issued_at=now,
            expires_at=now + 60,
            status=signed or status,
            response_sha256=digest.digest(),
            response_messages=digest.count,
            subject_pseudonym=pseudonym,
        )
    )
    return check_answer(
        world.conf,
        claims,
        status=status,
        details=details,
        trailing=[(metadata.RESPONSE_TOKEN, token)] * tokens,
        response_sha256=digest.digest(),
        response_messages=digest.count,
        now=now,
        leeway=5,
        subject_sent=subject_sent,
    )


def test_a_signed_ok_answer_is_verified(world: PureFederation) -> None:
    verdict = _answer(world, _claims())
    assert verdict.verified
    assert verdict.refusal is None
    assert verdict.response_token.count(".") == 2


def test_a_signed_refusal_is_passed_on_with_the_providers_words(world: PureFederation) -> None:
    verdict = _answer(world, _claims(), status="PERMISSION_DENIED", messages=(), details="no")
    assert verdict.verified
    assert verdict.refusal.code.name == "PERMISSION_DENIED"
    assert verdict.refusal.message == "no"


def test_an_answer_must_acknowledge_the_subject_exactly_when_one_was_sent(
    world: PureFederation,
) -> None:
    pseudonym = subject_pseudonym(SUBJECT_KEY, "KH-NID-010203")
    acknowledged = _answer(world, _claims(), pseudonym=pseudonym, subject_sent=True)
    assert acknowledged.verified
    assert acknowledged.subject_pseudonym == pseudonym

    silent = _answer(world, _claims(), subject_sent=True)
    assert not silent.verified
    assert isinstance(silent.refusal, Unauthenticated)
    assert "does not acknowledge the data subject" in silent.refusal.message
    assert silent.subject_pseudonym == b""

    unasked = _answer(world, _claims(), pseudonym=pseudonym)
    assert not unasked.verified
    assert "names a data subject" in unasked.refusal.message


def test_a_status_the_token_does_not_sign_is_a_forgery(world: PureFederation) -> None:
    verdict = _answer(world, _claims(), status="OK", signed="NOT_FOUND")
    assert not verdict.verified
    assert isinstance(verdict.refusal, Unauthenticated)
    assert verdict.response_token, "kept for the record"


def test_two_response_tokens_are_refused(world: PureFederation) -> None:
    verdict = _answer(world, _claims(), tokens=2)
    assert isinstance(verdict.refusal, Unauthenticated)
    assert "more than one response token" in verdict.refusal.message


@pytest.mark.parametrize(
    ("status", "details", "error", "message"),
    [
        ("OK", "", Unauthenticated, "the provider's answer carries no response token"),
        (
            "DEADLINE_EXCEEDED",
            "",
            DeadlineExceeded,
            "the caller's deadline expired before the provider answered",
        ),
        ("NOT_FOUND", "no such vehicle", SpeanError, "no such vehicle"),
        ("UNKNOWN", "Traceback ...", Internal, "the provider failed without a reason"),
        ("UNAUTHENTICATED", "bad\x00token", SpeanError, "the provider refused the call"),
    ],
)
def test_unsigned_answers(
    world: PureFederation, status: str, details: str, error: type[SpeanError], message: str
) -> None:
    verdict = check_answer(
        world.conf,
        _claims(),
        status=status,
        details=details,
        trailing=[],
        response_sha256=ResponseDigest().digest(),
        response_messages=0,
        now=int(time.time()),
        leeway=5,
    )
    assert not verdict.verified
    assert verdict.response_token == ""
    assert isinstance(verdict.refusal, SpeanError)
    assert verdict.refusal.message == message
    if error is Internal:
        assert verdict.refusal.code.name == "INTERNAL"
    elif error is not SpeanError:
        assert isinstance(verdict.refusal, error)
    else:
        assert verdict.refusal.code.name == status


def test_a_providers_message_is_cut_at_1024_characters() -> None:
    assert len(passed_on("NOT_FOUND", "x" * 5000).message) == 1024


# ------------------------------------------------------------------ failover


def test_only_an_answer_without_an_exchange_id_is_unreachable() -> None:
    assert unreachable("UNAVAILABLE", [])
    assert not unreachable("UNAVAILABLE", [(metadata.EXCHANGE_ID, "e1")])
    assert not unreachable("DEADLINE_EXCEEDED", [])


def test_failover_only_for_a_caller_that_still_waits() -> None:
    assert may_fail_over(caller_active=True, budget=None)
    assert may_fail_over(caller_active=True, budget=0.5)
    assert not may_fail_over(caller_active=True, budget=0.0)
    assert not may_fail_over(caller_active=False, budget=None)


# ------------------------------------------------------------------ order


def test_the_provider_refuses_at_the_first_check_that_fails(world: PureFederation) -> None:
    # Two checks fail at once: the earlier one of protocol.md 4.2 decides.
    expired = Unavailable("global configuration expired")
    assert _provider(world, peer=None, conf=expired).refusal is expired  # 1 before 2
    both = _provider(world, request_size=1025, method=LIST_VEHICLES)  # 6 before 7
    assert isinstance(both.refusal, ResourceExhausted)
    replay = Replay()
    unpublished = _provider(world, rules=replace(PROVIDER, published={}), replay=replay)
    assert isinstance(unpublished.refusal, NotFound)  # 9 before 10
    assert replay.asked == [], "the token is not used up by a call refused at 9"
    rules = replace(PROVIDER, published={VEHICLES: {LIST_VEHICLES}}, policy=AccessPolicy([]))
    neither = _provider(world, rules=rules)
    assert isinstance(neither.refusal, NotFound)  # 11 before 12
    assert "does not publish method" in neither.refusal.message


def test_the_consumer_refuses_at_the_first_check_that_fails(world: PureFederation) -> None:
    # The client check before the size, the size before the configuration's checks.
    stranger = _consumer(world, invocation=_headers(str(STRANGER), "KH/GOV/MEF/tax"))
    assert isinstance(stranger.refusal, PermissionDenied)
    unknown_member = _consumer(world, invocation=_headers(service="KH/GOV/MEF/tax"), method="x")
    assert isinstance(unknown_member.refusal, InvalidArgument), "the method path comes first"
    no_member = _consumer(world, invocation=_headers(service="KH/GOV/MEF/tax"))
    assert "member KH/GOV/MEF is not in the federation" in no_member.refusal.message
