"""An OpenAI-compatible endpoint that misbehaves on purpose (fault injection only).

It answers ``/v1/models`` like a healthy server, so the bot keeps it in
rotation, and then fails every completion in one way: an HTTP error, a hang,
or a stream that closes after its first event. Real answers come from the
real servers; this only stands in for a broken one.
"""

from __future__ import annotations

import asyncio
import json
from typing import Literal

from aiohttp import web

from tests.loopback import serve_on_loopback

Fault = Literal["error", "hang", "cut"]


class FaultyServer:
    """``await FaultyServer("hang").start()``; ``url`` ends in /v1."""

    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        self.completions = 0
        self._release = asyncio.Event()
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/completions", self._complete)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        self.url = ""

    async def start(self) -> FaultyServer:
        port = await serve_on_loopback(self._runner)
        self.url = f"http://127.0.0.1:{port}/v1"
        return self

    async def close(self) -> None:
        self._release.set()
        await self._runner.cleanup()

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "m", "owned_by": "vllm"}]})

    async def _complete(self, request: web.Request) -> web.StreamResponse:
        self.completions += 1
        if self.fault == "error":
            return web.json_response({"error": {"message": "CUDA error: device lost"}}, status=500)
        if self.fault == "hang":
            await self._release.wait()
            return web.json_response({}, status=500)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        chunk = {"choices": [{"index": 0, "text": "Half an ans", "finish_reason": None}]}
        await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await asyncio.sleep(0.05)
        assert request.transport is not None
        request.transport.close()  # the connection drops: no finish, no [DONE]
        return response
