"""The demo federation: three ministries exchanging data through Spean.

- Ministry of Interior, ``KH/GOV/MOI/idreg``: the citizen ID registry.
- Ministry of Public Works and Transport, ``KH/GOV/MPWT/vehicles``: vehicles.
- Ministry of Health, ``KH/GOV/MOH/nhis``: a hospital application (consumer)
  and the facility statistics service (provider).

Every ministry's data is synthetic (spean.gateway.demo.data). The MoH hospital
application checks a patient's identity at MOI without receiving personal
data, looks up a vehicle at MPWT and lists an owner's vehicles as a stream.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType

import grpc
import yaml
from google.protobuf.message import Message
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from spean.gateway.demo import data as demo_data
from spean.gateway.demo.federation import (
    Federation,
    MemberPlan,
    ServicePlan,
    TopicPlan,
    build_federation,
)
from spean.gateway.errors import Unavailable
from spean.gateway.metadata import CLIENT, EXCHANGE_ID, PURPOSE, SERVICE, SUBJECT, USER

MOI = "KH/GOV/MOI"
MPWT = "KH/GOV/MPWT"
MOH = "KH/GOV/MOH"
IDREG = "KH/GOV/MOI/idreg"
VEHICLES = "KH/GOV/MPWT/vehicles"
NHIS = "KH/GOV/MOH/nhis"
POPULATION = "KH/GOV/MOI/population"
ADDRESS_CHANGED = "citizen-address-changed"
ADDRESS_TOPIC = f"{POPULATION}:{ADDRESS_CHANGED}"

VERIFY_CITIZEN = "/identity.v1.IdentityRegistry/VerifyCitizen"
GET_CITIZEN = "/identity.v1.IdentityRegistry/GetCitizen"
GET_VEHICLE = "/vehicles.v1.VehicleRegistry/GetVehicle"
LIST_VEHICLES = "/vehicles.v1.VehicleRegistry/ListVehiclesByOwner"
MONTHLY_REPORT = "/health.v1.FacilityStats/GetMonthlyReport"

# Each service's catalogue metadata (docs/catalogue.md).
CATALOGUE_DIR = Path(__file__).resolve().parent / "metadata"


def demo_plans(mpwt_database_url: str | None = None, *, events: bool = False) -> list[MemberPlan]:
    """The three demo ministries, their services, descriptors and access rights.

    With `events`, MoI's population register also publishes the topic
    `ADDRESS_TOPIC` (CitizenAddressChanged), granted to MoH's hospital
    application and MPWT's vehicle registry, which both subscribe to it.
    """
    plans = _exchange_plans(mpwt_database_url)
    return with_events(plans) if events else plans


def with_events(plans: list[MemberPlan]) -> list[MemberPlan]:
    """`plans` where MoI publishes CitizenAddressChanged and MoH and MPWT subscribe."""
    from spean.demo.population.v1 import events_pb2

    topic = TopicPlan(
        subsystem=POPULATION,
        name=ADDRESS_CHANGED,
        event_type="population.v1.CitizenAddressChanged",
        file_descriptor_set=published_descriptors(events_pb2),
        grants=[NHIS, VEHICLES],
    )
    changed = []
    for plan in plans:
        if plan.member == MOI:
            plan = replace(plan, clients=[*plan.clients, POPULATION], topics=[topic])
        elif plan.member == MPWT:
            plan = replace(
                plan, clients=[*plan.clients, VEHICLES], subscriptions=[(VEHICLES, ADDRESS_TOPIC)]
            )
        elif plan.member == MOH:
            plan = replace(plan, subscriptions=[(NHIS, ADDRESS_TOPIC)])
        changed.append(plan)
    return changed


def _exchange_plans(mpwt_database_url: str | None) -> list[MemberPlan]:
    from spean.demo.health.v1 import health_pb2
    from spean.demo.identity.v1 import identity_pb2
    from spean.demo.vehicles.v1 import vehicles_pb2

    return [
        MemberPlan(
            member=MOI,
            name="Ministry of Interior",
            services=[
                ServicePlan(
                    subsystem=IDREG,
                    adapter={"type": "sql", "mapping": "moi-idreg.yaml"},
                    methods=[(VERIFY_CITIZEN, False), (GET_CITIZEN, False)],
                    file_descriptor_set=published_descriptors(identity_pb2),
                    # Data minimisation by access right: the hospital may ask
                    # "is this the person?" but not read the citizen record.
                    access=[(NHIS, [VERIFY_CITIZEN])],
                    files=[demo_data.MAPPING_DIR / "moi-idreg.yaml"],
                    catalogue=CATALOGUE_DIR / "moi-idreg.yaml",
                    prepare=lambda folder: demo_data.create_moi_database(folder / "moi-idreg.db"),
                )
            ],
        ),
        MemberPlan(
            member=MPWT,
            name="Ministry of Public Works and Transport",
            services=[
                ServicePlan(
                    subsystem=VEHICLES,
                    adapter={"type": "sql", "mapping": "mpwt-vehicles.yaml"},
                    methods=[(GET_VEHICLE, False), (LIST_VEHICLES, True)],
                    file_descriptor_set=published_descriptors(vehicles_pb2),
                    access=[(NHIS, [GET_VEHICLE, LIST_VEHICLES])],
                    files=[demo_data.MAPPING_DIR / "mpwt-vehicles.yaml"],
                    catalogue=CATALOGUE_DIR / "mpwt-vehicles.yaml",
                    prepare=lambda folder: _prepare_mpwt(folder, mpwt_database_url),
                )
            ],
        ),
        MemberPlan(
            member=MOH,
            name="Ministry of Health",
            clients=[NHIS],
            services=[
                ServicePlan(
                    subsystem=NHIS,
                    adapter={"type": "sql", "mapping": "moh-nhis.yaml"},
                    methods=[(MONTHLY_REPORT, False)],
                    file_descriptor_set=published_descriptors(health_pb2),
                    access=[(NHIS, [MONTHLY_REPORT])],
                    files=[demo_data.MAPPING_DIR / "moh-nhis.yaml"],
                    catalogue=CATALOGUE_DIR / "moh-nhis.yaml",
                    prepare=lambda folder: demo_data.create_moh_database(folder / "moh-nhis.db"),
                )
            ],
        ),
    ]


def published_descriptors(module: ModuleType) -> bytes:
    """The descriptor set, with comments, that `make proto` writes beside a generated module
    (``x_pb2.py`` -> ``x.binpb``): what the demo publishes, so its catalogue is documented."""
    generated = Path(str(module.__file__))
    return generated.with_name(generated.name.removesuffix("_pb2.py") + ".binpb").read_bytes()


def _prepare_mpwt(folder: Path, database_url: str | None) -> None:
    """MPWT's registry: a SQLite file beside the mapping, or the server at `database_url`.

    On a server the same sample data is loaded (its `vehicles` table replaced)
    and the copied mapping is pointed at it; the rest of the mapping is as
    shipped, so the same statements serve on every engine.
    """
    if database_url is None:
        demo_data.create_mpwt_database(folder / "mpwt-vehicles.db")
        return
    try:
        demo_data.create_mpwt_database(database_url)
    except SQLAlchemyError as exc:
        raise Unavailable(
            f"cannot load the MPWT sample registry into {make_url(database_url)!r}:"
            f" {getattr(exc, 'orig', None) or exc}"
        ) from exc
    mapping = folder / "mpwt-vehicles.yaml"
    document = yaml.safe_load(mapping.read_text(encoding="utf-8"))
    document["database"] = database_url
    mapping.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")


def build_demo(
    root: Path, mpwt_database_url: str | None = None, *, events: bool = False
) -> Federation:
    """A fresh demo federation under `root` (which must not hold an older one).

    `mpwt_database_url` (PostgreSQL or MariaDB) puts MPWT's vehicle registry
    on that server instead of a SQLite file; `events` adds publish/subscribe
    (`demo_plans`).
    """
    return build_federation(root, demo_plans(mpwt_database_url, events=events))


@dataclass(frozen=True, slots=True)
class CallResult:
    """What the application saw for one call."""

    label: str
    service: str
    status: str
    detail: str
    exchange_id: str
    ms: float


def call(
    channel: grpc.Channel,
    method: str,
    service: str,
    request: Message,
    response_type: type[Message],
    *,
    streaming: bool = False,
    user: str = "dr.sokha@hospital.example",
    purpose: str = "patient admission",
    subject: str | None = None,
    timeout: float = 10.0,
) -> tuple[list[Message], str, grpc.StatusCode, str]:
    """Call `method` of `service` as the hospital application, through MoH's server;
    `subject` names the person the call is about (spean-subject)."""
    metadata: tuple[tuple[str, str], ...] = (
        (CLIENT, NHIS),
        (SERVICE, service),
        (USER, user),
        (PURPOSE, purpose),
    )
    if subject is not None:
        metadata += ((SUBJECT, subject),)
    deserialize = response_type.FromString
    if streaming:
        stream = channel.unary_stream(
            method, request_serializer=_serialize, response_deserializer=deserialize
        )
        responses = stream(request, metadata=metadata, timeout=timeout)
        try:
            messages = list(responses)
        except grpc.RpcError:
            messages = []
        trailing = responses.trailing_metadata() or ()
        code, details = responses.code(), responses.details() or ""
    else:
        unary = channel.unary_unary(
            method, request_serializer=_serialize, response_deserializer=deserialize
        )
        try:
            message, outcome = unary.with_call(request, metadata=metadata, timeout=timeout)
            messages, trailing = [message], outcome.trailing_metadata() or ()
            code, details = grpc.StatusCode.OK, ""
        except grpc.RpcError as err:
            failed: grpc.Call = err  # type: ignore[assignment]  # a failed call is both
            messages, trailing = [], tuple(failed.trailing_metadata() or ())
            code, details = failed.code(), failed.details() or ""
    exchange_id = next((str(v) for k, v in trailing if k == EXCHANGE_ID), "")
    return messages, exchange_id, code, details


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def run_demo_calls(consumer_address: str) -> list[CallResult]:
    """The hospital application's calls across ministries; returns what it saw."""
    from spean.demo.health.v1 import health_pb2
    from spean.demo.identity.v1 import identity_pb2
    from spean.demo.vehicles.v1 import vehicles_pb2

    citizen = demo_data.SAMPLE_CITIZEN
    results: list[CallResult] = []
    with grpc.insecure_channel(consumer_address) as channel:

        def record(
            label: str,
            service: str,
            method: str,
            request: Message,
            response_type: type[Message],
            describe: Callable[[list[Message]], str],
            streaming: bool = False,
        ) -> None:
            start = time.perf_counter()
            messages, exchange_id, code, details = call(
                channel, method, service, request, response_type, streaming=streaming
            )
            ms = (time.perf_counter() - start) * 1000
            detail = describe(messages) if code is grpc.StatusCode.OK else details
            results.append(CallResult(label, service, code.name, detail, exchange_id, ms))

        record(
            "VerifyCitizen",
            IDREG,
            VERIFY_CITIZEN,
            identity_pb2.VerifyCitizenRequest(
                id_number=citizen.id_number,
                full_name=citizen.full_name,
                birth_date=citizen.birth_date,
            ),
            identity_pb2.VerifyCitizenResponse,
            lambda ms: f"match={ms[0].match}",  # type: ignore[attr-defined]
        )
        record(
            "GetCitizen (not allowed)",
            IDREG,
            GET_CITIZEN,
            identity_pb2.GetCitizenRequest(id_number=citizen.id_number),
            identity_pb2.Citizen,
            lambda ms: "returned personal data",
        )
        record(
            "GetVehicle",
            VEHICLES,
            GET_VEHICLE,
            vehicles_pb2.GetVehicleRequest(plate=demo_data.SAMPLE_PLATE),
            vehicles_pb2.Vehicle,
            lambda ms: f"{ms[0].plate} {ms[0].make} {ms[0].model}",  # type: ignore[attr-defined]
        )
        record(
            "ListVehiclesByOwner",
            VEHICLES,
            LIST_VEHICLES,
            vehicles_pb2.ListVehiclesByOwnerRequest(owner_id=demo_data.SAMPLE_OWNER_WITH_VEHICLES),
            vehicles_pb2.Vehicle,
            lambda ms: f"{len(ms)} vehicles streamed",
            streaming=True,
        )
        record(
            "GetMonthlyReport",
            NHIS,
            MONTHLY_REPORT,
            health_pb2.GetMonthlyReportRequest(
                facility_id=demo_data.SAMPLE_FACILITY, year=2024, month=6
            ),
            health_pb2.MonthlyReport,
            lambda ms: f"{ms[0].outpatient_visits} outpatient visits",  # type: ignore[attr-defined]
        )
    return results
