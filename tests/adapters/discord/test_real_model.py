"""The tiny random-weight model behind the real Discord client, in process.

The end-to-end run through bot.py is tests/adapters/test_platforms.py.
"""

from __future__ import annotations

from pathlib import Path

import torch

from hermes_bot.config import GenerationSettings, ModelSettings, Settings
from hermes_bot.inference.transformers_backend import TransformersBackend
from tests.adapters.discord.fake_discord import GENERAL_ID
from tests.adapters.discord.tool_cards import tool_card_replies

torch.set_num_threads(1)


async def test_a_mention_gets_a_reply_from_the_tiny_real_model(
    fake, start_bot, tiny_model_dir: Path
):
    settings = Settings(
        model=ModelSettings(
            id=str(tiny_model_dir),
            device="cpu",
            device_map=None,
            dtype="float32",
            context_window=2048,
        ),
        generation=GenerationSettings(max_new_tokens=8, do_sample=False),
    )
    backend = TransformersBackend.from_settings(settings)
    try:
        run = await start_bot(settings=settings, backend=backend)
        assert run.pipeline.stats().device != "not loaded"
        await fake.send_message("hello, tiny model")
        [reply] = await fake.final_messages(GENERAL_ID, timeout=60)
        assert reply["content"].strip() or reply["embeds"]
        assert not reply["content"].startswith("⚠️"), reply["content"]  # the model answered
        assert reply["message_reference"]["channel_id"] == str(GENERAL_ID)
        assert backend.stats().completed >= 1
    finally:
        await backend.close()


async def test_slash_commands_give_valid_embeds_even_from_the_random_model(
    fake, start_bot, tiny_model_dir: Path
):
    settings = Settings(
        model=ModelSettings(id=str(tiny_model_dir), device="cpu", dtype="float32"),
        generation=GenerationSettings(temperature=1.0),
        chat={"corrective_retries": 0},
    )
    backend = TransformersBackend.from_settings(settings)
    try:
        await start_bot(settings=settings, backend=backend)
        for title, reply in await tool_card_replies(fake, timeout=120):
            [embed] = reply["embeds"]
            assert title in embed["title"]
            assert embed["description"].strip()
            assert "functioncall" not in str(reply)
        assert backend.stats().completed == 3  # one constrained generation each, no retries
    finally:
        await backend.close()
