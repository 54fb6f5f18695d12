"""An exchange's notes move stage by stage; a failover's successor is the same call anew."""

from __future__ import annotations

import grpc
import pytest

from spean.gateway.audit.bodies import RetainingDigest
from spean.gateway.audit.record import Side
from spean.gateway.errors import Internal, NotFound, PermissionDenied, Unavailable
from spean.gateway.lifecycle import Stage
from spean.gateway.server.exchange_log import ExchangeLog
from spean.gateway.tokens import new_exchange_id

METHOD = "/vehicles.v1.VehicleRegistry/GetVehicle"


def _exchange() -> ExchangeLog:
    ex = ExchangeLog(Side.CONSUMER, new_exchange_id(), METHOD, b"\x0a\x01x")
    ex.admit("request-token")
    return ex


def test_the_first_refusal_is_kept() -> None:
    ex = _exchange()
    ex.refuse(PermissionDenied("no right"))
    ex.refuse(NotFound("later"))
    assert (ex.code, ex.message) == (grpc.StatusCode.PERMISSION_DENIED, "no right")
    assert ex.stage is Stage.REFUSED


def test_an_unwritten_record_makes_the_answer_unavailable_and_unsigned() -> None:
    ex = _exchange()
    ex.forward()
    ex.answer("response-token")
    ex.unrecorded("cannot write the audit log", unsign=True)
    assert (ex.code, ex.response_token) == (grpc.StatusCode.UNAVAILABLE, "")
    ex.released()
    assert ex.stage is Stage.RELEASED


def test_a_record_is_needed_before_release() -> None:
    ex = _exchange()
    ex.forward()
    ex.answer()
    with pytest.raises(Internal):
        ex.released()


def test_a_successor_is_the_same_call_under_a_new_id_and_token() -> None:
    ex = _exchange()
    ex.client, ex.service, ex.user = "KH/GOV/MOH/nhis", "KH/GOV/MPWT/vehicles", "dr-sok"
    ex.forward()
    ex.refuse(Unavailable("ss1 is unreachable"))
    ex.recorded()
    following = ex.successor(new_exchange_id(), "token-2")
    assert following.stage is Stage.ADMITTED
    assert following.exchange_id != ex.exchange_id
    assert following.request_token == "token-2"
    assert (following.client, following.service, following.user) == (
        ex.client,
        ex.service,
        ex.user,
    )
    assert following.received_ns == ex.received_ns, "latency counts from the application's call"
    assert following.request_sha256 == ex.request_sha256
    assert following.ok
    assert following.forwarded_ns == 0
    assert following.response is not ex.response
    # The abandoned exchange keeps its own record.
    assert (ex.code, ex.request_token, ex.stage) == (
        grpc.StatusCode.UNAVAILABLE,
        "request-token",
        Stage.RECORDED,
    )


def test_a_successor_keeps_bodies_when_they_are_kept() -> None:
    ex = _exchange()
    ex.keep_bodies(b"k" * 32)
    ex.forward()
    ex.refuse(Unavailable("gone"))
    ex.recorded()
    assert isinstance(ex.successor(new_exchange_id(), "t").response, RetainingDigest)


def test_only_a_final_status_is_signed() -> None:
    ex = _exchange()
    ex.forward()
    with pytest.raises(Internal, match="forwarded has no final status to sign"):
        ex.sign("response-token")
    ex.answer()
    ex.sign("response-token")
    assert ex.response_token == "response-token"


def test_the_subject_is_forwarded_but_only_its_pseudonym_is_recorded() -> None:
    ex = _exchange()
    ex.subject = "KH-NID-010203"
    ex.forward()
    ex.answer("response-token", b"", b"\x07" * 32)
    record = ex.record("KH/GOV/MOH/ss1#w0")
    assert record.subject_pseudonym == b"\x07" * 32
    assert b"KH-NID-010203" not in record.to_bytes()


def test_a_successor_keeps_the_subject_and_waits_for_its_own_pseudonym() -> None:
    ex = _exchange()
    ex.subject, ex.subject_pseudonym = "KH-NID-010203", b"\x07" * 32
    ex.forward()
    ex.refuse(Unavailable("ss1 is unreachable"))
    ex.recorded()
    following = ex.successor(new_exchange_id(), "token-2")
    assert following.subject == "KH-NID-010203", "the retry names the same person"
    assert following.subject_pseudonym == b"", "only a verified answer gives one"
