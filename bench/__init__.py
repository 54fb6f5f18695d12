"""Spean's side-by-side benchmarks.

`python -m bench` (what `make bench` runs) measures, in one run on one
machine, the demo's GetVehicle exchange served directly, behind two nginx
hops with mutual TLS, and through two Spean security servers, and reports
the ratios; see docs/performance.md. The modules beside it (`bench.tokens`,
`bench.merkle`, `bench.audit_append`) are micro-benchmarks of single parts.
"""
