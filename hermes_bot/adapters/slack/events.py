"""Slack events: mentions answered in a thread, thread follow-ups, DMs, deletions.

Slack delivers a mention twice (``message`` and ``app_mention``) and redelivers
an event whose ack came late, so each user message is answered once, keyed by
its channel and timestamp. Messages from bots (the bot's own included) are
ignored. In a thread or anywhere else, ``@bot /reset`` (and the other slash
commands) does what the slash command does, since Slack has none in threads.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from hermes_bot.adapters.gate import Origin, Verdict
from hermes_bot.adapters.slack.commands import (
    REFUSAL,
    Command,
    conversation_key,
    parse_command,
)
from hermes_bot.adapters.slack.mrkdwn import to_plain
from hermes_bot.adapters.slack.streaming import DELIVERY_ERRORS
from hermes_bot.conversation import Context, Speaker

if TYPE_CHECKING:
    from hermes_bot.adapters.slack.app import SlackBot

_log = logging.getLogger(__name__)

COOLDOWN_REACTION = "hourglass_flowing_sand"
_ANSWERED_SUBTYPES = {None, "thread_broadcast", "file_share"}
_REMEMBERED = 10_000
_USER_IDS = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


class Bounded(OrderedDict[Any, None]):
    """A set that forgets its oldest entries past ``_REMEMBERED``."""

    def first_time(self, item: Any) -> bool:
        """Add ``item``; False if it was already there."""
        if item in self:
            return False
        self[item] = None
        while len(self) > _REMEMBERED:
            self.popitem(last=False)
        return True


class MessageEvents:
    """Decides which messages are for the bot and answers them."""

    def __init__(self, bot: SlackBot) -> None:
        self.bot = bot
        self.seen = Bounded()  # (channel, ts) of messages already taken
        self.threads = Bounded()  # (channel, thread_ts) the bot takes part in
        self._names: dict[str, str] = {}

    async def on_event(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        """Every ``message`` and ``app_mention`` event (all subtypes, so each is acked)."""
        subtype = event.get("subtype")
        if subtype == "message_deleted":
            source = (event.get("channel", ""), event.get("deleted_ts", ""))
            if self.bot.responder.withdraw(source):
                _log.info("message %s was deleted; its answer was withdrawn", source)
            return
        if subtype not in _ANSWERED_SUBTYPES or event.get("bot_id") or not event.get("user"):
            return
        channel, ts = event.get("channel", ""), event.get("ts", "")
        thread_ts = event.get("thread_ts")
        dm = event.get("channel_type") == "im" or channel.startswith("D")
        text = event.get("text", "")
        mentioned = f"<@{self.bot.user_id}>" in text
        # A follow-up in the bot's thread, unless it is addressed to someone else.
        followup = (
            thread_ts is not None
            and (channel, thread_ts) in self.threads
            and not _USER_IDS.search(text)
        )
        if not (dm or mentioned or followup):
            return
        if not self.seen.first_time((channel, ts)):
            _log.debug("skipping a repeated delivery of %s/%s", channel, ts)
            return
        await self._take(event, body.get("team_id") or event.get("team", ""), dm, dm or mentioned)

    async def _take(self, event: dict[str, Any], team: str, dm: bool, explicit: bool) -> None:
        """Answer ``event``; ``explicit``: the user addressed the bot (a DM or a mention)."""
        channel, ts, user = event["channel"], event["ts"], event["user"]
        reply_thread = event.get("thread_ts") or (None if dm else ts)
        origin = Origin(user, team, (channel,))
        if not explicit and not self.bot.gate.allows(origin):
            return  # chatter in a thread, from someone the bot may not answer
        if not await self._admitted(origin, channel, ts, reply_thread):
            return
        if reply_thread is not None:
            self.threads.first_time((channel, reply_thread))
        key = conversation_key(team, channel, reply_thread, dm=dm)
        text = await self.prompt_text(event.get("text", ""))
        command = parse_command(text)
        if command is not None and await self._run_command(
            command, key, channel, user, reply_thread
        ):
            return
        writer = self.bot.writer(channel, reply_thread)
        forced = command.forced_tool if command else None
        prompt = command.prompt if command else text
        speaker = Speaker(f"slack:{user}", await self.name_of(user))
        context = Context("slack", "dm" if dm else "thread", speaker, (channel,))
        await self.bot.responder.answer(
            key, prompt, writer, context=context, forced_tool=forced, source=(channel, ts)
        )

    async def _admitted(self, origin: Origin, channel: str, ts: str, thread_ts: str | None) -> bool:
        """The gate: a refusal or cooldown notice only the user sees, or a reaction."""
        gate = self.bot.gate
        if not gate.allows(origin):
            self.bot.pipeline.telemetry.refused("slack", "refused")
            await self.bot.ephemeral(channel, str(origin.user), REFUSAL, thread_ts)
            return False
        decision = gate.admit(origin.user)
        if decision.verdict is Verdict.ANSWER:
            return True
        self.bot.pipeline.telemetry.refused("slack", "cooldown")
        if decision.verdict is Verdict.COOLDOWN_NOTICE:
            notice = gate.cooldown_notice(decision.retry_after)
            await self.bot.ephemeral(channel, str(origin.user), notice, thread_ts)
        else:
            try:
                await self.bot.client.reactions_add(
                    channel=channel, timestamp=ts, name=COOLDOWN_REACTION
                )
            except DELIVERY_ERRORS as error:
                _log.warning("could not mark a rate-limited message: %r", error)
        return False

    async def _run_command(
        self, command: Command, key: str, channel: str, user: str, thread_ts: str | None
    ) -> bool:
        """``@bot /reset``, ``/status`` and bad usage answered privately; True if handled."""
        if command.usage is not None:
            await self.bot.ephemeral(channel, user, command.usage, thread_ts)
            return True
        if command.name in ("reset", "forget-me"):
            notice = await self.bot.forget(command.name, key, user)
            await self.bot.ephemeral(channel, user, notice, thread_ts)
            return True
        if command.name == "status":
            status = await self.bot.status(key)
            await self.bot.ephemeral(channel, user, status.text, thread_ts, blocks=status.blocks)
            return True
        return False

    async def prompt_text(self, text: str) -> str:
        """The message as the model sees it: the bot's mention removed, others as names."""
        text = text.replace(f"<@{self.bot.user_id}>", "").strip()
        for user_id in set(_USER_IDS.findall(text)):
            await self.name_of(user_id)
        return to_plain(text, lambda user_id: self._names.get(user_id, "someone"))

    async def name_of(self, user_id: str) -> str:
        """The user's display name (looked up once), or "someone"."""
        if user_id not in self._names:
            try:
                info = await self.bot.client.users_info(user=user_id)
                profile = info["user"].get("profile", {})
                name = profile.get("display_name") or info["user"].get("name") or "someone"
            except DELIVERY_ERRORS:
                name = "someone"
            self._names[user_id] = name
        return self._names[user_id]
