"""Files that are read again when they change on disk, such as rotated secrets."""

from __future__ import annotations

import os
from pathlib import Path

# What identifies one version of a file: a rename into place (as Kubernetes
# does when it updates a mounted secret) changes the inode, an edit in place
# changes the modification time or the size.
Stamp = tuple[tuple[int, int, int], ...]


class WatchedFiles:
    """A group of files read together, and able to tell when any of them changed."""

    def __init__(self, *paths: str) -> None:
        self.paths = tuple(Path(path) for path in paths if path)
        self._seen: Stamp | None = None

    def stamp(self) -> Stamp:
        """The current identity of every file; raises OSError when one is missing."""
        stamps = []
        for path in self.paths:
            info = os.stat(path)
            stamps.append((info.st_mtime_ns, info.st_size, info.st_ino))
        return tuple(stamps)

    def changed(self) -> bool:
        """True when the files differ from the version last marked as read."""
        try:
            return self.stamp() != self._seen
        except OSError:
            # A file is missing mid-rotation; keep what was read until it is back.
            return False

    def read(self) -> tuple[tuple[bytes, ...], Stamp]:
        """The bytes of every file and the stamp they were read under.

        Raises OSError when a file cannot be read, and ValueError when a file
        changed while it was being read.
        """
        before = self.stamp()
        contents = tuple(path.read_bytes() for path in self.paths)
        if self.stamp() != before:
            raise ValueError("files changed while being read")
        return contents, before

    def mark_read(self, stamp: Stamp) -> None:
        """Remember ``stamp`` as the version in use."""
        self._seen = stamp
