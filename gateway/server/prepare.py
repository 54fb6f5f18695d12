"""What a security server builds at start from its configuration and adapters.

Kept apart from `app` so that everything the server prepares before serving
can be run on its own (by the server at start and on reload, and by checks
that must agree with it): here, the provider's compiled data minimisation and
the key it pseudonymises data subjects with.
"""

from __future__ import annotations

from collections.abc import Mapping

from spean.adapters.base import Adapter
from spean.gateway.config import ServerConfig
from spean.gateway.errors import ConfigError
from spean.gateway.files.config import read_pseudonymisation_key
from spean.gateway.identifiers import SubsystemId
from spean.gateway.masking import MaskingPolicy, rules_from_config
from spean.gateway.subjects import subject_key


def masking_policy(config: ServerConfig, services: Mapping[SubsystemId, Adapter]) -> MaskingPolicy:
    """The provider's compiled minimisation, from its configuration and started adapters.

    Raises `ConfigError` naming the file and rule for any field that does not
    exist or cannot hold a pseudonym, and when the key is missing or short.
    """
    provider = config.provider
    if provider is None:
        return MaskingPolicy((), {}, None)
    return MaskingPolicy(
        rules_from_config(provider.access, str(config.path)),
        {subsystem: adapter.services() for subsystem, adapter in services.items()},
        read_pseudonymisation_key(config),
    )


def subject_key_for(config: ServerConfig) -> bytes | None:
    """The provider's key for data subjects' pseudonyms (docs/protocol.md 4.4), or None.

    None when no pseudonymisation key is configured: the provider then refuses
    calls that name a data subject. A key file too short is a `ConfigError`.
    """
    secret = read_pseudonymisation_key(config)
    if secret is None:
        return None
    try:
        return subject_key(secret)
    except ConfigError as exc:
        raise ConfigError(f"{config.path}: {exc.message}") from None
