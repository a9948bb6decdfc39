"""Lifecycle: gateway RECONNECT mid-answer, a burst of users, SIGTERM exits 0 without leaking the token."""

from __future__ import annotations

import asyncio
import signal
import textwrap
from collections import Counter

import pytest

from hermes_bot.adapters.discord import run_discord
from hermes_bot.config import DiscordSettings, Settings
from hermes_bot.errors import Busy, ConfigError
from hermes_bot.pipeline import Pipeline
from tests.adapters.discord.conftest import spawn_against
from tests.adapters.discord.fake_discord import GENERAL_ID, TOKEN
from tests.fakes import ScriptedBackend


async def test_a_gateway_reconnect_during_an_answer_resumes_and_the_reply_arrives_once(
    fake, start_bot
):
    answer = "The answer survives a reconnect, word by word."
    await start_bot([answer, "Second answer."], delay=1.0, chunk=5)
    await fake.send_message("first")
    await fake.wait_for(lambda: fake.bot_messages(GENERAL_ID))
    await fake.send_op(7)
    await fake.send_message("sent while the bot reconnects", channel_id=GENERAL_ID)
    await fake.wait_for(lambda: fake.resumes)
    messages = await fake.wait_for(
        lambda: (
            len(m := fake.bot_messages(GENERAL_ID)) == 2
            and all("▌" not in x["content"] for x in m)
            and m
        )
    )
    assert sorted(m["content"] for m in messages) == sorted([answer, "Second answer."])
    assert len(fake.requests("POST", "channels", str(GENERAL_ID), "messages")) == 2
    assert len(fake.identifies) == 1
    assert fake.resumes[0]["session_id"] == "session-1"


async def test_fifty_messages_from_ten_users_each_get_exactly_one_reply(fake, start_bot):
    count = 0

    def script(request):
        nonlocal count
        count += 1
        if count % 9 == 0:
            raise Busy("queue full")
        return "An answer."

    await start_bot(script, delay=0.2, rate_limit_messages=4, rate_limit_seconds=60)
    sent = await asyncio.gather(
        *(fake.send_message(f"question {i}", user_id=100 + i % 10) for i in range(50))
    )

    def replies():
        done = [m for m in fake.bot_messages(GENERAL_ID) if "▌" not in m["content"]]
        return done if len(done) >= 50 else None

    messages = await fake.wait_for(replies, timeout=20)
    await asyncio.sleep(0.3)
    assert len(fake.bot_messages(GENERAL_ID)) == 50
    per_question = Counter(m["message_reference"]["message_id"] for m in messages)
    assert set(per_question) == {m["id"] for m in sent}
    assert set(per_question.values()) == {1}
    kinds = Counter(
        "answer"
        if m["content"] == "An answer."
        else "busy"
        if m["content"].startswith("⚠️ I'm busy")
        else "cooldown"
        if "too quickly" in m["content"]
        else m["content"]
        for m in messages
    )
    assert kinds["cooldown"] == 10
    assert kinds["busy"] >= 1
    assert kinds["answer"] + kinds["busy"] == 40


_CHILD = textwrap.dedent(
    """
    import asyncio, logging, sys
    from hermes_bot.adapters.discord import run_discord
    from hermes_bot.config import load_settings
    from hermes_bot.pipeline import Pipeline
    from tests.fakes import ScriptedBackend

    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    settings = load_settings("no-such-config.toml")  # defaults, env and DISCORD_TOKEN
    backend = ScriptedBackend(["A very slow answer " * 20], delay=60.0, chunk=4)
    print("starting", flush=True)
    sys.exit(asyncio.run(run_discord(settings, Pipeline.from_settings(backend, settings),
                                     guild_ready_timeout=0.01)))
    """
)


async def test_sigterm_closes_cleanly_with_exit_code_0_and_never_logs_the_token(fake):
    process = await spawn_against(
        fake, "-c", _CHILD, HERMES_BOT_DISCORD__STREAM_EDIT_INTERVAL="0.2"
    )
    try:
        await fake.wait_for(lambda: fake.ready.is_set(), timeout=30)
        await asyncio.sleep(0.1)
        await fake.send_message("say something slowly")
        [message] = await fake.wait_for(lambda: fake.bot_messages(GENERAL_ID), timeout=10)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
    assert process.returncode == 0, stderr.decode()[-2000:]
    assert "restarting" in message["content"]
    assert "▌" not in message["content"]
    output = stdout.decode() + stderr.decode()
    assert "IDENTIFY" in output or "connected" in output
    assert TOKEN not in output
    assert TOKEN.split(".")[1] not in output


async def test_a_rejected_or_missing_token_is_a_config_error_that_says_what_to_do(fake):
    def settings(token):
        return Settings(
            discord=DiscordSettings(
                token=token, api_base_url=fake.api_base_url, gateway_url=fake.gateway_url
            )
        )

    pipeline = Pipeline.from_settings(ScriptedBackend([]), Settings())
    with pytest.raises(ConfigError) as rejected:
        await run_discord(settings("wrong-token"), pipeline)
    with pytest.raises(ConfigError) as missing:
        await run_discord(settings(None), pipeline)
    assert "DISCORD_TOKEN" in rejected.value.user_message
    assert "DISCORD_TOKEN" in missing.value.user_message
    assert fake.identifies == []
