"""Run one fuzz target under atheris: `python -m fuzz.run TARGET [libFuzzer options]`.

`make fuzz` runs every target for FUZZ_SECONDS each (`-max_total_time`),
starting from the seeds in fuzz/corpus/<target>/ and writing new inputs to a
scratch corpus under the build folder, so the committed seeds stay small.
A crash input is written to the current folder as crash-<sha1> by libFuzzer.
"""

from __future__ import annotations

import sys

import atheris

# Coverage feedback from Spean's own code only: instrumenting grpc, protobuf
# and cryptography as well costs minutes at start and guides nothing.
with atheris.instrument_imports(include=["gateway", "fuzz"]):
    from fuzz.targets import TARGETS


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: python -m fuzz.run {{{'|'.join(TARGETS)}}} [libFuzzer options]")
    target = TARGETS[sys.argv[1]]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
