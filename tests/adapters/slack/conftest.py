"""Fixtures: a running fake Slack, and a bare slack_bolt app connected to it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from tests.adapters.slack.fake_slack import APP_TOKEN, BOT_TOKEN, FakeSlack


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
