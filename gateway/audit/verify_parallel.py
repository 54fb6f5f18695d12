"""Offline verification of an audit bundle with the token signatures checked in parallel.

`verify_bundle` here is `spean.gateway.audit.verify.verify_bundle` plus
`jobs`: how many processes verify token signatures, which dominate the run
time. By default (None) one per core, and only when a bundle holds at least
`PARALLEL_MIN_RECORDS` records, about as many tokens as it takes to repay
starting the pool; `jobs=1` never starts a process; an explicit number is
obeyed whatever the size.

Workers only verify tokens: each chunk of records comes back as one outcome
per record (tokens verified, why they do not verify, or None for a record
the content pass does not ask about), computed with the very functions the
in-process pass uses (`verify_tokens.token_outcome`, `bundle_resolver`,
`checks_tokens`). Chunks (`verify.CHUNK` records) are handed over as the
one pass reads them, two per worker ahead of the content pass, so memory
stays a few chunks whatever the bundle's size. The pure verifier merges the outcomes in record
order, so the report is the same, problem for problem and in the same order,
whatever `jobs` is.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from spean.gateway.audit import verify
from spean.gateway.audit.bundle import Bundle, BundleSource
from spean.gateway.audit.record import AuditRecord
from spean.gateway.audit.verify_report import Report
from spean.gateway.audit.verify_tokens import bundle_resolver, checks_tokens, token_outcome
from spean.gateway.errors import InvalidArgument
from spean.gateway.globalconf import GlobalConfiguration
from spean.gateway.tokens import KeyResolver

# With `jobs=None` (one worker per core), bundles under this many records
# (about twice as many tokens) stay in-process: starting the pool (~0.4 s on
# the 2-core test machine) costs about what sharing their ~2.5 s of
# verification saves (~2,000 records/s on one core with real tokens,
# bench/audit_scale.py), and it saves nothing when no core is free. An
# explicit `jobs` is obeyed whatever the size.
PARALLEL_MIN_RECORDS = 5000


def verify_bundle(
    bundle: Bundle | BundleSource,
    *,
    anchor: x509.Certificate | None = None,
    check_tokens: bool = True,
    progress: verify.Progress | None = None,
    auditor_key: X25519PrivateKey | None = None,
    jobs: int | None = None,
) -> Report:
    """`verify.verify_bundle`, with token signatures verified by `jobs` processes.

    `jobs` None: one per core for bundles of at least `PARALLEL_MIN_RECORDS`
    records (as the manifest announces them, for a bundle file), else this
    process; 1: this process only. The report does not depend on it."""
    if jobs is not None and jobs < 1:
        raise InvalidArgument(f"jobs must be at least 1, got {jobs}")
    records = (
        bundle.frame.declared_records or 0
        if isinstance(bundle, BundleSource)
        else len(bundle.records)
    )
    workers = _workers(jobs, records) if check_tokens else 1
    return verify.verify_bundle(
        bundle,
        anchor=anchor,
        check_tokens=check_tokens,
        progress=progress,
        auditor_key=auditor_key,
        tokens=_pool(workers) if workers > 1 else verify.in_process,
    )


def _workers(jobs: int | None, records: int) -> int:
    """How many processes to verify tokens with: 1 when the pool would not pay."""
    if jobs is not None:
        return jobs
    if records < PARALLEL_MIN_RECORDS:
        return 1
    return os.cpu_count() or 1


def _pool(workers: int) -> verify.TokenPass:
    """The `TokenPass` that verifies a bundle's tokens in `workers` processes."""

    @contextmanager
    def tokens(conf: GlobalConfiguration, conf_bytes: bytes) -> Iterator[verify.TokenFeed]:
        # forkserver: workers are forked from a clean single-threaded server, never
        # from the caller, which may hold threads (a progress bar, a gRPC server)
        # whose locks a plain fork would copy held.
        context = multiprocessing.get_context("forkserver")
        # Import this module once in the server, not once per worker.
        context.set_forkserver_preload([__name__])
        pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=(conf_bytes,),
        )

        def submit(chunk: Sequence[bytes]) -> verify.TokenCheck:
            future = pool.submit(_verify_chunk, chunk)

            def outcome(k: int, record: AuditRecord) -> int | str:
                result = future.result()[k]
                # A worker skips only records the content pass skips too
                # (unreadable, or holding no token to check), so it has an
                # outcome for every record asked for.
                assert result is not None, f"worker returned no outcome for record {k}"
                return result

            return outcome

        try:
            # Two chunks per worker in flight: each worker has the next chunk
            # queued while the content pass waits on the oldest; the records
            # held stay a few chunks, whatever the bundle's size.
            yield verify.TokenFeed(submit, lookahead=2 * workers)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    return tokens


# -- token workers (run in other processes) ----------------------------------------------------

_worker_resolve: KeyResolver | None = None


def _init_worker(conf_bytes: bytes) -> None:
    """Rebuild the (already verified) configuration once per worker process."""
    global _worker_resolve  # per-process state of a pool worker
    _worker_resolve = bundle_resolver(verify.parse_configuration(conf_bytes))


def _verify_chunk(records: Sequence[bytes]) -> list[int | str | None]:
    """One outcome per record: tokens verified, why not, or None where the content
    pass does not ask (unreadable record, or one `verify.checks_tokens` skips)."""
    resolve = _worker_resolve
    assert resolve is not None, "token worker used before _init_worker"
    results: list[int | str | None] = []
    for data in records:
        try:
            record = AuditRecord.from_bytes(data)
        except InvalidArgument:
            results.append(None)
            continue
        results.append(token_outcome(record, resolve) if checks_tokens(record) else None)
    return results
