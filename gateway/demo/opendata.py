"""The demo's open data: MoH's catalogue subsystem and the access it is granted.

MoH's metadata (metadata/moh-nhis.yaml) declares the open dataset
``moh-chamkar-mon-2024``: twelve monthly reports of one referral hospital.
`with_open_data` registers the catalogue's own subsystem ``KH/GOV/MOI/catalogue``
on MoI's security server, MoH grants it the reports, and `mask_for_catalogue`
writes the rule's minimise entry (the submission time is dropped, as the
metadata says) into the provider's server.yaml. `generate_demo_datasets`
then fetches the dataset through MoI's consumer endpoint, so both audit logs
hold the exchanges.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import yaml

from spean.gateway.demo.federation import Federation, MemberPlan, build_federation
from spean.gateway.demo.ministries import (
    LIST_VEHICLES,
    MOH,
    MOI,
    MONTHLY_REPORT,
    MPWT,
    NHIS,
    demo_plans,
)
from spean.gateway.opendata.generate import ConsumerEndpoint, Generator, Outcome
from spean.gateway.opendata.store import DatasetStore

CATALOGUE = "KH/GOV/MOI/catalogue"
DATASET = "moh-chamkar-mon-2024"
DROPPED = ("submitted_at",)


def with_open_data(plans: Sequence[MemberPlan]) -> list[MemberPlan]:
    """`plans` where MoI hosts the catalogue's subsystem and MoH grants it the monthly reports.

    The catalogue's subsystem is a client of MoI's security server (which
    gets a consumer endpoint), so MoH's server keeps its one client and the
    documented `spean call --config moh/server.yaml` needs no --client.
    """
    changed = []
    for plan in plans:
        if plan.member == MOI:
            plan = replace(plan, clients=[CATALOGUE, *plan.clients])
        elif plan.member == MOH:
            services = [
                replace(s, access=[*s.access, (CATALOGUE, [MONTHLY_REPORT])])
                if s.subsystem == NHIS
                else s
                for s in plan.services
            ]
            plan = replace(plan, services=services)
        changed.append(plan)
    return changed


def with_vehicles_dataset(
    plans: Sequence[MemberPlan], folder: Path, dataset: str, owner: str
) -> list[MemberPlan]:
    """`plans` where MPWT declares `dataset`, a masked view of `owner`'s vehicles.

    MPWT's metadata (written to `folder`) gains the dataset (ListVehiclesByOwner
    for `owner`, `owner_id` dropped) and its access list grants the catalogue's
    subsystem the method; `mask_for_catalogue(..., LIST_VEHICLES, ["owner_id"])`
    on MPWT's server.yaml then makes the provider enforce the masking. The
    tests and bench/opendata.py publish MPWT's registry this way.
    """
    changed = []
    for plan in plans:
        if plan.member == MPWT:
            service = plan.services[0]
            assert service.catalogue is not None
            document = yaml.safe_load(service.catalogue.read_text(encoding="utf-8"))
            document["open_data"] = [
                {
                    "id": dataset,
                    "title": {"en": "Registered vehicles", "km": "យានយន្តដែលបានចុះបញ្ជី"},
                    "description": {"en": "Vehicles of one fleet owner, the owner not shown."},
                    "method": LIST_VEHICLES,
                    "request": {"owner_id": owner},
                    "licence": "https://creativecommons.org/licenses/by/4.0/",
                    "frequency": "DAILY",
                    "masking": {"drop": ["owner_id"]},
                }
            ]
            metadata = folder / f"{dataset}-mpwt-vehicles.yaml"
            metadata.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
            access = [*service.access, (CATALOGUE, [LIST_VEHICLES])]
            service = replace(service, access=access, catalogue=metadata)
            plan = replace(plan, services=[service])
        changed.append(plan)
    return changed


def mask_for_catalogue(
    config: Path, method: str, dropped: Sequence[str], client: str = CATALOGUE
) -> None:
    """Add `client`'s minimise entry (`dropped` fields of `method`) to a provider's server.yaml."""
    document = yaml.safe_load(config.read_text(encoding="utf-8"))
    for rule in document["provider"]["access"]:
        if rule["client"] == client:
            rule["minimise"] = [{"method": method, "drop": list(dropped)}]
    config.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")


def build_demo_with_open_data(
    root: Path, mpwt_database_url: str | None = None, *, events: bool = False
) -> Federation:
    """The demo federation (`ministries.build_demo`) with its catalogue's subsystem."""
    plans = with_open_data(demo_plans(mpwt_database_url, events=events))
    federation = build_federation(root, plans)
    mask_for_catalogue(federation.configs[MOH], MONTHLY_REPORT, DROPPED)
    return federation


def generate_demo_datasets(federation: Federation, folder: Path) -> list[Outcome]:
    """Generate every declared dataset the demo's catalogue may fetch, into `folder`."""
    conf = federation.servers[MOI].current_configuration()
    endpoint = ConsumerEndpoint(federation.consumer_addresses[MOI], CATALOGUE)
    generator = Generator(DatasetStore(folder), endpoint, timeout=60.0)
    return generator.generate(conf, [DATASET])
