"""Prototype: the exchange pattern on grpcio's sync server against grpc.aio.

Issue 6 asks for the sync or aio server "chosen by measurement", and for the
grpcio version chosen the same way. This module measures exactly the shape of
a Spean exchange without any of Spean's own work, so that the framework's
share is seen alone:

    h2load --h2c--> front (generic handler, unary-stream)
                      --mTLS, persistent channel--> back (generic handler, unary-stream)

The front forwards the request bytes untouched with a 400-character header
(a token's size), holds the answer's last message back, reads the back's
trailers, and answers with trailers of its own; the back answers one 70-byte
message with a 400-character trailer. With ``--audit`` each side also waits,
before its answer, for a group commit (a writer thread appending to a file and
calling ``fdatasync``), as Spean's audit log does: the sync server blocks its
worker thread on a lock, the aio server awaits a future the writer resolves
with ``call_soon_threadsafe``.

Every server runs in its own process, optionally with another interpreter
(``--python /tmp/venv-g175/bin/python``: a scratch virtualenv with another
grpcio; the servers import nothing but grpc and, for ``aio-uvloop``, uvloop).

    python -m bench.hops compare --seconds 5 --modes sync,aio,aio-uvloop --audit
    python -m bench.hops compare --python /tmp/venv-g175/bin/python

Prints a table and writes JSON to bench/results/hops.json (``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import queue
import signal
import sys
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc

METHOD = "/bench.v1.Hop/Get"
COUNT = "/bench.v1.Hop/Count"  # the front's count of answers forwarded with OK
ANSWER = b"A" * 70
REQUEST = b"R" * 42
TOKEN = "t" * 400
MODES = ("sync", "sync-unary", "sync-unary-both", "aio", "aio-uvloop")


# -- the group commit both sides wait for (--audit) -----------------------------


class GroupCommit:
    """A writer thread: takes every queued entry, appends, fdatasync, releases them."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._queue: queue.SimpleQueue[tuple[bytes, Callable[[], None]]] = queue.SimpleQueue()
        threading.Thread(target=self._run, daemon=True).start()

    def submit(self, data: bytes, done: Callable[[], None]) -> None:
        self._queue.put((data, done))

    def append_blocking(self, data: bytes) -> None:
        lock = threading.Lock()
        lock.acquire()
        self.submit(data, lock.release)
        lock.acquire()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            os.write(self._fd, b"".join(data for data, _ in batch))
            os.fdatasync(self._fd)
            for _, done in batch:
                done()


# -- sync servers ----------------------------------------------------------------------


def _sync_back(audit: GroupCommit | None, *, unary: bool = False) -> grpc.GenericRpcHandler:
    if unary:

        def answer_unary(request: bytes, context: grpc.ServicerContext) -> bytes:
            if audit is not None:
                audit.append_blocking(request + ANSWER)
            context.set_trailing_metadata((("spean-response-token", TOKEN),))
            return ANSWER

        return _generic(grpc.unary_unary_rpc_method_handler(answer_unary))

    def answer(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        if audit is not None:
            audit.append_blocking(request + ANSWER)
        context.set_trailing_metadata((("spean-response-token", TOKEN),))
        yield ANSWER

    return _generic(grpc.unary_stream_rpc_method_handler(answer))


def _sync_front(
    upstream: grpc.Channel,
    audit: GroupCommit | None,
    *,
    unary: bool = False,
    unary_handler: bool = False,
) -> grpc.GenericRpcHandler:
    """`unary`: forward with a blocking unary-unary call (no channel spin thread);
    `unary_handler`: serve with a unary-unary handler (message and status in one batch)."""
    stubs: dict[str, Any] = {}
    answered = [0]

    def count(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        yield str(answered[0]).encode()

    def forward(method: str, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        stub = stubs.get(method)
        held: bytes | None = None
        if unary:
            if stub is None:
                stub = stubs[method] = upstream.unary_unary(method)
            held, call = stub.with_call(
                request, metadata=(("spean-request-token", TOKEN),), timeout=10
            )
        else:
            if stub is None:
                stub = stubs[method] = upstream.unary_stream(method)
            call = stub(request, metadata=(("spean-request-token", TOKEN),), timeout=10)
            for message in call:
                if held is not None:
                    yield held
                held = message
        trailing = call.trailing_metadata() or ()
        if not any(k == "spean-response-token" for k, _ in trailing):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "no response token")
        if audit is not None:
            audit.append_blocking(request + (held or b""))
        context.set_trailing_metadata((("spean-exchange-id", "x" * 36),))
        answered[0] += 1  # under the GIL; a lost update would only under-count
        if held is not None:
            yield held

    def forward_unary(method: str, request: bytes, context: grpc.ServicerContext) -> bytes:
        answer = b""
        for message in forward(method, request, context):
            answer = message
        return answer

    class Front(grpc.GenericRpcHandler):
        def service(self, details: grpc.HandlerCallDetails) -> Any:
            if details.method == COUNT:
                return grpc.unary_stream_rpc_method_handler(count)
            if unary_handler:
                return grpc.unary_unary_rpc_method_handler(
                    functools.partial(forward_unary, details.method)
                )
            return grpc.unary_stream_rpc_method_handler(functools.partial(forward, details.method))

    return Front()


def _generic(handler: Any) -> grpc.GenericRpcHandler:
    class Generic(grpc.GenericRpcHandler):
        def service(self, details: grpc.HandlerCallDetails) -> Any:
            return handler

    return Generic()


def serve_sync(args: argparse.Namespace) -> None:
    audit = GroupCommit(args.audit) if args.audit else None
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
    if args.role == "back":
        server.add_generic_rpc_handlers((_sync_back(audit, unary=args.mode == "sync-unary-both"),))
        server.add_secure_port(args.listen, _server_credentials(args.tls))
    else:
        channel = grpc.secure_channel(args.upstream, _channel_credentials(args.tls), _options())
        front = _sync_front(
            channel,
            audit,
            unary=args.mode.startswith("sync-unary"),
            unary_handler=args.mode == "sync-unary-both",
        )
        server.add_generic_rpc_handlers((front,))
        server.add_insecure_port(args.listen)
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop(0)


# -- aio servers ------------------------------------------------------------------------


async def _awaited(audit: GroupCommit, data: bytes) -> None:
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def wake() -> None:
        loop.call_soon_threadsafe(done.set_result, None)

    audit.submit(data, wake)
    await done


def _aio_back(audit: GroupCommit | None) -> grpc.GenericRpcHandler:
    async def answer(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if audit is not None:
            await _awaited(audit, request + ANSWER)
        context.set_trailing_metadata((("spean-response-token", TOKEN),))
        yield ANSWER

    return _generic(grpc.unary_stream_rpc_method_handler(answer))


def _aio_front(upstream: grpc.aio.Channel, audit: GroupCommit | None) -> grpc.GenericRpcHandler:
    stubs: dict[str, Any] = {}
    answered = [0]

    async def count(request: bytes, context: Any) -> AsyncIterator[bytes]:
        yield str(answered[0]).encode()

    async def forward(
        method: str, request: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        stub = stubs.get(method)
        if stub is None:
            stub = stubs[method] = upstream.unary_stream(method)
        call = stub(request, metadata=(("spean-request-token", TOKEN),), timeout=10)
        held: bytes | None = None
        async for message in call:
            if held is not None:
                yield held
            held = message
        trailing = await call.trailing_metadata() or ()
        if not any(k == "spean-response-token" for k, _ in trailing):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "no response token")
        if audit is not None:
            await _awaited(audit, request + (held or b""))
        context.set_trailing_metadata((("spean-exchange-id", "x" * 36),))
        answered[0] += 1
        if held is not None:
            yield held

    class Front(grpc.GenericRpcHandler):
        def service(self, details: grpc.HandlerCallDetails) -> Any:
            if details.method == COUNT:
                return grpc.unary_stream_rpc_method_handler(count)
            # A partial keeps grpc.aio's check that the behaviour is an async generator.
            return grpc.unary_stream_rpc_method_handler(functools.partial(forward, details.method))

    return Front()


async def _serve_aio(args: argparse.Namespace) -> None:
    audit = GroupCommit(args.audit) if args.audit else None
    server = grpc.aio.server()
    if args.role == "back":
        server.add_generic_rpc_handlers((_aio_back(audit),))
        server.add_secure_port(args.listen, _server_credentials(args.tls))
    else:
        channel = grpc.aio.secure_channel(args.upstream, _channel_credentials(args.tls), _options())
        server.add_generic_rpc_handlers((_aio_front(channel, audit),))
        server.add_insecure_port(args.listen)
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(0)


def serve_aio(args: argparse.Namespace) -> None:
    if args.mode == "aio-uvloop":
        import uvloop  # type: ignore[import-not-found]  # only in a scratch venv

        uvloop.run(_serve_aio(args))
    else:
        asyncio.run(_serve_aio(args))


# -- TLS ---------------------------------------------------------------------------------


def _read(tls: str, name: str) -> bytes:
    return Path(tls, name).read_bytes()


def _server_credentials(tls: str) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials(
        [(_read(tls, "provider.key"), _read(tls, "provider.crt"))],
        root_certificates=_read(tls, "ca.crt"),
        require_client_auth=True,
    )


def _channel_credentials(tls: str) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=_read(tls, "ca.crt"),
        private_key=_read(tls, "consumer.key"),
        certificate_chain=_read(tls, "consumer.crt"),
    )


def _options() -> list[tuple[str, Any]]:
    return [("grpc.ssl_target_name_override", os.environ["HOPS_TLS_NAME"])]


# -- the driver ----------------------------------------------------------------------------


def compare(args: argparse.Namespace) -> dict[str, Any]:
    """Start front and back per mode, drive them with h2load, report."""
    from bench import nginx  # the servers need only grpc
    from bench.load import find_h2load, run_h2load
    from bench.procs import BenchError, cpu_seconds, free_port, start, wait_for_port

    h2load = find_h2load()
    if h2load is None:
        raise BenchError("h2load is not installed (apt-get install nghttp2-client)")
    python = args.python or sys.executable
    done = {"python": python, "grpcio": _grpc_version(python), "audit": args.audit, "rows": []}
    with tempfile.TemporaryDirectory(prefix="spean-hops-") as folder:
        work = Path(folder)
        tls_name = nginx._issue(work)  # CA, provider and consumer certificates
        os.environ["HOPS_TLS_NAME"] = tls_name
        for mode in args.modes.split(","):
            back_port, front_port = free_port(), free_port()
            common = ["--mode", mode, "--tls", str(work)]
            back = start(
                f"back {mode}",
                [python, "-m", "bench.hops", "serve", "--role", "back", *common]
                + ["--listen", f"127.0.0.1:{back_port}"]
                + (["--audit", str(work / f"back-{mode}.log")] if args.audit else []),
                work / f"back-{mode}.out",
            )
            front = start(
                f"front {mode}",
                [python, "-m", "bench.hops", "serve", "--role", "front", *common]
                + ["--listen", f"127.0.0.1:{front_port}"]
                + ["--upstream", f"127.0.0.1:{back_port}"]
                + (["--audit", str(work / f"front-{mode}.log")] if args.audit else []),
                work / f"front-{mode}.out",
            )
            try:
                wait_for_port(back_port, 20, back)
                wait_for_port(front_port, 20, front)
                for level in (int(c) for c in args.concurrency.split(",")):
                    run_h2load(h2load, front_port, METHOD, REQUEST, [], level, 1.0, work)
                    before = {p.name: cpu_seconds(p.pid) for p in (front, back)}
                    counted = _count(front_port)
                    result = run_h2load(
                        h2load, front_port, METHOD, REQUEST, [], level, args.seconds, work
                    )
                    used = {p.name: cpu_seconds(p.pid) - before[p.name] for p in (front, back)}
                    counted = _count(front_port) - counted
                    n = max(result.completed, 1)
                    row = {
                        "mode": mode,
                        "concurrency": level,
                        "rps": round(result.throughput, 1),
                        "p50_ms": result.percentile_ms(0.5),
                        "p99_ms": result.percentile_ms(0.99),
                        "failed": result.failed,
                        "status_check": "ok" if counted >= result.completed else "FAILED",
                        "cpu_us_per_call": {k: round(v / n * 1e6) for k, v in used.items()},
                    }
                    done["rows"].append(row)
                    print(json.dumps(row), flush=True)
            finally:
                front.stop()
                back.stop()
    return done


def _count(port: int) -> int:
    """The front's count of OK answers (h2load sees HTTP statuses only)."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub: grpc.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(COUNT)
        return int(b"".join(stub(b"", timeout=10)))


def _grpc_version(python: str) -> str:
    import subprocess

    out = subprocess.run(
        [python, "-c", "import grpc; print(grpc.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.hops", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="one server (started by compare)")
    serve.add_argument("--role", choices=("front", "back"), required=True)
    serve.add_argument("--mode", choices=MODES, required=True)
    serve.add_argument("--listen", required=True)
    serve.add_argument("--upstream", default="")
    serve.add_argument("--tls", required=True)
    serve.add_argument("--audit", default="")
    cmp = sub.add_parser("compare", help="measure the modes side by side")
    cmp.add_argument("--modes", default="sync,aio")
    cmp.add_argument("--concurrency", default="1,32")
    cmp.add_argument("--seconds", type=float, default=5.0)
    cmp.add_argument("--audit", action="store_true", help="both sides wait for a group commit")
    cmp.add_argument("--python", default="", help="interpreter for the servers (scratch venv)")
    cmp.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "hops.json")
    args = parser.parse_args(argv)
    if args.command == "serve":
        (serve_sync if args.mode.startswith("sync") else serve_aio)(args)
        return 0
    result = compare(args)
    existing: list[Any] = []
    if args.out.exists():
        loaded = json.loads(args.out.read_text(encoding="utf-8"))
        existing = loaded if isinstance(loaded, list) else []
    existing.append(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(existing, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
