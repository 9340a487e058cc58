"""Append-only on-disk spool of finished children's result entries.

Finished children's entries (AWS's ``Transformation: NONE`` shape) are written here as they complete,
and only an ``(offset, length)`` pair stays in memory. The result files are then streamed from the spool in
child order, and ``DescribeExecution`` on a child reads its entry back, so a 100,000-child Map Run keeps
neither inputs nor outputs in memory.
"""

from __future__ import annotations

import os
import tempfile
import threading


class ResultSpool:
    """A temporary file of JSON entries addressed by ``(offset, length)``; thread-safe."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix="distmap-spool-")  # noqa: SIM115 - lives as long as the run
        self._lock = threading.Lock()
        self._end = 0
        self._dirty = False

    def append(self, data: bytes) -> tuple[int, int]:
        """Append ``data`` and return where it is."""
        with self._lock:
            offset = self._end
            self._file.write(data)
            self._end += len(data)
            self._dirty = True
            return offset, len(data)

    def read(self, ref: tuple[int, int]) -> bytes:
        """Read back the bytes at ``ref``."""
        with self._lock:
            if self._dirty:
                self._file.flush()
                self._dirty = False
            return os.pread(self._file.fileno(), ref[1], ref[0])

    def close(self) -> None:
        """Delete the spool file."""
        with self._lock:
            self._file.close()
