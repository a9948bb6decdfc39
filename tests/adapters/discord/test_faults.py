"""Nothing lost when Discord misbehaves: dropped connections, failing typing, deleted messages."""

from __future__ import annotations

import asyncio
import logging

import pytest

from hermes_bot.adapters.discord.client import COMMAND_FAILED
from hermes_bot.adapters.discord.responder import SHUTDOWN_NOTICE
from hermes_bot.adapters.text import split_text
from tests.adapters.discord.fake_discord import GENERAL_ID, GUILD_ID
from tests.adapters.discord.fake_faults import DROP, DROP_AFTER
from tests.fakes import ScriptedBackend

ANSWER = "An answer that arrives whatever Discord does to the connection."
LONG = "\n".join(f"Line {i}: " + " ".join(["lorem ipsum"] * 6) for i in range(60))


def _turns(run):
    """The turns the bot has accepted and not yet finished."""
    return run.bot.chat.responder._turns


@pytest.mark.parametrize("fault", [DROP, DROP_AFTER, 503, 500])
async def test_a_failed_send_is_retried_and_the_reply_arrives_once(fake, start_bot, fault):
    await start_bot([ANSWER])
    fake.fail("POST", "channels", str(GENERAL_ID), "messages", status=fault)
    await fake.send_message("hello?")
    [reply] = await fake.final_messages(GENERAL_ID)
    assert reply["content"] == ANSWER


@pytest.mark.parametrize("fault", [DROP, DROP_AFTER, 503])
async def test_failed_streaming_edits_still_end_in_the_full_answer(fake, start_bot, fault):
    answer = " ".join(f"token{i}" for i in range(60))
    await start_bot([answer], delay=0.8, chunk=8)
    # Fewer failures than a write's attempts, wherever they land (streaming or the final edit).
    fake.fail("PATCH", "channels", str(GENERAL_ID), "messages", status=fault, times=2)
    await fake.send_message("stream please")
    [reply] = await fake.final_messages(GENERAL_ID)
    assert reply["content"] == answer


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 503},
        {"status": 403},
        {"status": 429},
        {"status": DROP},
        {"hold": True},  # a typing call that never returns
    ],
    ids=["503", "403", "429-repeated", "dropped", "hangs"],
)
async def test_a_failing_typing_indicator_never_costs_the_answer(fake, start_bot, fault):
    await start_bot([ANSWER])
    fake.fail("POST", "channels", str(GENERAL_ID), "typing", times=None, **fault)
    await fake.send_message("hello?")
    [reply] = await fake.final_messages(GENERAL_ID)
    assert reply["content"] == ANSWER
    assert fake.requests("POST", "channels", str(GENERAL_ID), "typing")


async def test_a_bot_message_deleted_mid_stream_is_posted_again_with_the_full_answer(
    fake, start_bot
):
    answer = " ".join(f"token{i}" for i in range(60))
    await start_bot([answer], delay=1.0, chunk=8)
    await fake.send_message("stream please")
    [streaming] = await fake.wait_for(lambda: fake.bot_messages(GENERAL_ID))
    del fake.messages[int(streaming["id"])]  # a moderator deletes it
    [reply] = await fake.final_messages(GENERAL_ID)
    assert reply["content"] == answer
    assert reply["id"] != streaming["id"]


async def test_a_stream_spilling_into_a_new_message_never_loses_the_writing_mark(fake, start_bot):
    await start_bot([LONG], delay=1.0, chunk=120)
    await fake.send_message("a long one")
    messages = await fake.final_messages(GENERAL_ID)
    assert [m["content"] for m in messages] == split_text(LONG, 2000)
    # Replay every write: until the last one, some message always shows the mark.
    shown: dict[str, str] = {}
    writes = [
        c
        for c in fake.calls
        if c.path.startswith(f"/channels/{GENERAL_ID}/messages") and c.method in ("POST", "PATCH")
    ]
    posted = iter(m["id"] for m in messages)
    for index, call in enumerate(writes):
        message_id = next(posted) if call.method == "POST" else call.path.rsplit("/", 1)[1]
        shown[message_id] = call.json["content"]
        if index < len(writes) - 1:
            assert any(text.endswith(" ▌") for text in shown.values()), (index, shown)


async def test_a_failing_slash_command_tells_the_user_and_logs_once(fake, start_bot, caplog):
    class BrokenStats(ScriptedBackend):
        def stats(self):
            raise RuntimeError("stats exploded")

    await start_bot(backend=BrokenStats([]))
    caplog.set_level(logging.ERROR)
    interaction = await fake.slash("status")
    [told] = await fake.wait_for(lambda: fake.followup_messages(interaction))
    assert told["content"] == COMMAND_FAILED
    assert told["flags"] & 64
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "status" in errors[0].getMessage()


async def test_a_question_deleted_while_its_answer_is_written_withdraws_the_answer(fake, start_bot):
    run = await start_bot([ANSWER, "Next."], delay=0.5, chunk=8)
    held = fake.fail("PATCH", "channels", str(GENERAL_ID), "messages", hold=True)
    question = await fake.send_message("hello?")
    await fake.wait_for(lambda: held.hits and all(t.generation.done() for t in _turns(run)))
    await fake.dispatch(
        "MESSAGE_DELETE",
        {"id": question["id"], "channel_id": str(GENERAL_ID), "guild_id": str(GUILD_ID)},
    )
    await fake.wait_for(lambda: all(t.withdrawn for t in _turns(run)))
    held.release.set()
    assert await fake.final_messages(GENERAL_ID) == []
    await fake.send_message("still there?")
    [reply] = await fake.final_messages(GENERAL_ID, turns=2)
    assert reply["content"] == "Next."


async def test_shutdown_while_a_streamed_edit_is_in_flight_still_finishes_the_answer(
    fake, start_bot
):
    run = await start_bot([ANSWER], delay=0.5, chunk=8)
    held = fake.fail("PATCH", "channels", str(GENERAL_ID), "messages", hold=True)
    await fake.send_message("hello?")
    await fake.wait_for(lambda: held.hits and all(t.generation.done() for t in _turns(run)))
    closing = asyncio.create_task(run.bot.close())
    await fake.wait_for(lambda: run.bot.chat.responder.closing)
    held.release.set()
    await closing
    [reply] = fake.bot_messages(GENERAL_ID)
    assert reply["content"] == ANSWER


async def test_shutdown_while_a_thread_is_being_opened_still_tells_the_user(fake, start_bot):
    run = await start_bot([ANSWER], auto_thread=True)
    held = fake.fail("POST", "channels", str(GENERAL_ID), "messages", "*", "threads", hold=True)
    await fake.send_message("let's talk")
    await fake.wait_for(lambda: held.hits)
    closing = asyncio.create_task(run.bot.close())
    await fake.wait_for(lambda: run.bot.chat.responder.closing)
    held.release.set()
    await closing
    [thread] = fake.created_threads
    [notice] = fake.bot_messages(int(thread["id"]))
    assert notice["content"] == SHUTDOWN_NOTICE
    assert run.backend.requests == []
