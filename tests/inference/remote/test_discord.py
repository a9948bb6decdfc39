"""The whole stack on a real llama.cpp server: Discord (the fake) → bot → remote backend."""

from __future__ import annotations

import asyncio
import signal

from hermes_bot.inference.remote import RemoteBackend
from tests.adapters.discord.conftest import spawn_against
from tests.adapters.discord.fake_discord import GENERAL_ID, TOKEN
from tests.adapters.discord.tool_cards import tool_card_replies
from tests.inference.remote.conftest import remote_settings

# Printed by the child at exit: the heavy libraries loaded into the bot process.
_CHILD = """
import atexit, runpy, sys
atexit.register(lambda: print("HEAVY", sorted(
    {m.split(".")[0] for m in sys.modules} & {"torch", "transformers"}), flush=True))
sys.argv = ["bot.py", *sys.argv[1:]]
runpy.run_path("bot.py", run_name="__main__")
"""


async def test_a_streamed_answer_reaches_discord_unchanged(
    fake, start_bot, llama_server, tiny_model_dir
):
    settings = remote_settings(
        tiny_model_dir, [llama_server.url], generation={"max_new_tokens": 60}
    )
    backend = RemoteBackend.from_settings(settings)
    try:
        run = await start_bot(settings=settings, backend=backend)
        await fake.send_message("hello, remote model")
        [reply] = await fake.wait_for(
            lambda: (m := fake.bot_messages(GENERAL_ID)) and "▌" not in m[0]["content"] and m,
            timeout=60,
        )
        [_, answer] = await run.pipeline.conversations.history(f"discord:channel:{GENERAL_ID}")
        assert reply["content"] == answer.content
        edits = fake.requests("PATCH", "channels", str(GENERAL_ID), "messages")
        assert edits  # it was streamed: posted, then edited as text arrived

        interaction = await fake.slash("status")
        [*_, answer_call] = await fake.wait_for(
            lambda: (c := fake.interaction_calls(interaction)) and len(c) >= 2 and c
        )
        [embed] = answer_call.json["embeds"]
        servers = {f["name"]: f["value"] for f in embed["fields"]}["Servers"]
        assert servers == f"{llama_server.url} — up · llama.cpp · 0 in flight"
    finally:
        await backend.close()


async def test_bot_py_remote_serves_discord_with_valid_calls_and_no_torch(
    fake, llama_server, tiny_model_dir
):
    process = await spawn_against(
        fake,
        "-c",
        _CHILD,
        "--remote",
        llama_server.url,
        HERMES_BOT_MODEL__ID=str(tiny_model_dir),
        HERMES_BOT_CHAT__CORRECTIVE_RETRIES="0",
    )
    try:
        await fake.wait_for(lambda: fake.ready.is_set(), timeout=60)
        for title, reply in await tool_card_replies(fake, timeout=60):
            assert "embeds" in reply, (reply, (await _drain(process))[-3000:])
            [embed] = reply["embeds"]
            assert title in embed["title"]
            assert embed["description"].strip()
        process.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
    assert process.returncode == 0, stderr.decode()[-2000:]
    assert "HEAVY []" in stdout.decode(), stdout.decode()[-2000:]
    assert TOKEN not in stderr.decode()


async def _drain(process) -> str:
    process.kill()
    _, stderr = await process.communicate()
    return stderr.decode()
