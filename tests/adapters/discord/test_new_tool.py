"""Adding a tool is one model plus one declaration: its slash command, grammar and cards appear
with no adapter edited."""

from __future__ import annotations

from typing import Any

import llguidance.hf

from hermes_bot.adapters.terminal import render_tool
from hermes_bot.backend import Constraint
from hermes_bot.inference.grammar import startup_constraints
from hermes_bot.prompts import format_calls, system_prompt
from hermes_bot.tools import ToolCall, validate_call
from tests.adapters.discord.fake_discord import GENERAL_ID
from tests.adapters.new_tool import CALL


async def test_its_slash_command_card_and_button_appear_on_discord(fake, start_bot, riddle):
    run = await start_bot([format_calls([CALL], "functioncall")] * 2)
    await run.bot.sync_commands(None)
    [synced] = fake.commands.values()
    command = next(c for c in synced if c["name"] == "riddle")
    assert command["description"] == "Ask me a riddle"
    [option] = command["options"]
    assert (option["name"], option["required"], option["max_length"]) == ("topic", True, 50)

    interaction = await fake.slash("riddle", {"topic": "cats"})
    [message] = await fake.wait_for(lambda: fake.followup_messages(interaction))
    [embed] = message["embeds"]
    assert embed["title"] == "🧩 A riddle"
    assert embed["description"] == "**What has nine lives?**\n\n||A cat.||"
    assert embed["fields"][0] == {"name": "About", "value": "cats", "inline": False}
    [button] = [b for row in message["components"] for b in row["components"]]
    assert button["label"] == "Another riddle"

    request = run.backend.requests[0]
    assert request.constraint == Constraint("forced", "functioncall", ("Riddle",))
    assert "Give me a riddle about cats." in request.prompt
    assert '"name": "Riddle"' in request.prompt  # the system prompt lists its schema

    await fake.click(message | {"channel_id": str(GENERAL_ID)}, button["custom_id"])
    await fake.wait_for(lambda: len(run.backend.requests) == 2)
    again = run.backend.requests[1]
    assert again.constraint == Constraint("forced", "functioncall", ("Riddle",))
    assert "Another riddle on the same topic, please." in again.prompt


def test_its_console_card_appears(riddle):
    card = render_tool(validate_call(CALL))
    assert card.startswith("┌─ 🧩 A riddle")
    assert "│ What has nine lives?" in card and "... A cat." in card and "About: cats" in card


def test_its_grammar_forces_a_valid_call(grammar_compiler, tiny_tokenizer: Any, riddle):
    tokens = llguidance.hf.from_tokenizer(tiny_tokenizer).tokenize_str

    def writes(constraint: Constraint, text: str) -> bool:
        matcher = grammar_compiler.matcher(constraint)
        for token in tokens(text):
            if not matcher.mask()[token // 32] >> (token % 32) & 1:
                return False
            matcher.consume(token)
        return matcher.is_finished()

    for dialect in ("functioncall", "tool_call"):
        assert "Riddle" in system_prompt(dialect)
        forced = Constraint("forced", dialect, ("Riddle",))
        assert forced in startup_constraints(dialect)
        assert writes(forced, format_calls([CALL], dialect))
        joke = ToolCall("Joke", {"setup": "Q", "answer": "A"})
        assert not writes(forced, format_calls([joke], dialect))
        bad = ToolCall("Riddle", {"topic": "cats", "question": "Q?"})
        assert not writes(forced, format_calls([bad], dialect))
