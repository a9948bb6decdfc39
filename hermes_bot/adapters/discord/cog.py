"""Discord events and commands: mentions, DMs, configured channels and the slash commands."""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import time
from collections.abc import Awaitable, Callable
from functools import partial

import discord
from discord import app_commands
from discord.ext import commands

from hermes_bot.adapters.discord.embeds import FollowUpView, make_embed, status_embed
from hermes_bot.adapters.discord.mapping import context_of, conversation_key, make_gate, origin_of
from hermes_bot.adapters.discord.responder import Responder
from hermes_bot.adapters.discord.streaming import (
    DELIVERY_ERRORS,
    NO_MENTIONS,
    ReplyWriter,
    Send,
    followup_send,
    keep_typing,
)
from hermes_bot.adapters.gate import Decision, Origin, Verdict
from hermes_bot.config import Settings
from hermes_bot.errors import StorageError
from hermes_bot.pipeline import Pipeline
from hermes_bot.tools import SPECS, ToolSpec

_log = logging.getLogger(__name__)

COOLDOWN_REACTION = "⏳"
REFUSAL = "Sorry, I'm not enabled for you here. Ask a server admin if you think I should be."
_USER_MENTION = re.compile(r"<@!?(\d+)>")


class ChatCog(commands.Cog):
    """Answers messages and slash commands through the pipeline."""

    def __init__(self, bot: commands.Bot, pipeline: Pipeline, settings: Settings) -> None:
        self.bot = bot
        self.pipeline = pipeline
        self.settings = settings.discord
        self.gate = make_gate(settings.discord)
        self.responder = Responder(pipeline)
        self.telemetry = pipeline.telemetry
        self.started = time.monotonic()

    async def cog_load(self) -> None:
        """Add a slash command per registered tool, and handle follow-up clicks on cards whose
        view expired or predates a restart."""
        for spec in SPECS.values():
            self.bot.tree.add_command(self._tool_command(spec))
            if spec.follow_up is not None:
                self.bot.add_view(FollowUpView(spec, self.follow_up, timeout=None))

    # -- messages ---------------------------------------------------------------------------

    def _mentions_me(self, message: discord.Message) -> bool:
        me = self.bot.user
        return me is not None and any(user.id == me.id for user in message.mentions)

    def _replied_to_me(self, message: discord.Message) -> discord.Message | None:
        me = self.bot.user
        resolved = message.reference.resolved if message.reference else None
        if isinstance(resolved, discord.Message) and me is not None and resolved.author.id == me.id:
            return resolved
        return None

    def _addressed(self, message: discord.Message) -> bool:
        if message.guild is None or self._mentions_me(message) or self._replied_to_me(message):
            return True
        channel_ids = {message.channel.id, getattr(message.channel, "parent_id", None)}
        in_respond_in = any(cid in self.settings.respond_in for cid in channel_ids)
        return in_respond_in or not self.settings.require_mention or self._my_thread(message)

    def _my_thread(self, message: discord.Message) -> bool:
        """A thread the bot opened for a conversation (``auto_thread``)."""
        me = self.bot.user
        channel = message.channel
        return (
            self.settings.auto_thread
            and isinstance(channel, discord.Thread)
            and me is not None
            and channel.owner_id == me.id
        )

    async def _open_thread(self, message: discord.Message, text: str) -> discord.Thread | None:
        """With ``auto_thread``, a new thread for a mention that starts a conversation."""
        if not (
            self.settings.auto_thread
            and not self.responder.closing
            and isinstance(message.channel, discord.TextChannel)
            and self._replied_to_me(message) is None
        ):
            return None
        name = " ".join(text.split())[:90] or f"Chat with {message.author.display_name}"
        try:
            return await message.create_thread(name=name)
        except DELIVERY_ERRORS as error:
            _log.warning("could not open a thread in %s: %r", message.channel.id, error)
            return None

    def _prompt_text(self, message: discord.Message) -> str:
        """The message text with the bot's mention removed and other mentions as names."""
        me_id = self.bot.user.id if self.bot.user else 0
        names = {user.id: user.display_name for user in message.mentions}

        def replace(match: re.Match[str]) -> str:
            user_id = int(match.group(1))
            return "" if user_id == me_id else f"@{names.get(user_id, 'someone')}"

        return _USER_MENTION.sub(replace, message.content).strip()

    def _message_key(self, message: discord.Message) -> str:
        replied = self._replied_to_me(message)
        known = self.responder.key_of(replied.id) if replied is not None else None
        guild_id = message.guild.id if message.guild else None
        return known or conversation_key(guild_id, message.channel.id, message.author.id)

    async def _owner_command(self, message: discord.Message) -> bool:
        ctx = await self.bot.get_context(message)
        return ctx.valid and await self.bot.is_owner(message.author)

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        """Answer a mention, a DM, a reply to the bot, or any message in a respond_in channel."""
        if message.author.bot or not self._addressed(message):
            return
        origin = origin_of(
            message.author,
            message.guild.id if message.guild else None,
            message.channel,
            message.channel.id,
        )
        if not self.gate.allows(origin):
            _log.debug("ignoring message %s: not allowed", message.id)
            self.telemetry.refused("discord", "refused")
            return
        if await self._owner_command(message):
            return
        decision = self.gate.admit(message.author.id)
        reference = message.to_reference(fail_if_not_exists=False)
        if decision.verdict is not Verdict.ANSWER:
            self.telemetry.refused("discord", "cooldown")
            await self._cool_down(message, decision)
            return
        with self.responder.preparing():  # accepted: shutdown waits for its answer or notice
            await self._answer(message, reference)

    async def _answer(self, message: discord.Message, reference: discord.MessageReference) -> None:
        text = self._prompt_text(message)
        guild_id = message.guild.id if message.guild else None
        channel: discord.abc.Messageable = message.channel
        send_first: Send = partial(channel.send, reference=reference)
        key = self._message_key(message)
        thread = await self._open_thread(message, text)
        if thread is not None:
            channel, send_first = thread, thread.send
            key = conversation_key(guild_id, thread.id, message.author.id)
        writer = ReplyWriter(
            send_first,
            channel.send,
            interval=self.settings.stream_edit_interval,
            on_again=self.follow_up,
        )
        context = context_of(message.author, guild_id, channel)
        typing = asyncio.create_task(keep_typing(channel), name="discord-typing")
        try:
            await self.responder.answer(key, text, writer, context=context, source_id=message.id)
        finally:
            typing.cancel()

    async def _cool_down(self, message: discord.Message, decision: Decision) -> None:
        """Tell a rate-limited user once per window; mark their later messages with a reaction."""
        try:
            if decision.verdict is Verdict.COOLDOWN_NOTICE:
                notice = self.gate.cooldown_notice(decision.retry_after)
                reference = message.to_reference(fail_if_not_exists=False)
                await message.channel.send(
                    notice, reference=reference, allowed_mentions=NO_MENTIONS
                )
            else:
                await message.add_reaction(COOLDOWN_REACTION)
        except DELIVERY_ERRORS as error:
            _log.warning("could not tell %s about the cooldown: %r", message.author.id, error)

    @commands.Cog.listener()
    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        """A user deleted their message: stop answering it, freeing the model for others."""
        if self.responder.withdraw(payload.message_id):
            _log.info("message %s was deleted; its answer was withdrawn", payload.message_id)

    # -- interactions -----------------------------------------------------------------------

    def _interaction_origin(self, interaction: discord.Interaction) -> Origin:
        return origin_of(
            interaction.user, interaction.guild_id, interaction.channel, interaction.channel_id
        )

    def _interaction_key(self, interaction: discord.Interaction) -> str:
        return conversation_key(interaction.guild_id, interaction.channel_id, interaction.user.id)

    async def interaction_check(self, interaction: discord.Interaction) -> bool:  # type: ignore[override]
        """Slash commands obey the allow lists; a refusal is polite and private."""
        if self.gate.allows(self._interaction_origin(interaction)):
            return True
        self.telemetry.refused("discord", "refused")
        await interaction.response.send_message(REFUSAL, ephemeral=True)
        return False

    async def _slash_turn(
        self,
        interaction: discord.Interaction,
        text: str,
        *,
        forced_tool: str | None = None,
        key: str | None = None,
    ) -> None:
        decision = self.gate.admit(interaction.user.id)
        if decision.verdict is not Verdict.ANSWER:
            self.telemetry.refused("discord", "cooldown")
            # A private reply spends no channel budget, and an interaction must be answered.
            notice = self.gate.cooldown_notice(decision.retry_after)
            await interaction.response.send_message(notice, ephemeral=True)
            return
        await interaction.response.defer(thinking=True)
        send = followup_send(interaction)
        writer = ReplyWriter(
            send, send, interval=self.settings.stream_edit_interval, on_again=self.follow_up
        )
        key = key or self._interaction_key(interaction)
        context = context_of(interaction.user, interaction.guild_id, interaction.channel)
        await self.responder.answer(key, text, writer, context=context, forced_tool=forced_tool)

    async def follow_up(self, interaction: discord.Interaction, spec: ToolSpec) -> None:
        """A card's follow-up button: another call of its tool in the same conversation."""
        if not await self.interaction_check(interaction) or spec.follow_up is None:
            return
        message = interaction.message
        key = self.responder.key_of(message.id) if message is not None else None
        prompt = spec.follow_up.prompt
        await self._slash_turn(interaction, prompt, forced_tool=spec.name, key=key)

    def _tool_command(self, spec: ToolSpec) -> app_commands.Command:
        """The slash command declared by ``spec``: a forced call of its tool."""

        async def run(interaction: discord.Interaction, **options: str) -> None:
            if not await self.interaction_check(interaction):
                return
            value = options.get(spec.option.name) if spec.option else None
            await self._slash_turn(interaction, spec.command_prompt(value), forced_tool=spec.name)

        parameters = [inspect.Parameter("interaction", inspect.Parameter.POSITIONAL_ONLY)]
        if spec.option is not None:
            text = app_commands.Range[str, 1, spec.option.max_length]
            option = inspect.Parameter(spec.option.name, inspect.Parameter.KEYWORD_ONLY)
            parameters.append(option.replace(annotation=text))
            run = app_commands.describe(**{spec.option.name: spec.option.description})(run)
        run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        return app_commands.Command(name=spec.command, description=spec.description, callback=run)

    @app_commands.command(name="chat", description="Say something to the bot")
    @app_commands.describe(prompt="Your message")
    async def chat(
        self, interaction: discord.Interaction, prompt: app_commands.Range[str, 1, 2000]
    ) -> None:
        await self._slash_turn(interaction, prompt)

    @app_commands.command(name="reset", description="Forget this channel's conversation")
    async def reset(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True, ephemeral=True)
        try:
            await self.pipeline.reset(self._interaction_key(interaction))
            embed = make_embed("🧹 Conversation forgotten", "Let's start fresh.")
        except StorageError as error:
            _log.error("/reset failed: %s", error)
            embed = make_embed("⚠️ Not forgotten", f"{error.user_message} Try /reset again later.")
        await interaction.followup.send(embed=embed, ephemeral=True, allowed_mentions=NO_MENTIONS)

    @app_commands.command(name="forget-me", description="Delete everything I stored about you")
    async def forget_me(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True, ephemeral=True)
        try:
            removed = await self.pipeline.forget_user(f"discord:{interaction.user.id}")
            embed = make_embed(
                "🗑️ Forgotten",
                f"Deleted {removed} of your messages and my answers to them, everywhere.",
            )
        except StorageError as error:
            _log.error("/forget-me failed: %s", error)
            embed = make_embed("⚠️ Not deleted", f"{error.user_message} Try /forget-me again later.")
        await interaction.followup.send(embed=embed, ephemeral=True, allowed_mentions=NO_MENTIONS)

    @app_commands.command(name="status", description="Model, queue and speed")
    async def status(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True, ephemeral=True)
        history = await self.pipeline.history_length(self._interaction_key(interaction))
        uptime = time.monotonic() - self.started
        embed = status_embed(self.pipeline.stats(), uptime, history, self.telemetry.summary())
        await interaction.followup.send(embed=embed, ephemeral=True, allowed_mentions=NO_MENTIONS)

    # -- owner text command -----------------------------------------------------------------

    @commands.command(name="sync")
    @commands.is_owner()
    async def sync(self, ctx: commands.Context[commands.Bot], scope: str = "global") -> None:
        """Owner only: `@bot sync` (global) or `@bot sync here` (this server, instantly)."""
        sync: Callable[..., Awaitable[int]] = self.bot.sync_commands  # type: ignore[attr-defined]
        guild_id = ctx.guild.id if scope == "here" and ctx.guild else None
        count = await sync(guild_id)
        where = "to this server" if guild_id else "globally"
        await ctx.reply(f"Synced {count} slash commands {where}.", allowed_mentions=NO_MENTIONS)
