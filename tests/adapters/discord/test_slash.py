"""Slash commands: deferred within Discord's window, answered by follow-up."""

from __future__ import annotations

import pytest

from tests.adapters.discord.fake_discord import GENERAL_ID
from tests.adapters.discord.markup import BOOK, JOKE, SONG

DEFERRED = 5


def _calls(fake, interaction, count):
    """The interaction's callback and follow-ups once ``count`` of them arrived."""
    return fake.wait_for(
        lambda: (c := fake.interaction_calls(interaction)) and len(c) >= count and c
    )


@pytest.mark.parametrize(
    ("command", "options", "completion", "forced", "expected"),
    [
        ("joke", None, JOKE, "Joke", "Why did the GPU cross the road?"),
        ("song", {"interest": "synthwave"}, SONG, "SongRecommendation", "Nightcall - Kavinsky"),
        ("book", {"interest": "space opera"}, BOOK, "BookRecommendation", "Dune (Frank Herbert)"),
    ],
)
async def test_tool_commands_defer_then_follow_up_with_a_forced_call_embed(
    fake, start_bot, command, options, completion, forced, expected
):
    run = await start_bot([completion])
    interaction = await fake.slash(command, options)
    callback, followup = await _calls(fake, interaction, 2)
    assert callback.path.endswith("/callback")
    assert callback.json["type"] == DEFERRED
    assert callback.authorization is None
    assert followup.method == "POST" and followup.path.startswith("/webhooks/")
    assert expected in followup.json["embeds"][0]["description"]
    constraint = run.backend.requests[0].constraint
    assert constraint is not None and constraint.mode == "forced"
    assert constraint.tools == (forced,)
    if options:
        assert options["interest"] in run.backend.requests[0].prompt
    buttons = [b["label"] for row in followup.json.get("components", []) for b in row["components"]]
    assert buttons == (["Another one"] if command == "joke" else [])


async def test_chat_command_streams_its_answer_into_the_follow_up(fake, start_bot):
    await start_bot(["A longer answer that arrives in several pieces, one after another."])
    interaction = await fake.slash("chat", {"prompt": "tell me something"})
    await fake.final_messages(GENERAL_ID)
    [message] = fake.followup_messages(interaction)
    assert (
        message["content"] == "A longer answer that arrives in several pieces, one after another."
    )
    calls = fake.interaction_calls(interaction)
    assert calls[0].json["type"] == DEFERRED
    assert [c.method for c in calls[1:]] == ["POST"] + ["PATCH"] * (len(calls) - 2)


async def test_reset_forgets_the_channels_conversation(fake, start_bot):
    run = await start_bot(["First answer."])
    await fake.send_message("remember this")
    await fake.wait_for(lambda: (m := fake.bot_messages(GENERAL_ID)) and "▌" not in m[0]["content"])
    assert await run.pipeline.history_length(f"discord:channel:{GENERAL_ID}") == 2
    interaction = await fake.slash("reset")
    callback, followup = await _calls(fake, interaction, 2)
    assert callback.json["type"] == DEFERRED
    assert callback.json["data"]["flags"] & 64
    assert "forgotten" in followup.json["embeds"][0]["title"]
    assert await run.pipeline.history_length(f"discord:channel:{GENERAL_ID}") == 0


async def test_status_shows_model_device_queue_speed_and_uptime(fake, start_bot):
    await start_bot([])
    interaction = await fake.slash("status")
    callback, followup = await _calls(fake, interaction, 2)
    assert callback.json["type"] == DEFERRED
    fields = {f["name"]: f["value"] for f in followup.json["embeds"][0]["fields"]}
    assert fields["Model"] == "scripted"
    assert fields["Device"] == "none"
    assert fields["Queue"] == "0 waiting · 0 running"
    assert fields["Speed"] == "0.0 tokens/s"
    assert fields["Uptime"].endswith("s")
    assert fields["This conversation"] == "0 messages remembered"


async def test_another_one_button_asks_for_a_new_joke_in_the_same_conversation(fake, start_bot):
    second = JOKE.replace("GPU", "CPU")
    run = await start_bot([JOKE, second])
    await fake.send_message("joke please")
    [message] = await fake.wait_for(lambda: fake.bot_messages(GENERAL_ID))
    await fake.wait_for(lambda: message["embeds"])
    interaction = await fake.click(message, "hermes:joke:again")
    callback, followup = await _calls(fake, interaction, 2)
    assert callback.json["type"] == DEFERRED
    assert "CPU" in followup.json["embeds"][0]["description"]
    assert run.backend.requests[1].constraint.tools == ("Joke",)
    assert "Why did the GPU cross the road?" in run.backend.requests[1].prompt


async def test_owner_sync_command_registers_the_slash_commands(fake, start_bot):
    await start_bot([])
    assert fake.requests("PUT", "applications") == []
    await fake.send_message("sync", user_id=20)
    [put] = await fake.wait_for(lambda: fake.requests("PUT", "applications"))
    names = sorted(command["name"] for command in put.json)
    assert names == ["book", "chat", "forget-me", "joke", "reset", "song", "status"]
    [reply] = await fake.wait_for(lambda: fake.bot_messages(GENERAL_ID))
    assert reply["content"] == "Synced 7 slash commands globally."


async def test_dev_guild_commands_are_synced_at_start(fake, start_bot):
    await start_bot([], dev_guild_id=1000)
    [put] = fake.requests("PUT", "applications")
    assert put.path == "/applications/10/guilds/1000/commands"
    assert len(put.json) == 7


async def test_another_one_still_works_on_a_joke_posted_before_a_restart(fake, start_bot):
    run = await start_bot([JOKE])
    old_joke = fake.create_message(
        GENERAL_ID,
        {
            "content": "",
            "components": [
                {
                    "type": 1,
                    "components": [
                        {
                            "type": 2,
                            "style": 2,
                            "label": "Another one",
                            "custom_id": "hermes:joke:again",
                        }
                    ],
                }
            ],
        },
    )
    interaction = await fake.click(old_joke, "hermes:joke:again")
    callback, followup = await _calls(fake, interaction, 2)
    assert callback.json["type"] == DEFERRED
    assert "Why did the GPU cross the road?" in followup.json["embeds"][0]["description"]
    assert await run.pipeline.history_length(f"discord:channel:{GENERAL_ID}") == 2
