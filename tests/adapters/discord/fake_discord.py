"""A loopback fake Discord: REST (aiohttp) and gateway websocket on 127.0.0.1, port 0.

The unmodified discord.py client logs into it. It speaks the gateway's
HELLO / IDENTIFY / READY / GUILD_CREATE / HEARTBEAT / RESUME / RECONNECT,
serves the REST routes the bot uses, and records every REST call with its
JSON payload so tests can assert what users see.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import WSMsgType, web

from hermes_bot.config import DiscordSettings
from tests.adapters.discord import fake_payloads as p
from tests.adapters.discord.fake_faults import DROP_AFTER, Fault, apply, drop
from tests.adapters.discord.fake_rest import RestRoutes
from tests.adapters.discord.fake_users import (  # noqa: F401  (re-exported ids)
    ALICE,
    APP_ID,
    ATTACHMENT_LIMIT,
    BOB,
    BOT_ID,
    CAROL,
    GENERAL_ID,
    GUILD_ID,
    MEMBER_ROLE,
    OTHER_CHANNEL_ID,
    OTHER_GUILD_ID,
    OWNER_ID,
    RANDOM_ID,
    THREAD_ID,
    VIP_ROLE,
    UserActions,
)
from tests.loopback import serve_on_loopback

T = TypeVar("T")
TOKEN = "fake-bot-token.SECRET"


@dataclass
class Call:
    """One REST request the client made."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    authorization: str | None
    at: float


def _json(data: Any, status: int = 200) -> web.Response:
    # discord.py only decodes bodies whose content-type is exactly "application/json".
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"}
    )


class FakeDiscord(RestRoutes, UserActions):
    """One bot, two guilds, a few channels, users and roles."""

    def __init__(self, *, heartbeat_interval_ms: int = 41_250) -> None:
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.bot_user = p.user(BOT_ID, "Hermes", bot=True)
        self.calls: list[Call] = []
        self.messages: dict[int, p.Payload] = {}
        self.commands: dict[str, list[p.Payload]] = {}
        self.identifies: list[p.Payload] = []
        self.resumes: list[p.Payload] = []
        self.heartbeats = 0
        self.gateway_queries: list[dict[str, str]] = []
        self.ready = asyncio.Event()
        self._ids = itertools.count(100_000)
        self._interactions: dict[str, p.Payload] = {}
        self.followups: dict[str, list[int]] = {}
        self.created_threads: list[p.Payload] = []
        self.reactions: dict[int, list[str]] = {}
        self.faults: list[Fault] = []
        self.nonces: dict[str, p.Payload] = {}
        self.turns_finished = 0
        self._ws: web.WebSocketResponse | None = None
        self._session_id: str | None = None
        self._seq = 0
        self._backlog: list[p.Payload] = []
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.guilds = [
            self._guild(GUILD_ID, "Test Guild", [GENERAL_ID, RANDOM_ID], THREAD_ID),
            self._guild(OTHER_GUILD_ID, "Other Guild", [OTHER_CHANNEL_ID], None),
        ]

    def _guild(
        self, guild_id: int, name: str, channels: list[int], thread_id: int | None
    ) -> p.Payload:
        names = {GENERAL_ID: "general", RANDOM_ID: "random", OTHER_CHANNEL_ID: "lobby"}
        threads = (
            []
            if thread_id is None
            else [p.thread(thread_id, guild_id, channels[0], "a-thread", OWNER_ID)]
        )
        roles = [
            p.role(guild_id, "@everyone"),
            p.role(MEMBER_ROLE, "member", 1),
            p.role(VIP_ROLE, "vip", 2),
        ]
        return p.guild(
            guild_id,
            name,
            owner_id=OWNER_ID,
            threads=threads,
            roles=roles,
            channels=[p.text_channel(cid, guild_id, names[cid]) for cid in channels],
            members=[p.member(self.bot_user)],
        )

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> FakeDiscord:
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/api/v10/{path:.*}", self._rest)
        self._runner = web.AppRunner(app, handle_signals=False)
        self.port = await serve_on_loopback(self._runner)
        return self

    async def close(self) -> None:
        for fault in self.faults:
            fault.release.set()
        if self._ws is not None:
            await self._ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    def settings(self, **overrides: Any) -> DiscordSettings:
        """The bot's [discord] section pointed at this fake (token and streaming interval set)."""
        values: dict[str, Any] = {"token": TOKEN, "stream_edit_interval": 0.2, **overrides}
        return DiscordSettings(
            api_base_url=self.api_base_url, gateway_url=self.gateway_url, **values
        )

    # -- gateway ----------------------------------------------------------------------------

    async def _send(self, ws: web.WebSocketResponse, frame: p.Payload) -> None:
        await ws.send_str(json.dumps(frame))  # text frames, no compression

    async def dispatch(self, event: str, data: p.Payload) -> None:
        """Send a DISPATCH event; kept for replay when the client is reconnecting."""
        self._seq += 1
        frame = {"op": 0, "t": event, "s": self._seq, "d": data}
        self._backlog.append(frame)
        if self._ws is not None and not self._ws.closed:
            await self._send(self._ws, frame)

    async def send_op(self, op: int, data: Any = None) -> None:
        """Send a non-dispatch opcode (7 = RECONNECT); the connection is then considered gone."""
        ws, self._ws = self._ws, None
        assert ws is not None, "no gateway connection"
        await self._send(ws, {"op": op, "d": data})

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.gateway_queries.append(dict(request.query))
        await self._send(ws, {"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval_ms}})
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                break
            frame = json.loads(msg.data)
            if frame["op"] == 1:
                self.heartbeats += 1
                await self._send(ws, {"op": 11})
            elif frame["op"] == 2:
                await self._identify(ws, frame["d"])
            elif frame["op"] == 6:
                await self._resume(ws, frame["d"])
        if self._ws is ws:
            self._ws = None
        return ws

    async def _identify(self, ws: web.WebSocketResponse, data: p.Payload) -> None:
        self.identifies.append(data)
        if data.get("token") != TOKEN:
            await ws.close(code=4004, message=b"Authentication failed.")
            return
        self._ws, self._backlog = ws, []
        self._session_id = f"session-{len(self.identifies)}"
        user = {**self.bot_user, "verified": True, "mfa_enabled": False, "flags": 0}
        await self.dispatch(
            "READY",
            {
                "v": 10,
                "user": user,
                "session_id": self._session_id,
                "resume_gateway_url": self.gateway_url,
                "guilds": [{"id": g["id"], "unavailable": True} for g in self.guilds],
                "application": {"id": str(APP_ID), "flags": 0},
                # A sharded client's IDENTIFY names its shard; READY echoes it.
                **({"shard": data["shard"]} if "shard" in data else {}),
            },
        )
        for guild in self.guilds:
            await self.dispatch("GUILD_CREATE", guild)
        self.ready.set()

    async def _resume(self, ws: web.WebSocketResponse, data: p.Payload) -> None:
        self.resumes.append(data)
        if data.get("session_id") != self._session_id or data.get("token") != TOKEN:
            await self._send(ws, {"op": 9, "d": False})
            return
        self._ws = ws
        for frame in [f for f in self._backlog if f["s"] > (data.get("seq") or 0)]:
            await self._send(ws, frame)
        await self.dispatch("RESUMED", {})

    # -- REST -------------------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["path"]
        body = await request.json() if request.can_read_body else None
        auth = request.headers.get("Authorization")
        loop = asyncio.get_running_loop()
        self.calls.append(Call(request.method, path, dict(request.query), body, auth, loop.time()))
        parts = path.strip("/").split("/")
        fault = next((f for f in self.faults if f.matches(request.method, parts)), None)
        if fault is not None and (response := await apply(fault, request)) is not None:
            return response
        webhook = parts[0] in ("interactions", "webhooks")
        if not webhook and auth != f"Bot {TOKEN}":
            return _json({"message": "401: Unauthorized", "code": 0}, 401)
        result = self._route(request.method, parts, body or {})
        if fault is not None and fault.status == DROP_AFTER:
            drop(request)
        if result is None:
            return _json({"message": f"no fake route for {request.method} {path}", "code": 0}, 404)
        if result == 204:
            return web.Response(status=204)
        if result == 404:
            return _json({"message": "Unknown Message", "code": 10008}, 404)
        return _json(result)

    def fail(self, method: str, *prefix: str, **options: Any) -> Fault:
        """Make the next matching REST call(s) fail; see :class:`Fault` for the options."""
        fault = Fault(method, prefix, **options)
        self.faults.append(fault)
        return fault

    # -- what users see ---------------------------------------------------------------------

    def turn_finished(self) -> None:
        """Called by the test harness each time the bot finished a turn (answer or notice)."""
        self.turns_finished += 1

    async def final_messages(
        self, channel_id: int, *, turns: int = 1, timeout: float = 10.0
    ) -> list[p.Payload]:
        """The bot's messages in ``channel_id`` once it has finished ``turns`` turns in all."""
        await self.wait_for(lambda: self.turns_finished >= turns, timeout)
        return self.bot_messages(channel_id)

    def requests(self, method: str, *prefix: str) -> list[Call]:
        """Calls with ``method`` whose path starts with the given segments ("*" matches any)."""

        def matches(call: Call) -> bool:
            parts = call.path.strip("/").split("/")
            return (
                call.method == method
                and len(parts) >= len(prefix)
                and all(want in ("*", have) for want, have in zip(prefix, parts, strict=False))
            )

        return [call for call in self.calls if matches(call)]

    def bot_messages(self, channel_id: int) -> list[p.Payload]:
        """The bot's messages in ``channel_id`` as they look now, oldest first."""
        return [
            m
            for m in self.messages.values()
            if m["channel_id"] == str(channel_id) and m["author"]["id"] == str(BOT_ID)
        ]

    def followup_messages(self, interaction: p.Payload) -> list[p.Payload]:
        """The follow-up messages of one interaction as they look now."""
        ids = self.followups.get(interaction["token"], [])
        return [self.messages[i] for i in ids if i in self.messages]

    def interaction_calls(self, interaction: p.Payload) -> list[Call]:
        """The callback and follow-ups of one interaction, in order."""
        return [c for c in self.calls if interaction["token"] in c.path]

    async def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0) -> T:
        """Poll ``predicate`` until it returns something truthy."""
        async with asyncio.timeout(timeout):
            while not (result := predicate()):
                await asyncio.sleep(0.01)
        return result
