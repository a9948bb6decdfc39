"""The fake Slack's Web API methods and response URLs, with Slack's errors and limits."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tests.adapters.slack.block_kit import check_message
from tests.adapters.slack.fake_users import (
    APP_ID,
    APP_TOKEN,
    BOT_ID,
    BOT_TOKEN,
    BOT_USER,
    TEAM,
    USERS,
    Payload,
    channel_type,
)


@dataclass
class Fault:
    """The next ``times`` calls of a method fail with ``error`` (``ratelimited``: HTTP 429)."""

    error: str
    times: int
    retry_after: int = 1


class WebApi:
    """Mixed into FakeSlack: answers one Web API call as ``(status, headers, body)``."""

    messages: dict[tuple[str, str], Payload]
    thread_status: bool
    statuses: dict[tuple[str, str], str]
    ephemerals: list[Payload]
    faults: dict[str, Fault]
    tickets: set[str]
    responses: dict[str, Payload]
    _ts: itertools.count[int]
    socket_url: Callable[[str], str]
    deliver_event: Callable[..., Awaitable[Any]]

    def next_ts(self) -> str:
        return f"1700000000.{next(self._ts):06d}"

    async def call(self, method: str, args: Payload, token: str | None) -> tuple[int, Payload]:
        fault = self.faults.get(method)
        if fault is not None and fault.times > 0:
            fault.times -= 1
            if fault.error == "ratelimited":
                return 429, {"ok": False, "error": "ratelimited", "retry_after": fault.retry_after}
            return 200, {"ok": False, "error": fault.error}
        if method == "apps.connections.open":
            if token != APP_TOKEN:
                error = "not_allowed_token_type" if token == BOT_TOKEN else "invalid_auth"
                return 200, {"ok": False, "error": error}
            ticket = f"ticket-{next(self._ts)}"
            self.tickets.add(ticket)
            return 200, {"ok": True, "url": self.socket_url(ticket)}
        if token != BOT_TOKEN:
            error = "not_allowed_token_type" if token == APP_TOKEN else "invalid_auth"
            return 200, {"ok": False, "error": error}
        handler = _METHODS.get(method)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}
        return 200, await handler(self, args)

    # -- methods ----------------------------------------------------------------------------

    async def _auth_test(self, _args: Payload) -> Payload:
        return {
            "ok": True,
            "url": "https://fake-workspace.example/",
            "team": "Test Workspace",
            "user": "hermes",
            "team_id": TEAM,
            "user_id": BOT_USER,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    async def _users_info(self, args: Payload) -> Payload:
        name = USERS.get(args.get("user", ""))
        if name is None:
            return {"ok": False, "error": "user_not_found"}
        profile = {"display_name": name.title(), "real_name": f"{name.title()} Example"}
        return {"ok": True, "user": {"id": args["user"], "name": name, "profile": profile}}

    async def _post_message(self, args: Payload) -> Payload:
        channel = args.get("channel")
        if not channel or channel_type(channel) is None:
            return {"ok": False, "error": "channel_not_found"}
        error = check_message(args.get("text"), args.get("blocks"))
        if error is not None:
            return error
        message = await self.post_as_bot(channel, args)
        return {"ok": True, "channel": channel, "ts": message["ts"], "message": message}

    async def post_as_bot(self, channel: str, args: Payload) -> Payload:
        """Store a message the bot wrote and send its ``message`` event, as Slack does."""
        ts = self.next_ts()
        message = {
            "type": "message",
            "user": BOT_USER,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "text": args.get("text") or "",
            "blocks": args.get("blocks") or [],
            "ts": ts,
            "team": TEAM,
        }
        if args.get("thread_ts"):
            message["thread_ts"] = args["thread_ts"]
            self.statuses.pop((channel, args["thread_ts"]), None)  # a reply clears the status
        self.messages[(channel, ts)] = {**message, "channel": channel}
        await self.deliver_event(
            {**message, "channel": channel, "event_ts": ts, "channel_type": channel_type(channel)}
        )
        return message

    async def _update(self, args: Payload) -> Payload:
        key = (args.get("channel", ""), args.get("ts", ""))
        message = self.messages.get(key)
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        if message.get("bot_id") != BOT_ID:
            return {"ok": False, "error": "cant_update_message"}
        error = check_message(args.get("text"), args.get("blocks"))
        if error is not None:
            return error
        previous = dict(message)
        message.update(text=args.get("text") or "", blocks=args.get("blocks") or [])
        message["edited"] = {"user": BOT_USER, "ts": self.next_ts()}
        await self._changed(key[0], "message_changed", message=message, previous_message=previous)
        return {"ok": True, "channel": key[0], "ts": key[1], "text": message["text"]}

    async def _delete(self, args: Payload) -> Payload:
        key = (args.get("channel", ""), args.get("ts", ""))
        message = self.messages.get(key)
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        if message.get("bot_id") != BOT_ID:
            return {"ok": False, "error": "cant_delete_message"}
        await self.remove(key)
        return {"ok": True, "channel": key[0], "ts": key[1]}

    async def remove(self, key: tuple[str, str]) -> None:
        """Delete a message and send the ``message_deleted`` event."""
        previous = self.messages.pop(key)
        await self._changed(key[0], "message_deleted", deleted_ts=key[1], previous_message=previous)

    async def _changed(self, channel: str, subtype: str, **fields: Any) -> None:
        ts = self.next_ts()
        event = {"type": "message", "subtype": subtype, "hidden": True, "channel": channel}
        event.update(ts=ts, event_ts=ts, channel_type=channel_type(channel), **fields)
        await self.deliver_event(event)

    async def _post_ephemeral(self, args: Payload) -> Payload:
        channel, user = args.get("channel"), args.get("user")
        if not channel or channel_type(channel) is None:
            return {"ok": False, "error": "channel_not_found"}
        if user not in USERS:
            return {"ok": False, "error": "user_not_in_channel"}
        error = check_message(args.get("text"), args.get("blocks"))
        if error is not None:
            return error
        ts = self.next_ts()
        self.ephemerals.append({**args, "ts": ts})
        return {"ok": True, "message_ts": ts}

    async def _reactions_add(self, args: Payload) -> Payload:
        message = self.messages.get((args.get("channel", ""), args.get("timestamp", "")))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        reactions = message.setdefault("reactions", [])
        if args.get("name") in reactions:
            return {"ok": False, "error": "already_reacted"}
        reactions.append(args.get("name"))
        return {"ok": True}

    async def _set_status(self, args: Payload) -> Payload:
        """The "is thinking…" indicator; refused where the workspace lacks it (the default)."""
        if not self.thread_status:
            return {"ok": False, "error": "missing_scope", "needed": "assistant:write"}
        key = (args.get("channel_id", ""), args.get("thread_ts", ""))
        if key not in self.messages:
            return {"ok": False, "error": "invalid_thread_ts"}
        if args.get("status"):
            self.statuses[key] = args["status"]
        else:
            self.statuses.pop(key, None)
        return {"ok": True}

    # -- response URLs (slash commands and buttons) -----------------------------------------

    async def respond(self, token: str, body: Payload) -> tuple[int, Payload]:
        """A POST to a response URL: ephemeral, in the channel, or replacing the original."""
        origin = self.responses.get(token)
        if origin is None:
            return 404, {"ok": False, "error": "expired_url"}
        if body.get("delete_original"):
            key = (origin["channel"], origin.get("message_ts", ""))
            if key in self.messages:
                await self.remove(key)
            return 200, {"ok": True}
        error = check_message(body.get("text"), body.get("blocks"))
        if error is not None:
            return 400, error
        if body.get("replace_original") and origin.get("message_ts"):
            key = (origin["channel"], origin["message_ts"])
            if key in self.messages:
                self.messages[key].update(text=body.get("text") or "", blocks=body.get("blocks"))
            return 200, {"ok": True}
        if body.get("response_type") == "in_channel":
            await self.post_as_bot(origin["channel"], body)
        else:
            self.ephemerals.append({**body, "channel": origin["channel"], "user": origin["user"]})
        return 200, {"ok": True}


_METHODS: dict[str, Callable[[WebApi, Payload], Awaitable[Payload]]] = {
    "auth.test": WebApi._auth_test,
    "users.info": WebApi._users_info,
    "chat.postMessage": WebApi._post_message,
    "chat.update": WebApi._update,
    "chat.delete": WebApi._delete,
    "chat.postEphemeral": WebApi._post_ephemeral,
    "reactions.add": WebApi._reactions_add,
    "assistant.threads.setStatus": WebApi._set_status,
}
