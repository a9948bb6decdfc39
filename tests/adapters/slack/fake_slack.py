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
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import WSCloseCode, WSMsgType, web

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
    UserActions,
    dm_channel,
)
from tests.adapters.slack.fake_web_api import Fault, Payload, WebApi

T = TypeVar("T")
MAX_RETRIES = 3  # Slack retries an event three times


@dataclass
class Call:
    """One Web API request the client made."""

    method: str
    args: Payload
    result: Payload
    at: float


@dataclass
class Connection:
    """One Socket Mode websocket."""

    ws: web.WebSocketResponse
    ticket: str
    closed: bool = False


@dataclass
class Delivery:
    """One envelope sent over Socket Mode, and its ack."""

    envelope_id: str
    kind: str
    payload: Payload
    retry_attempt: int = 0
    retry_reason: str = ""
    sent_on: Connection | None = None
    sent_at: float | None = None
    acked_at: float | None = None
    response: Payload | None = None
    redelivered: bool = False
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)


class FakeSlack(WebApi, UserActions):
    """One workspace, a few channels and users, one bot."""

    def __init__(self, *, ack_timeout: float | None = 3.0) -> None:
        self.ack_timeout = ack_timeout
        self.messages: dict[tuple[str, str], Payload] = {}
        self.thread_status = False
        self.statuses: dict[tuple[str, str], str] = {}
        self.ephemerals: list[Payload] = []
        self.faults: dict[str, Fault] = {}
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
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
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

    # -- Socket Mode ------------------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self.tickets:  # each URL from apps.connections.open works once
            self.refused_urls.append(ticket)
            return web.Response(status=401, text="invalid or already used connection URL")
        self.tickets.discard(ticket)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = Connection(ws, ticket)
        self.connections.append(conn)
        hello = {
            "type": "hello",
            "num_connections": len(self.open_connections),
            "debug_info": {"host": "fake-slack", "approximate_connection_time": 18060},
            "connection_info": {"app_id": APP_ID},
        }
        await ws.send_str(json.dumps(hello))
        pending, self._pending = self._pending, []
        for delivery in pending:
            await self._send(delivery)
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    break
                await self._ack(json.loads(msg.data))
        finally:
            conn.closed = True
            for delivery in self.deliveries:
                if delivery.sent_on is conn and delivery.acked_at is None:
                    await self._redeliver(delivery, "timeout")
        return ws

    @property
    def open_connections(self) -> list[Connection]:
        return [c for c in self.connections if not c.closed and not c.ws.closed]

    async def deliver(self, kind: str, payload: Payload, **retry: Any) -> Delivery:
        """Send an envelope (``events_api``, ``slash_commands`` or ``interactive``)."""
        delivery = Delivery(str(uuid.uuid4()), kind, payload, **retry)
        self.deliveries.append(delivery)
        await self._send(delivery)
        return delivery

    async def deliver_event(self, event: Payload, *, team: str = TEAM) -> Delivery:
        """Wrap ``event`` in an event_callback and send it."""
        number = next(self._events)
        callback = {
            "token": "verification-token",
            "team_id": team,
            "context_team_id": team,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{number:08d}",
            "event_time": 1700000000 + number,
            "authorizations": [
                {"team_id": team, "user_id": BOT_USER, "is_bot": True, "enterprise_id": None}
            ],
            "is_ext_shared_channel": False,
        }
        return await self.deliver("events_api", callback)

    async def _send(self, delivery: Delivery) -> None:
        conns = self.open_connections
        if not conns:
            self._pending.append(delivery)
            return
        conn = conns[-1]
        envelope = {
            "envelope_id": delivery.envelope_id,
            "type": delivery.kind,
            "payload": delivery.payload,
            "accepts_response_payload": delivery.kind != "events_api",
        }
        if delivery.kind == "events_api":
            envelope.update(
                retry_attempt=delivery.retry_attempt, retry_reason=delivery.retry_reason
            )
        loop = asyncio.get_running_loop()
        delivery.sent_on, delivery.sent_at = conn, loop.time()
        try:
            await conn.ws.send_str(json.dumps(envelope))
        except ConnectionError:
            conn.closed = True
            await self._send(delivery)
            return
        if self.ack_timeout is not None and delivery.kind == "events_api":
            delivery.timer = loop.call_later(
                self.ack_timeout,
                lambda: asyncio.ensure_future(self._redeliver(delivery, "timeout")),
            )

    async def _redeliver(self, delivery: Delivery, reason: str) -> None:
        """Slack's retry of an event that was not acked in time: same event, new envelope."""
        if (
            delivery.acked_at is not None
            or delivery.redelivered
            or delivery.kind != "events_api"
            or delivery.retry_attempt >= MAX_RETRIES
        ):
            return
        delivery.redelivered = True
        await self.deliver(
            "events_api",
            delivery.payload,
            retry_attempt=delivery.retry_attempt + 1,
            retry_reason=reason,
        )

    async def redeliver(self, delivery: Delivery) -> Delivery:
        """Deliver an event again now, as Slack does after a late ack."""
        await self.deliver(
            "events_api",
            delivery.payload,
            retry_attempt=delivery.retry_attempt + 1,
            retry_reason="timeout",
        )
        return self.deliveries[-1]

    async def _ack(self, frame: Payload) -> None:
        """An ack; a slash command's ack may carry a reply (shown to the user only by default)."""
        found = [d for d in self.deliveries if d.envelope_id == frame.get("envelope_id")]
        if not found or found[0].acked_at is not None:
            return
        delivery = found[0]
        delivery.acked_at = asyncio.get_running_loop().time()
        delivery.response = frame.get("payload")
        if delivery.timer is not None:
            delivery.timer.cancel()
        reply = delivery.response or {}
        if delivery.kind == "slash_commands" and (reply.get("text") or reply.get("blocks")):
            token = delivery.payload["response_url"].rsplit("/", 1)[1]
            await self.respond(token, reply)

    async def request_refresh(self, reason: str = "refresh_requested") -> Connection:
        """Send ``disconnect`` and wait for the client to open a new connection."""
        old = self.open_connections[-1]
        count = len(self.connections)
        await old.ws.send_str(json.dumps({"type": "disconnect", "reason": reason}))
        await self.wait_for(lambda: len(self.connections) > count and self.open_connections)
        if not old.ws.closed:
            await old.ws.close()
        return self.connections[-1]

    async def drop_connection(self) -> Connection:
        """Close the socket from Slack's side and wait for the client to reconnect."""
        count = len(self.connections)
        await self.open_connections[-1].ws.close(code=WSCloseCode.GOING_AWAY)
        await self.wait_for(lambda: len(self.connections) > count and self.open_connections)
        return self.connections[-1]

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

    def acks(self, kind: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.kind == kind and d.acked_at is not None]

    async def wait_for(self, predicate: Callable[[], T], timeout: float = 10.0) -> T:
        """Poll ``predicate`` until it returns something truthy."""
        async with asyncio.timeout(timeout):
            while not (result := predicate()):
                await asyncio.sleep(0.01)
        return result
