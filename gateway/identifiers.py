"""Federation identifiers, as in X-Road.

- member:     ``INSTANCE/CLASS/MEMBER``            e.g. ``KH/GOV/MOH``
- subsystem:  ``INSTANCE/CLASS/MEMBER/SUBSYSTEM``  e.g. ``KH/GOV/MOH/nhis``
- server:     ``INSTANCE/CLASS/MEMBER/SERVER``     e.g. ``KH/GOV/MPWT/ss1``
  (same shape as a subsystem; which one is meant follows from where it is used)
- service:    ``SUBSYSTEM:/package.Service/Method``
  e.g. ``KH/GOV/MPWT/vehicles:/vehicles.v1.VehicleRegistry/GetVehicle``
- audit log origin: ``SERVER#WRITER``  e.g. ``KH/GOV/MOH/ss1#w0``
  (the log of one writer process of a security server; `origin_server`)

The instance (``KH``) is itself a code (`parse_instance`).

Each code is 1 to 63 characters of ASCII letters, digits and hyphens, not
starting or ending with a hyphen, so every identifier maps to a DNS name
(`dns_name`) that certificates can carry. Identifiers are case-sensitive; the
authority refuses two identifiers that differ only in case, so the DNS mapping
is collision-free. Parsing is pure and total: bad input raises
`InvalidArgument` naming what is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from spean.gateway.errors import InvalidArgument

_CODE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")
_METHOD = re.compile(r"/[A-Za-z_][A-Za-z0-9_.]*\.[A-Za-z_][A-Za-z0-9_]*/[A-Za-z_][A-Za-z0-9_]*\Z")
MAX_IDENTIFIER_LENGTH = 255


def _codes(text: str, count: int, kind: str) -> list[str]:
    if not isinstance(text, str):
        raise InvalidArgument(f"{kind} identifier must be a string, got {type(text).__name__}")
    if len(text) > MAX_IDENTIFIER_LENGTH:
        raise InvalidArgument(
            f"{kind} identifier is longer than {MAX_IDENTIFIER_LENGTH} characters"
        )
    parts = text.split("/")
    if len(parts) != count:
        shape = "INSTANCE/CLASS/MEMBER" + ("/CODE" if count == 4 else "")
        raise InvalidArgument(f"{kind} identifier {text!r} must have the form {shape}")
    for part in parts:
        if not _CODE.match(part):
            raise InvalidArgument(
                f"{kind} identifier {text!r}: code {part!r} must be 1-63 letters, digits or"
                " hyphens, not starting or ending with a hyphen"
            )
    return parts


@dataclass(frozen=True, slots=True, order=True)
class MemberId:
    """A member of the federation (a ministry or agency)."""

    instance: str
    member_class: str
    code: str

    @classmethod
    def parse(cls, text: str) -> MemberId:
        instance, member_class, code = _codes(text, 3, "member")
        return cls(instance, member_class, code)

    def __str__(self) -> str:
        return f"{self.instance}/{self.member_class}/{self.code}"

    def child(self, code: str) -> SubsystemId:
        return SubsystemId.parse(f"{self}/{code}")


@dataclass(frozen=True, slots=True, order=True)
class SubsystemId:
    """A subsystem of a member: an application or a published service set.

    Security server identifiers share this shape (member + server code).
    """

    instance: str
    member_class: str
    member_code: str
    code: str

    @classmethod
    def parse(cls, text: str, kind: str = "subsystem") -> SubsystemId:
        instance, member_class, member_code, code = _codes(text, 4, kind)
        return cls(instance, member_class, member_code, code)

    @property
    def member(self) -> MemberId:
        return MemberId(self.instance, self.member_class, self.member_code)

    def __str__(self) -> str:
        return f"{self.instance}/{self.member_class}/{self.member_code}/{self.code}"

    def dns_name(self) -> str:
        """DNS name carried in a security server's TLS certificate (lower case, reversed)."""
        labels = [self.code, self.member_code, self.member_class, self.instance]
        return ".".join(label.lower() for label in labels) + ".spean"


ServerId = SubsystemId
"""A security server identifier: ``INSTANCE/CLASS/MEMBER/SERVER``."""


def parse_server(text: str) -> ServerId:
    return SubsystemId.parse(text, kind="security server")


def parse_instance(text: str) -> str:
    """Validate a federation instance code (the first code of every identifier)."""
    if not isinstance(text, str) or not _CODE.match(text):
        raise InvalidArgument(
            f"instance {text!r} must be 1-63 letters, digits or hyphens, not starting or"
            " ending with a hyphen"
        )
    return text


def origin_server(origin: str) -> ServerId:
    """The security server whose writer keeps the audit log named `origin` (``SERVER#WRITER``).

    Only the server part is parsed: the writer's name is the store's to check.
    """
    server, _, _ = origin.partition("#")
    return parse_server(server)


def parse_method(text: str) -> str:
    """Validate a fully qualified gRPC method path ``/package.Service/Method``."""
    if not isinstance(text, str) or len(text) > 512 or not _METHOD.match(text):
        raise InvalidArgument(
            f"method {text!r} must be a gRPC path of the form /package.Service/Method"
        )
    return text


@dataclass(frozen=True, slots=True, order=True)
class ServiceId:
    """A provider subsystem plus a fully qualified gRPC method."""

    subsystem: SubsystemId
    method: str

    @classmethod
    def parse(cls, text: str) -> ServiceId:
        subsystem, sep, method = text.partition(":")
        if not sep:
            raise InvalidArgument(
                f"service identifier {text!r} must be SUBSYSTEM:/package.Service/Method"
            )
        return cls(SubsystemId.parse(subsystem), parse_method(method))

    def __str__(self) -> str:
        return f"{self.subsystem}:{self.method}"
