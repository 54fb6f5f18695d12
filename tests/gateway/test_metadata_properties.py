"""Metadata parsing on the two endpoints never fails with anything but its own refusal.

`parse_consumer_headers` refuses with `InvalidArgument` only,
`single_token` with `Unauthenticated` only, and `claimed_exchange_id`
(which reads an unverified token to label a refusal) never raises and only
ever returns a canonical exchange id. Whatever is accepted is printable,
bounded and exactly what was sent.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spean.gateway.digests import b64url
from spean.gateway.errors import InvalidArgument, Unauthenticated
from spean.gateway.metadata import (
    CLIENT,
    PURPOSE,
    REQUEST_TOKEN,
    SERVICE,
    USER,
    parse_consumer_headers,
    single_token,
)
from spean.gateway.tokens import is_exchange_id, new_exchange_id
from spean.gateway.trust import claimed_exchange_id

NAMES = st.sampled_from([CLIENT, SERVICE, USER, PURPOSE, REQUEST_TOKEN, "other", "spean-x"])
VALUES = st.one_of(
    st.sampled_from(["KH/GOV/MOH/nhis", "KH/GOV/MPWT/vehicles", "KH/GOV/MOH", ""]),
    st.text(max_size=40),
    st.binary(max_size=20),
    st.sampled_from(["a" * 1024, "a" * 1025, "\u00e9" * 513, "x" * 9000]),
)
METADATA = st.lists(st.tuples(NAMES, VALUES), max_size=6)


@settings(max_examples=300)
@given(metadata=METADATA)
def test_consumer_headers_parse_or_are_invalid_argument(
    metadata: list[tuple[str, str | bytes]],
) -> None:
    try:
        headers = parse_consumer_headers(metadata)
    except InvalidArgument:
        return
    sent = dict(metadata)
    assert str(headers.client) == sent[CLIENT]
    assert str(headers.service) == sent[SERVICE]
    assert headers.user == sent.get(USER, "")
    assert headers.purpose == sent.get(PURPOSE, "")
    for value in (headers.user, headers.purpose):
        assert value.isprintable()
        assert len(value.encode("utf-8", "surrogatepass")) <= 1024


@settings(max_examples=300)
@given(metadata=METADATA)
def test_single_token_is_the_one_text_header_or_unauthenticated(
    metadata: list[tuple[str, str | bytes]],
) -> None:
    try:
        token = single_token(metadata, REQUEST_TOKEN)
    except Unauthenticated:
        return
    assert [v for k, v in metadata if k == REQUEST_TOKEN] == [token]


def _token_with(payload: object) -> str:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return f"eyJhbGciOiJFUzI1NiJ9.{b64url(body)}.c2ln"


JTI_VALUES = st.one_of(
    st.builds(new_exchange_id),
    st.builds(lambda: new_exchange_id().upper()),
    st.text(max_size=40),
    st.integers(),
    st.none(),
    st.lists(st.text(max_size=3), max_size=2),
)


@settings(max_examples=300)
@given(
    tokens=st.lists(
        st.one_of(
            JTI_VALUES.map(lambda jti: _token_with({"jti": jti})),
            st.binary(max_size=60).map(_token_with),
            st.text(max_size=60),
            st.binary(max_size=10),
        ),
        max_size=3,
    ),
    others=st.lists(st.tuples(NAMES, VALUES), max_size=3),
)
def test_claimed_exchange_id_never_raises(
    tokens: list[str | bytes], others: list[tuple[str, str | bytes]]
) -> None:
    metadata = [*others, *((REQUEST_TOKEN, token) for token in tokens)]
    claimed = claimed_exchange_id(metadata)
    if claimed is not None:
        assert is_exchange_id(claimed)
        assert len([v for k, v in metadata if k == REQUEST_TOKEN]) == 1


def test_claimed_exchange_id_reads_a_well_formed_claim() -> None:
    jti = new_exchange_id()
    assert claimed_exchange_id([(REQUEST_TOKEN, _token_with({"jti": jti}))]) == jti


@pytest.mark.parametrize("payload", [b"[" * 5000, b'{"a":' * 1200, b"[" * 100_000])
def test_claimed_exchange_id_survives_deeply_nested_json(payload: bytes) -> None:
    # Found by this test: json.loads raised RecursionError, which escaped the
    # provider's handler (no audit record, UNKNOWN to the caller).
    assert claimed_exchange_id([(REQUEST_TOKEN, _token_with(payload))]) is None
