"""The Slack app: slack-bolt's AsyncApp over Socket Mode, wired to the pipeline.

The Web API client points at ``[slack] api_base_url``; the Socket Mode
connection is opened through that client, so one URL reaches a whole
Slack-compatible server. Web API 429s are retried after Retry-After (bolt does
not by default). Tokens go to slack_sdk only and are never logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from hermes_bot.adapters.gate import Gate
from hermes_bot.adapters.slack.blocks import SlackMessage, status_message
from hermes_bot.adapters.slack.commands import RESET_NOTICE, forgotten_notice
from hermes_bot.adapters.slack.events import MessageEvents
from hermes_bot.adapters.slack.interactions import Interactions
from hermes_bot.adapters.slack.responder import Responder
from hermes_bot.adapters.slack.streaming import DELIVERY_ERRORS, SlackReplyWriter, ThreadStatus
from hermes_bot.config import Settings, SlackSettings
from hermes_bot.errors import ConfigError, StorageError
from hermes_bot.pipeline import Pipeline

_log = logging.getLogger(__name__)

Warmup = Callable[[], Awaitable[None]]


def make_gate(settings: SlackSettings) -> Gate:
    """The platform-neutral gate, configured from the ``[slack]`` section."""
    return Gate(
        workspaces=settings.allowed_workspaces,
        channels=settings.allowed_channels,
        users=settings.allowed_users,
        limit=settings.rate_limit_messages,
        window=settings.rate_limit_seconds,
    )


def _tokens(settings: SlackSettings) -> tuple[str, str]:
    bot = settings.bot_token.get_secret_value().strip() if settings.bot_token else ""
    app = settings.app_token.get_secret_value().strip() if settings.app_token else ""
    if not bot or not app:
        raise ConfigError(
            "missing Slack token",
            user_message=(
                "Slack needs two tokens: set SLACK_BOT_TOKEN (xoxb-...) and SLACK_APP_TOKEN "
                "(xapp-...), or [slack] bot_token / app_token. See docs/slack.md."
            ),
        )
    return bot, app


class SlackBot:
    """The app, its Socket Mode connection, and what the handlers share."""

    def __init__(self, settings: Settings, pipeline: Pipeline) -> None:
        self.settings = settings.slack
        self.pipeline = pipeline
        bot_token, self._app_token = _tokens(self.settings)
        self.client = AsyncWebClient(
            token=bot_token,
            base_url=self.settings.api_base_url,
            retry_handlers=[
                AsyncConnectionErrorRetryHandler(),
                AsyncRateLimitErrorRetryHandler(max_retry_count=3),
            ],
        )
        self.app = AsyncApp(client=self.client, logger=logging.getLogger("slack_bolt"))
        self.gate = make_gate(self.settings)
        self.responder = Responder(pipeline)
        self.thread_status = ThreadStatus(self.client)
        self.events = MessageEvents(self)
        self.app.event("message")(self.events.on_event)
        self.app.event("app_mention")(self.events.on_event)
        Interactions(self).register(self.app)
        self.user_id = ""
        self.started = time.monotonic()
        self._handler: AsyncSocketModeHandler | None = None

    async def connect(self) -> None:
        """Check the bot token, then open the Socket Mode connection (inside the running loop)."""
        try:
            auth = await self.client.auth_test()
        except SlackApiError as error:
            raise ConfigError(
                f"Slack rejected the bot token: {error.response.get('error')}",
                user_message="Slack rejected the bot token. Check SLACK_BOT_TOKEN (xoxb-...).",
            ) from None
        self.user_id = auth["user_id"]
        try:
            await self.client.apps_connections_open(app_token=self._app_token)
        except SlackApiError as error:
            raise ConfigError(
                f"Slack rejected the app token: {error.response.get('error')}",
                user_message=(
                    "Slack rejected the app-level token. Check SLACK_APP_TOKEN (xapp-..., "
                    "scope connections:write) and that Socket Mode is enabled."
                ),
            ) from None
        self._handler = AsyncSocketModeHandler(
            self.app, self._app_token, ping_interval=self.settings.ping_interval
        )
        await self._handler.connect_async()
        self.pipeline.telemetry.connected("slack", True)
        _log.info("connected to Slack workspace %s as %s", auth.get("team"), auth.get("user"))

    async def close(self) -> None:
        """Stop accepting events (disconnect), then leave a notice on answers in flight."""
        self.pipeline.telemetry.connected("slack", False)
        if self._handler is not None:
            await self._handler.close_async()
            self._handler = None
        await self.responder.cancel_all()

    def writer(
        self, channel: str, thread_ts: str | None, *, preamble: str | None = None
    ) -> SlackReplyWriter:
        """A writer for one answer in ``channel`` (in the thread ``thread_ts`` if given)."""
        return SlackReplyWriter(
            self.client,
            channel,
            thread_ts,
            interval=self.settings.stream_update_interval,
            preamble=preamble,
            status=self.thread_status,
        )

    async def forget(self, command: str, key: str, user: str) -> str:
        """``/reset`` (conversation ``key``) or ``/forget-me`` (everything ``user`` said, in
        every conversation); returns what to tell the user, who learns if the disk refused."""
        try:
            if command == "reset":
                await self.pipeline.reset(key)
                return RESET_NOTICE
            return forgotten_notice(await self.pipeline.forget_user(f"slack:{user}"))
        except StorageError as error:
            _log.error("/%s failed: %s", command, error)
            return f"{error.user_message} Nothing was deleted; try /{command} again later."

    async def status(self, key: str) -> SlackMessage:
        """The /status card for conversation ``key``."""
        uptime = time.monotonic() - self.started
        history = await self.pipeline.history_length(key)
        turns = self.pipeline.telemetry.summary()
        return status_message(self.pipeline.stats(), uptime, history, turns)

    async def ephemeral(
        self,
        channel: str,
        user: str,
        text: str,
        thread_ts: str | None,
        *,
        blocks: list[dict[str, object]] | None = None,
    ) -> None:
        """A message only ``user`` sees; failures are logged, never raised."""
        try:
            await self.client.chat_postEphemeral(
                channel=channel, user=user, text=text, blocks=blocks, thread_ts=thread_ts
            )
        except DELIVERY_ERRORS as error:
            _log.warning("could not tell %s privately: %r", user, error)


async def run_slack(
    settings: Settings, pipeline: Pipeline, stop: asyncio.Event, *, warmup: Warmup | None = None
) -> int:
    """Serve Slack until ``stop`` is set; returns the exit code (0 when clean)."""
    bot = SlackBot(settings, pipeline)
    if warmup is not None:
        await warmup()
    await bot.connect()
    try:
        await stop.wait()
        _log.info("stopping; closing the Slack connection")
    finally:
        await bot.close()
    return 0
