"""Data minimisation: response fields a provider drops or pseudonymises, per client.

A provider's access rule may list, per method, response fields (dotted paths
into the response message, e.g. ``owner_id`` or ``rows.owner.id``) to
``drop`` (the field is cleared) or to ``pseudonymise`` (its value is replaced
by a keyed token). The provider security server applies them to every
response message the adapter returns, before the message is digested, signed,
logged or sent: a masked value never leaves the provider.

Tokens
------
``HMAC-SHA256(client_key, value)`` where ``client_key =
HMAC-SHA256(provider_secret, "spean-pseudonym-v1" 0x00 client_subsystem)``.
So the same value gives the same token for one client, every time and in every
method and field (a client can join its records on it), and a different token
for another client (two clients cannot join their data on it). Without the
provider's secret nobody can compute or invert a token. A string field gets
the token as unpadded base64url text (43 characters); a bytes field gets the
32 raw bytes. Empty values stay empty (emptiness is not personal data, and it
keeps "unset" unset). Numbers, booleans, enums and messages cannot hold a
token: pseudonymising one is refused when the server starts.

Invariants
----------
- Compiled once, at start, against the service descriptors the adapters
  declare; every path is checked then, so a call never meets an unknown field.
  An adapter without descriptors cannot be masked: a rule on it is refused.
- Pure: values in, values out; the secret is given, never read here.
- A response that does not decode as the method's output type is refused
  (`Internal`), never passed on unmasked (fail closed).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, ServiceDescriptor
from google.protobuf.message import DecodeError, Message

from spean.gateway.config import AccessRuleConfig
from spean.gateway.digests import b64url
from spean.gateway.errors import ConfigError, Internal
from spean.gateway.identifiers import SubsystemId

__all__ = [
    "ANY_METHOD",
    "MIN_KEY_BYTES",
    "MaskRule",
    "Masker",
    "MaskingPolicy",
    "client_key",
    "pseudonym",
    "rules_from_config",
]

ANY_METHOD = "*"
MIN_KEY_BYTES = 32
_CONTEXT = b"spean-pseudonym-v1\x00"
_TOKEN_TYPES = frozenset({FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES})


@dataclass(frozen=True, slots=True)
class MaskRule:
    """One configured minimisation: for `client` calling `method` of `service`.

    `where` names the rule in the configuration for error messages, e.g.
    ``server.yaml: provider.access[0].minimise[1]``.
    """

    client: SubsystemId
    service: SubsystemId
    method: str
    drop: tuple[str, ...] = ()
    pseudonymise: tuple[str, ...] = ()
    where: str = "minimise"


def client_key(secret: bytes, client: SubsystemId) -> bytes:
    """The per-client key every token for `client` is computed with."""
    return hmac.new(secret, _CONTEXT + str(client).encode(), hashlib.sha256).digest()


def pseudonym(key: bytes, value: bytes) -> bytes:
    """The 32-byte token of `value` under a client key."""
    return hmac.new(key, value, hashlib.sha256).digest()


def _text_token(key: bytes, value: str) -> str:
    if not value:
        return value
    return b64url(pseudonym(key, value.encode()))


def _bytes_token(key: bytes, value: bytes) -> bytes:
    return pseudonym(key, value) if value else value


# One compiled step: applied to a message, with the client's key.
_Step = Callable[[Message, bytes], None]


@dataclass(frozen=True, slots=True)
class Masker:
    """The compiled minimisation of one (client, service, method)."""

    response_class: type[Message]
    steps: tuple[_Step, ...]
    key: bytes

    def apply(self, body: bytes) -> bytes:
        """The response message with its fields dropped or pseudonymised."""
        try:
            message = self.response_class.FromString(body)
        except DecodeError as exc:
            raise Internal(
                "the provider's adapter returned a response that does not decode as"
                f" {self.response_class.DESCRIPTOR.full_name}; it cannot be minimised"
            ) from exc
        for step in self.steps:
            step(message, self.key)
        return message.SerializeToString(deterministic=True)


class MaskingPolicy:
    """Every configured minimisation, compiled; `masker()` answers per call."""

    __slots__ = ("_maskers",)

    def __init__(
        self,
        rules: Iterable[MaskRule],
        services: Mapping[SubsystemId, Sequence[ServiceDescriptor]],
        secret: bytes | None,
    ) -> None:
        grouped: dict[tuple[SubsystemId, SubsystemId, str], list[tuple[str, str, str]]] = {}
        outputs: dict[str, Descriptor] = {}
        for rule in rules:
            methods = _methods(rule, services)
            if rule.pseudonymise and (secret is None or len(secret) < MIN_KEY_BYTES):
                raise ConfigError(
                    f"{rule.where}.pseudonymise: needs provider.pseudonymisation_key, a file of"
                    f" at least {MIN_KEY_BYTES} secret bytes (e.g. 'openssl rand -hex 32')"
                )
            for path, output in methods.items():
                outputs[path] = output
                entries = grouped.setdefault((rule.client, rule.service, path), [])
                entries += [(field, "drop", rule.where) for field in rule.drop]
                entries += [(field, "pseudonymise", rule.where) for field in rule.pseudonymise]
        maskers: dict[tuple[SubsystemId, SubsystemId, str], Masker] = {}
        for (client, service, path), entries in grouped.items():
            output = outputs[path]
            steps = tuple(
                _compile(output, field, action, where) for field, action, where in entries
            )
            key = client_key(secret, client) if secret is not None else b""
            maskers[(client, service, path)] = Masker(
                message_factory.GetMessageClass(output), steps, key
            )
        self._maskers = maskers

    def masker(self, client: SubsystemId, service: SubsystemId, method: str) -> Masker | None:
        """What to apply to `method`'s responses for `client`, or None when nothing."""
        return self._maskers.get((client, service, method))

    def __bool__(self) -> bool:
        return bool(self._maskers)


def _methods(
    rule: MaskRule, services: Mapping[SubsystemId, Sequence[ServiceDescriptor]]
) -> dict[str, Descriptor]:
    """Method path -> output type, for the methods `rule` covers."""
    descriptors = services.get(rule.service, ())
    known = {
        f"/{service.full_name}/{method.name}": method.output_type
        for service in descriptors
        for method in service.methods
    }
    if not known:
        raise ConfigError(
            f"{rule.where}: the adapter of {rule.service} declares no protobuf descriptors,"
            " so its responses cannot be minimised; use an adapter that names them"
        )
    if rule.method == ANY_METHOD:
        return known
    if rule.method not in known:
        raise ConfigError(
            f"{rule.where}.method: {rule.service} does not publish {rule.method}"
            f" (it publishes {', '.join(sorted(known))})"
        )
    return {rule.method: known[rule.method]}


def _compile(output: Descriptor, dotted: str, action: str, where: str) -> _Step:
    """A step applying `action` to the field at `dotted`, checked against `output`."""
    at = f"{where}.{action}"
    fields: list[FieldDescriptor] = []
    current: Descriptor | None = output
    for name in dotted.split("."):
        if current is None:
            raise ConfigError(
                f"{at}: {dotted!r}: {fields[-1].name!r} is not a message, it has no field {name!r}"
            )
        field = current.fields_by_name.get(name)
        if field is None:
            offered = ", ".join(f.name for f in current.fields)
            raise ConfigError(
                f"{at}: {dotted!r}: {current.full_name} has no field {name!r} (it has {offered})"
            )
        fields.append(field)
        current = field.message_type
    leaf = fields[-1]
    if action == "pseudonymise" and (
        leaf.message_type is not None or leaf.type not in _TOKEN_TYPES
    ):
        kind = leaf.message_type.full_name if leaf.message_type else _type_name(leaf)
        raise ConfigError(
            f"{at}: {dotted!r} is {kind} in {output.full_name}: only string and bytes fields"
            " can hold a pseudonym; drop it instead"
        )
    if action == "drop":
        return _walker(tuple(fields), _drop)
    return _walker(tuple(fields), _pseudonymise)


def _type_name(field: FieldDescriptor) -> str:
    if field.enum_type is not None:
        return f"an enum ({field.enum_type.full_name})"
    names = {v: k for k, v in vars(FieldDescriptor).items() if k.startswith("TYPE_")}
    return f"a {names.get(field.type, 'TYPE_?').removeprefix('TYPE_').lower()} number or flag"


def _drop(parent: Message, leaf: FieldDescriptor, key: bytes) -> None:
    parent.ClearField(leaf.name)


def _pseudonymise(parent: Message, leaf: FieldDescriptor, key: bytes) -> None:
    text = leaf.type == FieldDescriptor.TYPE_STRING
    if leaf.is_repeated:
        values = getattr(parent, leaf.name)
        values[:] = [_text_token(key, v) if text else _bytes_token(key, v) for v in values]
        return
    if leaf.has_presence and not parent.HasField(leaf.name):
        return  # unset stays unset
    value = getattr(parent, leaf.name)
    setattr(parent, leaf.name, _text_token(key, value) if text else _bytes_token(key, value))


def _walker(
    path: tuple[FieldDescriptor, ...], act: Callable[[Message, FieldDescriptor, bytes], None]
) -> _Step:
    """Applies `act` at the end of `path`, through every element of repeated messages."""
    *steps, leaf = path

    def visit(message: Message, depth: int, key: bytes) -> None:
        if depth == len(steps):
            act(message, leaf, key)
            return
        field = steps[depth]
        if field.is_repeated:
            for element in getattr(message, field.name):
                visit(element, depth + 1, key)
        elif message.HasField(field.name):  # an absent message holds nothing to mask
            visit(getattr(message, field.name), depth + 1, key)

    def step(message: Message, key: bytes) -> None:
        visit(message, 0, key)

    return step


def rules_from_config(access: Iterable[AccessRuleConfig], where: str) -> list[MaskRule]:
    """`MaskRule`s from a provider's validated ``access`` entries; `where` names the file."""
    rules: list[MaskRule] = []
    for index, rule in enumerate(access):
        for position, entry in enumerate(rule.minimise):
            rules.append(
                MaskRule(
                    client=SubsystemId.parse(rule.client),
                    service=SubsystemId.parse(rule.service),
                    method=entry.method,
                    drop=tuple(entry.drop),
                    pseudonymise=tuple(entry.pseudonymise),
                    where=f"{where}: provider.access[{index}].minimise[{position}]",
                )
            )
    return rules
