"""`spean demo`: build the demo federation, run the hospital's calls, keep serving.

Everything the demo reads ships in the package (the mappings in
spean/gateway/demo/mappings, the generated descriptors in spean.demo); it
writes only under --dir, so it runs the same from a wheel as from a checkout.
Each member's server.yaml there names its endpoints, so other commands (`spean
call --config DIR/moh/server.yaml`, `spean join --authority DIR/authority`)
read the ports the demo chose from those files.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from spean.gateway.errors import ConfigError

MARKER = ".spean-demo"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo", help="build and run a demo federation of three ministries on loopback"
    )
    parser.add_argument(
        "--dir", type=Path, default=Path("spean-demo"), help="folder (default ./spean-demo)"
    )
    parser.add_argument("--once", action="store_true", help="exit after the demo calls")
    parser.add_argument(
        "--mpwt-db",
        metavar="URL",
        help="put MPWT's vehicle registry on this PostgreSQL or MariaDB database"
        " (e.g. postgresql://user@host/db, mysql://user@host/db); its sample data is loaded"
        " there, replacing any 'vehicles' table (default: a SQLite file in --dir)",
    )
    parser.set_defaults(func=cmd_demo)


def _fresh_folder(folder: Path) -> None:
    if folder.exists():
        if not (folder / MARKER).exists():
            if any(folder.iterdir()):
                raise ConfigError(
                    f"{folder} exists and is not a Spean demo folder; choose another --dir"
                )
        else:
            shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text("built by spean demo; removed and rebuilt on each run\n")


def cmd_demo(args: argparse.Namespace) -> int:
    from spean.gateway.demo.ministries import MOH, MPWT, run_demo_calls
    from spean.gateway.demo.opendata import build_demo_with_open_data
    from spean.gateway.demo.transparency import give_pseudonymisation_key
    from spean.gateway.server.logs import configure_logging

    configure_logging("console", level=30)
    folder: Path = args.dir
    _fresh_folder(folder)
    print(f"Building a fresh demo federation in {folder}/ ...")
    federation = build_demo_with_open_data(folder, mpwt_database_url=args.mpwt_db, events=True)
    give_pseudonymisation_key(federation.configs[MPWT])
    federation.start_all()
    try:
        conf = federation.servers[MOH].current_configuration()
        print(
            f"  authority: global configuration version {conf.version},"
            f" expires {conf.expires_at:%Y-%m-%d %H:%M} UTC"
        )
        for _member, server in federation.servers.items():
            parts = [f"provider 127.0.0.1:{server.provider_port}"] if server.provider_port else []
            if server.consumer_port:
                parts.append(f"consumer 127.0.0.1:{server.consumer_port}")
            print(f"  {server.config.server_id:<18} {', '.join(parts)}")
        consumer = federation.consumer_addresses[MOH]
        print(f"\nMoH hospital application (KH/GOV/MOH/nhis) calls through {consumer}:")
        print(f"  {'call':<26}{'service':<22}{'status':<19}{'ms':>7}  exchange id / result")
        for result in run_demo_calls(consumer):
            print(
                f"  {result.label:<26}{result.service:<22}{result.status:<19}{result.ms:>7.1f}"
                f"  {result.exchange_id}\n  {'':<26}{result.detail}"
            )
        _show_events(federation)
        _show_open_data(federation, folder)
        _show_citizen_view(federation, consumer)
        print("\nAudit logs (Merkle logs with signed checkpoints; durable before each answer):")
        for _member, server in federation.servers.items():
            print(f"  {server.origin:<22} {server.audit.size()} records")
        moh_config = federation.configs[MOH]
        print(
            "\nCall a service yourself (the consumer endpoint is read from MoH's server.yaml):\n"
            f"  spean call --config {moh_config} --service KH/GOV/MPWT/vehicles \\\n"
            f'    /vehicles.v1.VehicleRegistry/GetVehicle \'{{"plate": "{_sample_plate()}"}}\''
        )
        if args.once:
            return 0
        print("\nServing until Ctrl-C.")
        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        stop.wait()
        return 0
    finally:
        federation.stop_all()


def _show_citizen_view(federation: Any, consumer: str) -> None:
    from spean.gateway.demo.transparency import CITIZEN, ask_about_the_citizen, citizen_view

    exchange_id = ask_about_the_citizen(consumer)
    view = citizen_view(federation, exchange_id)
    print(
        f"\nThe hospital lists citizen {CITIZEN}'s vehicles naming them (spean-subject);"
        " the citizen asks MPWT who looked at their records:"
    )
    for entry in view.log.proof.entries:
        seen = entry.summary()
        print(
            f"  {str(seen['received_at'])[:19]}  {seen['client']}  {seen['user']}"
            f'  {str(seen["method"]).rsplit("/", 1)[-1]}  "{seen["purpose"]}"  {seen["status"]}'
        )
    outcome = "holds" if view.verified else "FAILS"
    print(
        f"  proof of {view.log.proof.origin} in {view.proof_file}: checked against the"
        f" federation's anchor, {outcome}; the look-up itself is recorded"
        f" (exchange {view.log.lookup_exchange_id})\n"
        f"  check it yourself: spean audit verify-proof {view.proof_file} --anchor {view.anchor}"
    )


def _show_events(federation: Any) -> None:
    from spean.gateway.demo.events import run_demo_events
    from spean.gateway.demo.ministries import ADDRESS_TOPIC

    print(f"\nMoI's population register publishes CitizenAddressChanged on {ADDRESS_TOPIC};")
    print("the subscribers' applications receive each event once, in order, and acknowledge it:")
    for event in run_demo_events(federation):
        print(
            f"  seq {event.sequence:<3} id card {event.id_card_number}"
            f" moved to {event.province:<11}"
            f" read by {event.subscriber}, {event.ms:.1f} ms after it was published"
        )


def _show_open_data(federation: Any, folder: Path) -> None:
    from spean.gateway.demo.opendata import CATALOGUE, generate_demo_datasets

    datasets = folder / "catalogue" / "datasets"
    print(f"\nThe catalogue ({CATALOGUE}) publishes MoH's open dataset through MoI's server:")
    for outcome in generate_demo_datasets(federation, datasets):
        if outcome.version is None:
            error = outcome.error
            print(f"  {outcome.dataset}: {error.message if error else 'not generated'}")
            continue
        version = outcome.version
        print(
            f"  {outcome.dataset} version {version.number}: {version.rows} rows,"
            f" {len(version.exchange_ids)} audited exchanges"
        )
        for entry in version.files:
            print(f"    {entry.name:<34} {entry.size:>7} bytes  sha256 {entry.sha256[:16]}...")
    print(
        "  Serve the catalogue and its downloads:\n"
        f"  spean catalogue serve --authority {folder / 'authority'} --datasets {datasets}"
    )


def _sample_plate() -> str:
    from spean.gateway.demo import data as demo_data

    return demo_data.SAMPLE_PLATE
