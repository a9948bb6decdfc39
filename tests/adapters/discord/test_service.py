"""Running as a service: memory across restarts, /forget-me, speakers, channel prompts,
auto_thread, metrics and /healthz, all seen through the fake Discord."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from hermes_bot.config import ChatSettings, Settings, StorageSettings
from hermes_bot.conversation import ConversationStore, open_conversations
from hermes_bot.observability import serve
from tests.adapters.discord.fake_discord import (
    ALICE,
    BOB,
    CAROL,
    GENERAL_ID,
    RANDOM_ID,
    THREAD_ID,
)
from tests.fakes import ScriptedBackend


async def _answered(fake, channel_id: int, content: str) -> dict:
    """The bot's message in the channel once it reads ``content`` (final: no ▌)."""
    return await fake.wait_for(
        lambda: next((m for m in fake.bot_messages(channel_id) if m["content"] == content), None),
        timeout=10,
    )


async def _followup(fake, interaction) -> dict:
    [message] = await fake.wait_for(lambda: fake.followup_messages(interaction))
    return message


async def _store(path: Path) -> ConversationStore:
    store = open_conversations(ChatSettings(), StorageSettings(path=path))
    await store.open()
    return store


async def test_status_reports_the_remembered_messages_after_a_restart(fake, start_bot, tmp_path):
    path = tmp_path / "conversations.db"
    store = await _store(path)
    first = await start_bot(["Nice to meet you, Alice."], conversations=store)
    await fake.send_message("hi, I'm Alice")
    await _answered(fake, GENERAL_ID, "Nice to meet you, Alice.")
    await first.bot.close()
    await store.close()

    again = await _store(path)
    try:
        run = await start_bot(["You told me you're Alice."], conversations=again)
        status = await _followup(fake, await fake.slash("status"))
        fields = {f["name"]: f["value"] for f in status["embeds"][0]["fields"]}
        assert fields["This conversation"] == "2 messages remembered"
        await fake.send_message("who am I?")
        await _answered(fake, GENERAL_ID, "You told me you're Alice.")
        assert "hi, I'm Alice" in run.backend.requests[-1].prompt
    finally:
        await again.close()


async def test_forget_me_deletes_only_that_users_messages(fake, start_bot, tmp_path):
    path = tmp_path / "conversations.db"
    store = await _store(path)
    try:
        run = await start_bot(["Hello Alice.", "Hello Bob.", "Noted."], conversations=store)
        await fake.send_message("my secret is 42", user_id=ALICE)
        await _answered(fake, GENERAL_ID, "Hello Alice.")
        await fake.send_message("I like tea", user_id=BOB)
        await _answered(fake, GENERAL_ID, "Hello Bob.")
        reply = await _followup(fake, await fake.slash("forget-me", user_id=ALICE))
        assert reply["flags"] & 64  # only Alice sees it
        assert "Deleted 1 " in reply["embeds"][0]["description"]
        rows = sqlite3.connect(path).execute("SELECT user_id FROM exchanges").fetchall()
        assert rows == [(f"discord:{BOB}",)]
        await fake.send_message("what do you know?", user_id=BOB)
        await _answered(fake, GENERAL_ID, "Noted.")
        prompt = run.backend.requests[-1].prompt
        assert "I like tea" in prompt and "42" not in prompt
    finally:
        await store.close()


async def test_speakers_are_named_in_channels_and_not_in_dms(fake, start_bot):
    run = await start_bot(["Hi both.", "Hi.", "Hello."])
    await fake.send_message("hello from Alice", user_id=ALICE)
    await _answered(fake, GENERAL_ID, "Hi both.")
    await fake.send_message("and from Bob", user_id=BOB)
    await _answered(fake, GENERAL_ID, "Hi.")
    prompt = run.backend.requests[-1].prompt
    assert f"user{ALICE}: hello from Alice" in prompt
    assert f"user{BOB}: and from Bob" in prompt
    await fake.send_message("a private word", user_id=CAROL, dm=True, mention_bot=False)
    await _answered(fake, 5000 + CAROL, "Hello.")
    assert "user\na private word<|im_end|>" in run.backend.requests[-1].prompt


async def test_channel_prompts_apply_to_their_channel_and_its_threads_only(fake, start_bot):
    chat = {"channel": [{"id": GENERAL_ID, "instructions": "Talk like a pirate."}]}
    run = await start_bot(["Arr.", "Arr again.", "Plain."], chat=chat)
    for channel_id, answer in (
        (GENERAL_ID, "Arr."),
        (THREAD_ID, "Arr again."),
        (RANDOM_ID, "Plain."),
    ):
        await fake.send_message("hello", channel_id=channel_id)
        await _answered(fake, channel_id, answer)
    general, thread, other = (r.prompt for r in run.backend.requests)
    assert "Talk like a pirate." in general and "Talk like a pirate." in thread
    assert "pirate" not in other


async def test_auto_thread_opens_one_thread_and_continues_there(fake, start_bot):
    run = await start_bot(["Let's talk here.", "Still here."], auto_thread=True)
    question = await fake.send_message("can we chat about boats?")
    [thread] = await fake.wait_for(lambda: fake.created_threads)
    assert thread["parent_id"] == str(GENERAL_ID) and thread["id"] == question["id"]
    assert "boats" in thread["name"]
    thread_id = int(thread["id"])
    await _answered(fake, thread_id, "Let's talk here.")
    await fake.send_message("what about sails?", channel_id=thread_id, mention_bot=False)
    await _answered(fake, thread_id, "Still here.")
    assert "can we chat about boats?" in run.backend.requests[-1].prompt
    assert len(fake.created_threads) == 1 and fake.bot_messages(GENERAL_ID) == []


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_count_what_the_platform_saw(fake, start_bot):
    joke = '<functioncall>{"name": "Joke", "arguments": {"setup": "Why?", "answer": "Because."}}</functioncall>'
    run = await start_bot(
        ["Hello!", joke, "Fine."], allowed_users=[ALICE, BOB], rate_limit_messages=2
    )
    runner = await serve(run.pipeline.telemetry, "127.0.0.1", 0)
    try:
        await fake.send_message("hi", user_id=ALICE)
        await _answered(fake, GENERAL_ID, "Hello!")
        await _followup(fake, await fake.slash("joke", user_id=ALICE))
        await fake.send_message("too many", user_id=ALICE)  # third in the window: cooldown
        await fake.send_message("let me in", user_id=CAROL)  # not allowed: refused
        await fake.send_message("barrier", user_id=BOB)
        await _answered(fake, GENERAL_ID, "Fine.")
        host, port = runner.addresses[0][:2]
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://{host}:{port}/metrics") as response,
        ):
            assert response.status == 200
            samples = _samples(await response.text())
    finally:
        await runner.cleanup()

    def requests(outcome: str) -> float:
        key = ("hermes_bot_requests_total", (("outcome", outcome), ("platform", "discord")))
        return samples.get(key, 0.0)

    assert (requests("answered"), requests("tool"), requests("cooldown"), requests("refused")) == (
        2,
        1,
        1,
        1,
    )
    assert samples[("hermes_bot_turn_seconds_count", ())] == 3
    assert samples[("hermes_bot_time_to_first_token_seconds_count", ())] == 3
    prompts = sum(run.backend.count_tokens(r.prompt) for r in run.backend.requests)
    assert samples[("hermes_bot_tokens_total", (("direction", "in"),))] == prompts
    assert samples[("hermes_bot_queue_depth", ())] == 0
    assert samples[("hermes_bot_health", (("check", "discord"),))] == 1


class _StoppableBackend(ScriptedBackend):
    def stats(self):
        stats = super().stats()
        return stats if not self.closed else type(stats)(model="scripted", device="not loaded")


async def _health(port: int) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/healthz") as r:
        return r.status, await r.json()


async def test_healthz_flips_when_the_worker_stops_or_discord_goes_away(fake, start_bot):
    backend = _StoppableBackend([])
    run = await start_bot(backend=backend, settings=Settings())
    runner = await serve(run.pipeline.telemetry, "127.0.0.1", 0)
    port = runner.addresses[0][1]
    try:
        status, body = await _health(port)
        assert status == 200 and body["checks"]["discord"]["ok"]
        await backend.close()
        status, body = await _health(port)
        assert status == 503 and body["checks"]["model"] == {
            "ok": False,
            "detail": "model not loaded",
        }
        backend.closed = False
        assert (await _health(port))[0] == 200
        await fake.close()  # Discord is gone: the client keeps retrying
        await fake.wait_for(lambda: not run.pipeline.telemetry.check_health()["discord"][0])
        status, body = await _health(port)
        assert status == 503 and body["checks"]["discord"]["detail"] == "disconnected"
    finally:
        await runner.cleanup()
