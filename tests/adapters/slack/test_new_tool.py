"""A tool registered after the fact gets its Slack slash command, card and buttons."""

from __future__ import annotations

from hermes_bot.adapters.slack.blocks import FOLLOW_UP, REVEAL
from hermes_bot.backend import Constraint
from hermes_bot.prompts import format_calls
from tests.adapters.new_tool import CALL
from tests.adapters.slack.fake_slack import ALICE, GENERAL


async def test_its_slash_command_card_and_buttons_appear_on_slack(fake, start_bot, riddle):
    running = await start_bot([format_calls([CALL], "functioncall")] * 2)
    await fake.slash("/riddle")
    await fake.slash("/riddle", "cats")
    [card] = await fake.wait_for(
        lambda: [m for m in fake.bot_messages(GENERAL) if "riddle" in m["text"]]
    )
    [usage] = await fake.wait_for(lambda: fake.ephemerals_for(ALICE))
    assert usage["text"].startswith("Usage: `/riddle <topic>`")
    blocks = {b["type"]: b for b in reversed(card["blocks"])}  # the first of each type
    assert blocks["header"]["text"]["text"] == "🧩 A riddle"
    assert blocks["section"]["text"]["text"] == "*What has nine lives?*"
    assert "A cat." not in str(card["blocks"][:-2])  # the solution hides behind a button
    fields = [f["text"] for b in card["blocks"] for f in b.get("fields", [])]
    assert fields == ["*About*\ncats"]
    buttons = [e["text"]["text"] for e in blocks["actions"]["elements"]]
    assert buttons == ["Show answer", "🔁 Another riddle"]
    assert running.backend.requests[0].constraint == Constraint(
        "forced", "functioncall", ("Riddle",)
    )
    assert "Give me a riddle about cats." in running.backend.requests[0].prompt

    await fake.click(card, REVEAL)
    await fake.wait_for(lambda: "A cat." in str(fake.ephemerals_for(ALICE)))
    await fake.click(card, FOLLOW_UP + "Riddle")
    await fake.wait_for(lambda: len(running.backend.requests) == 2)
    assert "Another riddle on the same topic, please." in running.backend.requests[1].prompt
