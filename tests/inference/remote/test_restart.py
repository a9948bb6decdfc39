"""bot.py as a service: a conversation survives a crash of the process (SIGKILL) and the next
start reports it. The remote backend lets the real entry point start in seconds (no torch)."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path

from tests.adapters.discord.conftest import spawn_against
from tests.adapters.discord.fake_discord import GENERAL_ID


async def _start(fake, server_url: str, model_dir: Path, database: Path):
    fake.ready.clear()
    process = await spawn_against(
        fake,
        "bot.py",
        "--remote",
        server_url,
        HERMES_BOT_MODEL__ID=str(model_dir),
        HERMES_BOT_STORAGE__BACKEND="sqlite",
        HERMES_BOT_STORAGE__PATH=str(database),
        HERMES_BOT_CHAT__CORRECTIVE_RETRIES="0",
    )
    await fake.wait_for(lambda: fake.ready.is_set(), timeout=60)
    return process


async def _followup(fake, interaction) -> dict:
    calls = await fake.wait_for(
        lambda: (c := fake.interaction_calls(interaction)) and len(c) >= 2 and c, timeout=60
    )
    return calls[-1].json


async def test_a_conversation_survives_a_crash_and_status_reports_it(
    fake, llama_server, tiny_model_dir, tmp_path
):
    database = tmp_path / "conversations.db"
    first = await _start(fake, llama_server.url, tiny_model_dir, database)
    try:
        joke = await _followup(fake, await fake.slash("joke", channel_id=GENERAL_ID))
        assert joke["embeds"], joke  # answered, so remembered
        first.send_signal(signal.SIGKILL)  # no chance to flush anything
        await asyncio.wait_for(first.wait(), 30)
    finally:
        if first.returncode is None:
            first.kill()
    rows = sqlite3.connect(database).execute("SELECT COUNT(*) FROM exchanges").fetchone()
    assert rows == (1,)

    second = await _start(fake, llama_server.url, tiny_model_dir, database)
    try:
        status = await _followup(fake, await fake.slash("status", channel_id=GENERAL_ID))
        fields = {f["name"]: f["value"] for f in status["embeds"][0]["fields"]}
        assert fields["This conversation"] == "2 messages remembered"
        second.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(second.communicate(), 60)
    finally:
        if second.returncode is None:
            second.kill()
    assert second.returncode == 0, stderr.decode()[-2000:]
