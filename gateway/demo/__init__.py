"""The demo federation: three ministries on one machine, on synthetic data.

- `ministries`: the ministries' plans (who publishes what, who may call it),
  `build_demo` and the hospital application's calls;
- `data`: the synthetic databases and the adapter mappings shipped beside
  them (`mappings/`, package data, so an installed wheel runs the demo);
- `federation`: `build_federation`, which plays every role (authority,
  members, security servers) through the same APIs the CLI uses; the tests
  build their federations with it too.

Everything here does I/O (files, databases, sockets); nothing on the data
path imports it.
"""
