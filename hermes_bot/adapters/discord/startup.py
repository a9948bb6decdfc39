"""Coming up on Discord: bounded retries while it is unreachable, one line each.

A rejected token is not retried (the caller turns it into one clear line);
an unreachable or failing Discord (its API, then its gateway) is retried with
exponential backoff until ``give_up_after`` seconds have passed, then
PlatformError says what to check. Once connected, discord.py reconnects on its
own for as long as it takes. (discord.py cannot retry a first gateway
connection that never opened, hence the probe before it.)
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable

import aiohttp
import discord
import yarl

from hermes_bot.errors import PlatformError

_log = logging.getLogger(__name__)

FIRST_DELAY = 1.0
MAX_DELAY = 30.0
PROBE_TIMEOUT = 10.0
RETRYABLE = (OSError, aiohttp.ClientError, asyncio.TimeoutError, discord.DiscordServerError)


def reason(error: BaseException) -> str:
    """A short, single-line description of a connection failure."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def silence_voice_warnings() -> None:
    """The bot never joins voice: don't warn at every start that voice libraries are missing."""
    discord.VoiceClient.warn_nacl = False
    discord.VoiceClient.warn_dave = False


async def _retrying(what: str, action: Callable[[], Awaitable[None]], give_up_after: float) -> None:
    """``action()`` until it succeeds, with backoff; PlatformError after ``give_up_after`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + give_up_after
    delay = FIRST_DELAY
    for attempt in itertools.count(1):
        try:
            await action()
            return
        except RETRYABLE as error:
            why = reason(error)
            if loop.time() + delay > deadline:
                raise PlatformError(
                    f"cannot reach {what} after {attempt} attempts: {why}",
                    user_message=(
                        f"Cannot reach {what} ({why}); gave up after {attempt} attempts in "
                        f"{give_up_after:g}s. Check the network (and the discord.api_base_url "
                        "and gateway_url settings), then start the bot again."
                    ),
                ) from None
            _log.warning(
                "cannot reach %s (%s); attempt %d failed, retrying in %gs",
                what,
                why,
                attempt,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_DELAY)


async def login(client: discord.Client, token: str, *, give_up_after: float) -> None:
    """``client.login(token)``, retried with backoff while Discord cannot be reached."""
    await _retrying("Discord", lambda: client.login(token), give_up_after)


async def _probe(gateway_url: str) -> None:
    """Open the gateway and wait for its HELLO; raises what a connection attempt would."""
    url = yarl.URL(gateway_url).with_query(v="10", encoding="json")
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        message = await ws.receive(timeout=PROBE_TIMEOUT)
        if message.type is not aiohttp.WSMsgType.TEXT:
            raise aiohttp.ClientError(f"the gateway answered with {message.type.name}")


async def connect(client: discord.Client, gateway_url: str, *, give_up_after: float) -> None:
    """``client.connect(reconnect=True)`` once the gateway answers (retried with backoff)."""
    await _retrying("Discord's gateway", lambda: _probe(gateway_url), give_up_after)
    await client.connect(reconnect=True)
