"""A loopback fake Slack: Web API over HTTP and Socket Mode over a websocket, port 0.

The unmodified slack_bolt / slack_sdk clients connect to it. It behaves like
Slack where bots usually break: a mention arrives twice (``message`` and
``app_mention``); an event not acked within ``ack_timeout`` (or whose socket
closed before the ack) is delivered again with ``retry_attempt``; connection
URLs from ``apps.connections.open`` work once; it can send ``disconnect``, drop
the socket, answer 429 with Retry-After, and refuses messages over Block Kit's
limits with ``invalid_blocks``. Everything the bot did is recorded.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from aiohttp import web

from tests.adapters.slack.fake_socket_mode import Connection, Delivery, SocketMode
from tests.adapters.slack.fake_users import (  # noqa: F401  (re-exported ids)
    ALICE,
    APP_ID,
    APP_TOKEN,
    BOB,
    BOT_ID,
    BOT_TOKEN,
    BOT_USER,
    CAROL,
    DAVE,
    ERIN,
    GENERAL,
    OTHER_BOT,
    OTHER_TEAM,
    PRIVATE,
    RANDOM,
    TEAM,
    Payload,
    UserActions,
    dm_channel,
)
from tests.adapters.slack.fake_web_api import Fault, WebApi
from tests.loopback import serve_on_loopback

T = TypeVar("T")


@dataclass
class Call:
    """One Web API request the client made."""

    method: str
    args: Payload
    result: Payload
    at: float


class FakeSlack(WebApi, SocketMode, UserActions):
    """One workspace, a few channels and users, one bot."""

    def __init__(self, *, ack_timeout: float | None = 3.0) -> None:
        self.ack_timeout = ack_timeout
        self.messages: dict[tuple[str, str], Payload] = {}
        self.thread_status = False
        self.statuses: dict[tuple[str, str], str] = {}
        self.ephemerals: list[Payload] = []
        self.faults: dict[str, Fault] = {}
        self.holds: dict[str, asyncio.Event] = {}
        self.tickets: set[str] = set()
        self.responses: dict[str, Payload] = {}
        self.calls: list[Call] = []
        self.deliveries: list[Delivery] = []
        self.connections: list[Connection] = []
        self.refused_urls: list[str] = []
        self._pending: list[Delivery] = []
        self._ts = itertools.count(1)
        self._events = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> FakeSlack:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/response/{token}", self._response)
        app.router.add_get("/link/", self._socket)
        self._runner = web.AppRunner(app, handle_signals=False)
        self.port = await serve_on_loopback(self._runner)
        return self

    async def close(self) -> None:
        for delivery in self.deliveries:
            if delivery.timer is not None:
                delivery.timer.cancel()
        for conn in self.connections:
            await conn.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def socket_url(self, ticket: str) -> str:
        return f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}&app_id={APP_ID}"

    def response_url(self, token: str) -> str:
        return f"http://127.0.0.1:{self.port}/response/{token}"

    # -- Web API ----------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        args: Payload = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                args.update(await request.json())
            else:
                args.update(await request.post())
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth else args.pop("token", None)
        method = request.match_info["method"]
        status, result = await self.call(method, args, token)
        self.calls.append(Call(method, args, result, asyncio.get_running_loop().time()))
        if method in self.holds:
            await self.holds[method].wait()
        headers = {"Retry-After": str(result["retry_after"])} if status == 429 else None
        return web.json_response(result, status=status, headers=headers)

    async def _response(self, request: web.Request) -> web.Response:
        body = await request.json()
        status, result = await self.respond(request.match_info["token"], body)
        self.calls.append(Call("response_url", body, result, asyncio.get_running_loop().time()))
        return web.json_response(result, status=status)

    def fail(
        self, method: str, error: str = "ratelimited", *, times: int = 1, retry_after: int = 1
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail (``ratelimited`` = 429 + Retry-After)."""
        self.faults[method] = Fault(error, times, retry_after)

    def hold(self, method: str) -> asyncio.Event:
        """Done at once, but answered only once the returned event is set (a slow network)."""
        return self.holds.setdefault(method, asyncio.Event())

    # -- what users see ---------------------------------------------------------------------

    def api(self, method: str) -> list[Call]:
        """The Web API calls of ``method`` made so far."""
        return [c for c in self.calls if c.method == method]

    def bot_messages(self, channel: str, thread_ts: str | None = None) -> list[Payload]:
        """The bot's messages in ``channel`` (in one thread when given) as they look now."""
        return [
            m
            for (ch, _ts), m in sorted(self.messages.items())
            if ch == channel
            and m.get("bot_id") == BOT_ID
            and (thread_ts is None or m.get("thread_ts") == thread_ts)
        ]

    def ephemerals_for(self, user: str) -> list[Payload]:
        """Messages only ``user`` saw."""
        return [e for e in self.ephemerals if e.get("user") == user]

    async def wait_for(self, predicate: Callable[[], T], timeout: float = 10.0) -> T:
        """Poll ``predicate`` until it returns something truthy."""
        async with asyncio.timeout(timeout):
            while not (result := predicate()):
                await asyncio.sleep(0.01)
        return result
