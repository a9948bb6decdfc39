"""Streaming: throttled edits with a "still writing" mark, held-back call markup, long streams."""

from __future__ import annotations

import itertools

from tests.adapters.discord.fake_discord import GENERAL_ID, GUILD_ID
from tests.adapters.discord.markup import SONG

INTERVAL = 0.2


def _writes(fake, message_id):
    """Every payload that created or edited one message, in order."""
    create = [
        c
        for c in fake.requests("POST", "channels", str(GENERAL_ID), "messages")
        if c.json.get("message_reference")
    ]
    edits = fake.requests("PATCH", "channels", str(GENERAL_ID), "messages", message_id)
    return create[:1] + edits


async def test_edits_are_throttled_and_the_final_edit_shows_the_full_text(fake, start_bot):
    answer = " ".join(f"token{i}" for i in range(60))
    await start_bot([answer], delay=1.2, chunk=8, stream_edit_interval=INTERVAL)
    await fake.send_message("stream please")
    [message] = await fake.final_messages(GENERAL_ID)
    writes = _writes(fake, message["id"])
    streaming = [w for w in writes if w.json["content"].endswith(" ▌")]
    assert len(streaming) >= 3
    gaps = [b.at - a.at for a, b in itertools.pairwise(streaming)]
    assert min(gaps) >= INTERVAL * 0.95
    assert all(answer.startswith(w.json["content"].removesuffix(" ▌")) for w in streaming)
    assert writes[-1].json["content"] == answer
    assert message["content"] == answer


async def test_partial_call_markup_is_held_back_and_the_call_becomes_an_embed(fake, start_bot):
    completion = "Here's something you might like! " + SONG
    await start_bot([completion], delay=0.8, chunk=6, stream_edit_interval=INTERVAL)
    await fake.send_message("recommend a song")
    [message] = await fake.wait_for(
        lambda: (m := fake.bot_messages(GENERAL_ID)) and m[0]["embeds"] and m
    )
    writes = _writes(fake, message["id"])
    assert any(w.json["content"].endswith(" ▌") for w in writes[:-1])
    assert all("<" not in (w.json.get("content") or "") for w in writes)
    assert all("functioncall" not in str(w.json) for w in writes)
    assert message["content"] == "Here's something you might like!"
    assert "Nightcall - Kavinsky" in message["embeds"][0]["description"]


async def test_a_stream_past_2000_characters_continues_in_follow_up_messages(fake, start_bot):
    answer = "\n".join(f"Line {i}: " + " ".join(["lorem ipsum"] * 6) for i in range(60))
    assert len(answer) > 4000
    await start_bot([answer], delay=1.0, chunk=120, stream_edit_interval=INTERVAL)
    await fake.send_message("a long one")
    messages = await fake.final_messages(GENERAL_ID)
    assert len(messages) == 3
    assert all(len(m["content"]) <= 2000 for m in messages)
    assert "\n".join(m["content"] for m in messages) == answer
    posts = fake.requests("POST", "channels", str(GENERAL_ID), "messages")
    assert len(posts) == 3
    assert posts[0].json.get("message_reference") and not posts[1].json.get("message_reference")


async def test_deleting_the_question_withdraws_the_answer(fake, start_bot):
    answer = " ".join(f"token{i}" for i in range(60))
    run = await start_bot(
        [answer, "Next answer."], delay=3.0, chunk=8, stream_edit_interval=INTERVAL
    )
    question = await fake.send_message("stream please")
    await fake.wait_for(lambda: fake.bot_messages(GENERAL_ID))  # the answer is streaming
    await fake.dispatch(
        "MESSAGE_DELETE",
        {"id": question["id"], "channel_id": str(GENERAL_ID), "guild_id": str(GUILD_ID)},
    )
    await fake.wait_for(lambda: not fake.bot_messages(GENERAL_ID))
    run.backend.delay = 0.0  # the next answer need not be slow
    await fake.send_message("are you still there?")
    [message] = await fake.final_messages(GENERAL_ID, turns=2, timeout=30)
    assert message["content"] == "Next answer."
    assert "stopped" not in str(fake.requests("POST", "channels"))
    assert len(run.backend.requests) == 2
