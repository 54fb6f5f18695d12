"""The authority registers topics: checked, kept in the registry, published signed."""

from __future__ import annotations

from pathlib import Path

import pytest

from spean.demo.population.v1 import events_pb2
from spean.gateway.authority import Authority
from spean.gateway.cli import main
from spean.gateway.errors import FailedPrecondition, InvalidArgument, NotFound
from spean.gateway.events import TopicId
from spean.gateway.identifiers import SubsystemId
from spean.gateway.server.reflection import file_descriptor_set
from tests.gateway.authority.test_core import NHIS, admitted, published

EVENT_TYPE = "population.v1.CitizenAddressChanged"


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    return admitted(Authority.init(tmp_path / "authority", "KH"), tmp_path)


def test_a_topic_with_its_descriptors_is_published(authority: Authority) -> None:
    descriptors = file_descriptor_set(events_pb2.DESCRIPTOR)
    authority.add_topic(NHIS, "address-changed", EVENT_TYPE, file_descriptor_set=descriptors)
    conf = published(authority)
    info = conf.topic(TopicId(SubsystemId.parse(NHIS), "address-changed"))
    assert info is not None
    assert (info.event_type, info.file_descriptor_set) == (EVENT_TYPE, descriptors)
    # The registry keeps it: a reopened authority publishes it again.
    reopened = published(Authority.open(authority.directory))
    assert reopened.topic(TopicId(SubsystemId.parse(NHIS), "address-changed")) is not None


def test_bad_topics_are_refused_saying_why(authority: Authority) -> None:
    descriptors = file_descriptor_set(events_pb2.DESCRIPTOR)
    with pytest.raises(InvalidArgument, match=r"does not define message population\.v1\.Other"):
        authority.add_topic(NHIS, "t", "population.v1.Other", file_descriptor_set=descriptors)
    with pytest.raises(InvalidArgument, match="topic name"):
        authority.add_topic(NHIS, "Not A Name", EVENT_TYPE)
    with pytest.raises(NotFound, match="is not registered"):
        authority.add_topic("KH/GOV/MOH/other", "t", EVENT_TYPE)
    authority.add_topic(NHIS, "t", EVENT_TYPE)
    with pytest.raises(FailedPrecondition, match="already registered"):
        authority.add_topic(NHIS, "t", EVENT_TYPE)


def test_spean_authority_add_topic(
    authority: Authority, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    descriptors = tmp_path / "events.binpb"
    descriptors.write_bytes(file_descriptor_set(events_pb2.DESCRIPTOR))
    code = main(
        [
            "authority",
            "add-topic",
            "--dir",
            str(authority.directory),
            "--subsystem",
            NHIS,
            "--name",
            "address-changed",
            "--event-type",
            EVENT_TYPE,
            "--descriptor-set",
            str(descriptors),
        ]
    )
    assert code == 0
    assert f"registered topic {NHIS}:address-changed" in capsys.readouterr().out
    assert published(authority).topic(TopicId(SubsystemId.parse(NHIS), "address-changed"))
