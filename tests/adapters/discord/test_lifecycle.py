"""Lifecycle: gateway RECONNECT mid-answer, a burst of users, SIGTERM with answers in flight."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter

import pytest

from hermes_bot.adapters.discord import client, run_discord
from hermes_bot.adapters.discord.responder import SHUTDOWN_NOTICE
from hermes_bot.config import Settings
from hermes_bot.errors import Busy, ConfigError
from hermes_bot.pipeline import Pipeline
from tests.adapters.discord.fake_discord import ALICE, GENERAL_ID, RANDOM_ID, THREAD_ID, TOKEN
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
    messages = await fake.final_messages(GENERAL_ID, turns=2)
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

    # 40 turns (answers or "busy"), 10 cooldown notices; then a barrier from a new user.
    await fake.wait_for(lambda: len(fake.bot_messages(GENERAL_ID)) == 50, timeout=20)
    barrier = await fake.send_message("one more", user_id=999)
    await fake.wait_for(
        lambda: (
            fake.turns_finished == 41
            and any(
                m["message_reference"]["message_id"] == barrier["id"]
                for m in fake.bot_messages(GENERAL_ID)
            )
        ),
        timeout=20,
    )
    messages = [
        m
        for m in fake.bot_messages(GENERAL_ID)
        if m["message_reference"]["message_id"] != barrier["id"]
    ]
    assert len(messages) == 50
    assert all("▌" not in m["content"] for m in messages)
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


class StagedBackend(ScriptedBackend):
    """The user's words pick a stage: ``queued`` never starts, ``streaming`` writes a little
    then hangs, ``done`` is answered at once."""

    def __init__(self) -> None:
        super().__init__(lambda request: "")
        self.finished: list[str] = []
        self._never = asyncio.Event()

    async def stream(self, request):
        self.requests.append(request)
        user = request.prompt.rsplit("<|im_start|>user", 1)[1]
        stage = next(word for word in ("queued", "streaming", "done") if word in user)
        if stage == "queued":
            await self._never.wait()
        if stage == "streaming":
            yield "Half of an answer"
            await self._never.wait()
        yield f"The whole answer to {stage}."
        self.finished.append(stage)


async def test_sigterm_answers_or_notifies_every_accepted_message_then_exits_0(
    fake, monkeypatch, caplog
):
    """SIGTERM with answers in every stage: queued, streaming, being posted, arriving late."""
    caplog.set_level("DEBUG")
    monkeypatch.setattr(client, "SHUTDOWN_GRACE", 60.0)  # the test decides when posting ends
    settings = Settings(discord=fake.settings())
    backend = StagedBackend()
    pipeline = Pipeline.from_settings(backend, settings)
    bot = asyncio.create_task(run_discord(settings, pipeline, guild_ready_timeout=0.01))
    await fake.wait_for(lambda: fake.ready.is_set())
    posting = fake.fail("POST", "channels", str(RANDOM_ID), "messages", hold=True)
    queued = await fake.send_message("please wait, queued")
    streaming = await fake.send_message("now streaming", dm=True, mention_bot=False)
    done = await fake.send_message("almost done", channel_id=RANDOM_ID)
    await fake.wait_for(lambda: fake.bot_messages(5000 + ALICE))  # "streaming" shows text
    await fake.wait_for(lambda: "done" in backend.finished and posting.hits)
    assert len(backend.requests) == 3

    os.kill(os.getpid(), signal.SIGTERM)

    def reply_to(question):
        return lambda: [
            m
            for m in fake.messages.values()
            if (m.get("message_reference") or {}).get("message_id") == question["id"]
            and "▌" not in m["content"]
        ]

    [queued_reply] = await fake.wait_for(reply_to(queued))
    [streaming_reply] = await fake.wait_for(reply_to(streaming))
    late = await fake.send_message("arriving late", channel_id=THREAD_ID)
    [late_reply] = await fake.wait_for(reply_to(late))
    assert not bot.done()  # still posting "almost done"
    posting.release.set()
    assert await asyncio.wait_for(bot, 30) == 0
    [done_reply] = reply_to(done)()

    assert queued_reply["content"] == SHUTDOWN_NOTICE
    assert streaming_reply["content"] == f"Half of an answer\n\n*{SHUTDOWN_NOTICE}*"
    assert done_reply["content"] == "The whole answer to done."
    assert late_reply["content"] == SHUTDOWN_NOTICE
    assert len(backend.requests) == 3  # nothing generated after SIGTERM
    assert TOKEN not in caplog.text and TOKEN.split(".")[1] not in caplog.text


async def test_a_rejected_or_missing_token_is_a_config_error_that_says_what_to_do(fake):
    def settings(token):
        return Settings(discord=fake.settings(token=token))

    pipeline = Pipeline.from_settings(ScriptedBackend([]), Settings())
    with pytest.raises(ConfigError) as rejected:
        await run_discord(settings("wrong-token"), pipeline)
    with pytest.raises(ConfigError) as missing:
        await run_discord(settings(None), pipeline)
    assert "DISCORD_TOKEN" in rejected.value.user_message
    assert "DISCORD_TOKEN" in missing.value.user_message
    assert fake.identifies == []
