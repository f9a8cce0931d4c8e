"""Reading request bodies safely: at most ``max_bytes``, within ``timeout`` seconds.

The whole body is read before the application sees the request (bodies here are small
JSON documents), so an oversized body is refused with 413 without being parsed, and a
client that trickles its body byte by byte is cut off with 408 instead of holding a
worker.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from securelogin.domain.errors import InvalidRequestError


def refuse_nul_in_address(request: Request) -> None:
    """No path or query parameter may hold a NUL character (none can be stored; see
    ``schemas.Body`` for bodies): refused as ``invalid_request`` naming the parameter."""
    for name, value in (*request.path_params.items(), *request.query_params.multi_items()):
        if "\x00" in str(value):
            raise InvalidRequestError(f"The field {name} holds a NUL character.", field=name)


class BodyTooLargeError(Exception):
    pass


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int, timeout: float = 10.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _refuse(send, 413, "payload_too_large", "The request body is too large.")
            return
        try:
            body = await asyncio.wait_for(self._read(receive), self.timeout)
        except BodyTooLargeError:
            await _refuse(send, 413, "payload_too_large", "The request body is too large.")
            return
        except TimeoutError:
            await _refuse(send, 408, "request_timeout", "The request body did not arrive in time.")
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise BodyTooLargeError()
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


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
