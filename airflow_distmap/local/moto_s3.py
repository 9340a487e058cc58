"""Stream S3 objects through moto's in-process backend without holding them whole in memory.

moto's server answers a GET (ranged or not) by reading the whole object into memory first, so a 1 GB CSV
read over HTTP would cost the endpoint more than 1 GB. The local runtime lives in the same process as
moto's S3, so its ItemReader reads the object's spooled buffer directly, in chunks, under moto's own
per-key lock.

moto also completes a multipart upload by joining every part into memory, several times over (the object,
a copy for its checksum, then ``bytes()`` of each), before spooling the result to disk: a 1 GB upload would
cost the endpoint several GB and seconds of copying. :func:`stream_multipart_completions` makes it copy the
parts into the new object's spooled buffer one after the other, with the same checks, ETag and checksums.
"""

from __future__ import annotations

import binascii
import hashlib
import importlib.util
import io
import logging
import tempfile
from collections.abc import Iterator
from typing import Any, Final

from moto import settings as moto_settings
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.s3 import models as s3_models
from moto.s3.exceptions import EntityTooSmall, InvalidPart, MalformedXML
from moto.s3.models import s3_backends

log = logging.getLogger(__name__)

_COPY_CHUNK: Final = 1 << 20


class NoSuchObject(LookupError):
    """Raised when the bucket or the key does not exist.

    :param code: S3's error code (``NoSuchBucket``, ``NoSuchKey``).
    :param message: S3's message.
    """

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


def backend_holding(bucket: str, account_id: str = DEFAULT_ACCOUNT_ID) -> Any | None:
    """The moto S3 backend that holds ``bucket``, or ``None``.

    moto keeps one backend per partition and files a bucket under its region's (``aws-cn`` for a bucket made
    in ``cn-north-1``), so each backend made so far is asked.

    :param bucket: bucket name.
    :param account_id: moto account holding the bucket (moto's default for test credentials).
    """
    for backend in list(s3_backends[account_id].values()):
        if bucket in backend.buckets:
            return backend
    return None


def bucket_region(bucket: str, account_id: str = DEFAULT_ACCOUNT_ID) -> str | None:
    """The Region of ``bucket`` in moto's backend; ``None`` when it holds no such bucket.

    :param bucket: bucket name.
    :param account_id: moto account holding the bucket (moto's default for test credentials).
    """
    backend = backend_holding(bucket, account_id)
    return None if backend is None else str(backend.buckets[bucket].region_name)


def open_object(bucket: str, key: str, account_id: str = DEFAULT_ACCOUNT_ID) -> tuple[io.BufferedReader, str]:
    """Open ``s3://bucket/key`` from moto's backend as a buffered binary stream; return it and the ETag.

    :param bucket: bucket name.
    :param key: object key.
    :param account_id: moto account holding the bucket (moto's default for test credentials).
    :raises NoSuchObject: with S3's ``NoSuchBucket`` or ``NoSuchKey`` code.
    """
    backend = backend_holding(bucket, account_id)
    if backend is None:
        raise NoSuchObject("NoSuchBucket", f"The specified bucket does not exist: {bucket}")
    fake_key = backend.get_object(bucket, key)
    if fake_key is None:
        raise NoSuchObject("NoSuchKey", f"The specified key does not exist: s3://{bucket}/{key}")
    return io.BufferedReader(_SpooledObjectReader(fake_key), buffer_size=1 << 20), str(fake_key.etag)


class _JoinedParts:
    """A completed multipart upload's bytes, copied part by part into a spooled file (memory, then disk).

    moto closes the parts' buffers once ``complete`` returns, so the copy is made there; the new ``FakeKey``
    then takes this buffer as its own (see :func:`_set_value`).
    """

    def __init__(self) -> None:
        # Owned by the new FakeKey once moto creates it (closed by its dispose()), hence no context manager.
        self.buffer = tempfile.SpooledTemporaryFile(  # noqa: SIM115
            max_size=moto_settings.get_s3_default_key_buffer_size()
        )
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def append(self, part: Any, checksum: _StreamedChecksum | None) -> None:
        """Copy one part's bytes, a chunk at a time."""
        source = part._value_buffer
        source.seek(0)
        for chunk in iter(lambda: source.read(_COPY_CHUNK), b""):
            self.buffer.write(chunk)
            self.size += len(chunk)
            if checksum is not None:
                checksum.update(chunk)


class _StreamedChecksum:
    """The FULL_OBJECT checksum moto gives the joined parts (base64), computed as they stream by.

    moto's ``compute_checksum`` uses CRC32 for CRC64NVME without ``awscrt`` and for CRC32C without ``crc32c``,
    and SHA-256 for a name it does not know. Where it would use one of those libraries, :attr:`possible` is
    false and moto's own checksum builder hashes the parts.
    """

    def __init__(self, algorithm: str) -> None:
        from moto.core.compat import HAS_CRT

        crc_fallback = (algorithm == "CRC64NVME" and not HAS_CRT) or (
            algorithm == "CRC32C" and importlib.util.find_spec("crc32c") is None
        )
        self._crc: int | None = 0 if algorithm == "CRC32" or crc_fallback else None
        self._hash: Any = None
        if self._crc is None and algorithm not in ("CRC32C", "CRC64NVME"):
            self._hash = hashlib.sha1() if algorithm == "SHA1" else hashlib.sha256()

    @property
    def possible(self) -> bool:
        return self._crc is not None or self._hash is not None

    def update(self, chunk: bytes) -> None:
        if self._crc is not None:
            self._crc = binascii.crc32(chunk, self._crc)
        elif self._hash is not None:
            self._hash.update(chunk)

    def value(self) -> str:
        digest = self._crc.to_bytes(4, "big") if self._crc is not None else self._hash.digest()
        return binascii.b2a_base64(digest, newline=False).decode()


def _complete(self: Any, body: Iterator[tuple[int, str]]) -> tuple[Any, str, tuple[str, str, int] | None]:
    """``FakeMultipart.complete`` without joining the parts in memory: moto's checks, ETag and checksums."""
    builder = s3_models.MultipartChecksumBuilder(
        self.metadata.get("x-amz-checksum-algorithm"), self.metadata.get("x-amz-checksum-type")
    )
    md5s = bytearray()
    parts: list[Any] = []
    for number, etag in body:
        part = self.parts.get(number)
        if part is None or part.etag.replace('"', "") != etag.replace('"', ""):
            raise InvalidPart()
        if parts and parts[-1].contentsize < moto_settings.S3_UPLOAD_PART_MIN_SIZE:
            raise EntityTooSmall()
        md5s.extend(bytes.fromhex(part.etag.replace('"', "")))
        parts.append(part)
    if not parts:
        raise MalformedXML
    streamed = _StreamedChecksum(builder.checksum_algorithm) if builder.checksum_type != "COMPOSITE" else None
    if streamed is not None and not streamed.possible:
        streamed = None
    joined = _JoinedParts()
    for part in parts:
        with part.lock:
            joined.append(part, streamed)
        if streamed is None:
            builder.addPart(part.value)  # a composite checksum needs one part in memory at a time
    checksum = builder.build() if streamed is None else (builder.checksum_type, streamed.value(), 1)
    etag = f"{hashlib.md5(bytes(md5s), usedforsecurity=False).hexdigest()}-{len(parts)}"
    return joined, etag, checksum


def _set_value(self: Any, new_value: Any) -> None:
    """``FakeKey.value``'s setter; a :class:`_JoinedParts` becomes the key's buffer as it is."""
    if not isinstance(new_value, _JoinedParts):
        _ORIGINAL_VALUE_SETTER(self, new_value)
        return
    self._value_buffer.close()
    self._value_buffer = new_value.buffer
    self.contentsize = new_value.size


_VALUE_PROPERTY: Final[Any] = s3_models.FakeKey.__dict__.get("value")
_ORIGINAL_VALUE_SETTER: Final[Any] = getattr(_VALUE_PROPERTY, "fset", None)


def _moto_has_what_this_replaces() -> bool:
    """Whether this moto's internals are those :func:`_complete` mirrors (moto 5.1 and 5.2)."""
    import importlib.util

    return (
        importlib.util.find_spec("moto.core.compat") is not None
        and hasattr(s3_models, "MultipartChecksumBuilder")
        and isinstance(_VALUE_PROPERTY, property)
        and _ORIGINAL_VALUE_SETTER is not None
    )


def stream_multipart_completions() -> None:
    """Make moto complete multipart uploads without joining the parts in memory (idempotent, process-wide).

    The resulting object, ETag and checksums are those moto computes itself (tests compare them). With a
    moto whose internals differ, its own completion is left in place.
    """
    if s3_models.FakeMultipart.complete is _complete:
        return
    if not _moto_has_what_this_replaces():
        log.info("This moto version completes multipart uploads its own way: they are joined in memory")
        return
    s3_models.FakeMultipart.complete = _complete  # type: ignore[method-assign]
    s3_models.FakeKey.value = _VALUE_PROPERTY.setter(_set_value)  # type: ignore[method-assign,assignment]
    log.debug("moto completes multipart uploads by streaming their parts")
