"""Append-only on-disk spool of finished children's result entries.

Finished children's entries (AWS's ``Transformation: NONE`` shape) are written here as they complete, and
only an ``(offset, length)`` pair stays in memory. The result files are then streamed from the spool in
child order, and ``DescribeExecution`` on a child reads its entry back, so a 100,000-child Map Run keeps
neither inputs nor outputs in memory.

The file descriptor is held only while the run writes (:meth:`ResultSpool.release` closes it when the run
ends), so a long-lived endpoint with thousands of finished Map Runs does not run out of descriptors.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from typing import IO

#: Write buffer of the spool file.
WRITE_BUFFER_BYTES = 1024 * 1024


class ResultSpool:
    """A temporary file of JSON entries addressed by ``(offset, length)``; thread-safe."""

    def __init__(self) -> None:
        handle, self.path = tempfile.mkstemp(prefix="distmap-spool-")
        os.close(handle)
        self._file: IO[bytes] | None = None
        self._lock = threading.Lock()
        self._end = 0
        self._dirty = False
        self._deleted = False

    def append(self, data: bytes) -> tuple[int, int]:
        """Append ``data`` and return where it is."""
        with self._lock:
            if self._file is None:
                # A large buffer: every flush is a system call that hands the GIL to the item reader thread.
                self._file = open(self.path, "a+b", buffering=WRITE_BUFFER_BYTES)  # noqa: SIM115 - until release()
            offset = self._end
            self._file.write(data)
            self._end += len(data)
            self._dirty = True
            return offset, len(data)

    def read(self, ref: tuple[int, int]) -> bytes:
        """Read back the bytes at ``ref``."""
        with self._lock:
            if self._file is not None and self._dirty:
                self._file.flush()
                self._dirty = False
            if self._file is not None:
                return os.pread(self._file.fileno(), ref[1], ref[0])
            with open(self.path, "rb") as reader:
                return os.pread(reader.fileno(), ref[1], ref[0])

    def release(self) -> None:
        """Close the descriptor (the entries stay readable; appending reopens it)."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
                self._dirty = False

    def close(self) -> None:
        """Delete the spool file."""
        self.release()
        with self._lock:
            if not self._deleted:
                self._deleted = True
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
