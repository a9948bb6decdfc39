"""Mentions, thread follow-ups, DMs: each user message answered once, where the user expects."""

from __future__ import annotations

import asyncio
import logging

from tests.adapters.slack.fake_slack import (
    ALICE,
    BOB,
    GENERAL,
    OTHER_BOT,
    RANDOM,
    dm_channel,
)
from tests.fakes import ScriptedBackend


def _texts(messages):
    return [m["text"] for m in messages]


async def test_a_mention_is_answered_once_in_a_thread_under_it(fake, start_bot):
    running = await start_bot(["Hello **Alice**, nice to meet you."])
    sent = await fake.post("hi there", mention=True)
    replies = await fake.wait_for(
        lambda: [m for m in fake.bot_messages(GENERAL, sent["ts"]) if "nice" in m["text"]]
    )
    await fake.wait_for(lambda: len(fake.acks("events_api")) >= 2)
    assert len(fake.bot_messages(GENERAL)) == 1  # the placeholder became the answer
    section = replies[0]["blocks"][0]["text"]
    assert section["text"] == "Hello *Alice*, nice to meet you."
    assert "▌" not in section["text"]
    assert len(running.backend.requests) == 1
    assert "hi there" in running.backend.requests[0].prompt
    assert "U0HERMES" not in running.backend.requests[0].prompt


async def test_thread_followups_need_no_mention_and_other_chatter_is_ignored(fake, start_bot):
    running = await start_bot(["first answer", "second answer", "third answer"])
    root = await fake.post("start a thread", mention=True)
    await fake.wait_for(lambda: "first" in "".join(_texts(fake.bot_messages(GENERAL))))
    await fake.post("not for the bot", channel=GENERAL)
    await fake.post("a thread I am not in", channel=RANDOM)
    await fake.post("<@U0ALICE> this one is for you", thread_ts=root["ts"], user=BOB)
    await fake.post("and a follow-up", thread_ts=root["ts"], user=BOB)
    await fake.wait_for(lambda: "second" in "".join(_texts(fake.bot_messages(GENERAL))))
    # Barrier: a later mention is answered, so the ignored messages were really ignored.
    await fake.post("new topic", mention=True, channel=RANDOM)
    await fake.wait_for(lambda: "third" in "".join(_texts(fake.bot_messages(RANDOM))))
    assert len(running.backend.requests) == 3
    thread = fake.bot_messages(GENERAL, root["ts"])
    assert _texts(thread) == ["first answer", "second answer"]
    assert "start a thread" in running.backend.requests[1].prompt  # same conversation


async def test_a_dm_is_answered_in_the_dm_without_a_thread(fake, start_bot):
    await start_bot(["Sure, happy to help."])
    await fake.dm("can you help?")
    replies = await fake.wait_for(
        lambda: [m for m in fake.bot_messages(dm_channel(ALICE)) if "happy" in m["text"]]
    )
    assert "thread_ts" not in replies[0]


async def test_a_redelivered_event_is_not_answered_twice(fake, start_bot):
    running = await start_bot(["only once", "barrier"])
    sent = await fake.post("hello", mention=True)
    await fake.wait_for(lambda: "only once" in "".join(_texts(fake.bot_messages(GENERAL))))
    for delivery in list(fake.deliveries[:2]):
        await fake.redeliver(delivery)
    await fake.post("barrier please", mention=True)
    await fake.wait_for(lambda: "barrier" in "".join(_texts(fake.bot_messages(GENERAL))))
    assert _texts(fake.bot_messages(GENERAL, sent["ts"])) == ["only once"]
    assert len(running.backend.requests) == 2


async def test_bot_messages_are_ignored(fake, start_bot):
    running = await start_bot(["barrier"])
    await fake.post("hey bot", mention=True, user=OTHER_BOT, bot=True)
    await fake.post("barrier", mention=True)
    await fake.wait_for(lambda: "barrier" in "".join(_texts(fake.bot_messages(GENERAL))))
    assert len(running.backend.requests) == 1


async def test_mentions_of_people_reach_the_prompt_as_names(fake, start_bot):
    running = await start_bot(["ok"])
    await fake.post("what does <@U0BOB> think of <#C0RANDOM|random>?", mention=True)
    await fake.wait_for(lambda: running.backend.requests)
    prompt = running.backend.requests[0].prompt
    assert "@Bob" in prompt and "#random" in prompt and "<@" not in prompt


class StallingBackend(ScriptedBackend):
    """Streams its first answer, then never finishes it: only a withdrawal ends that turn."""

    async def stream(self, request):
        async for delta in super().stream(request):
            yield delta
        if len(self.requests) == 1:
            await asyncio.Event().wait()


async def test_deleting_the_question_withdraws_the_answer(fake, start_bot):
    running = await start_bot(backend=StallingBackend(["a long answer", "barrier"]))
    sent = await fake.post("question", mention=True)
    await fake.wait_for(lambda: "a long answer" in str(fake.bot_messages(GENERAL)))
    await fake.delete(sent)
    await fake.wait_for(lambda: running.bot.responder.inflight == 0)
    assert fake.bot_messages(GENERAL) == []
    await fake.post("barrier", mention=True)
    await fake.wait_for(lambda: "barrier" in "".join(_texts(fake.bot_messages(GENERAL))))
    assert len(fake.bot_messages(GENERAL)) == 1


async def test_a_question_deleted_while_the_placeholder_is_on_its_way_leaves_nothing(
    fake, start_bot, caplog
):
    caplog.set_level(logging.INFO, logger="hermes_bot.adapters.slack.events")
    running = await start_bot(["never asked for"])
    posted = fake.hold("chat.postMessage")
    sent = await fake.post("question", mention=True)
    await fake.wait_for(lambda: running.bot.responder.inflight and fake.bot_messages(GENERAL))
    await fake.delete(sent)  # Slack has the placeholder; the bot has not heard back yet
    await fake.wait_for(lambda: "its answer was withdrawn" in caplog.text)
    posted.set()
    await fake.wait_for(lambda: running.bot.responder.inflight == 0)
    assert fake.bot_messages(GENERAL) == []
    assert running.backend.requests == []


async def test_speakers_in_a_thread_are_named_in_the_prompt(fake, start_bot):
    running = await start_bot(["hello both", "hi Bob"])
    root = await fake.post("hi, I'm here", mention=True, user=ALICE)
    await fake.wait_for(lambda: "both" in "".join(_texts(fake.bot_messages(GENERAL))))
    await fake.post("me too", user=BOB, thread_ts=root["ts"])
    await fake.wait_for(lambda: "Bob" in "".join(_texts(fake.bot_messages(GENERAL))))
    prompt = running.backend.requests[-1].prompt
    assert "hi, I'm here" in prompt and "me too" in prompt
    assert "Alice: hi, I'm here" in prompt and "Bob: me too" in prompt
