"""Allow lists bind messages and slash commands; per-user rate limits answer with a cooldown."""

from __future__ import annotations

import re

import pytest

from hermes_bot.errors import Busy
from tests.adapters.discord.fake_discord import (
    ALICE,
    BOB,
    GENERAL_ID,
    GUILD_ID,
    MEMBER_ROLE,
    OTHER_CHANNEL_ID,
    RANDOM_ID,
    VIP_ROLE,
)

# (settings, where a denied message comes from, where an allowed one comes from)
DENIALS = [
    pytest.param(
        {"allowed_guilds": [GUILD_ID]},
        {"channel_id": OTHER_CHANNEL_ID},
        {"channel_id": GENERAL_ID},
        id="guild",
    ),
    pytest.param(
        {"allowed_channels": [RANDOM_ID]},
        {"channel_id": GENERAL_ID},
        {"channel_id": RANDOM_ID},
        id="channel",
    ),
    pytest.param(
        {"allowed_roles": [VIP_ROLE]}, {"roles": (MEMBER_ROLE,)}, {"roles": (VIP_ROLE,)}, id="role"
    ),
    pytest.param({"allowed_users": [BOB]}, {"user_id": ALICE}, {"user_id": BOB}, id="user"),
]


def _channel(where):
    return where.get("channel_id", GENERAL_ID)


@pytest.mark.parametrize(("settings", "denied", "allowed"), DENIALS)
async def test_a_denied_message_generates_nothing_and_gets_no_reply(
    fake, start_bot, settings, denied, allowed
):
    run = await start_bot(["The allowed answer."], **settings)
    await fake.send_message("hello?", **denied)
    barrier = await fake.send_message("and me?", **allowed)  # events arrive in order
    [reply] = await fake.final_messages(_channel(allowed))
    assert reply["message_reference"]["message_id"] == barrier["id"]
    [request] = run.backend.requests
    assert "and me?" in request.prompt
    assert len(fake.requests("POST", "channels", "*", "messages")) == 1
    assert fake.bot_messages(_channel(denied)) in ([], [reply])


@pytest.mark.parametrize(("settings", "denied", "allowed"), DENIALS)
async def test_a_denied_slash_command_gets_a_polite_private_refusal(
    fake, start_bot, settings, denied, allowed
):
    run = await start_bot(["The allowed answer."], **settings)
    interaction = await fake.slash("chat", {"prompt": "hello?"}, **denied)
    [callback] = await fake.wait_for(lambda: fake.interaction_calls(interaction))
    assert callback.json["type"] == 4
    assert callback.json["data"]["flags"] & 64
    assert callback.json["data"]["content"].startswith("Sorry, I'm not enabled")
    await fake.slash("chat", {"prompt": "and me?"}, **allowed)
    await fake.final_messages(_channel(allowed))
    [request] = run.backend.requests
    assert "and me?" in request.prompt
    assert fake.interaction_calls(interaction) == [callback]


async def test_allowed_origins_pass_every_list(fake, start_bot):
    run = await start_bot(
        ["Welcome."],
        allowed_guilds=[GUILD_ID],
        allowed_channels=[GENERAL_ID],
        allowed_roles=[VIP_ROLE],
        allowed_users=[ALICE],
    )
    await fake.send_message("hi", roles=(MEMBER_ROLE, VIP_ROLE))
    [reply] = await fake.wait_for(lambda: fake.bot_messages(GENERAL_ID))
    await fake.wait_for(lambda: reply["content"] == "Welcome.")
    assert len(run.backend.requests) == 1


async def test_spam_gets_one_cooldown_notice_saying_when_to_retry_and_reactions_after(
    fake, start_bot
):
    run = await start_bot(["one", "two", "three"], rate_limit_messages=2, rate_limit_seconds=60)
    sent = [await fake.send_message(f"spam {i}") for i in range(12)]

    def outcomes():
        # Every message gets exactly one outcome: an answer, the notice, or a reaction.
        finals = [m for m in fake.bot_messages(GENERAL_ID) if "▌" not in m["content"]]
        marked = [m for m in sent if fake.reactions.get(int(m["id"]))]
        return len(finals) + len(marked) == 12 and (finals, marked)

    finals, marked = await fake.wait_for(outcomes)
    [notice] = [m for m in finals if "too quickly" in m["content"]]
    seconds = int(re.search(r"Try again in (\d+) s", notice["content"]).group(1))
    assert 55 <= seconds <= 60
    assert notice["message_reference"]["message_id"] == sent[2]["id"]
    assert marked == sent[3:]
    assert all(fake.reactions[int(m["id"])] == ["⏳"] for m in marked)
    assert len(run.backend.requests) == 2
    await fake.send_message("d", user_id=BOB)
    await fake.wait_for(lambda: len(run.backend.requests) == 3)


async def test_a_rate_limited_slash_command_gets_a_private_cooldown_notice(fake, start_bot):
    run = await start_bot(["one"], rate_limit_messages=1, rate_limit_seconds=60)
    await fake.slash("chat", {"prompt": "first"})
    second = await fake.slash("chat", {"prompt": "second"})
    [callback] = await fake.wait_for(lambda: fake.interaction_calls(second))
    assert callback.json["type"] == 4
    assert callback.json["data"]["flags"] & 64
    assert "Try again in" in callback.json["data"]["content"]
    assert len(run.backend.requests) == 1


async def test_pipeline_errors_busy_or_too_long_are_shown_to_the_user(fake, start_bot):
    def busy(request):
        raise Busy("queue full", queue_position=3)

    await start_bot(busy, chat={"max_message_chars": 40})
    await fake.send_message("this message is far too long for the configured limit")
    await fake.send_message("short one", channel_id=RANDOM_ID)
    [too_long] = await fake.wait_for(lambda: fake.bot_messages(GENERAL_ID))
    [busy_reply] = await fake.wait_for(lambda: fake.bot_messages(RANDOM_ID))
    assert too_long["content"].startswith("⚠️ Your message is too long")
    assert busy_reply["content"] == (
        "⚠️ I'm busy right now (3 requests ahead of you). Please try again in a moment."
    )
