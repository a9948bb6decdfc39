"""Faults: 429s, Socket Mode refreshes and drops mid-answer, bursts, shutdown, access."""

from __future__ import annotations

import re

from tests.adapters.slack.fake_slack import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    ERIN,
    GENERAL,
    OTHER_TEAM,
    RANDOM,
)
from tests.adapters.slack.test_commands import HeldBackend


def _answers(fake, channel, ts):
    """The bot's finished messages in a thread (no placeholder, no streaming mark)."""
    return [
        m
        for m in fake.bot_messages(channel, ts)
        if "thinking…" not in m["text"] and "▌" not in m["text"]
    ]


async def test_a_429_is_retried_after_retry_after_and_the_answer_arrives_once(fake, start_bot):
    await start_bot(["made it"])
    fake.fail("chat.postMessage", times=1, retry_after=0)
    fake.fail("chat.update", times=1, retry_after=0)
    sent = await fake.post("hello", mention=True)
    await fake.wait_for(lambda: "made it" in str(_answers(fake, GENERAL, sent["ts"])))
    assert [c.result["ok"] for c in fake.api("chat.postMessage")] == [False, True]
    assert len(fake.bot_messages(GENERAL)) == 1


async def test_a_refresh_and_a_drop_mid_answer_still_answer_everything_once(fake, start_bot):
    # The two turns may reach the model in either order: each is answered by its question.
    backend = HeldBackend(
        script=lambda r: "second answer" if "Bob: two" in r.prompt else "first answer"
    )
    await start_bot(backend=backend)
    first = await fake.post("one", mention=True)
    await fake.wait_for(lambda: backend.held and fake.bot_messages(GENERAL))  # answering, held
    await fake.request_refresh()
    for delivery in [
        d for d in fake.deliveries if d.payload.get("event", {}).get("ts") == first["ts"]
    ]:
        await fake.redeliver(delivery)  # as after a late ack, on the new connection
    second = await fake.post("two", mention=True, user=BOB)
    await fake.drop_connection()  # the second mention may not have been acked yet
    backend.release.set()
    await fake.wait_for(
        lambda: _answers(fake, GENERAL, first["ts"]) and _answers(fake, GENERAL, second["ts"])
    )
    await fake.wait_for(lambda: all(d.acked_at or d.redelivered for d in fake.deliveries))
    assert [m["text"] for m in fake.bot_messages(GENERAL, first["ts"])] == ["first answer"]
    assert [m["text"] for m in fake.bot_messages(GENERAL, second["ts"])] == ["second answer"]
    assert len(backend.requests) == 2


async def test_a_burst_of_20_messages_from_5_users_is_answered_once_each(fake, start_bot):
    running = await start_bot(
        lambda r: "answer to " + re.findall(r"msg-(\d+-x)", r.prompt)[-1], delay=0.05
    )
    users = [ALICE, BOB, CAROL, DAVE, ERIN]
    sent = []
    for i in range(20):
        channel = GENERAL if i % 2 else RANDOM
        sent.append(
            await fake.post(f"msg-{i:02d}-x", mention=True, user=users[i % 5], channel=channel)
        )
    await fake.wait_for(
        lambda: all("answer to" in str(_answers(fake, m["channel"], m["ts"])) for m in sent),
        timeout=30,
    )
    for i, message in enumerate(sent):
        texts = [m["text"] for m in fake.bot_messages(message["channel"], message["ts"])]
        assert texts == [f"answer to {i:02d}-x"], (i, texts)
    assert len(running.backend.requests) == 20


async def test_shutdown_leaves_a_notice_on_answers_in_flight(fake, start_bot):
    backend = HeldBackend("never shown")
    running = await start_bot(backend=backend)
    sent = await fake.post("slow one", mention=True)
    await fake.wait_for(lambda: running.bot.responder.inflight and fake.bot_messages(GENERAL))
    await running.bot.close()
    texts = str(fake.bot_messages(GENERAL, sent["ts"]))
    assert "restarting" in texts and "never shown" not in texts


async def test_allow_lists_refuse_privately_and_the_rate_limit_warns_once_then_reacts(
    fake, start_bot
):
    running = await start_bot(
        ["ok"] * 3,
        allowed_workspaces=["T0TEAM"],
        allowed_channels=[GENERAL],
        rate_limit_messages=2,
        rate_limit_seconds=600,
    )
    await fake.post("from elsewhere", mention=True, team=OTHER_TEAM)
    await fake.post("wrong channel", mention=True, channel=RANDOM, user=BOB)
    await fake.slash("/chat", "hi", channel=RANDOM, user=CAROL)
    await fake.wait_for(
        lambda: (
            fake.ephemerals_for(ALICE) and fake.ephemerals_for(BOB) and fake.ephemerals_for(CAROL)
        )
    )
    for user in (ALICE, BOB, CAROL):
        assert "not enabled for you here" in fake.ephemerals_for(user)[0]["text"]
    # One at a time, each waited for, so the limit counts them in this order.
    outcomes = [
        lambda m: _answers(fake, GENERAL, m["ts"]),
        lambda m: _answers(fake, GENERAL, m["ts"]),
        lambda m: fake.ephemerals_for(DAVE),
        lambda m: fake.messages[(GENERAL, m["ts"])].get("reactions"),
    ]
    messages = []
    for i, outcome in enumerate(outcomes):
        messages.append(await fake.post(f"m{i}", mention=True, user=DAVE))
        await fake.wait_for(lambda outcome=outcome: outcome(messages[-1]))
    assert "too quickly" in fake.ephemerals_for(DAVE)[0]["text"]
    assert len(fake.ephemerals_for(DAVE)) == 1
    assert [bool(_answers(fake, GENERAL, m["ts"])) for m in messages] == [True, True, False, False]
    assert len(running.backend.requests) == 2


async def test_an_answer_whose_message_someone_deleted_is_posted_again(fake, start_bot):
    backend = HeldBackend("still here")
    await start_bot(backend=backend)
    sent = await fake.post("hello", mention=True)
    [placeholder] = await fake.wait_for(lambda: fake.bot_messages(GENERAL, sent["ts"]))
    await fake.remove((GENERAL, placeholder["ts"]))  # an admin deletes it
    backend.release.set()
    await fake.wait_for(lambda: "still here" in str(_answers(fake, GENERAL, sent["ts"])))
    assert [m["text"] for m in fake.bot_messages(GENERAL, sent["ts"])] == ["still here"]


async def test_in_the_bots_thread_others_chatter_is_ignored_and_only_a_mention_is_refused(
    fake, start_bot
):
    running = await start_bot(["first", "second"], allowed_users=[ALICE])
    root = await fake.post("start", mention=True)
    await fake.wait_for(lambda: _answers(fake, GENERAL, root["ts"]))
    await fake.post("just chatting", thread_ts=root["ts"], user=BOB)
    await fake.post("let me in", thread_ts=root["ts"], user=BOB, mention=True)
    await fake.post("go on", thread_ts=root["ts"])  # barrier: Alice's follow-up is answered
    await fake.wait_for(lambda: len(_answers(fake, GENERAL, root["ts"])) == 2)
    assert [e["text"] for e in fake.ephemerals_for(BOB)] == [
        "Sorry, I'm not enabled for you here. Ask a workspace admin if you think I should be."
    ]
    assert len(running.backend.requests) == 2
