"""The Discord adapter (discord.py): events, slash commands, embeds and streaming replies."""

from hermes_bot.adapters.discord.client import HermesDiscordBot, discord_endpoints, run_discord

__all__ = ["HermesDiscordBot", "discord_endpoints", "run_discord"]
