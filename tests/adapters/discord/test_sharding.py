"""discord.sharding: the bot runs as discord.py's AutoShardedBot and still answers."""

from __future__ import annotations

import asyncio

from hermes_bot.adapters.discord import client
from hermes_bot.config import Settings
from hermes_bot.pipeline import Pipeline
from tests.adapters.discord.fake_discord import GENERAL_ID
from tests.fakes import ScriptedBackend


async def test_a_sharded_bot_identifies_with_a_shard_and_answers(fake):
    settings = Settings(discord=fake.settings(sharding=True))
    assert client.bot_class(settings) is client.ShardedHermesDiscordBot
    pipeline = Pipeline.from_settings(ScriptedBackend(["Sharded hello."]), settings)
    stop = asyncio.Event()
    bot = asyncio.create_task(
        client.run_discord(settings, pipeline, stop=stop, guild_ready_timeout=0.01)
    )
    try:
        await fake.wait_for(lambda: fake.ready.is_set(), timeout=10)
        await fake.send_message("hello, shards")
        [reply] = await fake.wait_for(
            lambda: (m := fake.bot_messages(GENERAL_ID)) and "▌" not in m[0]["content"] and m
        )
        assert reply["content"] == "Sharded hello."
        assert fake.identifies[0]["shard"] == [0, 1]  # the shard count Discord recommended
    finally:
        stop.set()
        assert await asyncio.wait_for(bot, 30) == 0
