"""A data subject's view on a running provider: every log of the server, proven, recorded.

What `spean audit subject` does for one exported log, done live for all the
server's exchange logs (one per worker, ``SERVER#w0``, ``SERVER#w1``, ...)
and its look-up log (``SERVER#transparency``): each is exported up to its
latest signed checkpoint, the subject's records are proven against it
(`audit.subject.subject_view`), and the look-up is recorded in the look-up
log before the answer leaves (no record, no answer). The person's id is
used only to compute the provider's pseudonym; it is stored nowhere.

Guarantees:

- A view names only records that carry this person's pseudonym; of the rest
  of each log it holds Merkle node hashes and the log's size only.
- Each log's proof is the `spean-subject-proof/1` file that `spean audit
  verify-proof` checks offline, byte for byte the file whose digest the
  look-up record signs.
- A log without a signed checkpoint yet contributes nothing provable: its
  records of the subject are counted as pending.

Cost: each view reads every log of the server from its first record (the
proofs need every leaf). That is what an exported-log look-up costs too; an
index of pseudonyms is the fix when views become frequent at national scale
(docs/transparency.md, "Known limits").
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from spean.gateway.audit.backends import open_store
from spean.gateway.audit.bundle import export_bundle
from spean.gateway.audit.record import AuditRecord
from spean.gateway.audit.store import AuditStore
from spean.gateway.audit.subject import TRANSPARENCY, SubjectProof, lookup_record, subject_view
from spean.gateway.audit.writer import server_checkpoint_policy
from spean.gateway.config import ServerConfig
from spean.gateway.errors import ConfigError, FailedPrecondition, InvalidArgument
from spean.gateway.files import keyfiles
from spean.gateway.files.config import read_passphrase, subject_key_for
from spean.gateway.subjects import is_subject, subject_pseudonym
from spean.gateway.tokens import TokenSigner, new_exchange_id

MAX_PURPOSE_CHARS = 200


@dataclass(frozen=True, slots=True)
class SubjectViews:
    """One view: the person's pseudonym (whatever the logs hold), and each log's part."""

    pseudonym: bytes
    logs: list[LogView]


@dataclass(frozen=True, slots=True)
class LogView:
    """One log's part of a view: its proof, the file as served, and the look-up's record."""

    proof: SubjectProof
    text: bytes
    lookup_exchange_id: str


def audit_store_url(config: ServerConfig) -> str:
    """The server's audit store, a relative SQLite path resolved against its configuration."""
    url = config.audit.store
    return url if "://" in url else str(config.resolve(Path(url)))


def member_signer(config: ServerConfig) -> TokenSigner:
    """The member's signing key, which signs a look-up's tokens."""
    return TokenSigner(
        keyfiles.load_private_key(config.resolve(config.keys.signing_key), read_passphrase(config)),
        keyfiles.load_certificate(config.resolve(config.keys.signing_certificate)),
    )


# One writer of the look-up log at a time in this process: two views at once would
# otherwise each open a writer of SERVER#transparency, and one would be refused.
_LOOKUPS = threading.Lock()


def record_lookup(
    config: ServerConfig,
    proof: SubjectProof,
    text: bytes,
    requested_by: str,
    purpose: str,
    signer: TokenSigner | None = None,
) -> AuditRecord:
    """Append the signed record of one look-up to ``SERVER#transparency``; returns it.

    Called before the proof file is handed out (fail closed): a failure to
    record raises, and the caller answers nothing. `signer` saves loading the
    member's key again for each log of one view.
    """
    signer = signer or member_signer(config)
    origin = f"{config.server_id}#{TRANSPARENCY}"
    record = lookup_record(
        signer,
        server=config.server,
        origin=origin,
        exchange_id=new_exchange_id(),
        pseudonym=proof.subject_pseudonym,
        proof=text,
        requested_by=requested_by,
        purpose=purpose,
        now_ns=time.time_ns(),
    )
    # A writer of the look-up log for this one record: it signs a checkpoint as it
    # closes, so the look-up is provable at once, and the next writer (this server or
    # `spean audit subject`) continues from its head.
    with (
        _LOOKUPS,
        open_store(
            audit_store_url(config), origin, checkpoints=server_checkpoint_policy(config)
        ) as store,
    ):
        store.append(record)
    return record


class Transparency:
    """The live subject view of one security server (its own audit store, open)."""

    def __init__(self, config: ServerConfig, store: AuditStore) -> None:
        self._config = config
        self._store = store

    def logs(self) -> list[str]:
        """The server's logs a subject's records can be in: its workers' and its look-ups'."""
        server = re.escape(self._config.server_id)
        pattern = re.compile(rf"{server}#(w\d+|{TRANSPARENCY})\Z")
        # The workers' logs first, then the look-ups of them.
        return sorted(
            (o for o in self._store.origins() if pattern.match(o)),
            key=lambda o: (o.endswith(f"#{TRANSPARENCY}"), o),
        )

    def view(self, subject: str, requested_by: str, purpose: str) -> SubjectViews:
        """Every proven exchange of `subject` in every log, each log's look-up recorded."""
        config = self._config
        if not is_subject(subject):
            raise InvalidArgument(
                "the subject must be an id as spean-subject takes it: 1 to 64 letters, digits"
                " and . _ : / + - (docs/protocol.md 4.4)"
            )
        purpose = purpose.strip()
        if not purpose or len(purpose) > MAX_PURPOSE_CHARS:
            raise InvalidArgument(
                f"state the purpose of the look-up in 1 to {MAX_PURPOSE_CHARS} characters"
            )
        key = subject_key_for(config)
        if key is None:
            raise FailedPrecondition(
                f"{config.server_id} has no provider.pseudonymisation_key: it records no data"
                " subjects, so it has no view to give"
            )
        source = config.global_configuration
        try:
            globalconf = config.resolve(source.cache).read_bytes()
            anchor_pem = config.resolve(source.anchor).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read {exc.filename}: {exc.strerror}") from exc
        signer = member_signer(config)
        views: list[LogView] = []
        for origin in self.logs():
            bundle = export_bundle(
                self._store, globalconf=globalconf, anchor_pem=anchor_pem, origin=origin
            )
            if not bundle.records:
                continue  # nothing under a signed checkpoint yet
            proof = subject_view(bundle, key, subject)
            text = proof.to_json().encode("utf-8")
            record = record_lookup(config, proof, text, requested_by, purpose, signer)
            views.append(LogView(proof, text, record.exchange_id))
        return SubjectViews(subject_pseudonym(key, subject), views)
