"""The demo federation's catalogue, and descriptor sets with their comments, for catalogue tests.

`demo_federation(folder)` builds the demo (three ministries, each service
described with its metadata file) and returns it with its verified
configuration; `demo_catalogue` builds the catalogue of that configuration.
`descriptor_set_with_comments` runs protoc on a demo .proto with
``--include_source_info``, as a provider publishing its documentation would.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from grpc_tools import protoc

from spean.gateway.catalogue.model import Catalogue, build_catalogue
from spean.gateway.demo.federation import Federation
from spean.gateway.demo.ministries import build_demo
from spean.gateway.globalconf import GlobalConfiguration, verify_global_configuration

ROOT = Path(__file__).resolve().parents[2]
VEHICLES_PROTO = "spean/demo/vehicles/v1/vehicles.proto"
GET_VEHICLE_SERVICE = "KH/GOV/MPWT/vehicles:/vehicles.v1.VehicleRegistry/GetVehicle"
LIST_VEHICLES_SERVICE = "KH/GOV/MPWT/vehicles:/vehicles.v1.VehicleRegistry/ListVehiclesByOwner"
VERIFY_CITIZEN_SERVICE = "KH/GOV/MOI/idreg:/identity.v1.IdentityRegistry/VerifyCitizen"
GET_CITIZEN_SERVICE = "KH/GOV/MOI/idreg:/identity.v1.IdentityRegistry/GetCitizen"
MONTHLY_REPORT_SERVICE = "KH/GOV/MOH/nhis:/health.v1.FacilityStats/GetMonthlyReport"


@dataclass(frozen=True)
class DemoFederation:
    federation: Federation
    conf: GlobalConfiguration

    @property
    def authority_dir(self) -> Path:
        return self.federation.root / "authority"


def verified(federation: Federation) -> GlobalConfiguration:
    authority = federation.authority
    return verify_global_configuration(
        authority.published_path.read_bytes(),
        authority.signing_certificate,
        dt.datetime.now(dt.UTC),
    )


def demo_federation(folder: Path) -> DemoFederation:
    federation = build_demo(folder)
    return DemoFederation(federation, verified(federation))


def demo_catalogue(demo: DemoFederation, endpoint: str = "127.0.0.1:9000") -> Catalogue:
    return build_catalogue(demo.conf, endpoint=endpoint)


def descriptor_set_with_comments(folder: Path, proto: str = VEHICLES_PROTO) -> bytes:
    out = folder / "descriptors.binpb"
    code = protoc.main(
        [
            "protoc",
            f"-I{ROOT / 'protos'}",
            f"-I{Path(protoc.__file__).parent / '_proto'}",
            "--include_imports",
            "--include_source_info",
            f"--descriptor_set_out={out}",
            proto,
        ]
    )
    assert code == 0, f"protoc failed on {proto}"
    return out.read_bytes()
