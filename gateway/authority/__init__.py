"""The federation authority: registry, admission, publication and serving.

Theory of operation. The authority lives in one directory:

    ca.key, ca.crt            the federation CA (EC P-256, 10 years)
    signing.key, signing.crt  the configuration-signing key and certificate;
                              signing.crt is the configuration anchor that
                              members receive out of band
    registry.yaml             members, subsystems, servers, every certificate
                              issued, revocations, the next version number
    globalconf.signed         the latest published SignedGlobalConfiguration
    published/NNNNNNNN.signed every version ever published (for auditors)
    registry.lock             serialises concurrent `spean authority` commands
    pending/                  join requests waiting for an officer's approval

Each change takes an exclusive lock on registry.lock, rereads registry.yaml,
applies the change and writes it back atomically, so two commands run at the
same time cannot lose each other's work. Private keys are loaded only when
needed (admission, publication), so `serve` runs without the passphrase.

Invariants enforced at admission, so that a published configuration always
passes `verify_global_configuration`:

- identifiers belong to this authority's instance and are unique ignoring
  case (the DNS names in certificates are lower case);
- a subsystem or server belongs to an admitted member; a subsystem is hosted
  only on servers of its own member;
- a CSR is used only for its public key, after its signature is checked;
- versions increase by one at each publication and are never reused: the
  registry records the next version before the configuration is written.

The member side (`init_member`, `init_server`) writes a key (0600) and a CSR
into the member's directory; admission writes nothing there.

Modules: `registry` (the directory layout, registry.yaml, locking), `core`
(the `Authority`: admission, revocation, publication), `configuration`
(registry to GlobalConfiguration, pure), `http` (serving the signed
configuration and its anchor), `members` (the member side) and `joins` (a
join request: admission in one step, or pending until an officer approves);
`admin`, `api`, `console` and `listener` are its management API and console
(`spean authority serve --management`).
Import from this package; the submodules' own names may change.
"""

from __future__ import annotations

from spean.gateway.authority.core import (
    DEFAULT_PUBLISH_VALIDITY,
    MAX_PUBLISH_VALIDITY,
    Authority,
)
from spean.gateway.authority.http import ANCHOR_PATH, GLOBALCONF_PATH, AuthorityHttpServer
from spean.gateway.authority.joins import (
    JOIN_REQUEST,
    Admitted,
    JoinRequest,
    SubsystemRequest,
    admit_request,
    approve,
    delivery_folder,
    join_request_yaml,
    parse_join_request,
    pending,
    read_join_request,
    reject,
    submit,
)
from spean.gateway.authority.registry import (
    CA_CERT,
    CA_KEY,
    GLOBALCONF,
    LOCK,
    PENDING,
    PUBLISHED,
    REGISTRY,
    REGISTRY_FORMAT,
    SIGNING_CERT,
    SIGNING_KEY,
)
from spean.gateway.files.member_keys import (
    MEMBER_CSR,
    MEMBER_KEY,
    SERVER_CSR,
    SERVER_KEY,
    KeyFiles,
    init_member,
    init_server,
)

__all__ = [
    "ANCHOR_PATH",
    "CA_CERT",
    "CA_KEY",
    "DEFAULT_PUBLISH_VALIDITY",
    "GLOBALCONF",
    "GLOBALCONF_PATH",
    "JOIN_REQUEST",
    "LOCK",
    "MAX_PUBLISH_VALIDITY",
    "MEMBER_CSR",
    "MEMBER_KEY",
    "PENDING",
    "PUBLISHED",
    "REGISTRY",
    "REGISTRY_FORMAT",
    "SERVER_CSR",
    "SERVER_KEY",
    "SIGNING_CERT",
    "SIGNING_KEY",
    "Admitted",
    "Authority",
    "AuthorityHttpServer",
    "JoinRequest",
    "KeyFiles",
    "SubsystemRequest",
    "admit_request",
    "approve",
    "delivery_folder",
    "init_member",
    "init_server",
    "join_request_yaml",
    "parse_join_request",
    "pending",
    "read_join_request",
    "reject",
    "submit",
]
