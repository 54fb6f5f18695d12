"""Costs that grow with the federation and the log: global configuration and audit verify.

`globalconf_at_scale` builds, through spean.gateway.authority, a federation of
`members` admitted members, each with a security server and its own signing
and TLS certificates, and subsystems publishing `services` methods in all;
the authority publishes (signs) it. Registering them one command at a time
would reread and rewrite registry.yaml per change, which is the authority's
concern and not what is measured here: the registry is filled in memory with
certificates the authority's CA issues, written once, then published by
`Authority.publish`. Measured: publish, what a security server does on each
refresh (`verify_global_configuration`: signature, parse, every certificate
and invariant checked), and the lookups an exchange makes.

`audit_verify` replays real audit logs (those the exchanges just wrote)
through the verifier's structural checks: the hash chain (`verify_chain`),
the RFC 9162 tree (`leaf_hashes` + `CompactRange`) and record decoding.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spean.gateway import pki
from spean.gateway.audit.chain import verify_chain
from spean.gateway.audit.merkle import CompactRange, leaf_hashes
from spean.gateway.audit.record import AuditRecord
from spean.gateway.authority import CA_KEY, REGISTRY, Authority
from spean.gateway.authority.registry import (
    Member,
    Server,
    Subsystem,
    issued_record,
    read_registry,
    write_registry,
)
from spean.gateway.files import keyfiles
from spean.gateway.globalconf import verify_global_configuration
from spean.gateway.identifiers import MemberId, SubsystemId, parse_server


def _best(operation: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        operation()
        best = min(best, time.perf_counter() - start)
    return best


def globalconf_at_scale(folder: Path, members: int, services: int) -> dict[str, Any]:
    """Build, publish and verify a configuration of `members` members and `services` methods."""
    started = time.perf_counter()
    authority = Authority.init(folder, "KH")
    ca_key = keyfiles.load_private_key(folder / CA_KEY)
    registry = read_registry(folder / REGISTRY)
    subsystems_per_member = 2
    methods_per_subsystem = max(1, services // (members * subsystems_per_member))
    kids: list[str] = []
    fingerprints: list[str] = []
    lookups: list[tuple[SubsystemId, str]] = []
    for m in range(members):
        member = MemberId.parse(f"KH/GOV/M{m:05d}")
        key = pki.generate_key("ec-p256")
        cert = pki.issue_member_certificate(
            ca_key,
            authority.ca_certificate,
            pki.make_csr(key, str(member), "member"),
            member,
            f"Member {m}",
        )
        registry.members.append(
            Member(str(member), f"Member {m}", [pki.certificate_pem(cert).decode()])
        )
        registry.issued.append(issued_record(cert, "member", str(member)))
        kids.append(pki.thumbprint(cert))
        server = parse_server(f"{member}/ss1")
        address = f"10.{m // 250}.{m % 250}.1:5500"
        tls_key = pki.generate_key("ec-p256")
        tls_cert = pki.issue_server_certificate(
            ca_key,
            authority.ca_certificate,
            pki.make_csr(tls_key, str(server), "server"),
            server,
            address,
        )
        registry.servers.append(
            Server(str(server), address, pki.certificate_pem(tls_cert).decode())
        )
        registry.issued.append(issued_record(tls_cert, "server", str(server)))
        fingerprints.append(pki.thumbprint(tls_cert))
        for s in range(subsystems_per_member):
            subsystem = SubsystemId.parse(f"{member}/sub{s}")
            published = [
                (f"/svc{s}.v1.Service/Method{k}", False) for k in range(methods_per_subsystem)
            ]
            registry.subsystems.append(Subsystem(str(subsystem), "", [str(server)], published))
            lookups.append((subsystem, published[-1][0]))
    write_registry(folder / REGISTRY, registry)
    built = time.perf_counter() - started

    start = time.perf_counter()
    signed_path = authority.publish(dt.timedelta(days=1))
    publish_s = time.perf_counter() - start
    data = signed_path.read_bytes()
    now = dt.datetime.now(dt.UTC)
    anchor = authority.signing_certificate
    conf = verify_global_configuration(data, anchor, now)
    verify_s = _best(lambda: verify_global_configuration(data, anchor, now), 3)

    rounds = 20_000
    targets = [lookups[i % len(lookups)] for i in range(rounds)]
    key_ids = [kids[i % len(kids)] for i in range(rounds)]
    prints = [fingerprints[i % len(fingerprints)] for i in range(rounds)]

    def methods() -> None:
        for subsystem, path in targets:
            conf.method(subsystem, path)

    def keys() -> None:
        for kid in key_ids:
            conf.signing_key(kid, now)

    def servers() -> None:
        for subsystem, _ in targets:
            conf.servers_for(subsystem)

    def peers() -> None:
        for fingerprint in prints:
            conf.server_by_fingerprint(fingerprint)

    assert all(conf.method(s, p) is not None for s, p in lookups[:100])
    return {
        "members": members,
        "servers": len(conf.servers),
        "subsystems": len(conf.subsystems),
        "services": sum(len(s.methods) for s in conf.subsystems),
        "signed_bytes": len(data),
        "build_registry_s": round(built, 3),
        "publish_s": round(publish_s, 3),
        "load_verify_s": round(verify_s, 4),
        "lookup_ns": {
            "method": round(_best(methods, 3) / rounds * 1e9),
            "signing_key": round(_best(keys, 3) / rounds * 1e9),
            "servers_for": round(_best(servers, 3) / rounds * 1e9),
            "server_by_fingerprint": round(_best(peers, 3) / rounds * 1e9),
        },
    }


def audit_verify(databases: list[Path], repeat: int = 3) -> dict[str, Any]:
    """Records per second of the verifier's structural checks over real audit logs."""
    by_origin: dict[tuple[Path, str], list[tuple[int, bytes, bytes]]] = {}
    for path in databases:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = conn.execute(
                "SELECT origin, idx, record, chain FROM audit_records ORDER BY origin, idx"
            )
            for origin, index, record, chain_hash in rows:
                by_origin.setdefault((path, origin), []).append(
                    (int(index), bytes(record), bytes(chain_hash))
                )
        finally:
            conn.close()
    logs = list(by_origin.values())
    records = sum(len(entries) for entries in logs)
    if not records:
        return {"records": 0}

    def chain() -> None:
        for entries in logs:
            verify_chain(entries)

    def tree() -> None:
        for entries in logs:
            compact = CompactRange()
            for start in range(0, len(entries), 10_000):
                compact.extend(leaf_hashes(e[1] for e in entries[start : start + 10_000]))
            compact.root()

    def decode() -> None:
        for entries in logs:
            for entry in entries:
                AuditRecord.from_bytes(entry[1])

    timings = {
        name: _best(op, repeat)
        for name, op in (("chain", chain), ("tree", tree), ("decode", decode))
    }
    structure = timings["chain"] + timings["tree"]
    return {
        "records": records,
        "mean_record_bytes": round(sum(len(e[1]) for log in logs for e in log) / records),
        "chain_records_per_s": round(records / timings["chain"]),
        "tree_records_per_s": round(records / timings["tree"]),
        "structure_records_per_s": round(records / structure),
        "decode_records_per_s": round(records / timings["decode"]),
        "structure_and_decode_records_per_s": round(records / (structure + timings["decode"])),
    }
