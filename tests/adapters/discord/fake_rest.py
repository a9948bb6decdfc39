"""The fake Discord's REST routes: login, messages, reactions, typing, interactions, commands."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

from tests.adapters.discord import fake_payloads as p
from tests.adapters.discord.fake_users import APP_ID, OWNER_ID


class RestRoutes:
    """Mixed into FakeDiscord: answers one REST call (None = no such route, 204 = no body)."""

    bot_user: p.Payload
    messages: dict[int, p.Payload]
    commands: dict[str, list[p.Payload]]
    followups: dict[str, list[int]]
    reactions: dict[int, list[str]]
    nonces: dict[str, p.Payload]
    _ids: itertools.count[int]
    _interactions: dict[str, p.Payload]
    created_threads: list[p.Payload]

    gateway_url: str
    guild_of: Callable[[int], int | None]
    dispatch: Callable[[str, p.Payload], Awaitable[None]]

    def _route(self, method: str, parts: list[str], body: p.Payload) -> Any:
        match method, parts:
            case "GET", ["users", "@me"]:
                return self.bot_user
            case "GET", ["oauth2", "applications", "@me"]:
                return {
                    "id": str(APP_ID),
                    "name": "Hermes",
                    "description": "",
                    "icon": None,
                    "bot_public": True,
                    "bot_require_code_grant": False,
                    "flags": 0,
                    "owner": p.user(OWNER_ID, "owner"),
                    "verify_key": "00",
                    "team": None,
                }
            case "GET", ["gateway", *_]:
                return {
                    "url": self.gateway_url,
                    "shards": 1,
                    "session_start_limit": {
                        "total": 1000,
                        "remaining": 1000,
                        "reset_after": 0,
                        "max_concurrency": 1,
                    },
                }
            case "POST", ["channels", channel, "typing"]:
                return 204
            case "POST", ["channels", channel, "messages"]:
                return self.create_message(int(channel), body)
            case "POST", ["channels", channel, "messages", message_id, "threads"]:
                return self.create_thread(int(channel), int(message_id), body)
            case "PATCH", ["channels", _, "messages", message_id]:
                return self._edit(int(message_id), body)
            case "PUT", ["channels", _, "messages", message_id, "reactions", emoji, "@me"]:
                self.reactions.setdefault(int(message_id), []).append(emoji)
                return 204
            case "DELETE", ["channels", _, "messages", message_id]:
                self.messages.pop(int(message_id), None)
                return 204
            case "PUT", ["applications", _, *scope, "commands"]:
                key = scope[1] if scope else "global"
                self.commands[key] = [
                    {
                        **c,
                        "id": str(next(self._ids)),
                        "application_id": str(APP_ID),
                        "version": "1",
                        "default_member_permissions": None,
                        "type": c.get("type", 1),
                    }
                    for c in body
                ]  # type: ignore[union-attr]
                return self.commands[key]
            case "POST", ["interactions", interaction_id, token, "callback"]:
                return self._callback(interaction_id, token, body)
            case "POST", ["webhooks", _, token]:
                channel = int(self._interactions[token]["channel_id"])
                created = self.create_message(channel, body, webhook=True)
                self.followups.setdefault(token, []).append(int(created["id"]))
                return created
            case "PATCH", ["webhooks", _, _, "messages", message_id] if message_id != "@original":
                return self._edit(int(message_id), body)
            case "DELETE", ["webhooks", _, _, "messages", message_id]:
                self.messages.pop(int(message_id), None)
                return 204
        return None

    def create_message(
        self, channel_id: int, body: p.Payload, *, webhook: bool = False
    ) -> p.Payload:
        """Store a message written by the bot (as REST would) and return its payload.

        Like Discord with ``enforce_nonce``, a repeated nonce returns the first message.
        """
        nonce = body.get("nonce") if body.get("enforce_nonce") else None
        if nonce is not None and nonce in self.nonces:
            return self.nonces[nonce]
        guild_id = self.guild_of(channel_id)
        referenced = None
        if body.get("message_reference"):
            referenced = self.messages.get(int(body["message_reference"]["message_id"]))
        data = p.message(
            next(self._ids),
            channel_id,
            self.bot_user,
            body.get("content") or "",
            guild_id=guild_id,
            embeds=body.get("embeds"),
            components=body.get("components"),
            referenced=referenced,
            flags=body.get("flags") or 0,
        )
        if webhook:
            data["webhook_id"] = str(APP_ID)
        self.messages[int(data["id"])] = data
        if nonce is not None:
            self.nonces[nonce] = data
        return data

    def create_thread(self, channel_id: int, message_id: int, body: p.Payload) -> p.Payload:
        """A thread the bot opens from a message; THREAD_CREATE follows on the gateway."""
        guild_id = self.guild_of(channel_id)
        # A thread started from a message has the message's id.
        thread = p.thread(message_id, guild_id or 0, channel_id, body["name"], APP_ID)
        guild = next(g for g in self.guilds if g["id"] == str(guild_id))
        guild["threads"].append(thread)
        self.created_threads.append(thread)
        asyncio.get_running_loop().create_task(
            self.dispatch("THREAD_CREATE", {**thread, "newly_created": True})
        )
        return thread

    def _edit(self, message_id: int, body: p.Payload) -> p.Payload | int:
        data = self.messages.get(message_id)
        if data is None:
            return 404
        for key in ("content", "embeds", "components"):
            if key in body:
                data[key] = body[key] if body[key] is not None else ([] if key != "content" else "")
        data["edited_timestamp"] = p.TIMESTAMP
        return data

    def _callback(self, interaction_id: str, token: str, body: p.Payload) -> p.Payload:
        kind = body["type"]
        flags = (body.get("data") or {}).get("flags") or 0
        interaction = self._interactions[token]
        resource: p.Payload = {"type": kind}
        if kind == 4:
            resource["message"] = self.create_message(
                int(interaction["channel_id"]), body["data"], webhook=True
            )
        return {
            "interaction": {
                "id": interaction_id,
                "type": interaction["type"],
                "response_message_loading": kind == 5,
                "response_message_ephemeral": bool(flags & 64),
            },
            "resource": resource,
        }
