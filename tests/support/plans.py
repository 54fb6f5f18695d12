"""Federation plans the end-to-end stories share.

`hospital_and_registry`: MoH with its hospital application (NHIS), and MPWT
publishing one vehicle registry service; `vehicle_registry` makes that
service from an adapter. `demo_plans_with_ss2`: the demo, with MPWT running
a second security server, ``ss2``, listed after ``ss1``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from typing import Any

from spean.demo.vehicles.v1 import vehicles_pb2
from spean.gateway.demo.federation import MemberPlan, ServicePlan
from spean.gateway.demo.ministries import MOH, MPWT, NHIS, VEHICLES, demo_plans
from spean.gateway.server.reflection import file_descriptor_set


def vehicle_registry(
    adapter: dict[str, Any], methods: Sequence[tuple[str, bool]], **more: Any
) -> ServicePlan:
    """KH/GOV/MPWT/vehicles served by `adapter`; every method in `methods`
    (path, server-streaming) is open to the hospital application."""
    return ServicePlan(
        subsystem=VEHICLES,
        adapter=adapter,
        methods=methods,
        file_descriptor_set=file_descriptor_set(vehicles_pb2.DESCRIPTOR),
        access=[(NHIS, [path for path, _ in methods])],
        **more,
    )


def python_vehicle_registry(servicer: str, methods: Sequence[tuple[str, bool]]) -> ServicePlan:
    """The vehicle registry served by a Python servicer (``module:Class``) in the provider."""
    adapter = {
        "type": "python",
        "servicer": servicer,
        "descriptor": "spean.demo.vehicles.v1.vehicles_pb2",
        "service": "vehicles.v1.VehicleRegistry",
    }
    return vehicle_registry(adapter, methods)


def hospital_and_registry(
    registry: ServicePlan, *, extra_servers: Sequence[str] = ()
) -> list[MemberPlan]:
    """MoH with the hospital application as its client, and MPWT publishing `registry`."""
    return [
        MemberPlan(member=MOH, name="Ministry of Health", clients=[NHIS]),
        MemberPlan(
            member=MPWT,
            name="Ministry of Public Works and Transport",
            services=[registry],
            extra_servers=extra_servers,
        ),
    ]


def demo_plans_with_ss2(members: Collection[str] | None = None) -> list[MemberPlan]:
    """The demo's plans (only `members`, if given) with MPWT's second server ``ss2``."""
    return [
        dataclasses.replace(plan, extra_servers=("ss2",)) if plan.member == MPWT else plan
        for plan in demo_plans()
        if members is None or plan.member in members
    ]
