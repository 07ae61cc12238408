"""Hot reload: load a changed catalog beside the one in force and swap it in whole.

A reload is asked for by SIGHUP or found by polling the catalog files' size,
modification time and inode every few seconds. Polling needs no dependency
and sees Kubernetes ConfigMap updates, which replace a symlink rather than
write the file a watcher would be watching. The new catalog is loaded and
validated completely before the pipeline's tagger is replaced by one
assignment, so a request uses one catalog from its first record to its last.
An invalid catalog is refused with one log line and the old one keeps serving.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from typing import Protocol

from falco_risk.catalog import Catalog, catalog_files, load_catalog
from falco_risk.errors import CatalogError
from falco_risk.tagger import Tagger
from falco_risk.telemetry import Telemetry

logger = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL_SECONDS = 5.0

Stamp = tuple[tuple[str, int, int, int], ...]


class TaggerHolder(Protocol):
    """Anything that serves requests with a ``tagger`` (the pipeline)."""

    @property
    def tagger(self) -> Tagger:
        """The tagger serving new requests."""
        ...

    def use_catalog(self, catalog: Catalog) -> None:
        """Serve the next requests with ``catalog``; those in flight keep theirs."""
        ...


class CatalogReloader:
    """Reloads the catalog when asked or when its files change, and swaps the tagger."""

    def __init__(
        self,
        paths: Sequence[str],
        holder: TaggerHolder,
        interval: float = DEFAULT_POLL_INTERVAL_SECONDS,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.paths = tuple(paths)
        self.holder = holder
        self.interval = interval
        self.telemetry = telemetry
        self.generation = 1
        self._stamp = _stamp(self.paths)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def version(self) -> str:
        """The content hash of the catalog in force."""
        return self.holder.tagger.catalog.version

    def request(self) -> None:
        """Ask for a reload soon; safe to call from a signal handler."""
        self._wake.set()

    def reload(self) -> bool:
        """Load the catalog again and swap it in; False when it was refused or unchanged."""
        with self._lock:
            self._stamp = _stamp(self.paths)
            try:
                catalog = load_catalog(self.paths)
            except CatalogError as exc:
                logger.error(
                    "catalog reload refused, still serving catalog %s: %s", self.version, exc
                )
                self._count("refused")
                return False
            if catalog.version == self.version:
                logger.info("catalog reload: files unchanged (catalog %s)", catalog.version)
                return False

            previous = self.version
            self.holder.use_catalog(catalog)
            self.generation += 1
            self._count("loaded")
            logger.info(
                "catalog reloaded: %s -> %s, %d detection(s), %d enabled",
                previous,
                catalog.version,
                len(catalog.detections),
                len(catalog.enabled),
            )
            return True

    def start(self) -> None:
        """Watch for requests and file changes on a background thread."""
        self._thread = threading.Thread(target=self._run, name="catalog-reload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def _run(self) -> None:
        while not self._stopping.is_set():
            asked = self._wake.wait(self.interval if self.interval > 0 else None)
            self._wake.clear()
            if self._stopping.is_set():
                return
            if asked or _stamp(self.paths) != self._stamp:
                try:
                    self.reload()
                except Exception:
                    # A reload must never take the watcher down with it.
                    logger.exception(
                        "catalog reload failed; still serving catalog %s", self.version
                    )

    def _count(self, result: str) -> None:
        if self.telemetry is not None:
            self.telemetry.catalog_reloads.add(1, {"result": result})


def _stamp(paths: Sequence[str]) -> Stamp:
    """What the catalog files look like now, to notice a change cheaply."""
    stamp = []
    for path in catalog_files(paths):
        try:
            info = os.stat(path)
        except OSError:
            stamp.append((str(path), -1, -1, -1))
            continue
        stamp.append((str(path), info.st_mtime_ns, info.st_size, info.st_ino))
    return tuple(stamp)
