"""Reading request bodies safely: at most ``max_bytes``, within ``timeout`` seconds.

The whole body is read before the application sees the request (bodies here are small
JSON documents), so an oversized body is refused with 413 without being parsed, and a
client that trickles its body byte by byte is cut off with 408 instead of holding a
worker (web/app.py's ``EdgeMiddleware`` calls ``read_whole_body`` for every request).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from securelogin.domain.errors import InvalidRequestError


async def refuse_nul_in_address(request: Request) -> None:
    """No path or query parameter may hold a NUL character (none can be stored; see
    ``schemas.Body`` for bodies): refused as ``invalid_request`` naming the parameter.
    A coroutine, so that FastAPI calls it on the event loop instead of a worker thread."""
    for name, value in (*request.path_params.items(), *request.query_params.multi_items()):
        if "\x00" in str(value):
            raise InvalidRequestError(f"The field {name} holds a NUL character.", field=name)


class BodyTooLargeError(Exception):
    pass


class ClientGoneError(Exception):
    """The client closed its connection before its request's body was whole: the request
    is not acted on (a form cut short could otherwise be a login with half a password,
    counted against the user), and there is nobody to answer."""


async def read_whole_body(
    scope: Scope, receive: Receive, send: Send, *, max_bytes: int, timeout: float
) -> bytes | None:
    """The request body, read whole, at most ``max_bytes`` within ``timeout`` seconds; or
    None when it was refused (413 or 408 already sent, the connection to be closed).
    ``ClientGoneError`` when the client left before the body was whole (nothing sent)."""
    declared = _declared_length(scope)
    if declared is not None and declared > max_bytes:
        await _refuse(send, 413, "payload_too_large", "The request body is too large.")
        return None
    try:
        async with asyncio.timeout(timeout):
            return await _read(receive, max_bytes)
    except BodyTooLargeError:
        await _refuse(send, 413, "payload_too_large", "The request body is too large.")
    except TimeoutError:
        await _refuse(send, 408, "request_timeout", "The request body did not arrive in time.")
    return None


async def _read(receive: Receive, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGoneError()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLargeError()
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def replaying(body: bytes, receive: Receive) -> Receive:
    """``receive`` for the app: the body already read, then whatever comes next."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send, status: int, code: str, message: str) -> None:
    payload: dict[str, Any] = {"error": {"code": code, "message": message}}
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
