"""Writes one reply into Discord: throttled streaming edits, then the final text or embeds.

While the model writes, the visible text (the pipeline already holds back call
markup) is shown with a "still writing" mark, edited at most once per interval.
Past 2000 characters the text continues in follow-up messages. The final
render removes the mark, or swaps the text for the tool embeds.

Nothing is lost when Discord misbehaves: a write that fails on a dropped
connection or a 5xx is retried (sends carry a nonce, so Discord drops a
duplicate), a message deleted under the writer is posted again, and
cancelling the caller never cancels a write half-way. The "typing…" indicator
runs beside an answer and never holds it up.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import discord

from hermes_bot.adapters.discord.embeds import AgainHandler, FollowUpView, tool_embed
from hermes_bot.adapters.text import split_text
from hermes_bot.adapters.throttle import StreamThrottle
from hermes_bot.pipeline import ErrorReply, Reply, TextReply, ToolReply
from hermes_bot.tools import spec_of

_log = logging.getLogger(__name__)

MARK = " ▌"
MESSAGE_LIMIT = 2000
NO_MENTIONS = discord.AllowedMentions.none()
# What a send, edit or reaction can fail with: Discord refused it, or the connection did.
DELIVERY_ERRORS = (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError)
# Failures worth another try: the connection, or Discord's side (discord.py retried some).
TRANSIENT_ERRORS = (aiohttp.ClientError, OSError, TimeoutError, discord.DiscordServerError)
WRITE_ATTEMPTS = 3
TYPING_REFRESH = 8.0  # Discord shows "typing…" for about 10 s per call
RETRY_DELAY = 0.25

Send = Callable[..., Awaitable[discord.Message]]
T = TypeVar("T")


async def attempt(write: Callable[[], Awaitable[T]], what: str) -> T:
    """Run one Discord write, retrying transient failures a few times with a short backoff."""
    for tries in range(1, WRITE_ATTEMPTS + 1):
        try:
            return await write()
        except TRANSIENT_ERRORS as error:
            if tries == WRITE_ATTEMPTS:
                raise
            _log.warning("%s failed (%r); retrying", what, error)
            await asyncio.sleep(RETRY_DELAY * 2 ** (tries - 1))
    raise AssertionError("unreachable")


@dataclass
class Part:
    """One message of a reply as it should look."""

    content: str | None = None
    embed: discord.Embed | None = None
    view: discord.ui.View | None = None


class ReplyWriter:
    """Renders one reply into a sequence of messages (sent with ``send_first``, then ``send``)."""

    def __init__(
        self,
        send_first: Send,
        send: Send,
        *,
        interval: float,
        on_again: AgainHandler | None = None,
    ) -> None:
        self._send_first = send_first
        self._send = send
        self._on_again = on_again
        self.messages: list[discord.Message] = []
        self._shown: list[tuple[Any, ...]] = []
        self._stream = StreamThrottle(self._show_partial, interval=interval, name="discord-stream")
        self._lock = asyncio.Lock()

    async def on_text(self, visible: str) -> None:
        """The pipeline's streaming callback: remember the text; the throttle shows it."""
        await self._stream.on_text(visible)

    async def _show_partial(self, text: str) -> None:
        parts = [Part(chunk) for chunk in split_text(text, MESSAGE_LIMIT - len(MARK))]
        parts[-1].content = f"{parts[-1].content}{MARK}"
        try:
            await self._render(parts, trim=False)
        except DELIVERY_ERRORS as error:
            _log.warning("streaming edit failed: %r", error)

    async def _stop_streaming(self) -> None:
        # Detached: if we are cancelled, the edit in flight still completes.
        await self._stream.stop(detached=True)

    async def finish(self, reply: Reply) -> list[discord.Message]:
        """Show the final reply; returns the messages it occupies."""
        await self._stop_streaming()
        await self._render(self._parts(reply), trim=True)
        return list(self.messages)

    async def abort(self, notice: str) -> None:
        """Stop streaming and leave ``notice`` after whatever was shown."""
        await self._stop_streaming()
        shown = self._stream.latest.strip()
        text = f"{shown}\n\n*{notice}*" if shown else notice
        await self._render([Part(chunk) for chunk in split_text(text, MESSAGE_LIMIT)], trim=True)

    async def withdraw(self) -> None:
        """Stop streaming and delete whatever was shown."""
        await self._stop_streaming()
        await self._render([], trim=True)

    def _parts(self, reply: Reply) -> list[Part]:
        match reply:
            case TextReply(text=text):
                parts = [Part(chunk) for chunk in split_text(text, MESSAGE_LIMIT)]
                return parts or [Part("…")]
            case ToolReply(tools=tools, text=text):
                parts = [Part(chunk) for chunk in split_text(text, MESSAGE_LIMIT)]
                for tool in tools:
                    spec = spec_of(tool)
                    view = (
                        FollowUpView(spec, self._on_again)
                        if spec.follow_up and self._on_again
                        else None
                    )
                    if parts and parts[-1].embed is None and parts[-1].view is None:
                        parts[-1].embed, parts[-1].view = tool_embed(tool), view
                    else:
                        parts.append(Part(None, tool_embed(tool), view))
                return parts
            case ErrorReply(message=message):
                return [Part(chunk) for chunk in split_text(f"⚠️ {message}", MESSAGE_LIMIT)]
        raise TypeError(f"unknown reply {reply!r}")

    async def _render(self, parts: list[Part], *, trim: bool) -> None:
        """Make the messages look like ``parts``: send what is missing, edit what changed.

        New messages go out before edits, so a continuation carrying the mark
        appears before the mark leaves the message above it. Runs as its own
        task: cancelling the caller never cuts a write in half.
        """
        render = asyncio.create_task(self._render_now(parts, trim=trim))
        await asyncio.wait({render})
        render.result()

    async def _render_now(self, parts: list[Part], *, trim: bool) -> None:
        async with self._lock:
            for index in range(len(self.messages), len(parts)):
                self.messages.append(await self._send_part(parts[index], first=index == 0))
                self._shown.append(_looks(parts[index]))
            for index, part in enumerate(parts):
                if self._shown[index] != _looks(part):
                    await self._edit_part(index, part)
            if trim:
                while len(self.messages) > len(parts):
                    message = self.messages.pop()
                    self._shown.pop()
                    try:
                        await message.delete()
                    except DELIVERY_ERRORS as error:
                        _log.warning("could not delete a surplus message: %r", error)

    async def _send_part(self, part: Part, *, first: bool) -> discord.Message:
        send = self._send_first if first else self._send
        options: dict[str, Any] = {"allowed_mentions": NO_MENTIONS}
        for name in ("content", "embed", "view"):
            if getattr(part, name) is not None:
                options[name] = getattr(part, name)
        # Retries reuse the nonce: Discord returns the first message instead of a duplicate.
        nonce = secrets.randbits(63)
        return await attempt(lambda: send(nonce=nonce, **options), "sending a message")

    async def _edit_part(self, index: int, part: Part) -> None:
        message = self.messages[index]
        try:
            self.messages[index] = await attempt(
                lambda: message.edit(
                    content=part.content,
                    embed=part.embed,
                    view=part.view,
                    allowed_mentions=NO_MENTIONS,
                ),
                "editing a message",
            )
        except discord.NotFound:
            _log.warning("message %s was deleted under the reply; posting it again", message.id)
            self.messages[index] = await self._send_part(part, first=index == 0)
        self._shown[index] = _looks(part)


def _looks(part: Part) -> tuple[Any, ...]:
    """What a part shows, for telling whether a message needs an edit."""
    return (part.content, part.embed.to_dict() if part.embed else None, id(part.view))


async def keep_typing(channel: discord.abc.Messageable) -> None:
    """Show "typing…" until cancelled; decoration only, so any failure just ends it."""
    try:
        while True:
            await channel.typing()
            await asyncio.sleep(TYPING_REFRESH)
    except DELIVERY_ERRORS as error:
        _log.debug("typing indicator failed: %r", error)


def followup_send(interaction: discord.Interaction) -> Send:
    """Send a follow-up message (webhooks take no nonce, so it is dropped)."""

    async def send(*, nonce: int | None = None, **options: Any) -> discord.Message:
        return await interaction.followup.send(wait=True, **options)

    return send
