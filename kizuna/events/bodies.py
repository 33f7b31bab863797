"""Request bodies read with a bound: the public web service never holds more than it accepts."""

from __future__ import annotations

from fastapi import Request


class BodyTooLarge(Exception):
    """The body passed the limit (declared or as read)."""


def declared_too_large(request: Request, limit: int) -> bool:
    """Whether the request's Content-Length (if any) is over `limit`: refused without reading."""
    length = request.headers.get("content-length", "")
    return length.isascii() and length.isdigit() and int(length) > limit


async def read_bounded(request: Request, limit: int) -> bytes:
    """The raw body, read as a stream; raises BodyTooLarge as soon as it passes `limit` bytes.

    A declared Content-Length over the limit is refused before reading anything; a chunked
    body (no length) is cut off by what has arrived, so at most `limit` bytes plus one chunk
    (the server's read buffer, 64 KiB) are ever held. The rest is never read.
    """
    if declared_too_large(request, limit):
        raise BodyTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge
    return bytes(body)
