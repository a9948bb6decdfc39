"""Slash commands and the joke card's buttons.

Every command is acked at once (Slack allows 3 s): refusals, usage, cooldowns,
``/reset`` and ``/status`` ride on the ack, which Slack shows only to the user;
``/joke``, ``/song``, ``/book`` and ``/chat`` are then answered in the channel,
streamed like any answer (or through the response URL where the bot may not post).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond

from hermes_bot.adapters.gate import Origin, Verdict
from hermes_bot.adapters.slack.blocks import FOLLOW_UP, REVEAL, reply_messages
from hermes_bot.adapters.slack.commands import (
    REFUSAL,
    Command,
    build_command,
    command_names,
    conversation_key,
)
from hermes_bot.adapters.slack.mrkdwn import escape
from hermes_bot.adapters.slack.streaming import DELIVERY_ERRORS
from hermes_bot.conversation import Context, Speaker
from hermes_bot.tools import SPECS

if TYPE_CHECKING:
    from slack_bolt.app.async_app import AsyncApp

    from hermes_bot.adapters.slack.app import SlackBot

_log = logging.getLogger(__name__)

GONE = "That button belongs to a tool this bot no longer has."


class Interactions:
    """The bot's slash commands and buttons."""

    def __init__(self, bot: SlackBot) -> None:
        self.bot = bot

    def register(self, app: AsyncApp) -> None:
        for name in command_names():
            app.command(f"/{name}")(self.on_command)
        app.action(REVEAL)(self.on_reveal)
        app.action(re.compile(f"^{re.escape(FOLLOW_UP)}"))(self.on_follow_up)

    def _refusal(self, origin: Origin) -> str | None:
        """Why ``origin`` is not answered now (allow lists, then the rate limit), or None."""
        gate = self.bot.gate
        if not gate.allows(origin):
            self.bot.pipeline.telemetry.refused("slack", "refused")
            return REFUSAL
        decision = gate.admit(origin.user)
        if decision.verdict is Verdict.ANSWER:
            return None
        self.bot.pipeline.telemetry.refused("slack", "cooldown")
        return gate.cooldown_notice(decision.retry_after)

    async def on_command(
        self, ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond
    ) -> None:
        """Every command: one per tool (``/joke``, ``/song``, ...), ``/chat``, ``/reset``,
        ``/status``."""
        name = command["command"].lstrip("/")
        parsed = build_command(name, command.get("text", ""))
        team, channel, user = command["team_id"], command["channel_id"], command["user_id"]
        origin = Origin(user, team, (channel,))
        key = conversation_key(team, channel, None, dm=channel.startswith("D"))
        if parsed is None or parsed.usage is not None:
            await ack(text=parsed.usage if parsed else f"Unknown command /{name}.")
            return
        if not self.bot.gate.allows(origin):
            await ack(text=REFUSAL)
            return
        if name in ("reset", "forget-me"):
            await ack(text=await self.bot.forget(name, key, user))
            return
        if name == "status":
            status = await self.bot.status(key)
            await ack(text=status.text, blocks=status.blocks)
            return
        refusal = self._refusal(origin)
        if refusal is not None:
            await ack(text=refusal)
            return
        await ack()
        speaker = Speaker(f"slack:{user}", await self.bot.events.name_of(user))
        asked = escape(f"/{name} {command.get('text', '')}".strip())
        preamble = f"*{asked}* · asked by {escape(speaker.name)}"
        await self._answer(parsed, key, channel, None, respond, speaker, preamble=preamble)

    async def _answer(
        self,
        command: Command,
        key: str,
        channel: str,
        thread_ts: str | None,
        respond: AsyncRespond,
        speaker: Speaker,
        *,
        preamble: str | None = None,
    ) -> None:
        writer = self.bot.writer(channel, thread_ts, preamble=preamble)
        kind = "dm" if channel.startswith("D") else "thread" if thread_ts else "channel"
        context = Context("slack", kind, speaker, (channel,))
        reply = await self.bot.responder.answer(
            key, command.prompt, writer, context=context, forced_tool=command.forced_tool
        )
        if reply is not None or writer.timestamps:
            return
        # The bot may not post here (not a member, someone else's DM): use the response URL.
        _log.info("answering /%s in %s through its response URL", command.name, channel)
        reply = await self.bot.pipeline.respond(
            key, command.prompt, context=context, forced_tool=command.forced_tool
        )
        for message in reply_messages(reply):
            try:
                await respond(
                    response_type="in_channel", replace_original=False, **message.payload()
                )
            except DELIVERY_ERRORS as error:
                _log.error("could not answer /%s in %s: %r", command.name, channel, error)
                return

    async def on_reveal(self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        """The "Show answer" button: a card's secret (a joke's punchline), only to the clicker."""
        await ack()
        answer = body["actions"][0].get("value", "")
        await respond(
            text=f"*Answer:* {escape(answer)}", response_type="ephemeral", replace_original=False
        )

    async def on_follow_up(
        self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond
    ) -> None:
        """A card's follow-up ("Another one"): the same tool again, in the same conversation."""
        await ack()
        action = body["actions"][0]
        spec = SPECS.get(action["action_id"].removeprefix(FOLLOW_UP))
        if spec is None or spec.follow_up is None:
            await respond(text=GONE, response_type="ephemeral", replace_original=False)
            return
        container = body.get("container", {})
        channel = container.get("channel_id") or body["channel"]["id"]
        thread_ts = container.get("thread_ts")
        team, user = body["team"]["id"], body["user"]["id"]
        refusal = self._refusal(Origin(user, team, (channel,)))
        if refusal is not None:
            await respond(text=refusal, response_type="ephemeral", replace_original=False)
            return
        key = conversation_key(team, channel, thread_ts, dm=channel.startswith("D"))
        command = Command(spec.command, spec.follow_up.prompt, spec.name)
        speaker = Speaker(f"slack:{user}", await self.bot.events.name_of(user))
        await self._answer(command, key, channel, thread_ts, respond, speaker)
