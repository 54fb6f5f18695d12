"""`build_timeline`'s progress: every record of the bundle counted once, in steps."""

from __future__ import annotations

import dataclasses

import pytest

from spean.gateway.audit.bundle import read_bundle
from spean.gateway.audit.resend import TimelineFilter, build_timeline
from spean.gateway.files.keyfiles import load_auditor_key
from tests.support.audit_logs import DemoBundles, demo_bundles


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> DemoBundles:
    return demo_bundles(tmp_path_factory.mktemp("resend"))


@pytest.mark.parametrize("copies", [1, 250, 251])
def test_the_timeline_reports_every_record_read_once(bundles: DemoBundles, copies: int) -> None:
    bundle = read_bundle(bundles.provider)
    # 4 records a copy: 1,000 and 1,004 records step over the 1,000 boundary.
    many = dataclasses.replace(bundle, records=bundle.records * copies, bodies=())
    key = load_auditor_key(bundles.federation.root / "auditor" / "auditor.key")
    steps: list[int] = []
    timeline = build_timeline(many, key, TimelineFilter(), progress=steps.append)
    assert sum(steps) == len(many.records)
    assert max(steps) <= 1000
    assert len(timeline) == len(many.records)
