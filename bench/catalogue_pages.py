"""Catalogue web pages at scale: page weight and time to first byte, beside the JSON API.

Builds the synthetic catalogue of `bench/catalogue_search.py` (1,000
members, 10,000 services, English and Khmer texts by Zipf's law), gives
every service the protobuf documentation and snippets of the demo's
GetVehicle (so each service page weighs what a documented service's page
weighs), indexes it in SQLite FTS5 (the default) and serves it with the
catalogue's own application on a loopback port (uvicorn, as `spean
catalogue serve` does). Then:

- page weight: bytes on the wire per page, gzip as served (HTML, and the CSS
  and scripts the page loads), for a first visit and for a repeat visit
  (the static files are cached for a day); and what that takes on a slow
  mobile link (400 kbit/s, computed, not measured);
- time to first byte, p50 and p95 over `--requests` requests per row, on a
  kept-alive connection: the home page, a search page (the words drawn as
  the search bench draws them), a service page (a random service each
  time); beside them, the same searches from the JSON API and a static
  file from the same server, the baselines. The rows are interleaved (one
  request of each in turn), so a busy machine slows them alike; the search
  page is compared with the JSON search, the other pages with the static
  file.

    .venv/bin/python bench/catalogue_pages.py [--members 1000] [--services 10000]
        [--requests 300]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import gzip
import os
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, urlencode

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.catalogue_search import query_mix, synthetic_catalogue
from spean.gateway.catalogue.api import create_app
from spean.gateway.catalogue.index import open_index
from spean.gateway.catalogue.model import Catalogue, build_catalogue
from spean.gateway.catalogue.search import documents
from spean.gateway.catalogue.service import CatalogueService
from spean.gateway.demo.ministries import build_demo
from spean.gateway.globalconf import verify_global_configuration
from spean.gateway.web.serve import WebListener

GET_VEHICLE = "KH/GOV/MPWT/vehicles:/vehicles.v1.VehicleRegistry/GetVehicle"
SLOW_LINK_BITS = 400_000  # a slow mobile link, bits per second


class HeldCatalogue(CatalogueService):
    """A `CatalogueService` holding a catalogue built here (no signed configuration to follow)."""

    def __init__(self, catalogue: Catalogue) -> None:
        super().__init__(None, open_index("sqlite://"))  # type: ignore[arg-type]
        self.index.replace(catalogue.version, documents(catalogue))
        self._catalogue = catalogue

    def stop(self) -> None:
        self.index.close()


def documented(catalogue: Catalogue) -> Catalogue:
    """`catalogue` with the demo GetVehicle's documentation and snippets on every service."""
    with tempfile.TemporaryDirectory() as folder:
        federation = build_demo(Path(folder))
        authority = federation.authority
        conf = verify_global_configuration(
            authority.published_path.read_bytes(),
            authority.signing_certificate,
            dt.datetime.now(dt.UTC),
        )
    demo = build_catalogue(conf).service(GET_VEHICLE)
    assert demo is not None
    assert demo.doc is not None
    services = tuple(
        dataclasses.replace(s, doc=demo.doc, snippets=demo.snippets) for s in catalogue.services
    )
    return dataclasses.replace(catalogue, services=services, _services={s.id: s for s in services})


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def one_ttfb(client: httpx.Client, path: str) -> float:
    """Milliseconds from sending a request to its response's status line and headers."""
    request = client.build_request("GET", path, headers={"Accept-Encoding": "gzip"})
    start = time.perf_counter()
    response = client.send(request, stream=True)
    elapsed = (time.perf_counter() - start) * 1000
    response.read()
    response.close()
    assert response.status_code == 200, (path, response.status_code)
    return elapsed


def ttfb(
    client: httpx.Client, rows: dict[str, Callable[[int], str]], requests: int
) -> dict[str, list[float]]:
    """Each row's samples, the rows interleaved (request i of every row, then i + 1), so
    that every row sees the same machine; the first ten rounds warm up."""
    samples: dict[str, list[float]] = {name: [] for name in rows}
    for i in range(requests + 10):
        for name, paths in rows.items():
            elapsed = one_ttfb(client, paths(i))
            if i >= 10:
                samples[name].append(elapsed)
    return samples


def wire_bytes(client: httpx.Client, path: str) -> tuple[int, int, str]:
    """(bytes on the wire with gzip, bytes uncompressed, body) of one answer."""
    response = client.get(path, headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200, (path, response.status_code)
    body = response.content
    raw = response.num_bytes_downloaded
    if response.headers.get("content-encoding") != "gzip":
        raw = len(body)
    return raw, len(body), response.text


def assets(page: str) -> list[str]:
    return re.findall(r'(?:href|src)="(/static/[^"]+)"', page)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--services", type=int, default=10000)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()

    started = time.perf_counter()
    catalogue = documented(synthetic_catalogue(args.members, args.services))
    service = HeldCatalogue(catalogue)
    listener = WebListener("127.0.0.1:0", None, name="catalogue-bench")
    listener.start(create_app(service))
    base = f"http://127.0.0.1:{listener.port}"
    print(
        f"catalogue pages, {len(catalogue.members):,} members, {len(catalogue.services):,}"
        f" services, {args.requests} requests per row, {os.cpu_count()} cores"
        f" (built in {time.perf_counter() - started:.1f} s)"
    )
    rng = random.Random(5)
    words = [q.text for _ in range(args.requests // 6 + 3) for q in query_mix(rng, args.members)]
    words = [w for w in words if w]
    ids = [s.id for s in catalogue.services]
    service_ids = [rng.choice(ids) for _ in range(args.requests + 10)]

    def search_page(i: int) -> str:
        return "/?" + urlencode({"q": words[i % len(words)]})

    def search_api(i: int) -> str:
        return "/api/v1/catalogue/services?" + urlencode({"q": words[i % len(words)]})

    def service_page(i: int) -> str:
        return "/services/" + quote(service_ids[i], safe="/:")

    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            print("\npage weight (bytes on the wire, gzip; uncompressed in brackets):")
            print(
                f"  {'page':<14} {'HTML':>16} {'CSS + JS':>16} {'first visit':>12}"
                f" {'repeat':>8} {'first at 400 kbit/s':>20}"
            )
            for name, path in [
                ("home", "/"),
                ("search", search_page(0)),
                ("service", service_page(0)),
                ("member", "/members/" + catalogue.members[0].id),
                ("error 404", None),
            ]:
                if path is None:
                    response = client.get("/services/nope", headers={"Accept-Encoding": "gzip"})
                    html_wire, html_raw, page = (
                        response.num_bytes_downloaded,
                        len(response.content),
                        response.text,
                    )
                else:
                    html_wire, html_raw, page = wire_bytes(client, path)
                static_wire = static_raw = 0
                for asset in assets(page):
                    w, r, _ = wire_bytes(client, asset)
                    static_wire, static_raw = static_wire + w, static_raw + r
                first = html_wire + static_wire
                seconds = first * 8 / SLOW_LINK_BITS
                print(
                    f"  {name:<14} {html_wire:>7,} ({html_raw:>6,}) {static_wire:>7,}"
                    f" ({static_raw:>6,}) {first:>12,} {html_wire:>8,} {seconds:>18.2f} s"
                )
            json_wire, json_raw, _ = wire_bytes(client, search_api(0))
            print(f"  {'JSON search':<14} {json_wire:>7,} ({json_raw:>6,})   (the API's answer)")
            # Check the compression figure independently of the server's.
            sample = client.get(service_page(0)).content
            print(f"  (gzip -6 of the service page here: {len(gzip.compress(sample, 6)):,} bytes)")

            print("\ntime to first byte (ms), kept-alive connection:")
            print(f"  {'answer':<30} {'p50':>8} {'p95':>8} {'p50 / baseline p50':>20}")
            measured = ttfb(
                client,
                {
                    "static file (baseline)": lambda i: "/static/catalogue/catalogue.css",
                    "JSON API search (baseline)": search_api,
                    "home page": lambda i: "/",
                    "search page": search_page,
                    "service page": service_page,
                },
                args.requests,
            )
            static = measured["static file (baseline)"]
            rows = [
                ("static file (baseline)", static, None),
                ("JSON API search (baseline)", measured["JSON API search (baseline)"], None),
                ("home page", measured["home page"], static),
                ("search page", measured["search page"], measured["JSON API search (baseline)"]),
                ("service page", measured["service page"], static),
            ]
            for name, samples, baseline in rows:
                ratio = (
                    f"x{statistics.median(samples) / statistics.median(baseline):.2f}"
                    if baseline
                    else ""
                )
                print(
                    f"  {name:<30} {statistics.median(samples):>8.1f}"
                    f" {percentile(samples, 0.95):>8.1f} {ratio:>20}"
                )
    finally:
        listener.stop()
        service.stop()


if __name__ == "__main__":
    main()
