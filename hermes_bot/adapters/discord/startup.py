"""Logging in to Discord at start-up: bounded retries while it is unreachable, one line each.

A rejected token is not retried (the caller turns it into one clear line);
an unreachable or failing Discord is retried with exponential backoff until
``give_up_after`` seconds have passed, then PlatformError says what to check.
"""

from __future__ import annotations

import asyncio
import itertools
import logging

import aiohttp
import discord

from hermes_bot.errors import PlatformError

_log = logging.getLogger(__name__)

FIRST_DELAY = 1.0
MAX_DELAY = 30.0
RETRYABLE = (OSError, aiohttp.ClientError, asyncio.TimeoutError, discord.DiscordServerError)


def reason(error: BaseException) -> str:
    """A short, single-line description of a connection failure."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def silence_voice_warnings() -> None:
    """The bot never joins voice: don't warn at every start that voice libraries are missing."""
    discord.VoiceClient.warn_nacl = False
    discord.VoiceClient.warn_dave = False


async def login(client: discord.Client, token: str, *, give_up_after: float) -> None:
    """``client.login(token)``, retried with backoff while Discord cannot be reached."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + give_up_after
    delay = FIRST_DELAY
    for attempt in itertools.count(1):
        try:
            await client.login(token)
            return
        except RETRYABLE as error:
            why = reason(error)
            if loop.time() + delay > deadline:
                raise PlatformError(
                    f"cannot reach Discord after {attempt} attempts: {why}",
                    user_message=(
                        f"Cannot reach Discord ({why}); gave up after {attempt} attempts in "
                        f"{give_up_after:g}s. Check the network (and discord.api_base_url), "
                        "then start the bot again."
                    ),
                ) from None
            _log.warning(
                "cannot reach Discord (%s); attempt %d failed, retrying in %gs", why, attempt, delay
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_DELAY)
