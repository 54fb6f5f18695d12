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
from spean.gateway.files.config import read_pseudonymisation_key
from spean.gateway.identifiers import SubsystemId
from spean.gateway.masking import MaskingPolicy, rules_from_config


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
