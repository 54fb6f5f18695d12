"""The applications' edges of publish/subscribe: webhook publishing and webhook delivery.

A real federation on loopback (tests/support/webhooks.py): MoI's population
register posts events over HTTPS to MoI's security server, with an API key or
its registered client certificate; MoH's server POSTs each delivered event
as JSON to the hospital's internal HTTPS receiver, MPWT's as protobuf to the
vehicle registry's; both receivers refuse the first attempts of every event.
The payload type check of `Publish` is tested here too, over MoI's consumer
endpoint on TLS with the register's certificate.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from google.protobuf import json_format
from sqlalchemy import create_engine, text

from spean.adapters.outbox import load_relay
from spean.demo.population.v1 import events_pb2
from spean.gateway.audit.record import Kind
from spean.gateway.demo.ministries import MOH, MOI, MPWT, NHIS, POPULATION, VEHICLES
from spean.gateway.events import TopicId
from spean.gateway.identifiers import SubsystemId
from spean.gateway.metadata import CLIENT
from spean.gateway.server.pubsub_push import signature_valid
from spean.v1 import pubsub_pb2 as pb
from spean.v1 import pubsub_pb2_grpc as pb_grpc
from tests.support.events import (
    ADDRESS_CHANGED,
    EVENT_TYPE,
    TOPIC,
    address_changed,
    event_federation,
)
from tests.support.webhooks import SECRET, Webhooks, enable_webhooks
from tests.support.world import World, running


@pytest.fixture(scope="module")
def edges(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, Webhooks]]:
    federation = event_federation(tmp_path_factory.mktemp("webhooks"))
    hooks = enable_webhooks(federation)
    try:
        with running(federation) as world:
            node = world.server(MOI).pubsub
            assert node is not None
            assert node.webhook is not None
            hooks.port = node.webhook.port
            yield world, hooks
    finally:
        hooks.health.stop()
        hooks.vehicles.stop()


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def as_json(n: int) -> dict[str, str]:
    event = events_pb2.CitizenAddressChanged.FromString(address_changed(n))
    return json_format.MessageToDict(event)


def headers(event_id: str = "", topic: str = ADDRESS_CHANGED, **more: str) -> dict[str, str]:
    out = {"Spean-Client": POPULATION, "Spean-Topic": topic, **more}
    if event_id:
        out["Spean-Event-Id"] = event_id
    return out


def tls_publisher(world: World, hooks: Webhooks) -> pb_grpc.PublisherStub:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=hooks.ca.read_bytes(),
        private_key=hooks.population_cert[1].read_bytes(),
        certificate_chain=hooks.population_cert[0].read_bytes(),
    )
    address = world.federation.consumer_addresses[MOI]
    return pb_grpc.PublisherStub(grpc.secure_channel(address, credentials))


# -- webhook publishing -------------------------------------------------------------------


def test_a_json_event_posted_with_an_api_key_is_durable_audited_and_delivered(
    edges: tuple[World, Webhooks],
) -> None:
    world, hooks = edges
    with hooks.client(key=hooks.keys[POPULATION]) as http:
        answer = http.post("/events", json=as_json(1), headers=headers())
    assert answer.status_code == 201, answer.text
    published = answer.json()
    assert published["duplicate"] is False
    assert answer.headers["spean-exchange-id"] == published["exchange_id"]
    record = world.record(MOI, published["exchange_id"])
    assert (record.kind, record.status, record.client) == (Kind.EVENT_PUBLISH, "OK", POPULATION)
    assert (record.event_id, record.sequence) == (published["event_id"], published["sequence"])
    # Stored as the binary event: what the JSON means, not its text.
    node = world.server(MOI).pubsub
    assert node is not None
    stored = node.store.event(TopicId.parse(TOPIC), published["sequence"])
    assert stored is not None
    assert stored.payload == address_changed(1)
    assert record.request_sha256 == stored.event_sha256


def test_a_protobuf_event_posted_with_the_registered_certificate_is_published(
    edges: tuple[World, Webhooks],
) -> None:
    world, hooks = edges
    with hooks.client(cert=hooks.population_cert) as http:
        answer = http.post(
            "/events",
            content=address_changed(2),
            headers=headers(**{"Content-Type": "application/x-protobuf"}),
        )
    assert answer.status_code == 201, answer.text
    record = world.record(MOI, answer.json()["exchange_id"])
    assert record.status == "OK"
    assert record.peer_certificate_sha256  # the certificate that identified the publisher


def test_the_same_event_id_is_answered_as_a_duplicate_and_other_bytes_conflict(
    edges: tuple[World, Webhooks],
) -> None:
    _, hooks = edges
    event_id = str(uuid.uuid4())
    with hooks.client(key=hooks.keys[POPULATION]) as http:
        first = http.post("/events", json=as_json(3), headers=headers(event_id))
        again = http.post("/events", json=as_json(3), headers=headers(event_id))
        other = http.post("/events", json=as_json(4), headers=headers(event_id))
    assert first.status_code == 201
    assert again.status_code == 200
    assert (again.json()["sequence"], again.json()["duplicate"]) == (first.json()["sequence"], True)
    assert other.status_code == 409
    assert other.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("credential", "body", "extra", "status", "words"),
    [
        (None, "json", {}, 401, "no credentials"),
        ("revoked", "json", {}, 401, "was revoked"),
        ("unmapped", "json", {}, 403, "does not publish as KH/GOV/MOI/population"),
        ("stranger", "json", {}, 401, "must present the client certificate registered"),
        (
            "idreg",
            "json",
            {"Spean-Client": "KH/GOV/MOI/idreg"},
            403,
            "is not registered on security server",
        ),
        ("key", "not-the-type", {}, 400, f"not a {EVENT_TYPE}, the event type of topic {TOPIC}"),
        ("key", "protobuf-garbage", {}, 400, f"not a {EVENT_TYPE}"),
        ("key", "json", {"Spean-Topic": "no-such-topic"}, 404, "not published"),
        ("key", "text", {}, 415, "application/x-protobuf or application/json"),
        ("key", "json", {"Spean-Event-Id": "nope"}, 400, "must be a lower-case UUID4"),
    ],
)
def test_a_refused_post_is_a_problem_with_its_status_and_audited(
    edges: tuple[World, Webhooks],
    credential: str | None,
    body: str,
    extra: dict[str, str],
    status: int,
    words: str,
) -> None:
    world, hooks = edges
    key, cert = None, None
    if credential == "key":
        key = hooks.keys[POPULATION]
    elif credential == "revoked":
        key = hooks.revoked_key
    elif credential == "unmapped":
        key = hooks.keys["unmapped"]
    elif credential == "idreg":
        key = hooks.keys["KH/GOV/MOI/idreg"]
    elif credential == "stranger":
        cert = hooks.stranger_cert
    content, media = {
        "json": (json.dumps(as_json(5)).encode(), "application/json"),
        "not-the-type": (b'{"idCardNumber": "KH-1", "colour": "red"}', "application/json"),
        "protobuf-garbage": (b"\xff\xff\xff", "application/x-protobuf"),
        "text": (b"hello", "text/plain"),
    }[body]
    with hooks.client(key=key, cert=cert) as http:
        answer = http.post(
            "/events", content=content, headers={**headers(), "Content-Type": media, **extra}
        )
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert words in answer.json()["detail"]
    record = world.record(MOI, answer.headers["spean-exchange-id"])
    assert record.kind is Kind.EVENT_PUBLISH
    assert record.status not in ("", "OK")
    assert record.message == answer.json()["detail"]


def test_the_openapi_document_describes_the_publish_route(edges: tuple[World, Webhooks]) -> None:
    _, hooks = edges
    with hooks.client() as http:
        document = http.get("/openapi.json").json()
    route = document["paths"]["/api/v1/events"]["post"]
    assert set(route["requestBody"]["content"]) == {"application/x-protobuf", "application/json"}
    names = {p["name"] for p in route["parameters"]}
    assert {"spean-client", "spean-topic", "spean-event-id"} <= names
    assert {"201", "200", "401", "403"} <= set(route["responses"])


# -- the payload type check of Publish (gRPC) ---------------------------------------------


def test_publish_refuses_a_payload_that_is_not_the_topics_event_type(
    edges: tuple[World, Webhooks],
) -> None:
    world, hooks = edges
    stub = tls_publisher(world, hooks)
    # A message of another type: field 9 (a string) which CitizenAddressChanged does not define.
    other = b"\x4a\x03abc"
    for payload, words in ((b"\xff\xff", "do not parse"), (other, "fields that type")):
        with pytest.raises(grpc.RpcError) as caught:
            stub.Publish(
                pb.PublishRequest(topic=ADDRESS_CHANGED, payload=payload),
                metadata=((CLIENT, POPULATION),),
                timeout=10,
            )
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        details = caught.value.details() or ""
        assert f"not a {EVENT_TYPE}, the event type of topic {TOPIC}" in details
        assert words in details
        exchange_id = dict(caught.value.trailing_metadata())["spean-exchange-id"]
        record = world.record(MOI, exchange_id)
        assert (record.kind, record.status) == (Kind.EVENT_PUBLISH, "INVALID_ARGUMENT")
    answer = stub.Publish(
        pb.PublishRequest(topic=ADDRESS_CHANGED, payload=address_changed(6)),
        metadata=((CLIENT, POPULATION),),
        timeout=10,
    )
    assert answer.sequence >= 1


# -- webhook delivery to internal URLs -----------------------------------------------------


def test_each_event_is_posted_in_order_once_after_retries_and_acknowledged(
    edges: tuple[World, Webhooks],
) -> None:
    world, hooks = edges
    ids = [str(uuid.uuid4()) for _ in range(3)]
    with hooks.client(key=hooks.keys[POPULATION]) as http:
        for n, event_id in enumerate(ids, start=10):
            answer = http.post("/events", json=as_json(n), headers=headers(event_id))
            assert answer.status_code == 201, answer.text
    for receiver in (hooks.health, hooks.vehicles):
        wait_for(lambda r=receiver: ids[-1] in r.ids())
        accepted = receiver.ids()
        # In order, each once, after the URL refused its first two attempts.
        assert [i for i in accepted if i in ids] == ids
        assert len(accepted) == len(set(accepted))
        assert all(receiver.attempts[i] >= 3 for i in ids)
        assert receiver.bad_signatures == 0
    health = {a.event_id: a for a in hooks.health.accepted}
    first = health[ids[0]]
    assert first.headers["content-type"] == "application/json"
    assert json.loads(first.body) == as_json(10)
    assert first.headers["spean-topic"] == TOPIC
    assert first.headers["spean-event-type"] == EVENT_TYPE
    vehicles = {a.event_id: a for a in hooks.vehicles.accepted}
    assert vehicles[ids[1]].body == address_changed(11)
    assert vehicles[ids[1]].headers["content-type"] == "application/x-protobuf"
    # Acknowledged through the Ack path: an EVENT_ACK record each, in order, and the
    # store's position at the last event the URL accepted.
    topic = TopicId.parse(TOPIC)
    for member, client, receiver in ((MOH, NHIS, hooks.health), (MPWT, VEHICLES, hooks.vehicles)):

        def acks(member: str = member, client: str = client) -> list[str]:
            return [
                r.event_id
                for r in world.records(member)
                if r.kind is Kind.EVENT_ACK and r.client == client and r.status == "OK"
            ]

        wait_for(lambda acks=acks: set(ids) <= set(acks()))
        assert [i for i in acks() if i in ids] == ids
        node = world.server(member).pubsub
        assert node is not None
        last = {a.event_id: a for a in receiver.accepted}[ids[-1]]
        position = node.store.acked_position(SubsystemId.parse(client), topic)
        assert position >= int(last.headers["spean-position"])


def test_the_signature_is_the_hmac_of_the_body(edges: tuple[World, Webhooks]) -> None:
    _, hooks = edges
    wait_for(lambda: bool(hooks.health.accepted))
    for accepted in hooks.health.accepted:
        assert signature_valid(SECRET, accepted.body, accepted.headers["spean-signature"])
        assert not signature_valid(
            SECRET, accepted.body + b" ", accepted.headers["spean-signature"]
        )


def test_a_pushed_subscription_cannot_be_subscribed_with_grpc(
    edges: tuple[World, Webhooks],
) -> None:
    world, _ = edges
    channel = grpc.insecure_channel(world.federation.consumer_addresses[MOH])
    stream = pb_grpc.SubscriberStub(channel).Subscribe(
        pb.SubscribeRequest(topic=TOPIC), metadata=((CLIENT, NHIS),), timeout=10
    )
    with pytest.raises(grpc.RpcError) as caught:
        next(stream)
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "webhook delivery (pubsub.push)" in (caught.value.details() or "")


# -- the outbox adapter with a JSON column, through the webhook ------------------------------


def test_an_outbox_json_column_is_published_through_the_webhook(
    edges: tuple[World, Webhooks], tmp_path: Path
) -> None:
    world, hooks = edges
    database = tmp_path / "population.db"
    engine = create_engine(f"sqlite:///{database}")
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE changes_outbox (id INTEGER PRIMARY KEY, topic TEXT NOT NULL,"
                " event_id TEXT NOT NULL, body TEXT NOT NULL)"
            )
        )
        ids = [str(uuid.uuid4()) for _ in range(2)]
        for n, event_id in enumerate(ids, start=50):
            conn.execute(
                text("INSERT INTO changes_outbox (topic, event_id, body) VALUES (:t, :e, :b)"),
                {"t": ADDRESS_CHANGED, "e": event_id, "b": json.dumps(as_json(n))},
            )
    engine.dispose()
    (tmp_path / "key").write_text(hooks.keys[POPULATION] + "\n")
    config = tmp_path / "outbox.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database": f"sqlite:///{database}",
                "table": "changes_outbox",
                "columns": {"json": "body"},
                "webhook": hooks.url,
                "api_key_file": "key",
                "client": POPULATION,
                "tls": {"ca": str(hooks.ca)},
            }
        )
    )
    relay = load_relay(config)
    try:
        answers = relay.run_once()
    finally:
        relay.close()
    assert [(a.event_id, a.duplicate) for a in answers] == [(i, False) for i in ids]
    node = world.server(MOI).pubsub
    assert node is not None
    stored = node.store.event(TopicId.parse(TOPIC), answers[1].sequence)
    assert stored is not None
    assert stored.payload == address_changed(51)
    check = create_engine(f"sqlite:///{database}")
    with check.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM changes_outbox")).scalar() == 0
    check.dispose()


@pytest.mark.slow
def test_generated_requests_conform_to_the_openapi_document(
    edges: tuple[World, Webhooks],
) -> None:
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    _, hooks = edges
    with hooks.client() as http:
        document = http.get("/openapi.json").json()
    config = schemathesis.Config.from_dict(
        {
            "checks": {
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "400", "401", "403", "404", "409", "415"]
                }
            }
        }
    )
    operation = schemathesis.openapi.from_dict(document, config=config)["/api/v1/events"]["POST"]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def check(case: Any) -> None:
        # No 5xx, and every answer as the document says (status, media type, body).
        case.call_and_validate(
            base_url=hooks.url.removesuffix("/api/v1"),
            headers={"Authorization": f"Bearer {hooks.keys[POPULATION]}"},
            verify=str(hooks.ca),
        )

    check()


def test_the_webhook_follows_the_registered_clients_when_the_server_reloads(
    edges: tuple[World, Webhooks],
) -> None:
    """A reload that withdraws the application's certificate withdraws it from the webhook
    too (it kept the clients of the server's start)."""
    world, hooks = edges
    server = world.server(MOI)
    config = server.config.path
    original = config.read_text()
    document = yaml.safe_load(original)
    for client in document["consumer"]["clients"]:
        if client["subsystem"] == POPULATION:
            del client["certificate"]
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    try:
        server.reload()
        with hooks.client(cert=hooks.population_cert) as http:
            refused = http.post(
                "/events",
                content=address_changed(90),
                headers=headers(**{"Content-Type": "application/x-protobuf"}),
            )
        assert refused.status_code == 401, refused.text
        assert "has no client certificate registered" in refused.text
    finally:
        config.write_text(original)
        server.reload()
    with hooks.client(cert=hooks.population_cert) as http:
        again = http.post(
            "/events",
            content=address_changed(91),
            headers=headers(**{"Content-Type": "application/x-protobuf"}),
        )
    assert again.status_code == 201, again.text
