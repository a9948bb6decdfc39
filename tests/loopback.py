"""Start an aiohttp application on a free loopback port, as every fake server in the tests does."""

from __future__ import annotations

from aiohttp import web


async def serve_on_loopback(runner: web.AppRunner) -> int:
    """Set the runner up, listen on 127.0.0.1 at a port the OS picks, and return that port."""
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
