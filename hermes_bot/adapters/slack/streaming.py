"""Writes one reply into Slack: a placeholder at once, throttled ``chat.update``, final blocks.

While the model writes, the visible text (the pipeline already holds back call
markup) replaces the placeholder with a "still writing" mark, at most once per
interval. Text past one message's limits continues in more messages of the
same thread. The final render swaps in the reply's blocks and deletes any
surplus message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from hermes_bot.adapters.slack.blocks import (
    MAX_BLOCKS,
    Block,
    SlackMessage,
    context,
    notice_message,
    reply_messages,
    text_messages,
)
from hermes_bot.adapters.throttle import StreamThrottle
from hermes_bot.pipeline import Reply

_log = logging.getLogger(__name__)

MARK = " ▌"
PLACEHOLDER = "_✍️ thinking…_"
THINKING = "is thinking…"
DELIVERY_ERRORS = (SlackClientError, aiohttp.ClientError, TimeoutError)


class ThreadStatus:
    """Slack's "is thinking…" indicator under a thread, used where the workspace has it.

    Slack clears it when the bot posts in the thread. After a refusal that means the
    workspace or app lacks it, the placeholder message is used from then on.
    """

    UNAVAILABLE = frozenset(
        {"unknown_method", "missing_scope", "not_allowed_token_type", "feature_not_enabled"}
    )

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client
        self.available = True

    async def set(self, channel: str, thread_ts: str, status: str) -> bool:
        """Show (or with ``""`` clear) the status; False where it cannot be shown."""
        if not self.available:
            return False
        try:
            await self._client.assistant_threads_setStatus(
                channel_id=channel, thread_ts=thread_ts, status=status
            )
        except SlackApiError as error:
            code = error.response.get("error")
            if code in self.UNAVAILABLE:
                _log.info("no thread status in this workspace (%s); using placeholders", code)
                self.available = False
            return False
        except DELIVERY_ERRORS:
            return False
        return True


class SlackReplyWriter:
    """Renders one reply into messages in ``channel`` (in the thread ``thread_ts`` if given).

    ``preamble`` (mrkdwn) heads the first message, e.g. which slash command was run.
    """

    def __init__(
        self,
        client: AsyncWebClient,
        channel: str,
        thread_ts: str | None,
        *,
        interval: float,
        preamble: str | None = None,
        status: ThreadStatus | None = None,
    ) -> None:
        self._client = client
        self._status = status
        self._status_shown = False
        self.channel = channel
        self.thread_ts = thread_ts
        self._preamble: Block | None = context(preamble) if preamble else None
        self.timestamps: list[str] = []
        self._shown: list[dict[str, Any]] = []
        self._stream = StreamThrottle(self._show_partial, interval=interval, name="slack-stream")
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Show the working state at once: the thread status, else a placeholder message."""
        if self._status is not None and self.thread_ts is not None:
            self._status_shown = await self._status.set(self.channel, self.thread_ts, THINKING)
        if not self._status_shown:
            await self._render([notice_message(PLACEHOLDER)], trim=False)

    async def on_text(self, visible: str) -> None:
        """The pipeline's streaming callback: remember the text; the throttle shows it."""
        await self._stream.on_text(visible)

    async def _show_partial(self, text: str) -> None:
        try:
            await self._render(text_messages(text, mark=MARK), trim=False)
        except DELIVERY_ERRORS as error:
            _log.warning("streaming update failed: %r", error)

    async def finish(self, reply: Reply) -> list[str]:
        """Show the final reply; returns the timestamps of the messages it occupies."""
        await self._stream.stop()
        await self._render(reply_messages(reply), trim=True)
        return list(self.timestamps)

    async def abort(self, notice: str) -> None:
        """Stop streaming and leave ``notice`` after whatever was shown."""
        await self._stream.stop()
        shown = self._stream.latest.strip()
        messages = text_messages(shown) if shown else []
        if messages and len(messages[-1].blocks) < MAX_BLOCKS - 1:
            messages[-1].blocks.append(context(f"_{notice}_"))
        else:
            messages.append(notice_message(f"_{notice}_"))
        await self._render(messages, trim=True)

    async def withdraw(self) -> None:
        """Stop streaming and delete whatever was shown."""
        await self._stream.stop()
        await self._render([], trim=True)
        if self._status is not None and self._status_shown and self.thread_ts is not None:
            await self._status.set(self.channel, self.thread_ts, "")

    async def _post(self, index: int, payload: dict[str, Any]) -> None:
        """Post message ``index`` and record it, even when the turn is cancelled meanwhile.

        Slack may have the message before its ts comes back; a withdrawal or shutdown
        that dropped the reply would leave it behind, out of cleanup's reach.
        """
        posting = asyncio.ensure_future(
            self._client.chat_postMessage(channel=self.channel, thread_ts=self.thread_ts, **payload)
        )
        try:
            posted = await asyncio.shield(posting)
        except asyncio.CancelledError:
            with contextlib.suppress(*DELIVERY_ERRORS):
                self._record(index, payload, str((await posting)["ts"]))
            raise
        self._record(index, payload, str(posted["ts"]))

    def _record(self, index: int, payload: dict[str, Any], ts: str) -> None:
        if index < len(self.timestamps):
            self.timestamps[index], self._shown[index] = ts, payload
        else:
            self.timestamps.append(ts)
            self._shown.append(payload)

    async def _update(self, index: int, payload: dict[str, Any]) -> None:
        """Edit message ``index``; one that someone deleted is posted again."""
        try:
            await self._client.chat_update(
                channel=self.channel, ts=self.timestamps[index], **payload
            )
        except SlackApiError as error:
            if error.response.get("error") != "message_not_found":
                raise
            _log.info("a message of the answer was deleted; posting it again")
            await self._post(index, payload)
            return
        self._shown[index] = payload

    async def _render(self, messages: list[SlackMessage], *, trim: bool) -> None:
        """Make the messages look like ``messages``: update what changed, post what is missing."""
        async with self._lock:
            for index, message in enumerate(messages):
                payload = message.payload()
                if index == 0 and self._preamble is not None:
                    payload["blocks"] = [self._preamble, *payload["blocks"]]
                if index < len(self.timestamps):
                    if self._shown[index] != payload:
                        await self._update(index, payload)
                    continue
                await self._post(index, payload)
            while trim and len(self.timestamps) > len(messages):
                ts = self.timestamps.pop()
                self._shown.pop()
                try:
                    await self._client.chat_delete(channel=self.channel, ts=ts)
                except DELIVERY_ERRORS as error:
                    _log.warning("could not delete a surplus message: %r", error)
