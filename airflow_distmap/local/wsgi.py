"""WSGI plumbing shared by the local endpoint's applications: request bodies and status lines."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def read_body(environ: dict[str, Any]) -> bytes:
    """The whole request body: ``Content-Length`` bytes, or a de-chunked body when it has no length.

    :param environ: the WSGI environment.
    """
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    stream = environ["wsgi.input"]
    if length > 0:
        return bytes(stream.read(length))
    # Chunked uploads carry no Content-Length; werkzeug's server de-chunks them into wsgi.input.
    if environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
        return bytes(stream.read())
    return b""


def status_line(status: int) -> str:
    """``"404 Not Found"`` for 404: the status line WSGI's ``start_response`` takes.

    :param status: the HTTP status code.
    """
    return f"{status} {HTTPStatus(status).phrase}"
