"""The live subject view over every log of a server (gateway/management/transparency.py).

A server with several workers writes one log per worker into one audit
store. The records here are real signed records of a subject (look-up
records, which carry a pseudonym like any provider record), written by two
real writers, ``#w0`` and ``#w1``, into MPWT's SQLite store; the view must
prove the subject's records of both, list nobody else's, and record itself.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from spean.gateway.audit.backends import open_store
from spean.gateway.audit.subject import (
    TRANSPARENCY,
    lookup_record,
    parse_proof,
    verify_subject_proof,
)
from spean.gateway.audit.writer import server_checkpoint_policy
from spean.gateway.config import ServerConfig
from spean.gateway.demo.ministries import MPWT, build_demo
from spean.gateway.errors import FailedPrecondition, InvalidArgument
from spean.gateway.files import keyfiles
from spean.gateway.files.config import load_config, read_passphrase, subject_key_for
from spean.gateway.management.transparency import Transparency, audit_store_url
from spean.gateway.subjects import subject_pseudonym
from spean.gateway.tokens import TokenSigner, new_exchange_id
from tests.support.subjects import CITIZEN, OTHER_CITIZEN, give_mpwt_a_key


def _signer(config: ServerConfig) -> TokenSigner:
    return TokenSigner(
        keyfiles.load_private_key(config.resolve(config.keys.signing_key), read_passphrase(config)),
        keyfiles.load_certificate(config.resolve(config.keys.signing_certificate)),
    )


def _write(config: ServerConfig, worker: str, subjects: list[str]) -> list[str]:
    """`worker`'s log gets one record per subject; returns their exchange ids."""
    key = subject_key_for(config)
    assert key is not None
    origin = f"{config.server_id}#{worker}"
    ids = []
    with open_store(
        audit_store_url(config), origin, checkpoints=server_checkpoint_policy(config)
    ) as store:
        for subject in subjects:
            record = lookup_record(
                _signer(config),
                server=config.server,
                origin=origin,
                exchange_id=new_exchange_id(),
                pseudonym=subject_pseudonym(key, subject),
                proof=b"{}",
                requested_by="dr.sokha",
                purpose="admission",
                now_ns=time.time_ns(),
            )
            store.append(record)
            ids.append(record.exchange_id)
    return ids  # closing the writer signed a checkpoint over its log


@pytest.fixture
def mpwt(tmp_path: Path) -> ServerConfig:
    federation = build_demo(tmp_path / "federation")
    give_mpwt_a_key(federation.configs[MPWT])
    config = load_config(federation.configs[MPWT])
    # What the server's first refresh would cache: the authority's signed configuration.
    cache = config.resolve(config.global_configuration.cache)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(federation.authority.published_path.read_bytes())
    return config


def test_every_workers_log_is_proven_and_only_the_subjects_records_listed(
    mpwt: ServerConfig,
) -> None:
    first = _write(mpwt, "w0", [CITIZEN, OTHER_CITIZEN])
    second = _write(mpwt, "w1", [OTHER_CITIZEN, CITIZEN, CITIZEN])
    with open_store(audit_store_url(mpwt), f"{mpwt.server_id}#reader") as store:
        seen = Transparency(mpwt, store).view(CITIZEN, "oidc:citizen-1", "own view")
    views = seen.logs
    assert seen.pseudonym == subject_pseudonym(subject_key_for(mpwt) or b"", CITIZEN)
    by_origin = {v.proof.origin: v for v in views}
    assert list(by_origin) == [f"{mpwt.server_id}#w0", f"{mpwt.server_id}#w1"]
    listed = {
        origin: [str(e.summary()["exchange_id"]) for e in v.proof.entries]
        for origin, v in by_origin.items()
    }
    assert listed[f"{mpwt.server_id}#w0"] == [first[0]]
    assert listed[f"{mpwt.server_id}#w1"] == second[1:]
    anchor = keyfiles.load_certificate(mpwt.resolve(mpwt.global_configuration.anchor))
    for view in views:
        assert verify_subject_proof(parse_proof(view.text.decode()), anchor).ok
        assert CITIZEN.encode() not in view.text


def test_each_logs_look_up_is_recorded_and_listed_next_time(mpwt: ServerConfig) -> None:
    _write(mpwt, "w0", [CITIZEN])
    with open_store(audit_store_url(mpwt), f"{mpwt.server_id}#reader") as store:
        transparency = Transparency(mpwt, store)
        (first,) = transparency.view(CITIZEN, "oidc:citizen-1", "own view").logs
        lookups = f"{mpwt.server_id}#{TRANSPARENCY}"
        assert transparency.logs() == [f"{mpwt.server_id}#w0", lookups]
        again = {
            v.proof.origin: v for v in transparency.view(CITIZEN, "oidc:citizen-1", "again").logs
        }
    listed = [str(e.summary()["exchange_id"]) for e in again[lookups].proof.entries]
    # The first view's look-up, then this view's look-up of w0 (recorded before the
    # look-up log was read).
    worker = again[f"{mpwt.server_id}#w0"]
    assert listed == [first.lookup_exchange_id, worker.lookup_exchange_id]


def test_a_malformed_subject_or_purpose_is_refused_before_any_work(mpwt: ServerConfig) -> None:
    with open_store(audit_store_url(mpwt), f"{mpwt.server_id}#reader") as store:
        transparency = Transparency(mpwt, store)
        with pytest.raises(InvalidArgument, match="spean-subject"):
            transparency.view("KH NID 0102", "someone", "a case")
        with pytest.raises(InvalidArgument, match="purpose"):
            transparency.view(CITIZEN, "someone", "  ")
        assert transparency.logs() == []  # nothing was recorded


def test_a_server_without_a_pseudonymisation_key_has_no_view(tmp_path: Path) -> None:
    federation = build_demo(tmp_path / "federation")
    config = load_config(federation.configs[MPWT])
    with (
        open_store(audit_store_url(config), f"{config.server_id}#reader") as store,
        pytest.raises(FailedPrecondition, match="pseudonymisation_key"),
    ):
        Transparency(config, store).view(CITIZEN, "someone", "a case")
