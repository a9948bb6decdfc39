"""The Discord client: a commands.Bot wired to the pipeline, and ``run_discord`` for bot.py.

``run_discord`` points discord.py at the configured REST and gateway URLs (a
fake Discord in tests), closes cleanly on SIGTERM / SIGINT and returns 0.
The token is handed to discord.py only and never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import discord
import yarl
from discord.ext import commands
from discord.gateway import DiscordWebSocket
from discord.http import Route

from hermes_bot.adapters.discord import startup
from hermes_bot.adapters.discord.cog import ChatCog
from hermes_bot.adapters.discord.streaming import DELIVERY_ERRORS
from hermes_bot.config import Settings
from hermes_bot.errors import ConfigError
from hermes_bot.pipeline import Pipeline

_log = logging.getLogger(__name__)

Warmup = Callable[[], Awaitable[None]]
COMMAND_FAILED = "⚠️ Sorry, that command failed on my side. Please try again in a moment."
# On SIGTERM: seconds for accepted answers to show what they have, then for the client to end;
# together well under a container's 10 s stop timeout.
SHUTDOWN_GRACE = 5.0
STARTUP_GRACE = 2.0


@contextlib.contextmanager
def discord_endpoints(api_base_url: str, gateway_url: str) -> Iterator[None]:
    """Point discord.py at other REST / gateway URLs for the duration of the block."""
    gateway = yarl.URL(gateway_url)
    if not gateway.path:
        gateway = gateway.with_path("/")
    saved = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    Route.BASE = api_base_url.rstrip("/")
    DiscordWebSocket.DEFAULT_GATEWAY = gateway
    try:
        yield
    finally:
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = saved


class HermesDiscordBot(commands.Bot):
    """commands.Bot with the chat cog; nothing the model writes can ping anyone."""

    def __init__(
        self,
        settings: Settings,
        pipeline: Pipeline,
        *,
        warmup: Warmup | None = None,
        **options: Any,
    ) -> None:
        startup.silence_voice_warnings()
        intents = discord.Intents.default()
        intents.message_content = True
        options.setdefault("allowed_mentions", discord.AllowedMentions.none())
        super().__init__(
            command_prefix=commands.when_mentioned, intents=intents, help_command=None, **options
        )
        self.settings = settings
        self.pipeline = pipeline
        self._warmup = warmup
        self.chat: ChatCog | None = None
        pipeline.telemetry.connected("discord", False)
        self.tree.error(self._on_app_command_error)

    async def setup_hook(self) -> None:
        """Warm the backend (``warmup``, default: start the pipeline's backend), add the cog,
        and sync slash commands only where configured (never on every start by default)."""
        await (self._warmup or self.pipeline.backend.start)()
        self.chat = ChatCog(self, self.pipeline, self.settings)
        await self.add_cog(self.chat)
        discord_settings = self.settings.discord
        if discord_settings.dev_guild_id is not None:
            await self.sync_commands(discord_settings.dev_guild_id)
        if discord_settings.sync_commands_on_start:
            await self.sync_commands(None)

    async def sync_commands(self, guild_id: int | None) -> int:
        """Register the slash commands globally, or instantly in one guild; returns the count."""
        guild = discord.Object(guild_id) if guild_id is not None else None
        if guild is not None:
            self.tree.copy_global_to(guild=guild)
        synced = await self.tree.sync(guild=guild)
        _log.info(
            "synced %d slash commands %s",
            len(synced),
            f"to guild {guild_id}" if guild else "globally",
        )
        return len(synced)

    async def on_ready(self) -> None:
        _log.info("connected to Discord as %s in %d guilds", self.user, len(self.guilds))
        self.pipeline.telemetry.connected("discord", True)

    async def on_resumed(self) -> None:
        self.pipeline.telemetry.connected("discord", True)

    async def on_disconnect(self) -> None:
        self.pipeline.telemetry.connected("discord", False)

    async def on_command_error(self, context: commands.Context[Any], exception: Exception) -> None:  # type: ignore[override]
        """Unknown or forbidden text commands are ordinary chat, not errors."""
        if isinstance(
            exception, commands.CommandNotFound | commands.CheckFailure | commands.UserInputError
        ):
            return
        _log.error("text command failed", exc_info=exception)

    async def _on_app_command_error(
        self, interaction: discord.Interaction, error: discord.app_commands.AppCommandError
    ) -> None:
        """The one handler for failed slash commands: one log line, and the user is told."""
        if isinstance(error, discord.app_commands.CheckFailure):
            return
        name = interaction.command.name if interaction.command else "?"
        _log.error("slash command /%s failed", name, exc_info=error)
        try:
            if interaction.response.is_done():
                await interaction.followup.send(COMMAND_FAILED, ephemeral=True)
            else:
                await interaction.response.send_message(COMMAND_FAILED, ephemeral=True)
        except DELIVERY_ERRORS as failure:
            _log.warning("could not tell the user /%s failed: %r", name, failure)

    async def close(self) -> None:
        """Stop accepting, give every accepted message its answer or a notice, then disconnect."""
        if self.chat is not None:
            await self.chat.responder.shut_down(SHUTDOWN_GRACE)
        await super().close()


class ShardedHermesDiscordBot(HermesDiscordBot, commands.AutoShardedBot):
    """HermesDiscordBot over the gateway connections (shards) Discord recommends; Discord
    requires sharding past 2,500 servers (``discord.sharding = true``)."""


def bot_class(settings: Settings) -> type[HermesDiscordBot]:
    """The client class ``settings`` ask for: sharded or not."""
    return ShardedHermesDiscordBot if settings.discord.sharding else HermesDiscordBot


async def run_discord(
    settings: Settings,
    pipeline: Pipeline,
    *,
    warmup: Warmup | None = None,
    stop: asyncio.Event | None = None,
    **options: Any,
) -> int:
    """Run the bot until ``stop`` is set (default: SIGTERM / SIGINT) or a fatal error;
    returns the exit code (0 when clean)."""
    token = settings.discord.token
    if token is None or not token.get_secret_value().strip():
        raise ConfigError(
            "no Discord token",
            user_message="No Discord token: set DISCORD_TOKEN or [discord] token in config.toml.",
        )
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT) if stop is None else ()
    stop = stop or asyncio.Event()
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        with discord_endpoints(settings.discord.api_base_url, settings.discord.gateway_url):
            bot = bot_class(settings)(settings, pipeline, warmup=warmup, **options)
            async with bot:
                runner = asyncio.create_task(
                    _start(bot, token.get_secret_value(), settings),
                    name="discord",
                )
                stopper = asyncio.create_task(stop.wait(), name="discord-stop")
                await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
                stopper.cancel()
                if stop.is_set():
                    _log.info("signal received; closing the Discord client")
                    await bot.close()
                    # A start still warming the model up is not worth waiting for.
                    await asyncio.wait({runner}, timeout=STARTUP_GRACE)
                    runner.cancel()
                await _result(runner)
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
    return 0


async def _start(bot: HermesDiscordBot, token: str, settings: Settings) -> None:
    """Log in, then hold the gateway connection (each retried for a bounded time at first)."""
    give_up_after = settings.discord.connect_timeout
    await startup.login(bot, token, give_up_after=give_up_after)
    await startup.connect(bot, settings.discord.gateway_url, give_up_after=give_up_after)


async def _result(runner: asyncio.Task[None]) -> None:
    """Await the client task, turning fatal Discord errors into ConfigError."""
    try:
        await runner
    except asyncio.CancelledError:
        if not runner.cancelled():
            raise
    except discord.LoginFailure:
        raise ConfigError(
            "Discord rejected the token",
            user_message="Discord rejected the token. Check DISCORD_TOKEN (Bot → Reset Token).",
        ) from None
    except discord.PrivilegedIntentsRequired:
        raise ConfigError(
            "message content intent not enabled",
            user_message="Enable the Message Content intent (Developer Portal → Bot) and restart.",
        ) from None
