"""The fuzz targets, run without atheris over their seeds and simple variants of them.

CI has no time to fuzz; this keeps the targets working and replays the
committed seeds (and any crash input added to fuzz/corpus) on every run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzz.targets import TARGETS, genuine_token

CORPUS = Path(__file__).resolve().parents[2] / "fuzz" / "corpus"


def _variants(seed: bytes) -> list[bytes]:
    """The seed, its prefixes, and each byte in turn replaced by an odd one."""
    step = max(1, len(seed) // 40)
    found = [seed, *(seed[:n] for n in range(0, len(seed), step))]
    for position in range(0, len(seed), step):
        for odd in (b"\x00", b"\n", b".", b"\xff", b"#", b":"):
            found.append(seed[:position] + odd + seed[position + 1 :])
    return found


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_target_survives_its_seeds_and_their_variants(name: str) -> None:
    seeds = sorted((CORPUS / name).iterdir())
    assert seeds, f"fuzz/corpus/{name} holds no seeds"
    for seed in seeds:
        for data in _variants(seed.read_bytes()):
            TARGETS[name](data)  # anything but SpeanError escaping fails the test


def test_the_verify_target_accepts_a_genuine_token() -> None:
    # Otherwise the fuzzer would never get past the signature check.
    from fuzz.targets import _TRUSTED, NOW
    from spean.gateway.tokens import verify_request

    assert verify_request(genuine_token(), _TRUSTED.get, now=NOW).user == "dr.sokha"
