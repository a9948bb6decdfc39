"""Fixtures: a running fake Slack, a bare slack_bolt app, and the real SlackBot on it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from hermes_bot.adapters.slack import SlackBot
from hermes_bot.config import Settings, SlackSettings
from hermes_bot.pipeline import Pipeline
from tests.adapters.slack.fake_slack import APP_TOKEN, BOT_TOKEN, FakeSlack
from tests.fakes import ScriptedBackend


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    server = await FakeSlack().start()
    try:
        yield server
    finally:
        await server.close()


@contextlib.asynccontextmanager
async def bolt_app(fake: FakeSlack, **options: Any) -> AsyncIterator[AsyncApp]:
    """An unmodified AsyncApp connected to ``fake`` over Socket Mode (listeners added later)."""
    app = AsyncApp(client=AsyncWebClient(token=BOT_TOKEN, base_url=fake.api_base_url), **options)
    handler = AsyncSocketModeHandler(app, APP_TOKEN)  # inside the running loop
    count = len(fake.connections)
    await handler.connect_async()
    await fake.wait_for(lambda: len(fake.connections) > count)
    try:
        yield app
    finally:
        await handler.close_async()


@dataclass
class Running:
    """A connected Slack bot and what it talks to."""

    bot: SlackBot
    backend: ScriptedBackend
    pipeline: Pipeline
    settings: Settings


StartBot = Callable[..., Awaitable[Running]]


@pytest.fixture
async def start_bot(fake: FakeSlack) -> AsyncIterator[StartBot]:
    """``await start_bot(completions, **slack_settings)`` → a SlackBot connected to ``fake``."""
    started: list[SlackBot] = []

    async def start(
        completions: Iterable[str] | Callable[..., str] = (),
        *,
        delay: float = 0.0,
        chunk: int = 7,
        backend: Any = None,
        **slack_settings: Any,
    ) -> Running:
        slack_settings.setdefault("stream_update_interval", 0.1)
        settings = Settings().model_copy(
            update={
                "slack": SlackSettings(
                    bot_token=BOT_TOKEN,
                    app_token=APP_TOKEN,
                    api_base_url=fake.api_base_url,
                    **slack_settings,
                )
            }
        )
        backend = backend or ScriptedBackend(completions, delay=delay, chunk=chunk)
        pipeline = Pipeline.from_settings(backend, settings)
        bot = SlackBot(settings, pipeline)
        count = len(fake.connections)
        await bot.connect()
        started.append(bot)
        await fake.wait_for(lambda: len(fake.connections) > count)
        return Running(bot, backend, pipeline, settings)

    try:
        yield start
    finally:
        for bot in started:
            await bot.close()
