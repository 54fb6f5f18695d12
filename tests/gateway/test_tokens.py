"""The tokens' public interface: every name is the one its implementing module defines.

`spean.gateway.tokens` holds no rule of its own; a name it offers that were a
copy (or a stale alias) would be a second home for a token rule.
"""

from __future__ import annotations

from spean.gateway import token_claims, token_signing, token_verification, tokens


def test_every_public_name_comes_from_the_module_that_defines_it() -> None:
    parts = (token_claims, token_signing, token_verification)
    for name in tokens.__all__:
        homes = [part for part in parts if getattr(part, name, None) is getattr(tokens, name)]
        assert homes, f"tokens.{name} is not the object of any token module"


def test_the_interface_offers_what_the_gateway_imports() -> None:
    assert {
        "MAX_TOKEN_SIZE",
        "KeyResolver",
        "RequestClaims",
        "ResponseClaims",
        "TokenSigner",
        "VerifyingKey",
        "check_request_binding",
        "check_response_binding",
        "is_exchange_id",
        "new_exchange_id",
        "verify_request",
        "verify_response",
    } <= set(tokens.__all__)
    assert tokens.ES256 == "ES256"
    assert tokens.EDDSA == "EdDSA"
