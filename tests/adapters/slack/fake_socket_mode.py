"""The fake Slack's Socket Mode side: connections, envelopes, acks and Slack's retries."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from tests.adapters.slack.fake_users import APP_ID, BOT_USER, TEAM, Payload

MAX_RETRIES = 3  # Slack retries an event three times


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


class SocketMode:
    """Mixed into FakeSlack: the websocket, envelope delivery, acks and redelivery."""

    ack_timeout: float | None
    tickets: set[str]
    deliveries: list[Delivery]
    connections: list[Connection]
    refused_urls: list[str]
    _pending: list[Delivery]
    _events: itertools.count[int]
    respond: Callable[[str, Payload], Awaitable[tuple[int, Payload]]]
    wait_for: Callable[..., Awaitable[Any]]

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

    def acks(self, kind: str) -> list[Delivery]:
        """The envelopes of ``kind`` acked so far."""
        return [d for d in self.deliveries if d.kind == kind and d.acked_at is not None]
