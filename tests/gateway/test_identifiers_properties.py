"""Properties of identifier parsing beyond tests/gateway/test_identifiers.py.

The parser must accept exactly the texts the protocol document describes
(docs/protocol.md section 2) and refuse everything else with
`InvalidArgument`: it is compared here with an independent reading of that
grammar, written from the document and not from the code.
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from spean.gateway.errors import InvalidArgument
from spean.gateway.identifiers import MemberId, ServiceId, SubsystemId, parse_method, parse_server

CODE_RE = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
METHOD_RE = r"/[A-Za-z_][A-Za-z0-9_.]*\.[A-Za-z_][A-Za-z0-9_]*/[A-Za-z_][A-Za-z0-9_]*"

CODE = st.from_regex(CODE_RE, fullmatch=True)
METHOD = st.from_regex(METHOD_RE, fullmatch=True).filter(lambda m: len(m) <= 512)
# Texts near the grammar: codes, separators and the characters that break them.
NEAR = st.lists(
    st.one_of(CODE, st.sampled_from(["/", ":", "-", ".", " ", "\n", "\x00", "é", "_", ""])),
    max_size=12,
).map("".join)


def _documented_identifier(text: str, codes: int) -> bool:
    return len(text) <= 255 and re.fullmatch("/".join([CODE_RE] * codes), text) is not None


@settings(max_examples=150)
@given(st.one_of(NEAR, st.text(max_size=40)))
def test_subsystem_and_member_parsing_follow_the_documented_grammar(text: str) -> None:
    for parse, codes in ((SubsystemId.parse, 4), (MemberId.parse, 3)):
        try:
            parsed = parse(text)
        except InvalidArgument:
            assert not _documented_identifier(text, codes), text
        else:
            assert _documented_identifier(text, codes), text
            assert str(parsed) == text


@settings(max_examples=200)
@given(st.one_of(METHOD, NEAR, st.text(max_size=30)))
def test_method_parsing_follows_the_documented_grammar(text: str) -> None:
    documented = len(text) <= 512 and re.fullmatch(METHOD_RE, text) is not None
    try:
        assert parse_method(text) == text
    except InvalidArgument:
        assert not documented, text
    else:
        assert documented, text


@settings(max_examples=100)
@given(st.tuples(CODE, CODE, CODE, CODE), METHOD)
def test_service_identifiers_round_trip(codes: tuple[str, str, str, str], method: str) -> None:
    subsystem = "/".join(codes)
    if len(subsystem) > 255:
        return
    service = ServiceId.parse(f"{subsystem}:{method}")
    assert str(service) == f"{subsystem}:{method}"
    assert ServiceId.parse(str(service)) == service


@settings(max_examples=100)
@given(st.tuples(CODE, CODE, CODE, CODE))
def test_server_dns_name_is_the_reversed_lower_case_codes(codes: tuple[str, str, str, str]) -> None:
    text = "/".join(codes)
    if len(text) > 255:
        return
    name = parse_server(text).dns_name()
    assert name == ".".join(code.lower() for code in reversed(codes)) + ".spean"
    assert all(re.fullmatch(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?", label) for label in name.split("."))


@settings(max_examples=100)
@given(st.tuples(CODE, CODE, CODE, CODE), st.tuples(CODE, CODE, CODE, CODE))
def test_identifiers_are_equal_exactly_when_their_texts_are(
    a: tuple[str, ...], b: tuple[str, ...]
) -> None:
    left, right = "/".join(a), "/".join(b)
    if max(len(left), len(right)) > 255:
        return
    assert (SubsystemId.parse(left) == SubsystemId.parse(right)) == (left == right)
    assert SubsystemId.parse(left).member == MemberId.parse(left.rsplit("/", 1)[0])
