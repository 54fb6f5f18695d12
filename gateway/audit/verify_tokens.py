"""The token rules of offline verification: which records' tokens are checked, and how.

Every record that holds a token is checked (refusals included), and every
exchange that ended OK must hold both. A request token must verify with the
issuing member's certificate (from the bundle's verified global
configuration, validity periods not applied: a bundle is judged long after)
at the moment the record says it was used, and bind the record's exchange
id, client, service, user, purpose, method and request digest; a response
token the exchange id, service, client, status, response digest and message
count. Where the protocol records a token that did not bind as the very
reason of a refusal, the rules say so (docs/auditor.md, "What the tokens
protect").

Publish/subscribe records (docs/protocol.md, section 13.6) are judged by
their own rules (`audit.events`: the event and ack tokens).

Values in, an outcome out: `token_outcome` is what the in-process pass and the
token workers of `verify_parallel` both call, so the report is the same
whichever computed it.
"""

from __future__ import annotations

from spean.gateway.audit.events import check_event_tokens, checks_event_tokens
from spean.gateway.audit.record import AuditRecord, Side
from spean.gateway.errors import SpeanError, Unauthenticated
from spean.gateway.globalconf import GlobalConfiguration
from spean.gateway.token_claims import parse_subsystem_cached
from spean.gateway.tokens import (
    KeyResolver,
    check_recorded_subject,
    verify_request,
    verify_response,
)
from spean.gateway.trust import key_resolver


def checks_tokens(record: AuditRecord) -> bool:
    """Whether the content pass checks this record's tokens: every record that
    holds one (refusals included), and every exchange that ended OK, which must
    hold both. Event records: `audit.events.checks_event_tokens`."""
    if record.is_event:
        return checks_event_tokens(record)
    return record.status == "OK" or bool(record.request_token or record.response_token)


def bundle_resolver(conf: GlobalConfiguration) -> KeyResolver:
    """The one key resolver (`trust.key_resolver`), without the validity period:
    a bundle is judged long after its certificates may have expired, and each
    token's period was checked when the token was accepted."""
    return key_resolver(conf, check_validity=False)


def token_outcome(record: AuditRecord, resolve: KeyResolver) -> int | str:
    """Tokens verified for a record (`checks_tokens`), or the reason they do not verify."""
    try:
        return _check_tokens(record, resolve)
    except SpeanError as exc:
        return exc.message


# A consumer refuses an answer whose response token does not verify or does not
# bind the answer with UNAUTHENTICATED, and keeps the token for the record
# (protocol.md 3.5); a provider refuses a request token made for another method
# or body (steps 7 and 8 of protocol.md 4.2) with UNAUTHENTICATED too.
REFUSED = "UNAUTHENTICATED"


def _check_tokens(record: AuditRecord, resolve: KeyResolver) -> int:
    """The rules of docs/auditor.md, "What the tokens protect"; returns the tokens verified."""
    if record.is_event:
        return check_event_tokens(record, resolve)
    if record.status == "OK" and not (record.request_token and record.response_token):
        raise Unauthenticated("an exchange that ended OK must hold both tokens")
    verified = 0
    if record.request_token:
        verified += _check_request_token(record, resolve)
    if record.response_token:
        verified += _check_response_token(record, resolve)
    return verified


def _check_request_token(record: AuditRecord, resolve: KeyResolver) -> int:
    provider = record.side == Side.PROVIDER
    # An unsigned refusal (steps 1 to 5): a token refused at step 3 or 4 left
    # the caller unknown (no client, service, user or purpose noted); it
    # proves nothing and is not checked.
    if (
        provider
        and not record.response_token
        and not (record.client or record.service or record.user or record.purpose)
    ):
        return 0
    now = (record.forwarded_at_ns or record.received_at_ns) // 1_000_000_000
    request = verify_request(record.request_token, resolve, now=now)
    if request.exchange_id != record.exchange_id:
        raise Unauthenticated(
            f"request token is for exchange {request.exchange_id}, the record says "
            f"{record.exchange_id}"
        )
    _same("request token", "client", str(request.client), record.client)
    _same("request token", "service", str(request.audience), record.service)
    _same("request token", "user", request.user, record.user)
    _same("request token", "purpose", request.purpose, record.purpose)
    if provider and (not record.response_token or record.status == REFUSED):
        # The provider may have refused the call precisely because the token
        # names another method or body (steps 7, 8), or before reaching them.
        return 1
    _same("request token", "method", request.method, record.method)
    if request.request_sha256 != record.request_sha256:
        raise Unauthenticated(
            "request token's digest (claim 'req') is not the record's request_sha256"
        )
    return 1


def _check_response_token(record: AuditRecord, resolve: KeyResolver) -> int:
    consumer = record.side == Side.CONSUMER
    try:
        response = verify_response(
            record.response_token,
            resolve,
            now=(record.answered_at_ns or record.received_at_ns) // 1_000_000_000,
            expected_exchange_id=record.exchange_id,
            expected_provider=parse_subsystem_cached(record.service),
            expected_client=parse_subsystem_cached(record.client),
        )
        status = response.status
        if consumer and record.status == "INTERNAL" and status == "UNKNOWN":
            status = "INTERNAL"  # the consumer never passes UNKNOWN on (protocol.md 3.5)
        _same("response token", "status", status, record.status)
        if response.response_sha256 != record.response_sha256:
            raise Unauthenticated(
                "response token's digest (claim 'res') is not the record's response_sha256"
            )
        if response.response_messages != record.response_messages:
            raise Unauthenticated(
                f"response token counts {response.response_messages} messages (claim 'cnt'), "
                f"the record says {record.response_messages}"
            )
        check_recorded_subject(response, record.subject_pseudonym)
    except SpeanError:
        if consumer and record.status == REFUSED:
            # The consumer refused this answer because of its token: recorded as received.
            return 0
        raise
    return 1


def _same(token: str, field_name: str, signed: str, recorded: str) -> None:
    if signed != recorded:
        raise Unauthenticated(
            f"{token} signs {field_name} {signed!r}, the record says {recorded!r}"
        )
