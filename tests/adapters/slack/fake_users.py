"""What users do in the fake Slack: post, mention, reply in threads, DM, delete, run slash
commands and click buttons. Each action sends the events Slack would send."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

Payload = dict[str, Any]

BOT_TOKEN = "xoxb-fake-bot-SECRET"
APP_TOKEN = "xapp-fake-app-SECRET"
TEAM, OTHER_TEAM = "T0TEAM", "T0OTHER"
APP_ID, BOT_ID, BOT_USER = "A0HERMES", "B0HERMES", "U0HERMES"
ALICE, BOB, CAROL, DAVE, ERIN = "U0ALICE", "U0BOB", "U0CAROL", "U0DAVE", "U0ERIN"
OTHER_BOT = "U0OTHERBOT"
GENERAL, RANDOM, PRIVATE = "C0GENERAL", "C0RANDOM", "G0PRIVATE"
USERS = {
    BOT_USER: "hermes",
    ALICE: "alice",
    BOB: "bob",
    CAROL: "carol",
    DAVE: "dave",
    ERIN: "erin",
    OTHER_BOT: "otherbot",
}
CHANNELS = {GENERAL: "general", RANDOM: "random", PRIVATE: "secret-plans"}


def dm_channel(user: str) -> str:
    """The DM channel between ``user`` and the bot."""
    return "D" + user[1:]


def channel_type(channel: str) -> str | None:
    """Slack's channel_type for a channel id, None for an unknown channel."""
    if channel in CHANNELS:
        return "group" if channel.startswith("G") else "channel"
    if channel.startswith("D") and "U" + channel[1:] in USERS:
        return "im"
    return None


class UserActions:
    """Mixed into FakeSlack: builds user events and delivers them over Socket Mode."""

    messages: dict[tuple[str, str], Payload]
    responses: dict[str, Payload]
    _ts: itertools.count[int]
    next_ts: Callable[[], str]
    response_url: Callable[[str], str]
    deliver: Callable[..., Awaitable[Any]]
    deliver_event: Callable[..., Awaitable[Any]]
    remove: Callable[[tuple[str, str]], Awaitable[None]]

    async def post(
        self,
        text: str,
        *,
        user: str = ALICE,
        channel: str = GENERAL,
        thread_ts: str | None = None,
        mention: bool = False,
        team: str = TEAM,
        bot: bool = False,
    ) -> Payload:
        """A user posts; a mention also arrives as ``app_mention`` (outside DMs), as in Slack."""
        if mention:
            text = f"<@{BOT_USER}> {text}"
        ts = self.next_ts()
        message: Payload = {"type": "message", "user": user, "text": text, "ts": ts, "team": team}
        if bot:
            message.update(bot_id="B0OTHER", subtype="bot_message")
        else:
            message["client_msg_id"] = str(uuid.uuid4())
        if thread_ts is not None:
            message["thread_ts"] = thread_ts
            message["parent_user_id"] = self.messages[(channel, thread_ts)]["user"]
        self.messages[(channel, ts)] = {**message, "channel": channel}
        kind = channel_type(channel)
        await self.deliver_event(
            {**message, "channel": channel, "event_ts": ts, "channel_type": kind}, team=team
        )
        if f"<@{BOT_USER}>" in text and kind != "im" and not bot:
            mention_event = {
                key: message[key]
                for key in ("user", "text", "ts", "team", "client_msg_id", "thread_ts")
                if key in message
            }
            await self.deliver_event(
                {"type": "app_mention", **mention_event, "channel": channel, "event_ts": ts},
                team=team,
            )
        return {**message, "channel": channel}

    async def dm(self, text: str, *, user: str = ALICE) -> Payload:
        """A user writes to the bot in their DM."""
        return await self.post(text, user=user, channel=dm_channel(user))

    async def delete(self, message: Payload) -> None:
        """The author deletes their message."""
        await self.remove((message["channel"], message["ts"]))

    async def slash(
        self, command: str, text: str = "", *, user: str = ALICE, channel: str = GENERAL
    ) -> Payload:
        """A user runs ``/command text``; the payload carries the response URL."""
        token = f"resp-{next(self._ts)}"
        self.responses[token] = {"channel": channel, "user": user}
        payload = {
            "token": "verification-token",
            "team_id": TEAM,
            "team_domain": "test-workspace",
            "channel_id": channel,
            "channel_name": CHANNELS.get(channel, "directmessage"),
            "user_id": user,
            "user_name": USERS[user],
            "command": command,
            "text": text,
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": self.response_url(token),
            "trigger_id": f"trigger-{token}",
        }
        await self.deliver("slash_commands", payload)
        return payload

    async def click(self, message: Payload, action_id: str, *, user: str = ALICE) -> Payload:
        """A user clicks the button ``action_id`` on one of the bot's messages."""
        button, block_id = next(
            (element, block.get("block_id", ""))
            for block in message.get("blocks") or []
            if block["type"] == "actions"
            for element in block["elements"]
            if element.get("action_id") == action_id
        )
        token = f"resp-{next(self._ts)}"
        self.responses[token] = {
            "channel": message["channel"],
            "user": user,
            "message_ts": message["ts"],
        }
        container = {
            "type": "message",
            "message_ts": message["ts"],
            "channel_id": message["channel"],
            "is_ephemeral": False,
        }
        if message.get("thread_ts"):
            container["thread_ts"] = message["thread_ts"]
        payload = {
            "type": "block_actions",
            "user": {"id": user, "username": USERS[user], "name": USERS[user], "team_id": TEAM},
            "api_app_id": APP_ID,
            "token": "verification-token",
            "container": container,
            "trigger_id": f"trigger-{token}",
            "team": {"id": TEAM, "domain": "test-workspace"},
            "channel": {"id": message["channel"], "name": CHANNELS.get(message["channel"], "")},
            "message": {k: v for k, v in message.items() if k != "channel"},
            "response_url": self.response_url(token),
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": block_id,
                    "text": button["text"],
                    "value": button.get("value", ""),
                    "type": "button",
                    "action_ts": self.next_ts(),
                }
            ],
        }
        await self.deliver("interactive", payload)
        return payload
