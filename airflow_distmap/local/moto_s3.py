"""Stream S3 objects straight out of moto's in-process backend.

moto's server answers a GET (ranged or not) by reading the whole object into memory first, so a 1 GB CSV
read over HTTP would cost the endpoint more than 1 GB. The local runtime lives in the same process as
moto's S3, so its ItemReader reads the object's spooled buffer directly, in chunks, under moto's own
per-key lock. Only reads go this way; writes use the S3 API like any client.
"""

from __future__ import annotations

import io
from typing import Any

from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends


class NoSuchObject(LookupError):
    """Raised when the bucket or the key does not exist; ``code`` is S3's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _SpooledObjectReader(io.RawIOBase):
    """A read-only raw stream over a moto ``FakeKey`` buffer that never loads it whole."""

    def __init__(self, fake_key: Any) -> None:
        self._key = fake_key
        self._position = 0
        self.size = int(fake_key.size)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        with self._key.lock:
            spooled = self._key._value_buffer
            spooled.seek(self._position)
            count = int(spooled.readinto(view))
        self._position += count
        return count


def open_object(bucket: str, key: str, account_id: str = DEFAULT_ACCOUNT_ID) -> io.BufferedReader:
    """Open ``s3://bucket/key`` from moto's backend as a buffered binary stream.

    :param bucket: bucket name.
    :param key: object key.
    :param account_id: moto account holding the bucket (moto's default for test credentials).
    :raises NoSuchObject: with S3's ``NoSuchBucket`` or ``NoSuchKey`` code.
    """
    backend = s3_backends[account_id]["aws"]
    if bucket not in backend.buckets:
        raise NoSuchObject("NoSuchBucket", f"The specified bucket does not exist: {bucket}")
    fake_key = backend.get_object(bucket, key)
    if fake_key is None:
        raise NoSuchObject("NoSuchKey", f"The specified key does not exist: s3://{bucket}/{key}")
    return io.BufferedReader(_SpooledObjectReader(fake_key), buffer_size=1 << 20)
