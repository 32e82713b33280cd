"""ASGI middleware: request ids, body size limit, defensive response headers."""

from __future__ import annotations

import json
import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backup_api import logcontext
from backup_api.exceptions import PayloadTooLarge

#: An incoming ``X-Request-ID`` kept as the request's id (a proxy's or a client's, to find
#: the request in both logs); anything else is replaced by one of ours, so that a header
#: cannot put quotes, spaces or a novel into the log lines.
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def request_id_of(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            incoming = bytes(value).decode("latin-1")
            if _REQUEST_ID.fullmatch(incoming):
                return incoming
            break
    return uuid.uuid4().hex


def _context(scope: Scope, request_id: str) -> logcontext.LogContext:
    client = scope.get("client")
    app = scope.get("app")
    # The service's state exists once the lifespan ran; its audit writer stores the
    # request's audit entries.
    state = getattr(getattr(app, "state", None), "backup_api", None)
    return logcontext.LogContext(
        request_id=request_id,
        client=client[0] if client else None,
        audit=getattr(state, "audit", None),
    )


def _replay(chunks: list[bytes], final: Message | None, upstream: Receive | None = None) -> Receive:
    """A ``receive`` that hands out the buffered body, then defers to ``upstream``."""
    pending: list[Message] = [
        {"type": "http.request", "body": b"".join(chunks), "more_body": False}
    ]
    if final is not None:
        pending = [final]

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        if upstream is not None:
            return await upstream()
        return {"type": "http.disconnect"}

    return receive


class RequestGuardMiddleware:
    """Caps request bodies (declared or streamed) and tags every response."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        token = logcontext.enter(_context(scope, request_id))
        try:
            await self._guarded(scope, receive, send, request_id)
        finally:
            logcontext.leave(token)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        limit = self.max_body_bytes
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = limit + 1
                if declared > limit:
                    await self._reject(send, request_id)
                    return

        # Bodies here are small JSON documents: read them whole (bounded), then replay, so an
        # oversized body is refused before any handler runs.
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([], message), send)
                return
            body = message.get("body", b"")
            received += len(body)
            if received > limit:
                await self._reject(send, request_id)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break

        async def tagged_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                headers.append((b"x-content-type-options", b"nosniff"))
                # API answers are never cached; a route may allow it (Swagger UI's assets).
                if not any(name.lower() == b"cache-control" for name, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, _replay(chunks, None, receive), tagged_send)

    @staticmethod
    async def _reject(send: Send, request_id: str) -> None:
        body = json.dumps({"error": PayloadTooLarge().message}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": PayloadTooLarge.status_code,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-request-id", request_id.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
