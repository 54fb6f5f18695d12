"""The provider's Prometheus endpoint shows its adapters' connection pools.

MPWT publishes KH/GOV/MPWT/vehicles through the SQL adapter; a scrape of its
metrics endpoint names the pool's size, limit and connections in use, and the
pool is back to idle after calls went through it.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path

import grpc
import yaml
from prometheus_client.parser import text_string_to_metric_families

from spean.gateway.demo.ministries import MOH, MPWT, VEHICLES, build_demo
from tests.support.exchanges import get_vehicle


def scrape(port: int) -> dict[tuple[str, str], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return {
        (sample.name, sample.labels.get("service", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("spean_adapter_pool_")
    }


def test_adapter_pool_use_is_scraped(tmp_path: Path) -> None:
    federation = build_demo(tmp_path / "federation")
    config = federation.configs[MPWT]
    document = yaml.safe_load(config.read_text())
    document["metrics"] = {"listen": "127.0.0.1:0"}
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    with federation.running():
        mpwt = federation.servers[MPWT]
        assert mpwt.metrics_port is not None
        with grpc.insecure_channel(federation.consumer_addresses[MOH]) as channel:
            for _ in range(3):
                assert get_vehicle(channel).code is grpc.StatusCode.OK
        samples = scrape(mpwt.metrics_port)
    assert samples[("spean_adapter_pool_size", VEHICLES)] >= 1
    assert (
        samples[("spean_adapter_pool_limit", VEHICLES)]
        >= samples[("spean_adapter_pool_size", VEHICLES)]
    )
    assert samples[("spean_adapter_pool_checked_out", VEHICLES)] == 0  # every call returned it
