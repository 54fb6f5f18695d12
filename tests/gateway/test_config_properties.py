"""Server configuration loading never crashes: a document loads or raises ConfigError.

Three kinds of input: arbitrary YAML-able structures, a valid configuration
with one value replaced or removed anywhere in its tree, and arbitrary text
(most of it not YAML at all). Anything but a `ServerConfig` or a
`ConfigError` naming the file is a bug: an operator would see a stack trace.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spean.gateway.config import ServerConfig
from spean.gateway.errors import ConfigError
from spean.gateway.files.config import load_config

CHECKS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VALID: dict[str, Any] = {
    "server_id": "KH/GOV/MPWT/ss1",
    "keys": {
        "tls_key": "keys/tls.key",
        "tls_certificate": "keys/tls.crt",
        "signing_key": "keys/signing.key",
        "signing_certificate": "keys/signing.crt",
    },
    "global_configuration": {
        "source": "http://127.0.0.1:4400/v1/globalconf",
        "anchor": "keys/authority.crt",
        "cache": "state/globalconf.signed",
    },
    "consumer": {"listen": "127.0.0.1:8080", "clients": [{"subsystem": "KH/GOV/MPWT/portal"}]},
    "provider": {
        "listen": "0.0.0.0:9443",
        "services": [{"subsystem": "KH/GOV/MPWT/vehicles", "adapter": {"type": "sql"}}],
        "access": [
            {
                "client": "KH/GOV/MOH/nhis",
                "service": "KH/GOV/MPWT/vehicles",
                "methods": ["/vehicles.v1.VehicleRegistry/GetVehicle"],
            }
        ],
    },
    "audit": {"store": "state/audit.db"},
    "limits": {"max_message_bytes": 65536},
}

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**66), 2**66)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(["*", "KH/GOV/MOH/nhis", "0.0.0.0:99999", "-1", "../../etc/passwd", "~"])
)
TREES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(max_size=12) | st.sampled_from(list(VALID)), children, max_size=4)
    ),
    max_leaves=12,
)


def _paths(tree: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(tree, dict):
        for key, value in tree.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            found += _paths(value, (*prefix, index))
    return found


PATHS = _paths(VALID)


def _load(text: str) -> ServerConfig | None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "server.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            return load_config(path)
        except ConfigError as exc:
            message = exc.message
        # The error names the file, so the operator knows which one to fix.
        assert str(path.resolve()) in message or str(path) in message, message
        return None


def test_the_valid_document_loads() -> None:
    assert _load(yaml.safe_dump(VALID)) is not None


@CHECKS
@given(document=TREES)
def test_any_document_loads_or_is_a_config_error(document: Any) -> None:
    _load(yaml.safe_dump(document))


@CHECKS
@given(path=st.sampled_from(PATHS), value=st.one_of(st.just(KeyError), TREES))
def test_a_valid_document_with_one_value_changed_loads_or_is_a_config_error(
    path: tuple[Any, ...], value: Any
) -> None:
    document = copy.deepcopy(VALID)
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    if value is KeyError:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    _load(yaml.safe_dump(document))


@CHECKS
@given(
    text=st.text(max_size=200)
    | st.sampled_from(["{", "- [", "a: *x", "!!python/object:os.system {}", "a: !!binary zz"])
)
def test_any_text_loads_or_is_a_config_error(text: str) -> None:
    _load(text)
