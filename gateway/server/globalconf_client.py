"""Keeps a security server's global configuration current.

Theory of operation. A `GlobalConfigurationClient` holds one verified
`GlobalConfiguration` at a time. It gets new ones from its source (a file, a
``file://`` URL or the authority's ``http(s)://.../v1/globalconf``), verifies
each against the configuration anchor and installs it only if its version is
higher than the one held. Every installed configuration is first written to a
cache file (atomically: temporary file, fsync, rename), so a restart while the
authority is down starts from the last good copy.

Invariants:

- `current()` never returns an expired configuration: it raises `Unavailable`
  naming the version, its expiry and when the authority was last reached.
- The held version never decreases. A configuration with a lower version than
  the highest one verified (expired ones included) is refused with
  `GlobalConfigurationRollback`, an `Unauthenticated`: serving an old
  configuration is how an attacker would resurrect a revoked certificate. The
  refusal is logged and the held configuration stays. An equal version is
  kept as it is.
- The swap is one reference assignment under a lock, so readers on other
  threads see the old configuration or the new one, never a mix. Subscribers
  are called after each swap, in order.
- The authority is not on the data path: while it is unreachable the held
  configuration keeps serving until it expires.

Rollback protection across restarts rests on the cache file; deleting it
lowers the floor to whatever the source offers first.
"""

from __future__ import annotations

import datetime as dt
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import structlog
from cryptography import x509

from spean.gateway.errors import FailedPrecondition, SpeanError, Unauthenticated, Unavailable
from spean.gateway.files import keyfiles
from spean.gateway.globalconf import (
    MAX_SIGNED_BYTES,
    GlobalConfiguration,
    GlobalConfigurationExpired,
    verify_global_configuration,
)

log = structlog.get_logger()

Clock = Callable[[], dt.datetime]
Subscriber = Callable[[GlobalConfiguration], None]


class GlobalConfigurationRollback(Unauthenticated):
    """The source offered a lower version than the one this server has verified."""


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class GlobalConfigurationClient:
    """Fetches, verifies, caches and refreshes the global configuration."""

    def __init__(
        self,
        source: str,
        anchor: x509.Certificate,
        cache_path: Path,
        refresh_seconds: float = 60.0,
        clock: Clock = _utcnow,
        fetch_timeout: float = 10.0,
    ) -> None:
        if refresh_seconds <= 0:
            raise FailedPrecondition(f"refresh_seconds must be positive, got {refresh_seconds}")
        self.source = source
        self._url, self._path = _parse_source(source)
        self._anchor = anchor
        self._cache_path = Path(cache_path)
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._fetch_timeout = fetch_timeout
        self._lock = threading.Lock()
        self._current: GlobalConfiguration | None = None
        self._floor = 0  # highest version verified, expired ones included
        self._last_reached: dt.datetime | None = None
        self._subscribers: list[Subscriber] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ reading

    def current(self) -> GlobalConfiguration:
        """The held configuration; `Unavailable` if it has expired."""
        conf = self._current
        if conf is None:
            raise FailedPrecondition(
                f"no global configuration is loaded yet (source {self.source},"
                f" cache {self._cache_path})"
            )
        now = self._clock()
        if conf.is_expired(now):
            if self._last_reached is None:
                reached = "has not been reached since this server started"
            else:
                reached = f"was last reached at {self._last_reached.isoformat()}"
            raise Unavailable(
                f"global configuration version {conf.version} expired at"
                f" {conf.expires_at.isoformat()}; the authority at {self.source} {reached}"
            )
        return conf

    @property
    def last_reached(self) -> dt.datetime | None:
        """When the source last answered with bytes (valid or not); None if never."""
        return self._last_reached

    # ------------------------------------------------------------ loading

    def load_initial(self) -> GlobalConfiguration:
        """Load the cache, then try the source; fail if neither gives a valid configuration."""
        cache_problem = self._load_cache()
        try:
            self.refresh()
        except SpeanError as exc:
            if self._current is None:
                raise FailedPrecondition(
                    "no valid global configuration: the cache "
                    f"{self._cache_path} {cache_problem}, and the source {self.source}"
                    f" failed: {exc.message}"
                ) from exc
            log.warning(
                "globalconf.source_failed_using_cache",
                source=self.source,
                error=exc.message,
                version=self._current.version,
            )
        return self.current()

    def _load_cache(self) -> str:
        """Install the cached configuration if it is valid; else say what is wrong with it."""
        try:
            data = self._cache_path.read_bytes()
        except FileNotFoundError:
            return "does not exist"
        except OSError as exc:
            return f"cannot be read ({exc.strerror})"
        try:
            conf = verify_global_configuration(data, self._anchor, self._clock())
        except GlobalConfigurationExpired as exc:
            self._floor = max(self._floor, exc.version)
            log.warning("globalconf.cache_expired", path=str(self._cache_path), error=exc.message)
            return f"holds an expired configuration ({exc.message})"
        except SpeanError as exc:
            log.error("globalconf.cache_refused", path=str(self._cache_path), error=exc.message)
            return f"was refused ({exc.message})"
        with self._lock:
            self._install(conf)
        log.info(
            "globalconf.loaded_from_cache",
            path=str(self._cache_path),
            version=conf.version,
            expires_at=conf.expires_at.isoformat(),
        )
        return "was loaded"

    def refresh(self) -> bool:
        """Fetch and verify the source's configuration; True if a newer one was installed.

        Raises `Unavailable` if the source cannot be read, `Unauthenticated`
        or `InvalidArgument` if its configuration fails verification,
        `GlobalConfigurationExpired` if it has expired and
        `GlobalConfigurationRollback` if its version is lower than the one
        held. In every failure case the held configuration stays.
        """
        with self._lock:
            data = self._fetch()
            now = self._clock()
            self._last_reached = now
            try:
                conf = verify_global_configuration(data, self._anchor, now)
            except GlobalConfigurationExpired as exc:
                self._floor = max(self._floor, exc.version)
                log.warning("globalconf.source_expired", source=self.source, error=exc.message)
                raise
            except SpeanError as exc:
                log.error("globalconf.refused", source=self.source, error=exc.message)
                raise
            if conf.version < self._floor:
                log.error(
                    "globalconf.rollback_refused",
                    source=self.source,
                    offered_version=conf.version,
                    held_version=self._floor,
                )
                raise GlobalConfigurationRollback(
                    f"the source {self.source} offers global configuration version"
                    f" {conf.version}, lower than version {self._floor} already verified;"
                    " refusing the rollback and keeping the held configuration"
                )
            held = self._current
            if held is not None and conf.version == held.version:
                return False
            self._write_cache(data)
            self._install(conf)
        log.info(
            "globalconf.refreshed",
            source=self.source,
            version=conf.version,
            expires_at=conf.expires_at.isoformat(),
        )
        return True

    def _install(self, conf: GlobalConfiguration) -> None:
        # Called with the lock held: one assignment swaps the configuration.
        self._current = conf
        self._floor = max(self._floor, conf.version)
        for callback in list(self._subscribers):
            try:
                callback(conf)
            except Exception:  # boundary: a subscriber's bug must not stop refresh
                log.exception("globalconf.subscriber_failed", version=conf.version)

    def _write_cache(self, data: bytes) -> None:
        try:
            self._cache_path.parent.mkdir(parents=True, exist_ok=True)
            keyfiles.write_file_atomically(self._cache_path, data)
        except (OSError, SpeanError) as exc:
            # The new configuration is valid and is installed anyway; only the
            # restart-time copy is stale. Say so loudly.
            log.error("globalconf.cache_write_failed", path=str(self._cache_path), error=str(exc))

    def _fetch(self) -> bytes:
        if self._path is not None:
            try:
                with self._path.open("rb") as handle:
                    data = handle.read(MAX_SIGNED_BYTES + 1)
            except OSError as exc:
                raise Unavailable(
                    f"cannot read the global configuration {self._path}: {exc.strerror}"
                ) from exc
        else:
            data = self._fetch_url()
        if len(data) > MAX_SIGNED_BYTES:
            raise Unavailable(
                f"the global configuration at {self.source} is larger than {MAX_SIGNED_BYTES} bytes"
            )
        return data

    def _fetch_url(self) -> bytes:
        assert self._url is not None
        request = urllib.request.Request(  # noqa: S310 - scheme checked in _parse_source
            self._url, headers={"Accept": "application/octet-stream"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self._fetch_timeout) as response:  # noqa: S310
                data: bytes = response.read(MAX_SIGNED_BYTES + 1)
                return data
        except urllib.error.HTTPError as exc:
            exc.close()
            raise Unavailable(
                f"the federation authority at {self.source} answered HTTP {exc.code} {exc.reason}"
            ) from exc
        except urllib.error.URLError as exc:
            raise Unavailable(
                f"cannot reach the federation authority at {self.source}: {exc.reason}"
            ) from exc
        except OSError as exc:
            raise Unavailable(
                f"cannot reach the federation authority at {self.source}: {exc}"
            ) from exc

    # ------------------------------------------------------------ background

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call `callback(conf)` after every swap; returns a function that unsubscribes."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def start(self) -> None:
        """Refresh every `refresh_seconds` on a daemon thread until `stop()`."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name="spean-globalconf-refresh", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop the refresh thread and wait for it (a fetch in flight ends at its timeout)."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self._refresh_seconds):
            try:
                self.refresh()
            except SpeanError as exc:
                held = self._current
                log.warning(
                    "globalconf.refresh_failed",
                    source=self.source,
                    error=exc.message,
                    held_version=held.version if held else None,
                    expires_at=held.expires_at.isoformat() if held else None,
                )
            except Exception:  # boundary: the refresh thread must survive a bug
                log.exception("globalconf.refresh_crashed", source=self.source)


def _parse_source(source: str) -> tuple[str | None, Path | None]:
    """Split a source into (URL, None) for http(s) or (None, path) for a file."""
    parsed = urllib.parse.urlsplit(source)
    if parsed.scheme in ("http", "https"):
        if not parsed.netloc:
            raise FailedPrecondition(f"global configuration source {source!r} has no host")
        return source, None
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise FailedPrecondition(
                f"global configuration source {source!r}: file URLs must name a local path"
            )
        return None, Path(urllib.request.url2pathname(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:
        raise FailedPrecondition(
            f"global configuration source {source!r}: use a file path, file://, http:// or https://"
        )
    return None, Path(source)
