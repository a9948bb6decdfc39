"""Fixtures: a running fake Discord, and the real bot (ScriptedBackend pipeline) logged into it."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hermes_bot.adapters.discord import HermesDiscordBot, discord_endpoints
from hermes_bot.config import ChatSettings, Settings
from hermes_bot.conversation import ConversationStore
from hermes_bot.pipeline import Pipeline
from tests.adapters.discord.fake_discord import TOKEN, FakeDiscord
from tests.fakes import ScriptedBackend


@dataclass
class Running:
    """A connected bot and what it talks to."""

    bot: HermesDiscordBot
    backend: Any
    pipeline: Pipeline
    settings: Settings


StartBot = Callable[..., Awaitable[Running]]

ROOT = Path(__file__).resolve().parents[3]


async def spawn_against(fake: FakeDiscord, *args: str, **env: str) -> asyncio.subprocess.Process:
    """``python ARGS`` in the repository, pointed at ``fake`` with its token."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        cwd=ROOT,
        env={
            **os.environ,
            "DISCORD_TOKEN": TOKEN,
            "HERMES_BOT_DISCORD__API_BASE_URL": fake.api_base_url,
            "HERMES_BOT_DISCORD__GATEWAY_URL": fake.gateway_url,
            "HERMES_BOT_STORAGE__BACKEND": "memory",  # no database in the repository
            **env,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


def _signal_finished_turns(bot: HermesDiscordBot, fake: FakeDiscord) -> None:
    """Tell ``fake`` each time the bot's responder finishes a turn: a barrier for tests."""
    assert bot.chat is not None
    responder = bot.chat.responder
    answer = responder.answer

    async def answer_and_signal(*args: Any, **kwargs: Any) -> Any:
        try:
            return await answer(*args, **kwargs)
        finally:
            fake.turn_finished()

    responder.answer = answer_and_signal  # type: ignore[method-assign]


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    server = await FakeDiscord().start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def start_bot(fake: FakeDiscord) -> AsyncIterator[StartBot]:
    """``await start_bot(completions, **discord_settings)`` → a bot connected to ``fake``."""
    started: list[tuple[HermesDiscordBot, asyncio.Task[None]]] = []

    async def start(
        completions: Iterable[str] | Callable[..., str] = (),
        *,
        delay: float = 0.0,
        chunk: int = 7,
        chat: dict[str, Any] | None = None,
        settings: Settings | None = None,
        backend: Any = None,
        conversations: ConversationStore | None = None,
        **discord_settings: Any,
    ) -> Running:
        settings = settings or Settings()
        settings = settings.model_copy(update={"discord": fake.settings(**discord_settings)})
        if chat:
            settings = settings.model_copy(update={"chat": ChatSettings(**chat)})
        backend = backend or ScriptedBackend(completions, delay=delay, chunk=chunk)
        pipeline = Pipeline.from_settings(backend, settings, conversations)
        bot = HermesDiscordBot(settings, pipeline, warmup=backend.start, guild_ready_timeout=0.01)
        await bot.login(TOKEN)
        _signal_finished_turns(bot, fake)
        task = asyncio.create_task(bot.connect())
        started.append((bot, task))
        async with asyncio.timeout(10):
            await bot.wait_until_ready()
        return Running(bot, backend, pipeline, settings)

    with discord_endpoints(fake.api_base_url, fake.gateway_url):
        try:
            yield start
        finally:
            for bot, task in started:
                await bot.close()
                await asyncio.wait_for(task, 10)
