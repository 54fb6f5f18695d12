"""`spean doctor`: check a security server's setup and say what to fix."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check a security server's config, keys, certificates, global configuration,"
        " audit store and peers",
    )
    parser.add_argument("--config", required=True, type=Path, help="the server's YAML file")
    parser.add_argument(
        "--no-peers", action="store_true", help="skip the TLS handshakes with other servers"
    )
    parser.add_argument(
        "--timeout", type=float, default=3.0, help="seconds to wait for each peer (default 3)"
    )
    parser.add_argument("--json", action="store_true", help="print findings as JSON lines")
    parser.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    """Exit 0 when nothing failed (warnings allowed), 1 otherwise."""
    from gateway.doctor import diagnose, failed, render

    findings = diagnose(args.config, peers=not args.no_peers, peer_timeout=args.timeout)
    if args.json:
        for finding in findings:
            print(json.dumps(asdict(finding)))
    else:
        print(render(findings))
    return 1 if failed(findings) else 0
